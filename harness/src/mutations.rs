//! Mutations: small, realistic breakages of an installed manifest set, each naming
//! the static checks it must turn red. They prove that every static check can fail:
//! a check no mutation turns red might be passing for the wrong reason.
//!
//! The suite (`suites/tests/mutations.rs`) renders each mutation's base scenario,
//! applies the mutation with [`mutate`], and asserts that exactly `turns_red` went
//! from not failing to failing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::certs::{Validity, WebhookPki};
use crate::checks::CheckId;
use crate::checks::statics::{
    CLUSTER_LABEL, EXCLUDE_INBOUND, EXCLUDE_OUTBOUND, INJECT_CA_FROM, LOCAL_SUBSET, PROXY_QUIT_PATH,
};
use crate::manifests::{
    Certificate, CertificateSpec, DestinationRule, DestinationRuleSpec, ManifestSet, Resource,
    Subset, WorkloadRef,
};
use crate::roles::{self, AggregatorRole, Roles, ValidatorRole, WebhookRole};
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// One breakage and the checks that must notice it.
#[derive(Debug, Clone, Copy)]
pub struct Mutation {
    /// Stable kebab-case name, used in test output.
    pub name: &'static str,
    /// What the mutation does, in the words of someone who made the mistake.
    pub description: &'static str,
    /// The scenario (`scenarios/<base>.yaml`) whose reference install is mutated.
    pub base_scenario: &'static str,
    /// The cluster to mutate; `None` mutates every installed cluster.
    pub cluster: Option<&'static str>,
    /// Changes one cluster's manifests; the roles are those found before the change.
    /// An error means the base install does not have what the mutation breaks.
    pub apply: fn(&mut ManifestSet, &Roles) -> Result<(), String>,
    /// Exactly the static checks that must go from not failing to failing.
    pub turns_red: &'static [CheckId],
}

/// Applies a mutation to a rendered scenario: to the named cluster, or to every
/// cluster that installed, and finds the roles again in the mutated manifests.
pub fn mutate(
    mutation: &Mutation,
    scenario: &Scenario,
    rendered: &Rendered,
) -> Result<Rendered, String> {
    let mut mutated = rendered.clone();
    let mut applied = 0;
    for install in &mut mutated.installs {
        if mutation.cluster.is_some_and(|c| c != install.cluster) {
            continue;
        }
        let Ok(installed) = &mut install.result else {
            continue;
        };
        (mutation.apply)(&mut installed.manifests, &installed.roles)
            .map_err(|e| format!("{} on cluster {}: {e}", mutation.name, install.cluster))?;
        installed.roles = roles::discover(&installed.manifests, &scenario.roles);
        applied += 1;
    }
    if applied == 0 {
        return Err(format!(
            "{}: no installed cluster{} to mutate",
            mutation.name,
            mutation
                .cluster
                .map(|c| format!(" named {c}"))
                .unwrap_or_default()
        ));
    }
    Ok(mutated)
}

