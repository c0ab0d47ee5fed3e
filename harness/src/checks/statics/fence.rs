//! The aggregator's fencing (seed: Cross-Cluster Load Balancing > Preventing
//! Cross-Cluster Requests): a DestinationRule subset `local-cluster` selecting
//! `topology.istio.io/cluster: <effective cluster ID>`, a VirtualService routing 100%
//! to it, and the ambient rule that the ID is never a fallback.

use super::{
    CLUSTER_LABEL, ClusterContext, LOCAL_SUBSET, Outcome, missing_role, object_name,
    skip_unless_active,
};
use crate::manifests::{DestinationRule, HttpRoute, ManifestSet, Subset, VirtualService};
use crate::roles::AggregatorRole;
use crate::scenario::{Cluster, IstioMode};

/// DestinationRules whose host is exactly `host`.
fn destination_rules_for<'a>(set: &'a ManifestSet, host: &str) -> Vec<&'a DestinationRule> {
    set.destination_rules()
        .filter(|d| d.spec.host == host)
        .collect()
}

/// VirtualServices whose hosts include exactly `host`.
fn virtual_services_for<'a>(set: &'a ManifestSet, host: &str) -> Vec<&'a VirtualService> {
    set.virtual_services()
        .filter(|v| v.spec.hosts.iter().any(|h| h == host))
        .collect()
}

/// The `local-cluster` subset of the first DestinationRule for `host` that has one.
fn local_subset<'a>(set: &'a ManifestSet, host: &str) -> Option<(&'a DestinationRule, &'a Subset)> {
    destination_rules_for(set, host).into_iter().find_map(|d| {
        d.spec
            .subsets
            .iter()
            .find(|s| s.name == LOCAL_SUBSET)
            .map(|s| (d, s))
    })
}

/// What DestinationRules and VirtualServices the set has, for evidence.
fn fencing_seen(set: &ManifestSet) -> String {
    let rules: Vec<String> = set
        .destination_rules()
        .map(|d| {
            format!(
                "DestinationRule/{} host {}",
                object_name(&d.metadata),
                d.spec.host
            )
        })
        .collect();
    let services: Vec<String> = set
        .virtual_services()
        .map(|v| {
            format!(
                "VirtualService/{} hosts [{}]",
                object_name(&v.metadata),
                v.spec.hosts.join(", ")
            )
        })
        .collect();
    let all: Vec<String> = rules.into_iter().chain(services).collect();
    if all.is_empty() {
        "no DestinationRule and no VirtualService".to_string()
    } else {
        all.join("; ")
    }
}

/// The aggregator role of an active cluster, or the outcome that ends the check.
fn active_aggregator<'a>(ctx: &'a ClusterContext<'_>) -> Result<&'a AggregatorRole, Outcome> {
    if let Some(skip) = skip_unless_active(ctx) {
        return Err(skip);
    }
    ctx.roles()
        .aggregator
        .as_ref()
        .ok_or_else(|| missing_role(ctx, "aggregator"))
}

/// The evidence subject for the aggregator's fencing as a whole.
fn fencing_subject(aggregator: &AggregatorRole) -> String {
    format!("fencing of Service/{}", aggregator.service)
}

/// A failure because the fencing object `wanted` describes is not there; the evidence
/// lists the fencing objects that are.
fn fencing_missing(
    ctx: &ClusterContext<'_>,
    aggregator: &AggregatorRole,
    summary: String,
    wanted: String,
) -> Outcome {
    Outcome::fail(summary).with(ctx.evidence(
        fencing_subject(aggregator),
        wanted,
        fencing_seen(ctx.manifests()),
    ))
}

/// FENCE-PRESENT: a DestinationRule and a VirtualService name the aggregator's FQDN.
pub(super) fn present(ctx: &ClusterContext<'_>) -> Outcome {
    let aggregator = match active_aggregator(ctx) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let set = ctx.manifests();
    let host = aggregator.fqdn();
    let rules = destination_rules_for(set, &host);
    let services = virtual_services_for(set, &host);
    if let (Some(rule), Some(service)) = (rules.first(), services.first()) {
        return Outcome::pass(format!(
            "DestinationRule/{} and VirtualService/{} for {host}",
            object_name(&rule.metadata),
            object_name(&service.metadata)
        ));
    }
    let mut missing = Vec::new();
    if rules.is_empty() {
        missing.push("DestinationRule");
    }
    if services.is_empty() {
        missing.push("VirtualService");
    }
    fencing_missing(
        ctx,
        aggregator,
        format!("no {} for {host}", missing.join(" and no ")),
        format!("a DestinationRule with host {host} and a VirtualService whose hosts include it"),
    )
}

