//! How the agent lives with the mesh as a whole: the detection rule (seed: Settings),
//! Jobs under classic sidecars, and where the validator runs relative to the proxy.

use super::{
    ClusterContext, Outcome, PROXY_QUIT_PATH, SIDECAR_INJECT, all_hold, annotations, enabled_text,
    missing_role, skip_unless_active, template_of,
};
use crate::scenario::IstioMode;

/// Annotation prefixes that only mean something to Istio's sidecar injector and proxy
/// (Istio annotation reference).
const ISTIO_ANNOTATION_PREFIXES: [&str; 3] = [
    "traffic.sidecar.istio.io/",
    "sidecar.istio.io/",
    "proxy.istio.io/",
];

/// DETECT: Istio on renders something Istio; Istio off renders nothing Istio at all.
pub(super) fn detect(ctx: &ClusterContext<'_>) -> Outcome {
    let set = ctx.manifests();
    let mut rendered: Vec<String> = Vec::new();
    for (workload, template) in set.pod_templates() {
        for key in annotations(template).keys() {
            if ISTIO_ANNOTATION_PREFIXES.iter().any(|p| key.starts_with(p)) {
                rendered.push(format!("{workload} annotation {key}"));
            }
        }
    }
    rendered.extend(set.resources().filter(|r| r.is_istio()).map(|r| r.key()));
    let enabled = enabled_text(ctx.cluster.agent.istio_enabled);
    let crds = ctx.cluster.has_istio();
    let active = crate::subject::istio_active(ctx.cluster);
    match (active, rendered.is_empty()) {
        (true, false) => Outcome::pass(format!(
            "Istio integration on (enabled={enabled}, CRDs present={crds}): {} Istio annotations and resources",
            rendered.len()
        )),
        (true, true) => Outcome::fail(format!(
            "enabled={enabled}, CRDs present={crds}, but nothing Istio was rendered"
        ))
        .with(ctx.evidence(
            "all manifests",
            "Istio annotations on pod templates or Istio resources",
            "none",
        )),
        (false, true) => Outcome::pass(format!(
            "Istio integration off (enabled={enabled}, CRDs present={crds}): nothing Istio rendered"
        )),
        (false, false) => Outcome::fail(format!(
            "enabled={enabled}, CRDs present={crds}: Istio is off, yet {} Istio annotations or resources were rendered",
            rendered.len()
        ))
        .with(ctx.evidence(
            "all manifests",
            "no Istio annotation on any pod template and no *.istio.io resource",
            rendered.join("; "),
        )),
    }
}

/// SIDECAR-JOB-EXIT: under classic sidecars, every backfill pod either has no sidecar
/// or tells it to quit; otherwise the proxy keeps the Job's pod running forever.
pub(super) fn sidecar_job_exit(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    if !ctx.classic_sidecars() {
        return Outcome::skip("applies to classic (non-native) sidecars only");
    }
    let backfill = &ctx.roles().backfill;
    if backfill.is_empty() {
        return missing_role(ctx, "backfill");
    }
    let mut failures = Vec::new();
    let mut ways = Vec::new();
    for workload in backfill {
        let template = match template_of(ctx, workload) {
            Ok(t) => t,
            Err(failed) => return failed,
        };
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let opted_out = annotations(template)
            .get(SIDECAR_INJECT)
            .map(String::as_str)
            == Some("false")
            || labels
                .and_then(|l| l.get(SIDECAR_INJECT))
                .map(String::as_str)
                == Some("false");
        let quits = template.spec.as_ref().is_some_and(|spec| {
            spec.containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
                .any(|s| s.contains(PROXY_QUIT_PATH))
        });
        match (opted_out, quits) {
            (true, _) => ways.push(format!("{workload} opts out of injection")),
            (_, true) => ways.push(format!("{workload} calls {PROXY_QUIT_PATH}")),
            _ => failures.push(ctx.evidence(
                workload.to_string(),
                format!(
                    "{SIDECAR_INJECT}: \"false\", or a container command calling {PROXY_QUIT_PATH}"
                ),
                "injected, and nothing tells the proxy to quit",
            )),
        }
    }
    all_hold(
        failures,
        ways.join("; "),
        "a backfill Job would never complete under classic sidecars",
    )
}