/// Every mutation, at least one per static check.
pub fn catalogue() -> Vec<Mutation> {
    use CheckId::*;
    vec![
        Mutation {
            name: "drop-inbound-exclusion",
            description: "the webhook pod template loses traffic.sidecar.istio.io/excludeInboundPorts",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: drop_inbound_exclusion,
            turns_red: &[MtlsInbound],
        },
        Mutation {
            name: "wrong-inbound-port",
            description: "excludeInboundPorts lists the Service port instead of the container port",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: wrong_inbound_port,
            turns_red: &[MtlsInbound],
        },
        Mutation {
            name: "drop-outbound-exclusion-on-job",
            description: "the one-shot backfill Job loses excludeOutboundPorts; the CronJob keeps it",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: drop_outbound_exclusion_on_job,
            turns_red: &[MtlsOutbound],
        },
        Mutation {
            name: "wrong-outbound-port",
            description: "the backfill CronJob excludes the webhook container port instead of the Service port",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: wrong_outbound_port,
            turns_red: &[MtlsOutbound],
        },
        Mutation {
            name: "ca-bundle-from-another-ca",
            description: "the caBundle holds another CA than the one that signed the webhook's certificate",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: ca_bundle_from_another_ca,
            turns_red: &[CertChain],
        },
        Mutation {
            name: "serving-cert-without-service-san",
            description: "the webhook's certificate names svc and svc.ns but not svc.ns.svc",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: serving_cert_without_service_san,
            turns_red: &[CertChain],
        },
        Mutation {
            name: "both-certificate-modes",
            description: "an init-cert install also carries a cert-manager Certificate and inject-ca-from",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: add_cert_manager_wiring,
            turns_red: &[CertChain],
        },
        Mutation {
            name: "cert-manager-with-static-ca-bundle",
            description: "a cert-manager install also sets a static caBundle",
            base_scenario: "single-sidecar-strict-cert-manager",
            cluster: None,
            apply: add_static_ca_bundle,
            turns_red: &[CertChain],
        },
        Mutation {
            name: "cert-manager-injects-from-another-certificate",
            description: "inject-ca-from names a Certificate that does not issue for the webhook",
            base_scenario: "single-sidecar-strict-cert-manager",
            cluster: None,
            apply: inject_from_another_certificate,
            turns_red: &[CertChain],
        },
        Mutation {
            name: "short-host-in-destination-rule",
            description: "the DestinationRule names the aggregator by its short name",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: short_host_in_destination_rule,
            turns_red: &[FencePresent, FenceSubset, ClusterId],
        },
        Mutation {
            name: "drop-virtual-service",
            description: "the fencing VirtualService is not rendered",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: drop_virtual_service,
            turns_red: &[FencePresent, FenceRoute],
        },
        Mutation {
            name: "wrong-subset-label-key",
            description: "the subset selects topology.kubernetes.io/cluster, a label Istio never applies",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: wrong_subset_label_key,
            turns_red: &[FenceSubset, ClusterId],
        },
        Mutation {
            name: "wrong-subset-label-value",
            description: "beta's subset selects a cluster ID that is not beta's effective one",
            base_scenario: "multi-sidecar-name-differs",
            cluster: Some("beta"),
            apply: wrong_subset_label_value,
            turns_red: &[ClusterId],
        },
        Mutation {
            name: "validator-expects-another-cluster",
            description: "the validator is configured with a cluster ID the fencing does not use",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: validator_expects_another_cluster,
            turns_red: &[ClusterId],
        },
        Mutation {
            name: "route-weight-50",
            description: "the VirtualService sends only half of the traffic to the local subset",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: route_weight_50,
            turns_red: &[FenceRoute],
        },
        Mutation {
            name: "route-without-subset",
            description: "the VirtualService routes to the aggregator host without a subset",
            base_scenario: "multi-sidecar-name-matches",
            cluster: None,
            apply: route_without_subset,
            turns_red: &[FenceRoute],
        },
        Mutation {
            name: "istio-resources-when-off",
            description: "a cluster without Istio gets the fencing DestinationRule anyway",
            base_scenario: "single-no-istio",
            cluster: None,
            apply: add_destination_rule,
            turns_red: &[Detect],
        },
        Mutation {
            name: "istio-annotation-when-disabled",
            description: "integrations.istio.enabled=false, yet the webhook keeps its exclusion annotation",
            base_scenario: "istio-disabled-in-mesh",
            cluster: None,
            apply: add_inbound_exclusion,
            turns_red: &[Detect],
        },
        Mutation {
            name: "istio-integration-forgotten",
            description: "Istio is detected but nothing Istio is rendered: no annotations, no resources",
            base_scenario: "single-sidecar-strict",
            cluster: None,
            apply: strip_everything_istio,
            turns_red: &[
                MtlsInbound,
                MtlsOutbound,
                FencePresent,
                FenceSubset,
                FenceRoute,
                ClusterId,
                Detect,
            ],
        },
        Mutation {
            name: "drop-ambient-peer-authentication",
            description: "ambient STRICT without the port-level PERMISSIVE PeerAuthentication for the webhook",
            base_scenario: "single-ambient-strict",
            cluster: None,
            apply: drop_peer_authentications,
            turns_red: &[AmbientStrictPermissive],
        },
        Mutation {
            name: "drop-exclusion-cert-manager-strict",
            description: "cert-manager mode trusts the seed and drops the webhook's inbound exclusion",
            base_scenario: "single-sidecar-strict-cert-manager",
            cluster: None,
            apply: drop_inbound_opening,
            turns_red: &[CertManagerStrict],
        },
        Mutation {
            name: "classic-backfill-without-quit",
            description: "the backfill no longer calls the proxy's /quitquitquit under classic sidecars",
            base_scenario: "single-sidecar-classic",
            cluster: None,
            apply: drop_quitquitquit,
            turns_red: &[SidecarJobExit],
        },
        Mutation {
            name: "validator-in-init-under-classic",
            description: "the validator runs in an init container, before a classic sidecar starts",
            base_scenario: "single-sidecar-classic",
            cluster: None,
            apply: validator_to_init_container,
            turns_red: &[ValidatorInitOrder],
        },
    ]
}

