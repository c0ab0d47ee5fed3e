//! The webhook's port under mTLS: inbound and outbound exclusions (seed: Port
//! Exclusion Annotations), and the PeerAuthentication that opens the port where an
//! annotation cannot (ambient, istio/istio#52874) or where cert-manager does not help
//! (istio/istio#39290).

use super::{
    ClusterContext, EXCLUDE_INBOUND, EXCLUDE_OUTBOUND, Outcome, all_hold, annotation_lists_port,
    missing_role, object_name, skip_unless_active, template_of,
};
use crate::manifests::{ManifestSet, PeerAuthentication};
use crate::roles::{WebhookRole, labels_match, template_labels};
use crate::scenario::IstioMode;

/// MTLS-INBOUND: the webhook pod template excludes the container port from inbound
/// interception.
pub(super) fn inbound(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    if ctx.cluster.agent.use_cert_manager {
        return Outcome::skip(
            "cert-manager mode: the seed's exclusion rule applies without cert-manager only; \
             see CERT-MANAGER-STRICT",
        );
    }
    let Some(webhook) = &ctx.roles().webhook else {
        return missing_role(ctx, "webhook");
    };
    let template = match template_of(ctx, &webhook.workload) {
        Ok(t) => t,
        Err(failed) => return failed,
    };
    match annotation_lists_port(template, EXCLUDE_INBOUND, webhook.container_port) {
        Ok(found) => Outcome::pass(format!("{}: {found}", webhook.workload)),
        Err(found) => Outcome::fail(format!(
            "{} does not exclude webhook port {} from inbound interception",
            webhook.workload, webhook.container_port
        ))
        .with(ctx.evidence(
            webhook.workload.to_string(),
            format!("{EXCLUDE_INBOUND} lists {}", webhook.container_port),
            found,
        )),
    }
}

/// MTLS-OUTBOUND: every backfill pod template excludes the webhook Service port from
/// outbound interception (auto mTLS would otherwise wrap the call in Istio mTLS).
pub(super) fn outbound(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    let Some(webhook) = &ctx.roles().webhook else {
        return missing_role(ctx, "webhook");
    };
    let backfill = &ctx.roles().backfill;
    if backfill.is_empty() {
        return missing_role(ctx, "backfill");
    }
    let mut failures = Vec::new();
    for workload in backfill {
        let template = match template_of(ctx, workload) {
            Ok(t) => t,
            Err(failed) => return failed,
        };
        if let Err(found) = annotation_lists_port(template, EXCLUDE_OUTBOUND, webhook.service_port)
        {
            failures.push(ctx.evidence(
                workload.to_string(),
                format!("{EXCLUDE_OUTBOUND} lists {}", webhook.service_port),
                found,
            ));
        }
    }
    let names: Vec<String> = backfill.iter().map(ToString::to_string).collect();
    all_hold(
        failures,
        format!(
            "{} exclude outbound port {}",
            names.join(", "),
            webhook.service_port
        ),
        "a backfill pod does not exclude the webhook Service port",
    )
}

/// AMBIENT-STRICT-PERMISSIVE: under ambient STRICT, a PeerAuthentication opens the
/// webhook port to the API server (the annotation is sidecar only).
pub(super) fn ambient_strict_permissive(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    if ctx.istio_mode() != IstioMode::Ambient || !ctx.strict() {
        return Outcome::skip("applies to ambient clusters under STRICT mTLS only");
    }
    let Some(webhook) = &ctx.roles().webhook else {
        return missing_role(ctx, "webhook");
    };
    match port_opened(ctx.manifests(), webhook) {
        Ok(how) => Outcome::pass(how),
        Err(found) => Outcome::fail(format!(
            "nothing opens webhook port {} to the API server under ambient STRICT",
            webhook.container_port
        ))
        .with(ctx.evidence(
            format!("{} port {}", webhook.workload, webhook.container_port),
            format!(
                "a PeerAuthentication selecting the webhook pods with portLevelMtls[{}].mode \
                 PERMISSIVE or DISABLE",
                webhook.container_port
            ),
            found,
        )),
    }
}

