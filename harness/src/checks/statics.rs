//! The static checks: each reads one cluster's installed manifests and its roles.
//!
//! One submodule per family of rules; this module dispatches, handles refusals, and
//! holds the small readers every family shares (annotations, port lists, skip
//! reasons, evidence).

mod cert_chain;
mod fence;
mod mesh;
mod mtls;

pub use cert_chain::INJECT_CA_FROM;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{CheckId, CheckKind, ClusterContext, Evidence, Outcome};
use crate::manifests::{ManifestSet, WorkloadRef};
use crate::roles::Roles;
use crate::scenario::{Cluster, IstioEnabled, IstioMode, MtlsMode, Scenario, SidecarKind};

/// Istio annotation: inbound ports whose traffic bypasses the sidecar (Istio
/// annotation reference, `traffic.sidecar.istio.io/excludeInboundPorts`).
pub const EXCLUDE_INBOUND: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
/// Istio annotation: outbound ports whose traffic bypasses the sidecar.
pub const EXCLUDE_OUTBOUND: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
/// Istio annotation or label that turns sidecar injection off for a pod.
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
/// The DestinationRule subset the fencing routes to (seed: Preventing Cross-Cluster
/// Requests).
pub const LOCAL_SUBSET: &str = "local-cluster";
/// The label Istio applies to workload instances with their cluster ID (Istio
/// resource label reference); not a label on pod objects.
pub const CLUSTER_LABEL: &str = "topology.istio.io/cluster";
/// The pilot-agent endpoint (port 15020, `POST`) that makes a classic sidecar exit
/// (Istio FAQ, Jobs).
pub const PROXY_QUIT_PATH: &str = "/quitquitquit";

/// Runs one static check on one cluster.
pub fn check(check: CheckId, ctx: &ClusterContext<'_>) -> Outcome {
    match check {
        CheckId::MtlsInbound => mtls::inbound(ctx),
        CheckId::MtlsOutbound => mtls::outbound(ctx),
        CheckId::CertChain => cert_chain::check(ctx),
        CheckId::FencePresent => fence::present(ctx),
        CheckId::FenceSubset => fence::subset(ctx),
        CheckId::FenceRoute => fence::route(ctx),
        CheckId::ClusterId => fence::cluster_id(ctx),
        CheckId::AmbientExplicit => fence::ambient_explicit(ctx),
        CheckId::Detect => mesh::detect(ctx),
        CheckId::AmbientStrictPermissive => mtls::ambient_strict_permissive(ctx),
        CheckId::CertManagerStrict => mtls::cert_manager_strict(ctx),
        CheckId::SidecarJobExit => mesh::sidecar_job_exit(ctx),
        CheckId::ValidatorInitOrder => mesh::validator_init_order(ctx),
        runtime => {
            debug_assert_eq!(runtime.kind(), CheckKind::Runtime);
            Outcome::skip(format!(
                "{runtime} is a runtime check; it does not read manifests"
            ))
        }
    }
}

/// The outcome of a check on a cluster where the subject refused to install.
///
/// Refusing is what AMBIENT-EXPLICIT asks for in an ambient cluster without an
/// explicit clusterID; for every other check there is nothing installed to check.
pub fn on_refusal(
    check: CheckId,
    scenario: &Scenario,
    cluster: &Cluster,
    message: &str,
) -> Outcome {
    // The refusal rules depend on the cluster alone; `scenario` stays in the signature
    // that checks::run_static calls.
    let _ = scenario;
    if check == CheckId::AmbientExplicit && fence::refusal_required(cluster) {
        return Outcome::pass(format!("refused as required: {message}"));
    }
    Outcome::skip(format!("not installed: the subject refused: {message}"))
}

/// Shorthands over a cluster context.
impl ClusterContext<'_> {
    fn manifests(&self) -> &ManifestSet {
        &self.installed.manifests
    }

    fn roles(&self) -> &Roles {
        &self.installed.roles
    }

    /// Evidence about this cluster.
    fn evidence(
        &self,
        subject: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Evidence {
        Evidence::new(&self.cluster.name, subject, expected, found)
    }

    fn istio_mode(&self) -> IstioMode {
        self.cluster.istio.mode
    }

    fn strict(&self) -> bool {
        self.cluster.istio.mtls == MtlsMode::Strict
    }

    fn classic_sidecars(&self) -> bool {
        self.cluster.istio.mode == IstioMode::Sidecar
            && self.cluster.istio.sidecar == SidecarKind::Classic
    }
}

/// A skip when the seed's detection rule turns Istio integration off here.
fn skip_unless_active(ctx: &ClusterContext<'_>) -> Option<Outcome> {
    (!crate::subject::istio_active(ctx.cluster)).then(|| {
        Outcome::skip(format!(
            "Istio integration is off here (integrations.istio.enabled={}, Istio CRDs present={})",
            enabled_text(ctx.cluster.agent.istio_enabled),
            ctx.cluster.has_istio()
        ))
    })
}