// ----- roles -----
//
// A mutation breaks what discovery found in the base install; a role that is missing
// means the base install is not the one the mutation was written for.

fn webhook_role(roles: &Roles) -> Result<&WebhookRole, String> {
    roles
        .webhook
        .as_ref()
        .ok_or_else(|| "no webhook role in the base install".to_string())
}

fn validator_role(roles: &Roles) -> Result<&ValidatorRole, String> {
    roles
        .validator
        .as_ref()
        .ok_or_else(|| "no validator role in the base install".to_string())
}

fn aggregator_role(roles: &Roles) -> Result<&AggregatorRole, String> {
    roles
        .aggregator
        .as_ref()
        .ok_or_else(|| "no aggregator role in the base install".to_string())
}

// ----- pod templates -----

fn template_mut<'a>(
    set: &'a mut ManifestSet,
    workload: &WorkloadRef,
) -> Result<&'a mut PodTemplateSpec, String> {
    set.pod_template_mut(workload)
        .ok_or_else(|| format!("{workload} has no pod template"))
}

fn annotations_mut(template: &mut PodTemplateSpec) -> &mut BTreeMap<String, String> {
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
}

fn webhook_template<'a>(
    set: &'a mut ManifestSet,
    roles: &Roles,
) -> Result<&'a mut PodTemplateSpec, String> {
    let webhook = webhook_role(roles)?;
    template_mut(set, &webhook.workload)
}

fn remove_annotation(template: &mut PodTemplateSpec, key: &str) -> Result<(), String> {
    annotations_mut(template)
        .remove(key)
        .map(|_| ())
        .ok_or_else(|| format!("the pod template has no {key} annotation to remove"))
}

fn drop_inbound_exclusion(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    remove_annotation(webhook_template(set, roles)?, EXCLUDE_INBOUND)
}

fn wrong_inbound_port(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    let port = webhook.service_port.to_string();
    let template = webhook_template(set, roles)?;
    let annotations = annotations_mut(template);
    if !annotations.contains_key(EXCLUDE_INBOUND) {
        return Err(format!("the webhook has no {EXCLUDE_INBOUND} to change"));
    }
    annotations.insert(EXCLUDE_INBOUND.into(), port);
    Ok(())
}

fn add_inbound_exclusion(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    let port = webhook.container_port.to_string();
    annotations_mut(webhook_template(set, roles)?).insert(EXCLUDE_INBOUND.into(), port);
    Ok(())
}

fn drop_outbound_exclusion_on_job(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let jobs: Vec<&WorkloadRef> = roles.backfill.iter().filter(|w| w.kind == "Job").collect();
    if jobs.is_empty() || jobs.len() == roles.backfill.len() {
        return Err("the base install needs a backfill Job and a backfill CronJob".into());
    }
    for job in jobs {
        remove_annotation(template_mut(set, job)?, EXCLUDE_OUTBOUND)?;
    }
    Ok(())
}

fn wrong_outbound_port(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    let cronjob = roles
        .backfill
        .iter()
        .find(|w| w.kind == "CronJob")
        .ok_or("no backfill CronJob in the base install")?;
    let annotations = annotations_mut(template_mut(set, cronjob)?);
    if !annotations.contains_key(EXCLUDE_OUTBOUND) {
        return Err(format!("{cronjob} has no {EXCLUDE_OUTBOUND} to change"));
    }
    annotations.insert(EXCLUDE_OUTBOUND.into(), webhook.container_port.to_string());
    Ok(())
}

/// Removes every Istio annotation from pod templates and every Istio resource.
fn strip_everything_istio(set: &mut ManifestSet, _roles: &Roles) -> Result<(), String> {
    let removed = set.remove_where(Resource::is_istio);
    let workloads: Vec<WorkloadRef> = set.pod_templates().into_iter().map(|(w, _)| w).collect();
    let mut stripped = 0;
    for workload in &workloads {
        let annotations = annotations_mut(template_mut(set, workload)?);
        let before = annotations.len();
        annotations.retain(|k, _| !k.contains("istio.io/"));
        stripped += before - annotations.len();
    }
    if removed + stripped == 0 {
        return Err("the base install renders nothing Istio".into());
    }
    Ok(())
}