/// CERT-MANAGER-STRICT: cert-manager does not make the webhook reachable under STRICT
/// sidecars; the port must still be excluded or PERMISSIVE.
pub(super) fn cert_manager_strict(ctx: &ClusterContext<'_>) -> Outcome {
    if let Some(skip) = skip_unless_active(ctx) {
        return skip;
    }
    if !ctx.cluster.agent.use_cert_manager
        || ctx.istio_mode() != IstioMode::Sidecar
        || !ctx.strict()
    {
        return Outcome::skip("applies to cert-manager mode with sidecars under STRICT mTLS only");
    }
    let Some(webhook) = &ctx.roles().webhook else {
        return missing_role(ctx, "webhook");
    };
    let template = match template_of(ctx, &webhook.workload) {
        Ok(t) => t,
        Err(failed) => return failed,
    };
    let excluded = annotation_lists_port(template, EXCLUDE_INBOUND, webhook.container_port);
    let opened = port_opened(ctx.manifests(), webhook);
    match (excluded, opened) {
        (Ok(found), _) => Outcome::pass(format!("{}: {found}", webhook.workload)),
        (_, Ok(how)) => Outcome::pass(how),
        (Err(annotation), Err(peer_auth)) => Outcome::fail(format!(
            "webhook port {} is intercepted under STRICT: the API server cannot speak Istio mTLS, \
             whoever issued the webhook's certificate",
            webhook.container_port
        ))
        .with(ctx.evidence(
            format!("{} port {}", webhook.workload, webhook.container_port),
            format!(
                "{EXCLUDE_INBOUND} lists {port}, or a PeerAuthentication sets portLevelMtls[{port}] \
                 PERMISSIVE or DISABLE",
                port = webhook.container_port
            ),
            format!("{annotation}; {peer_auth}"),
        )),
    }
}

/// The PeerAuthentication that lets non-mTLS traffic reach the webhook port, or what
/// the PeerAuthentications in the set say instead.
///
/// Istio PeerAuthentication reference: `portLevelMtls` applies only when a workload
/// selector is specified, and is keyed by the workload (container) port; a
/// workload-wide PERMISSIVE or DISABLE mode opens every port.
fn port_opened(set: &ManifestSet, webhook: &WebhookRole) -> Result<String, String> {
    let Some(template) = set.pod_template(&webhook.workload) else {
        return Err(format!("{} has no pod template", webhook.workload));
    };
    let pod_labels = template_labels(template);
    let port = webhook.container_port.to_string();
    let opens = |mode: &str| matches!(mode, "PERMISSIVE" | "DISABLE");
    let mut seen = Vec::new();
    for pa in set.peer_authentications() {
        let name = object_name(&pa.metadata);
        let selector = pa.spec.selector.as_ref().map(|s| &s.match_labels);
        if let Some(labels) = selector
            && !labels_match(labels, pod_labels)
        {
            seen.push(format!(
                "PeerAuthentication/{name} does not select the webhook pods"
            ));
            continue;
        }
        if selector.is_some()
            && let Some(mode) = pa.spec.port_level_mtls.get(&port)
        {
            if opens(&mode.mode) {
                return Ok(format!(
                    "PeerAuthentication/{name} sets port {port} {} for the webhook pods",
                    mode.mode
                ));
            }
            seen.push(format!(
                "PeerAuthentication/{name} sets port {port} {}",
                mode.mode
            ));
            continue;
        }
        match workload_mode(pa) {
            Some(mode) if opens(mode) => {
                return Ok(format!(
                    "PeerAuthentication/{name} sets the webhook pods {mode} on every port"
                ));
            }
            _ => seen.push(describe(pa, &name, &port)),
        }
    }
    if seen.is_empty() {
        Err("no PeerAuthentication in the manifests".to_string())
    } else {
        Err(seen.join("; "))
    }
}

fn workload_mode(pa: &PeerAuthentication) -> Option<&str> {
    pa.spec.mtls.as_ref().map(|m| m.mode.as_str())
}