/// FENCE-SUBSET: subset `local-cluster` selects on exactly `topology.istio.io/cluster`.
pub(super) fn subset(ctx: &ClusterContext<'_>) -> Outcome {
    let aggregator = match active_aggregator(ctx) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let set = ctx.manifests();
    let host = aggregator.fqdn();
    let rules = destination_rules_for(set, &host);
    let Some(rule) = rules.first() else {
        return fencing_missing(
            ctx,
            aggregator,
            format!("no DestinationRule for {host}"),
            format!("a DestinationRule with host {host}"),
        );
    };
    let subject = format!("DestinationRule/{}", object_name(&rule.metadata));
    let Some((rule, subset)) = local_subset(set, &host) else {
        let names: Vec<&str> = rule.spec.subsets.iter().map(|s| s.name.as_str()).collect();
        return Outcome::fail(format!("{subject} has no subset {LOCAL_SUBSET}")).with(
            ctx.evidence(
                subject,
                format!("a subset named {LOCAL_SUBSET}"),
                format!("subsets [{}]", names.join(", ")),
            ),
        );
    };
    let subject = format!(
        "DestinationRule/{} subset {LOCAL_SUBSET}",
        object_name(&rule.metadata)
    );
    let keys: Vec<&str> = subset.labels.keys().map(String::as_str).collect();
    if keys == [CLUSTER_LABEL] {
        return Outcome::pass(format!("{subject} selects on {CLUSTER_LABEL} only"));
    }
    let found: String = keys.iter().map(|k| format!("{k}\n")).collect();
    Outcome::fail(format!("{subject} must select on {CLUSTER_LABEL} alone")).with(
        ctx.evidence(
            subject,
            format!("labels with exactly one key, {CLUSTER_LABEL}"),
            format!("label keys [{}]", keys.join(", ")),
        )
        .with_diff(&format!("{CLUSTER_LABEL}\n"), &found),
    )
}

/// FENCE-ROUTE: every HTTP route of the VirtualService sends all traffic to the FQDN's
/// `local-cluster` subset.
pub(super) fn route(ctx: &ClusterContext<'_>) -> Outcome {
    let aggregator = match active_aggregator(ctx) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let set = ctx.manifests();
    let host = aggregator.fqdn();
    let services = virtual_services_for(set, &host);
    let Some(service) = services.first() else {
        return fencing_missing(
            ctx,
            aggregator,
            format!("no VirtualService for {host}"),
            format!("a VirtualService whose hosts include {host}"),
        );
    };
    let subject = format!("VirtualService/{}", object_name(&service.metadata));
    let expected = format!("every http route: 100% to host {host} subset {LOCAL_SUBSET}");
    if service.spec.http.is_empty() {
        return Outcome::fail(format!("{subject} has no http route")).with(ctx.evidence(
            subject,
            expected,
            "no http routes",
        ));
    }
    let problems: Vec<String> = service
        .spec
        .http
        .iter()
        .enumerate()
        .filter_map(|(i, r)| route_problem(r, &host).map(|p| format!("http[{i}]: {p}")))
        .collect();
    if problems.is_empty() {
        return Outcome::pass(format!(
            "{subject} routes 100% to {host} subset {LOCAL_SUBSET}"
        ));
    }
    Outcome::fail(format!(
        "{subject} does not keep all aggregator traffic in the local subset"
    ))
    .with(ctx.evidence(subject, expected, problems.join("; ")))
}