/// Removes the webhook's inbound exclusion and every PeerAuthentication.
fn drop_inbound_opening(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    remove_annotation(webhook_template(set, roles)?, EXCLUDE_INBOUND)?;
    set.remove_where(|r| matches!(r, Resource::PeerAuthentication(_)));
    Ok(())
}

fn drop_peer_authentications(set: &mut ManifestSet, _roles: &Roles) -> Result<(), String> {
    match set.remove_where(|r| matches!(r, Resource::PeerAuthentication(_))) {
        0 => Err("the base install has no PeerAuthentication".into()),
        _ => Ok(()),
    }
}

/// Drops every shell statement that calls `/quitquitquit` from the backfill commands.
fn drop_quitquitquit(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let mut dropped = 0;
    for workload in &roles.backfill {
        let spec = template_mut(set, workload)?
            .spec
            .as_mut()
            .ok_or_else(|| format!("{workload} has no pod spec"))?;
        for container in &mut spec.containers {
            for text in container
                .command
                .iter_mut()
                .flatten()
                .chain(container.args.iter_mut().flatten())
            {
                if text.contains(PROXY_QUIT_PATH) {
                    let kept: Vec<&str> = text
                        .split(';')
                        .filter(|s| !s.contains(PROXY_QUIT_PATH))
                        .collect();
                    *text = kept.join(";");
                    dropped += 1;
                }
            }
        }
    }
    match dropped {
        0 => Err(format!("no backfill command calls {PROXY_QUIT_PATH}")),
        _ => Ok(()),
    }
}

fn validator_to_init_container(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let validator = validator_role(roles)?;
    if validator.init {
        return Err("the validator is already an init container".into());
    }
    let spec = template_mut(set, &validator.workload)?
        .spec
        .as_mut()
        .ok_or("the validator's workload has no pod spec")?;
    let at = spec
        .containers
        .iter()
        .position(|c| c.name == validator.container)
        .ok_or("the validator container is gone")?;
    let container: Container = spec.containers.remove(at);
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .insert(0, container);
    Ok(())
}

fn validator_expects_another_cluster(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let validator = validator_role(roles)?;
    let spec = template_mut(set, &validator.workload)?
        .spec
        .as_mut()
        .ok_or("the validator's workload has no pod spec")?;
    let container = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
        .find(|c| c.name == validator.container)
        .ok_or("the validator container is gone")?;
    let var = container
        .env
        .iter_mut()
        .flatten()
        .find(|e| {
            e.name.contains("CLUSTER_ID") && e.name != "CLUSTER_ID_EXPLICIT" && e.value.is_some()
        })
        .ok_or("the validator has no cluster ID to change")?;
    var.value = Some(format!(
        "{}-elsewhere",
        var.value.clone().unwrap_or_default()
    ));
    Ok(())
}

// ----- fencing -----

fn aggregator_fqdn(roles: &Roles) -> Result<String, String> {
    aggregator_role(roles).map(AggregatorRole::fqdn)
}

/// The `local-cluster` subsets of DestinationRules for the aggregator.
fn local_subsets<'a>(
    set: &'a mut ManifestSet,
    roles: &Roles,
) -> Result<Vec<&'a mut Subset>, String> {
    let host = aggregator_fqdn(roles)?;
    let subsets: Vec<&mut Subset> = set
        .items
        .iter_mut()
        .filter_map(|m| match &mut m.resource {
            Resource::DestinationRule(d) if d.spec.host == host => Some(&mut d.spec.subsets),
            _ => None,
        })
        .flatten()
        .filter(|s| s.name == LOCAL_SUBSET)
        .collect();
    if subsets.is_empty() {
        return Err(format!(
            "no DestinationRule subset {LOCAL_SUBSET} for {host}"
        ));
    }
    Ok(subsets)
}

fn wrong_subset_label_key(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    for subset in local_subsets(set, roles)? {
        let value = subset
            .labels
            .remove(CLUSTER_LABEL)
            .ok_or_else(|| format!("subset {LOCAL_SUBSET} has no {CLUSTER_LABEL}"))?;
        subset
            .labels
            .insert("topology.kubernetes.io/cluster".into(), value);
    }
    Ok(())
}

fn wrong_subset_label_value(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    for subset in local_subsets(set, roles)? {
        let value = subset
            .labels
            .get_mut(CLUSTER_LABEL)
            .ok_or_else(|| format!("subset {LOCAL_SUBSET} has no {CLUSTER_LABEL}"))?;
        *value = format!("{value}-elsewhere");
    }
    Ok(())
}