/// `integrations.istio.enabled` as written in values.
fn enabled_text(enabled: IstioEnabled) -> &'static str {
    match enabled {
        IstioEnabled::Auto => "null",
        IstioEnabled::On => "true",
        IstioEnabled::Off => "false",
    }
}

/// A failure because a role could not be found, with discovery's own account of
/// where the trail ended.
fn missing_role(ctx: &ClusterContext<'_>, role: &str) -> Outcome {
    let prefix = format!("{role}:");
    let problems = &ctx.roles().problems;
    let relevant: Vec<&str> = problems
        .iter()
        .filter(|p| p.starts_with(&prefix))
        .map(String::as_str)
        .collect();
    let found = match (relevant.is_empty(), problems.is_empty()) {
        (false, _) => relevant.join("; "),
        (true, false) => problems.join("; "),
        (true, true) => "role discovery recorded no reason".to_string(),
    };
    Outcome::fail(format!("no {role} found in the manifests")).with(ctx.evidence(
        format!("{role} role"),
        format!("a {role} found by following the agent's contract (DESIGN.md section 4)"),
        found,
    ))
}

/// An object's name for evidence; empty when the manifests leave it out, so the
/// evidence still shows the kind and what else is known.
fn object_name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The pod template's annotations (empty when it has none).
fn annotations(template: &PodTemplateSpec) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .unwrap_or(&EMPTY)
}

/// An Istio port-list annotation's entries: comma separated, spaces trimmed.
fn port_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether the pod template's port-list annotation `key` lists `port`, and what the
/// annotation says (for evidence).
fn annotation_lists_port(
    template: &PodTemplateSpec,
    key: &str,
    port: u16,
) -> Result<String, String> {
    match annotations(template).get(key) {
        None => Err(format!("no {key} annotation")),
        Some(value) if port_list(value).contains(&port.to_string().as_str()) => {
            Ok(format!("{key}: \"{value}\""))
        }
        Some(value) => Err(format!("{key}: \"{value}\"")),
    }
}

/// The pod template of a workload, or a failure saying it is gone.
fn template_of<'a>(
    ctx: &'a ClusterContext<'_>,
    workload: &WorkloadRef,
) -> Result<&'a PodTemplateSpec, Outcome> {
    ctx.manifests().pod_template(workload).ok_or_else(|| {
        Outcome::fail(format!("{workload} has no pod template")).with(ctx.evidence(
            workload.to_string(),
            "a pod template",
            "none in the manifests",
        ))
    })
}

/// Folds per-object failures into one outcome: a pass with `pass_summary` when there
/// are none, else a failure carrying every piece of evidence.
fn all_hold(failures: Vec<Evidence>, pass_summary: String, fail_summary: &str) -> Outcome {
    if failures.is_empty() {
        return Outcome::pass(pass_summary);
    }
    let summary = match failures.as_slice() {
        [only] => format!("{fail_summary}: {}: {}", only.subject, only.found),
        many => format!("{fail_summary} ({} problems)", many.len()),
    };
    failures
        .into_iter()
        .fold(Outcome::fail(summary), |o, e| o.with(e))
}

#[cfg(test)]
mod fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn port_lists_are_comma_separated_and_trimmed() {
        assert_eq!(port_list(" 8443 , 9090,,"), vec!["8443", "9090"]);
        assert!(port_list("").is_empty());
    }

    #[test]
    fn refusal_skips_every_check_but_ambient_explicit_in_an_ambient_cluster() {
        let scenario = fixture::scenario("ambient", "strict", "init-cert", "{clusterName: alpha}");
        let cluster = &scenario.clusters[0];
        let passed = on_refusal(
            CheckId::AmbientExplicit,
            &scenario,
            cluster,
            "clusterID required",
        );
        assert_eq!(passed.status, Status::Pass);
        assert_eq!(passed.summary, "refused as required: clusterID required");
        let skipped = on_refusal(
            CheckId::FencePresent,
            &scenario,
            cluster,
            "clusterID required",
        );
        assert_eq!(skipped.status, Status::Skip);
        assert!(
            skipped
                .summary
                .starts_with("not installed: the subject refused")
        );

        let explicit = fixture::scenario(
            "ambient",
            "strict",
            "init-cert",
            "{clusterName: alpha, integrations: {istio: {clusterID: alpha}}}",
        );
        let outcome = on_refusal(
            CheckId::AmbientExplicit,
            &explicit,
            &explicit.clusters[0],
            "no",
        );
        assert_eq!(outcome.status, Status::Skip, "{outcome:?}");
    }

    #[test]
    fn runtime_checks_are_not_run_statically() {
        let f = fixture::Fixture::sidecar();
        assert_eq!(f.run(CheckId::WebhookReach).status, Status::Skip);
    }
}