fn describe(pa: &PeerAuthentication, name: &str, port: &str) -> String {
    let ports: Vec<String> = pa
        .spec
        .port_level_mtls
        .iter()
        .map(|(p, m)| format!("{p}={}", m.mode))
        .collect();
    let selector = if pa.spec.selector.is_none() && !ports.is_empty() {
        " (portLevelMtls without a selector is ignored by Istio)"
    } else {
        ""
    };
    format!(
        "PeerAuthentication/{name}: mode {}, portLevelMtls {{{}}}, nothing for port {port}{selector}",
        workload_mode(pa).unwrap_or("unset"),
        ports.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use crate::checks::{CheckId, Status};

    #[test]
    fn reference_like_sidecar_install_passes_both_exclusions() {
        let f = Fixture::sidecar();
        assert_eq!(
            f.run(CheckId::MtlsInbound).status,
            Status::Pass,
            "{:?}",
            f.run(CheckId::MtlsInbound)
        );
        assert_eq!(
            f.run(CheckId::MtlsOutbound).status,
            Status::Pass,
            "{:?}",
            f.run(CheckId::MtlsOutbound)
        );
    }

    #[test]
    fn inbound_list_must_hold_the_container_port_not_the_service_port() {
        let f = Fixture::sidecar().edit(|y| {
            y.replace(
                "excludeInboundPorts: \"15020, 8443\"",
                "excludeInboundPorts: \"443\"",
            )
        });
        let outcome = f.run(CheckId::MtlsInbound);
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(
            outcome.evidence[0].found,
            "traffic.sidecar.istio.io/excludeInboundPorts: \"443\""
        );
        assert_eq!(
            outcome.evidence[0].expected,
            "traffic.sidecar.istio.io/excludeInboundPorts lists 8443"
        );
    }

    #[test]
    fn outbound_names_the_backfill_that_lacks_it() {
        let f = Fixture::sidecar().edit(|y| {
            y.replacen(
                "excludeOutboundPorts: \"443\"",
                "excludeOutboundPorts: \"80\"",
                1,
            )
        });
        let outcome = f.run(CheckId::MtlsOutbound);
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(outcome.evidence.len(), 1);
        assert_eq!(outcome.evidence[0].subject, "CronJob/cz-cz-backfill");
    }

    #[test]
    fn cert_manager_skips_inbound_and_needs_exclusion_or_permissive() {
        let f = Fixture::cert_manager();
        assert_eq!(f.run(CheckId::MtlsInbound).status, Status::Skip);
        assert!(
            f.run(CheckId::MtlsInbound)
                .summary
                .contains("CERT-MANAGER-STRICT")
        );
        assert_eq!(f.run(CheckId::CertManagerStrict).status, Status::Pass);
        let bare = f.edit(|y| {
            y.replace(
                "traffic.sidecar.istio.io/excludeInboundPorts: \"15020, 8443\"",
                "example.com/x: \"y\"",
            )
        });
        let outcome = bare.run(CheckId::CertManagerStrict);
        assert_eq!(outcome.status, Status::Fail, "{outcome:?}");
        assert!(
            outcome.evidence[0].found.contains("no PeerAuthentication"),
            "{outcome:?}"
        );
    }

    #[test]
    fn ambient_needs_a_port_level_permissive_peer_authentication_that_selects_the_webhook() {
        let f = Fixture::ambient();
        assert_eq!(f.run(CheckId::AmbientStrictPermissive).status, Status::Pass);
        let strict_port = f.edit(|y| y.replace("mode: PERMISSIVE", "mode: STRICT"));
        assert_eq!(
            strict_port.run(CheckId::AmbientStrictPermissive).status,
            Status::Fail
        );
        let other_pods = f.edit(|y| {
            y.replace(
                "matchLabels: {app: cz-cz-webhook}",
                "matchLabels: {app: other}",
            )
        });
        let outcome = other_pods.run(CheckId::AmbientStrictPermissive);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0]
                .found
                .contains("does not select the webhook pods"),
            "{outcome:?}"
        );
        // Istio ignores portLevelMtls without a selector.
        let no_selector =
            f.edit(|y| y.replace("  selector:\n    matchLabels: {app: cz-cz-webhook}\n", ""));
        let outcome = no_selector.run(CheckId::AmbientStrictPermissive);
        assert_eq!(outcome.status, Status::Fail, "{outcome:?}");
        assert!(
            outcome.evidence[0].found.contains("ignored by Istio"),
            "{outcome:?}"
        );
    }

    #[test]
    fn sidecar_checks_skip_in_ambient_and_ambient_checks_skip_in_sidecar() {
        assert_eq!(
            Fixture::sidecar()
                .run(CheckId::AmbientStrictPermissive)
                .status,
            Status::Skip
        );
        assert_eq!(
            Fixture::ambient().run(CheckId::CertManagerStrict).status,
            Status::Skip
        );
    }
}