fn short_host_in_destination_rule(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let aggregator = aggregator_role(roles)?;
    let host = aggregator.fqdn();
    let short = aggregator.service.clone();
    let mut changed = 0;
    for m in &mut set.items {
        if let Resource::DestinationRule(d) = &mut m.resource
            && d.spec.host == host
        {
            d.spec.host = short.clone();
            changed += 1;
        }
    }
    match changed {
        0 => Err(format!("no DestinationRule for {host}")),
        _ => Ok(()),
    }
}

fn drop_virtual_service(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let host = aggregator_fqdn(roles)?;
    match set
        .remove_where(|r| matches!(r, Resource::VirtualService(v) if v.spec.hosts.contains(&host)))
    {
        0 => Err(format!("no VirtualService for {host}")),
        _ => Ok(()),
    }
}

/// Changes every route destination of the aggregator's VirtualServices.
fn edit_routes(
    set: &mut ManifestSet,
    roles: &Roles,
    mut edit: impl FnMut(&mut crate::manifests::RouteDestination),
) -> Result<(), String> {
    let host = aggregator_fqdn(roles)?;
    let mut changed = 0;
    for m in &mut set.items {
        if let Resource::VirtualService(v) = &mut m.resource
            && v.spec.hosts.contains(&host)
        {
            for destination in v.spec.http.iter_mut().flat_map(|r| r.route.iter_mut()) {
                edit(destination);
                changed += 1;
            }
        }
    }
    match changed {
        0 => Err(format!("no route destination for {host}")),
        _ => Ok(()),
    }
}

fn route_weight_50(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    edit_routes(set, roles, |d| d.weight = Some(50))
}

fn route_without_subset(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    edit_routes(set, roles, |d| d.destination.subset = None)
}

fn add_destination_rule(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let aggregator = aggregator_role(roles)?;
    set.push(
        "mutation",
        Resource::DestinationRule(DestinationRule {
            metadata: ObjectMeta {
                name: Some(format!("{}-cluster-local", aggregator.service)),
                namespace: Some(aggregator.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: DestinationRuleSpec {
                host: aggregator.fqdn(),
                subsets: vec![Subset {
                    name: LOCAL_SUBSET.into(),
                    labels: BTreeMap::from([(CLUSTER_LABEL.to_string(), "alpha".to_string())]),
                    ..Subset::default()
                }],
                ..DestinationRuleSpec::default()
            },
        }),
    );
    Ok(())
}

// ----- certificates -----

/// The ValidatingWebhookConfiguration discovery found the webhook through.
fn webhook_configuration_mut<'a>(
    set: &'a mut ManifestSet,
    webhook: &WebhookRole,
) -> Option<&'a mut ValidatingWebhookConfiguration> {
    set.items.iter_mut().find_map(|m| match &mut m.resource {
        Resource::ValidatingWebhookConfiguration(c)
            if c.metadata.name.as_deref() == Some(webhook.configuration.as_str()) =>
        {
            Some(c)
        }
        _ => None,
    })
}

/// The webhook entry's caBundle, for replacing.
fn ca_bundle_mut<'a>(
    set: &'a mut ManifestSet,
    roles: &Roles,
) -> Result<&'a mut Option<ByteString>, String> {
    let webhook = webhook_role(roles)?;
    webhook_configuration_mut(set, webhook)
        .and_then(|c| {
            c.webhooks.iter_mut().flatten().find(|w| {
                w.client_config
                    .service
                    .as_ref()
                    .is_some_and(|s| s.name == webhook.service)
            })
        })
        .map(|w| &mut w.client_config.ca_bundle)
        .ok_or_else(|| {
            format!(
                "no webhook entry of {} calls {}",
                webhook.configuration, webhook.service
            )
        })
}

fn new_pki(dns_names: &[String]) -> Result<WebhookPki, String> {
    WebhookPki::for_dns_names("mutation CA", dns_names, Validity::default())
        .map_err(|e| e.to_string())
}

fn pem_bytes(pem: &str) -> ByteString {
    ByteString(pem.as_bytes().to_vec())
}

fn ca_bundle_from_another_ca(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let other = new_pki(&["elsewhere.invalid".to_string()])?;
    let bundle = ca_bundle_mut(set, roles)?;
    if bundle.is_none() {
        return Err("the base install has no caBundle to replace".into());
    }
    *bundle = Some(pem_bytes(other.ca_pem()));
    Ok(())
}