/// VALIDATOR-INIT-ORDER: a validator that reads the proxy's admin port cannot run in
/// an init container before a classic sidecar has started.
pub(super) fn validator_init_order(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    if ctx.istio_mode() == IstioMode::Ambient {
        return Outcome::skip("ambient mode: no sidecar to start before or after");
    }
    let Some(validator) = &ctx.roles().validator else {
        let why = ctx
            .roles()
            .problems
            .iter()
            .find(|p| p.starts_with("validator:"))
            .cloned()
            .unwrap_or_else(|| "no validator found".to_string());
        return Outcome::skip(format!("no validator to check: {why}"));
    };
    let place = if validator.init {
        "an init container"
    } else {
        "a regular container"
    };
    if ctx.classic_sidecars() && validator.init {
        return Outcome::fail(format!(
            "validator {} is an init container, which runs before a classic sidecar starts",
            validator.container
        ))
        .with(ctx.evidence(
            format!("{} container {}", validator.workload, validator.container),
            "a regular container (classic sidecars start after init containers), or native sidecars",
            "an init container under classic sidecars",
        ));
    }
    let sidecars = if ctx.classic_sidecars() {
        "classic"
    } else {
        "native"
    };
    Outcome::pass(format!(
        "validator {} is {place} with {sidecars} sidecars",
        validator.container
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, add_line_after};
    use crate::checks::{CheckId, Status};

    #[test]
    fn detect_wants_istio_things_when_on_and_none_when_off() {
        assert_eq!(Fixture::sidecar().run(CheckId::Detect).status, Status::Pass);
        // The sidecar fixture's manifests in a cluster without Istio: everything Istio
        // is listed.
        let outcome = Fixture::no_istio().run(CheckId::Detect);
        assert_eq!(outcome.status, Status::Fail);
        let found = &outcome.evidence[0].found;
        assert!(
            found.contains(
                "Deployment/cz-cz-webhook annotation traffic.sidecar.istio.io/excludeInboundPorts"
            ),
            "{found}"
        );
        assert!(
            found.contains("DestinationRule/cz-cz-aggregator-cluster-local"),
            "{found}"
        );
    }

    #[test]
    fn detect_fails_an_active_cluster_with_nothing_istio() {
        let bare = Fixture::sidecar().edit(|y| {
            y.split("---\napiVersion: networking.istio.io/v1")
                .next()
                .unwrap()
                .replace("traffic.sidecar.istio.io/", "example.com/")
        });
        let outcome = bare.run(CheckId::Detect);
        assert_eq!(outcome.status, Status::Fail, "{outcome:?}");
        assert_eq!(
            outcome.summary,
            "enabled=null, CRDs present=true, but nothing Istio was rendered"
        );
    }

    #[test]
    fn classic_sidecar_jobs_must_quit_or_opt_out() {
        let f = Fixture::classic();
        assert_eq!(f.run(CheckId::SidecarJobExit).status, Status::Pass);
        let stuck = f.edit(|y| {
            y.replace(
                "; curl -fsS -X POST http://localhost:15020/quitquitquit",
                "",
            )
        });
        let outcome = stuck.run(CheckId::SidecarJobExit);
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(outcome.evidence.len(), 2);
        let opted_out = stuck.edit(|y| {
            add_line_after(
                y,
                "excludeOutboundPorts",
                "sidecar.istio.io/inject: \"false\"",
            )
        });
        assert_eq!(opted_out.run(CheckId::SidecarJobExit).status, Status::Pass);
        assert_eq!(
            Fixture::sidecar().run(CheckId::SidecarJobExit).status,
            Status::Skip
        );
    }

    #[test]
    fn validator_in_init_container_fails_only_under_classic_sidecars() {
        assert_eq!(
            Fixture::sidecar().run(CheckId::ValidatorInitOrder).status,
            Status::Pass
        );
        assert_eq!(
            Fixture::classic().run(CheckId::ValidatorInitOrder).status,
            Status::Pass
        );
        let classic_init = Fixture::sidecar().with_scenario(Fixture::classic().scenario);
        let outcome = classic_init.run(CheckId::ValidatorInitOrder);
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(
            Fixture::ambient().run(CheckId::ValidatorInitOrder).status,
            Status::Skip
        );
        let none = Fixture::sidecar().edit(|y| {
            y.replace("name: validator", "name: checker")
                .replace("ISTIO_AMBIENT_REDIRECTION", "OTHER")
        });
        let outcome = none.run(CheckId::ValidatorInitOrder);
        assert_eq!(outcome.status, Status::Skip);
        assert!(outcome.summary.contains("no validator"), "{outcome:?}");
    }
}