/// Why one HTTP route does not send all of its traffic to the local subset.
fn route_problem(route: &HttpRoute, host: &str) -> Option<String> {
    if route.route.is_empty() {
        return Some("no destination".to_string());
    }
    let mut problems = Vec::new();
    for d in &route.route {
        let dest = &d.destination;
        if dest.host != host {
            problems.push(format!("destination host {:?}", dest.host));
        }
        match dest.subset.as_deref() {
            Some(LOCAL_SUBSET) => {}
            Some(other) => problems.push(format!("destination subset {other:?}")),
            None => problems.push("a destination without a subset".to_string()),
        }
    }
    // Istio: a lone destination without weight gets 100; otherwise weights sum to 100.
    let total: i64 = match route.route.as_slice() {
        [only] => only.weight.unwrap_or(100),
        many => many.iter().map(|d| d.weight.unwrap_or(0)).sum(),
    };
    if total != 100 {
        problems.push(format!("weights sum to {total}"));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// CLUSTER-ID: the subset selects the effective cluster ID, and the validator expects
/// the same one.
pub(super) fn cluster_id(ctx: &ClusterContext<'_>) -> Outcome {
    let aggregator = match active_aggregator(ctx) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let Some(effective) = ctx.cluster.agent.effective_cluster_id() else {
        return Outcome::fail("neither integrations.istio.clusterID nor clusterName is set").with(
            ctx.evidence(
                "values",
                "effective = integrations.istio.clusterID || clusterName",
                "both unset",
            ),
        );
    };
    let set = ctx.manifests();
    let host = aggregator.fqdn();
    let mut failures = Vec::new();
    match local_subset(set, &host) {
        None => failures.push(ctx.evidence(
            fencing_subject(aggregator),
            format!("subset {LOCAL_SUBSET} of a DestinationRule for {host} selecting {CLUSTER_LABEL}: {effective}"),
            format!("no such subset ({})", fencing_seen(set)),
        )),
        Some((rule, subset)) => {
            let subject = format!("DestinationRule/{} subset {LOCAL_SUBSET}", object_name(&rule.metadata));
            match subset.labels.get(CLUSTER_LABEL) {
                None => failures.push(ctx.evidence(
                    subject,
                    format!("{CLUSTER_LABEL}: {effective}"),
                    format!("no {CLUSTER_LABEL} label"),
                )),
                Some(value) if value != effective => failures.push(
                    ctx.evidence(subject, format!("{CLUSTER_LABEL}: {effective}"), format!("{CLUSTER_LABEL}: {value}"))
                        .with_diff(&format!("{effective}\n"), &format!("{value}\n")),
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(validator) = &ctx.roles().validator
        && let Some(expected) = &validator.expected_cluster_id
        && expected != effective
    {
        failures.push(
            ctx.evidence(
                format!("{} container {}", validator.workload, validator.container),
                format!("expects cluster ID {effective}"),
                format!("expects cluster ID {expected}"),
            )
            .with_diff(&format!("{effective}\n"), &format!("{expected}\n")),
        );
    }
    let source = if ctx.cluster.agent.istio_cluster_id.is_some() {
        "integrations.istio.clusterID"
    } else {
        "clusterName (no clusterID set)"
    };
    super::all_hold(
        failures,
        format!("fencing uses effective cluster ID {effective} from {source}"),
        "the fencing does not use the effective cluster ID",
    )
}

/// True when the seed requires the subject to refuse: Istio active in ambient mode
/// without an explicit clusterID.
pub(super) fn refusal_required(cluster: &Cluster) -> bool {
    cluster.istio.mode == IstioMode::Ambient
        && crate::subject::istio_active(cluster)
        && cluster.agent.istio_cluster_id.is_none()
}

/// AMBIENT-EXPLICIT on an installed cluster: passes with an explicit clusterID; an
/// install without one fell back to clusterName, which the seed forbids.
pub(super) fn ambient_explicit(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    if ctx.istio_mode() != IstioMode::Ambient {
        return Outcome::skip("applies to ambient clusters only");
    }
    if let Some(id) = &ctx.cluster.agent.istio_cluster_id {
        return Outcome::pass(format!(
            "integrations.istio.clusterID is set explicitly ({id})"
        ));
    }
    let fallback = ctx
        .roles()
        .aggregator
        .as_ref()
        .and_then(|a| local_subset(ctx.manifests(), &a.fqdn()))
        .and_then(|(_, s)| s.labels.get(CLUSTER_LABEL).cloned());
    Outcome::fail("ambient mode without integrations.istio.clusterID, and the subject installed anyway")
        .with(ctx.evidence(
            "install",
            "a refusal to install: ambient mode requires an explicit integrations.istio.clusterID",
            match fallback {
                Some(value) => format!("installed with subset {LOCAL_SUBSET} selecting {CLUSTER_LABEL}: {value} (a fallback)"),
                None => "installed, with no local-cluster subset".to_string(),
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, scenario};
    use crate::checks::{CheckId, Status};

    const FENCE: [CheckId; 4] = [
        CheckId::FencePresent,
        CheckId::FenceSubset,
        CheckId::FenceRoute,
        CheckId::ClusterId,
    ];

    #[test]
    fn reference_like_fencing_passes_and_skips_without_istio() {
        for check in FENCE {
            let outcome = Fixture::sidecar().run(check);
            assert_eq!(outcome.status, Status::Pass, "{check}: {outcome:?}");
            assert_eq!(
                Fixture::no_istio().run(check).status,
                Status::Skip,
                "{check}"
            );
        }
    }

    #[test]
    fn short_host_does_not_count() {
        let f = Fixture::sidecar().edit(|y| {
            y.replace(
                "spec:\n  host: cz-cz-aggregator.cza.svc.cluster.local",
                "spec:\n  host: cz-cz-aggregator",
            )
        });
        let outcome = f.run(CheckId::FencePresent);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0].found.contains("host cz-cz-aggregator;"),
            "{outcome:?}"
        );
        assert_eq!(f.run(CheckId::FenceSubset).status, Status::Fail);
        assert_eq!(f.run(CheckId::FenceRoute).status, Status::Pass);
    }

    #[test]
    fn subset_needs_exactly_the_cluster_label() {
        let extra = Fixture::sidecar().edit(|y| {
            y.replace(
                "        topology.istio.io/cluster: alpha",
                "        topology.istio.io/cluster: alpha\n        version: v1",
            )
        });
        let outcome = extra.run(CheckId::FenceSubset);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0]
                .diff
                .as_deref()
                .unwrap_or("")
                .contains("+version"),
            "{outcome:?}"
        );
        assert_eq!(extra.run(CheckId::ClusterId).status, Status::Pass);
    }

    #[test]
    fn routes_must_be_whole_and_to_the_local_subset() {
        let half = Fixture::sidecar().edit(|y| y.replace("weight: 100", "weight: 50"));
        let outcome = half.run(CheckId::FenceRoute);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0].found.contains("weights sum to 50"),
            "{outcome:?}"
        );
        let unweighted = Fixture::sidecar().edit(|y| y.replace("          weight: 100\n", ""));
        assert_eq!(unweighted.run(CheckId::FenceRoute).status, Status::Pass);
        let no_subset =
            Fixture::sidecar().edit(|y| y.replace("            subset: local-cluster\n", ""));
        let outcome = no_subset.run(CheckId::FenceRoute);
        assert!(
            outcome.evidence[0].found.contains("without a subset"),
            "{outcome:?}"
        );
    }

    #[test]
    fn cluster_id_compares_subset_and_validator_with_the_effective_id() {
        let wrong = Fixture::sidecar().edit(|y| {
            y.replace(
                "topology.istio.io/cluster: alpha",
                "topology.istio.io/cluster: beta",
            )
        });
        let outcome = wrong.run(CheckId::ClusterId);
        assert_eq!(outcome.status, Status::Fail);
        let diff = outcome.evidence[0].diff.as_deref().unwrap_or("");
        assert!(diff.contains("-alpha") && diff.contains("+beta"), "{diff}");
        let validator = Fixture::sidecar().edit(|y| {
            y.replace(
                "name: EXPECTED_CLUSTER_ID, value: alpha",
                "name: EXPECTED_CLUSTER_ID, value: beta",
            )
        });
        let outcome = validator.run(CheckId::ClusterId);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0].subject.contains("validator"),
            "{outcome:?}"
        );
        let renamed_key = Fixture::sidecar().edit(|y| {
            y.replace(
                "topology.istio.io/cluster: alpha",
                "topology.kubernetes.io/cluster: alpha",
            )
        });
        let outcome = renamed_key.run(CheckId::ClusterId);
        assert_eq!(
            outcome.evidence[0].found,
            "no topology.istio.io/cluster label"
        );
    }

    #[test]
    fn ambient_explicit_passes_explicit_and_fails_a_fallback_install() {
        let f = Fixture::ambient();
        assert_eq!(f.run(CheckId::AmbientExplicit).status, Status::Pass);
        let unset = f.with_scenario(scenario(
            "ambient",
            "strict",
            "init-cert",
            "{clusterName: alpha}",
        ));
        let outcome = unset.run(CheckId::AmbientExplicit);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0]
                .found
                .contains("topology.istio.io/cluster: amb-1"),
            "{outcome:?}"
        );
        assert_eq!(
            Fixture::sidecar().run(CheckId::AmbientExplicit).status,
            Status::Skip
        );
    }
}