/// A new CA and a serving certificate for `svc` and `svc.ns` only, written to the
/// Secret and the caBundle: the chain verifies, the name does not.
fn serving_cert_without_service_san(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    let secret_name = webhook
        .tls_secret
        .clone()
        .ok_or("the webhook mounts no Secret")?;
    let pki = new_pki(&[
        webhook.service.clone(),
        format!("{}.{}", webhook.service, webhook.namespace),
    ])?;
    let secret = set
        .items
        .iter_mut()
        .find_map(|m| match &mut m.resource {
            Resource::Secret(s) if s.metadata.name.as_deref() == Some(secret_name.as_str()) => {
                Some(s)
            }
            _ => None,
        })
        .ok_or_else(|| format!("Secret {secret_name} is not in the base install"))?;
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    data.insert("tls.crt".into(), pem_bytes(pki.cert_pem()));
    data.insert("tls.key".into(), pem_bytes(pki.key_pem()));
    data.insert("ca.crt".into(), pem_bytes(pki.ca_pem()));
    *ca_bundle_mut(set, roles)? = Some(pem_bytes(pki.ca_pem()));
    Ok(())
}

fn set_vwc_annotation(
    set: &mut ManifestSet,
    roles: &Roles,
    key: &str,
    value: String,
) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    let config =
        webhook_configuration_mut(set, webhook).ok_or("the webhook configuration is gone")?;
    config
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value);
    Ok(())
}

/// Adds a cert-manager Certificate for the webhook and the CA injection annotation.
fn add_cert_manager_wiring(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    let name = format!("{}-certificate", webhook.service);
    set.push(
        "mutation",
        Resource::Certificate(Certificate {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(webhook.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: CertificateSpec {
                dns_names: vec![webhook.service_dns_name()],
                secret_name: webhook.tls_secret.clone().unwrap_or_default(),
                extra: BTreeMap::from([(
                    "issuerRef".to_string(),
                    serde_json::json!({"name": format!("{}-issuer", webhook.service), "kind": "Issuer"}),
                )]),
            },
        }),
    );
    set_vwc_annotation(
        set,
        roles,
        INJECT_CA_FROM,
        format!("{}/{name}", webhook.namespace),
    )
}

fn add_static_ca_bundle(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let pki = new_pki(&["static.invalid".to_string()])?;
    let bundle = ca_bundle_mut(set, roles)?;
    if bundle.is_some() {
        return Err("the base install already has a caBundle".into());
    }
    *bundle = Some(pem_bytes(pki.ca_pem()));
    Ok(())
}

fn inject_from_another_certificate(set: &mut ManifestSet, roles: &Roles) -> Result<(), String> {
    let webhook = webhook_role(roles)?;
    set_vwc_annotation(
        set,
        roles,
        INJECT_CA_FROM,
        format!("{}/some-other-certificate", webhook.namespace),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn names_are_unique_and_every_mutation_names_static_checks_only() {
        let catalogue = catalogue();
        let mut names = std::collections::BTreeSet::new();
        for m in &catalogue {
            assert!(names.insert(m.name), "duplicate mutation {}", m.name);
            assert!(!m.turns_red.is_empty(), "{} turns nothing red", m.name);
            for check in m.turns_red {
                assert_eq!(check.kind(), CheckKind::Static, "{}: {check}", m.name);
            }
        }
    }

    #[test]
    fn dropping_quitquitquit_keeps_the_other_statements() {
        let mut set = ManifestSet::default();
        let text = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          command: [sh, -c, \"run; curl -X POST localhost:15020/quitquitquit; exit 0\"]\n";
        set.items = crate::manifests::parse_documents(std::path::Path::new("t"), text)
            .unwrap()
            .items;
        let roles = Roles {
            backfill: vec![WorkloadRef {
                kind: "Job".into(),
                name: "j".into(),
            }],
            ..Roles::default()
        };
        drop_quitquitquit(&mut set, &roles).unwrap();
        let template = set.pod_template(&roles.backfill[0]).unwrap();
        let command = template.spec.as_ref().unwrap().containers[0]
            .command
            .clone()
            .unwrap();
        assert_eq!(command[2], "run; exit 0");
        assert!(
            drop_quitquitquit(&mut set, &roles).is_err(),
            "nothing left to drop"
        );
    }
}
