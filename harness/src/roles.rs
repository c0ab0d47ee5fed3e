//! Role discovery: which objects are the webhook, the aggregator, the backfill and the
//! validator, found in the manifests by following the agent's contract
//! (DESIGN.md section 4), never by assuming names.
//!
//! webhook configuration -> Service -> selector -> pod template -> container port.
//!
//! Discovery never fails: a role that cannot be found is left empty and a line in
//! [`Roles::problems`] says what was followed and where the trail ended, so that a
//! check can show it as evidence.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    ServiceReference, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::manifests::{ManifestSet, Resource, WorkloadRef};
use crate::scenario::RoleOverrides;

/// The webhook, as reached from its ValidatingWebhookConfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookRole {
    /// ValidatingWebhookConfiguration name.
    pub configuration: String,
    /// Service name (`clientConfig.service.name`).
    pub service: String,
    /// Service namespace.
    pub namespace: String,
    /// Request path (`/validate`).
    pub path: String,
    /// Service port the API server dials (443).
    pub service_port: u16,
    /// The workload whose pods the Service selects.
    pub workload: WorkloadRef,
    /// The container serving the webhook.
    pub container: String,
    /// The container port behind the Service's targetPort (8443).
    pub container_port: u16,
    /// The TLS Secret mounted into the webhook container, when there is one.
    pub tls_secret: Option<String>,
}

impl WebhookRole {
    /// `svc.ns.svc`: the name the API server verifies the serving certificate against.
    pub fn service_dns_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }

    /// `svc.ns.svc.cluster.local`: the name in-cluster clients (backfill) dial.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.service, self.namespace)
    }
}

/// The aggregator Service and its workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatorRole {
    /// Service name.
    pub service: String,
    /// Namespace.
    pub namespace: String,
    /// Service port (80).
    pub port: u16,
    /// Container port behind it (8080).
    pub target_port: u16,
    /// The workload whose pods the Service selects.
    pub workload: Option<WorkloadRef>,
}

impl AggregatorRole {
    /// `svc.ns.svc.cluster.local`: the host the fencing must name.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.service, self.namespace)
    }
}

/// The validator container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorRole {
    /// The workload it runs in.
    pub workload: WorkloadRef,
    /// Container name.
    pub container: String,
    /// True when it is an init container (runs before the pod's main containers).
    pub init: bool,
    /// The cluster ID it is configured to expect (from an env var whose name
    /// contains `CLUSTER_ID`), when it has one.
    pub expected_cluster_id: Option<String>,
}

/// Everything found, plus what could not be found and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Roles {
    /// The webhook.
    pub webhook: Option<WebhookRole>,
    /// The aggregator.
    pub aggregator: Option<AggregatorRole>,
    /// Backfill workloads (CronJobs and Jobs that call the webhook).
    pub backfill: Vec<WorkloadRef>,
    /// Workloads that push samples to the aggregator (metrics agent, webhook server).
    pub senders: Vec<WorkloadRef>,
    /// The validator.
    pub validator: Option<ValidatorRole>,
    /// Why a role is missing, one line each, for evidence.
    pub problems: Vec<String>,
}

/// The label the chart puts on the aggregator's Service and pods.
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Env var the validator reads the ambient redirection annotation from (downward API).
const AMBIENT_ENV: &str = "ISTIO_AMBIENT_REDIRECTION";

/// Finds the roles in a manifest set, honouring the scenario's overrides.
pub fn discover(set: &ManifestSet, overrides: &RoleOverrides) -> Roles {
    let mut problems = Vec::new();
    let namespace_hint = namespace_hint(set);

    let webhook_ref = find_webhook_service(set, overrides, &mut problems);
    let webhook = webhook_ref
        .as_ref()
        .and_then(|r| follow_webhook(set, r, &mut problems));

    let default_namespace = webhook_ref
        .as_ref()
        .map(|r| r.namespace.clone())
        .or(namespace_hint)
        .unwrap_or_else(|| "default".to_string());
    let aggregator = find_aggregator(set, overrides, &default_namespace, &mut problems);

    let backfill = find_backfill(set, overrides, webhook_ref.as_ref(), &mut problems);
    let senders = find_senders(set, aggregator.as_ref(), &mut problems);
    let validator = find_validator(set, overrides, &mut problems);

    Roles {
        webhook,
        aggregator,
        backfill,
        senders,
        validator,
        problems,
    }
}

/// What a ValidatingWebhookConfiguration's `clientConfig.service` names.
struct WebhookServiceRef {
    configuration: String,
    name: String,
    namespace: String,
    path: String,
    port: u16,
}

fn find_webhook_service(
    set: &ManifestSet,
    overrides: &RoleOverrides,
    problems: &mut Vec<String>,
) -> Option<WebhookServiceRef> {
    let configs: Vec<&ValidatingWebhookConfiguration> = set.webhook_configurations().collect();
    let config_name =
        |c: &ValidatingWebhookConfiguration| c.metadata.name.clone().unwrap_or_default();
    let resolves = |r: &ServiceReference| service_named(set, &r.name, &r.namespace).is_some();
    let chosen = match &overrides.webhook_configuration {
        Some(wanted) => {
            let found = configs
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(wanted.as_str()));
            match found {
                Some(c) => *c,
                None => {
                    problems.push(format!(
                        "webhook: roles.webhookConfiguration names ValidatingWebhookConfiguration {wanted}, \
                         which is not in the manifests (found: {})",
                        list_or_none(configs.iter().map(|c| config_name(c)))
                    ));
                    return None;
                }
            }
        }
        None => match configs.as_slice() {
            [] => {
                problems.push(
                    "webhook: the manifests hold no ValidatingWebhookConfiguration to start from"
                        .to_string(),
                );
                return None;
            }
            [only] => *only,
            // Several: the one that leads somewhere; if none does, the first, so the
            // problem below says where its trail ended.
            several => several
                .iter()
                .find(|c| service_refs(c).any(resolves))
                .copied()
                .unwrap_or(several[0]),
        },
    };
    let configuration = config_name(chosen);
    let refs: Vec<&ServiceReference> = service_refs(chosen).collect();
    let Some(service) = refs.iter().find(|r| resolves(r)).or(refs.first()) else {
        problems.push(format!(
            "webhook: ValidatingWebhookConfiguration {configuration} has no webhook with \
             clientConfig.service (a url webhook cannot be followed to a Service)"
        ));
        return None;
    };
    let port = match service.port {
        None => 443,
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => p,
            _ => {
                problems.push(format!(
                    "webhook: ValidatingWebhookConfiguration {configuration} dials port {p}, which is not a port"
                ));
                return None;
            }
        },
    };
    Some(WebhookServiceRef {
        configuration,
        name: service.name.clone(),
        namespace: service.namespace.clone(),
        path: service.path.clone().unwrap_or_else(|| "/".to_string()),
        port,
    })
}

fn service_refs(
    config: &ValidatingWebhookConfiguration,
) -> impl Iterator<Item = &ServiceReference> {
    config
        .webhooks
        .iter()
        .flatten()
        .filter_map(|w| w.client_config.service.as_ref())
}

/// The Service a webhook reference names; a Service without a namespace (as `helm
/// template` often renders them) is taken to be in the referenced namespace.
fn service_named<'a>(set: &'a ManifestSet, name: &str, namespace: &str) -> Option<&'a Service> {
    set.services().find(|s| {
        s.metadata.name.as_deref() == Some(name)
            && s.metadata
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == namespace)
    })
}

fn follow_webhook(
    set: &ManifestSet,
    r: &WebhookServiceRef,
    problems: &mut Vec<String>,
) -> Option<WebhookRole> {
    let trail = format!(
        "webhook: ValidatingWebhookConfiguration {} points at Service {}",
        r.configuration, r.name
    );
    let Some(service) = service_named(set, &r.name, &r.namespace) else {
        problems.push(format!("{trail}, which is not in the manifests"));
        return None;
    };
    let (workload, template) = match selected_workload(set, service) {
        Ok(found) => found,
        Err(why) => {
            problems.push(format!("{trail}; {why}"));
            return None;
        }
    };
    let ports = service_ports(service);
    let Some(service_port) = ports.iter().find(|p| p.port == i32::from(r.port)) else {
        problems.push(format!(
            "{trail}, port {}; the Service has ports {}",
            r.port,
            list_or_none(ports.iter().map(|p| p.port.to_string()))
        ));
        return None;
    };
    let spec = template.spec.as_ref()?;
    let (container, container_port) = match resolve_target_port(spec, service_port) {
        Ok(found) => found,
        Err(why) => {
            problems.push(format!("{trail}, which selects {workload}; {why}"));
            return None;
        }
    };
    let tls_secret = mounted_secret(spec, &container.name);
    Some(WebhookRole {
        configuration: r.configuration.clone(),
        service: r.name.clone(),
        namespace: r.namespace.clone(),
        path: r.path.clone(),
        service_port: r.port,
        workload,
        container: container.name.clone(),
        container_port,
        tls_secret,
    })
}

fn service_ports(service: &Service) -> Vec<&ServicePort> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|p| p.iter().collect())
        .unwrap_or_default()
}

fn service_selector(service: &Service) -> BTreeMap<String, String> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
}

/// The long-running workload whose pod template carries every label of the Service's
/// selector, or why there is none.
fn selected_workload<'a>(
    set: &'a ManifestSet,
    service: &Service,
) -> Result<(WorkloadRef, &'a PodTemplateSpec), String> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let selector = service_selector(service);
    if selector.is_empty() {
        return Err(format!(
            "Service {name} has no selector, so it leads to no pods"
        ));
    }
    set.pod_templates()
        .into_iter()
        .filter(|(w, _)| matches!(w.kind.as_str(), "Deployment" | "DaemonSet" | "StatefulSet"))
        .find(|(_, t)| labels_match(&selector, template_labels(t)))
        .ok_or_else(|| {
            format!(
                "Service {name} selects {}, but no Deployment, DaemonSet or StatefulSet pod \
                 template carries those labels",
                format_labels(&selector)
            )
        })
}

/// The pod template's labels (empty when it has none).
pub fn template_labels(template: &PodTemplateSpec) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&EMPTY)
}

/// True when every `selector` entry is among `labels`.
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The container and container port a Service port's `targetPort` reaches: a number
/// (default: the Service port) or the name of a container port.
fn resolve_target_port<'a>(
    spec: &'a PodSpec,
    service_port: &ServicePort,
) -> Result<(&'a Container, u16), String> {
    let target = service_port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(service_port.port));
    let declared = |c: &'a Container| c.ports.iter().flatten().map(move |p| (c, p));
    match target {
        IntOrString::String(name) if name.parse::<i32>().is_err() => spec
            .containers
            .iter()
            .flat_map(declared)
            .find(|(_, p)| p.name.as_deref() == Some(name.as_str()))
            .and_then(|(c, p)| Some((c, u16::try_from(p.container_port).ok()?)))
            .ok_or_else(|| format!("targetPort {name} names no container port")),
        other => {
            let number = match other {
                IntOrString::Int(n) => n,
                IntOrString::String(s) => s.parse().unwrap_or_default(),
            };
            let port = u16::try_from(number)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("targetPort {number} is not a port"))?;
            // A container need not declare a port to listen on it; with one
            // container there is no doubt which one serves.
            spec.containers
                .iter()
                .flat_map(declared)
                .find(|(_, p)| p.container_port == number)
                .map(|(c, _)| c)
                .or(match spec.containers.as_slice() {
                    [only] => Some(only),
                    _ => None,
                })
                .map(|c| (c, port))
                .ok_or_else(|| {
                    format!(
                        "targetPort {port} is declared by none of its {} containers",
                        spec.containers.len()
                    )
                })
        }
    }
}

/// The first Secret mounted into `container` (a secret volume, or a projected one).
fn mounted_secret(spec: &PodSpec, container: &str) -> Option<String> {
    let mounts: Vec<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name == container)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| m.name.as_str())
        .collect();
    spec.volumes
        .iter()
        .flatten()
        .filter(|v| mounts.contains(&v.name.as_str()))
        .find_map(|v| {
            let direct = v.secret.as_ref().and_then(|s| s.secret_name.clone());
            let projected = || {
                v.projected
                    .as_ref()?
                    .sources
                    .iter()
                    .flatten()
                    .find_map(|s| s.secret.as_ref().map(|s| s.name.clone()))
            };
            direct.or_else(projected)
        })
}

fn find_aggregator(
    set: &ManifestSet,
    overrides: &RoleOverrides,
    default_namespace: &str,
    problems: &mut Vec<String>,
) -> Option<AggregatorRole> {
    let service = match &overrides.aggregator_service {
        Some(wanted) => match set.service(wanted) {
            Some(s) => s,
            None => {
                problems.push(format!(
                    "aggregator: roles.aggregatorService names Service {wanted}, which is not in the manifests"
                ));
                return None;
            }
        },
        None => {
            let by_label = set.services().find(|s| {
                let labelled = |m: Option<&BTreeMap<String, String>>| {
                    m.and_then(|m| m.get(COMPONENT_LABEL)).map(String::as_str) == Some("aggregator")
                };
                labelled(s.metadata.labels.as_ref()) || labelled(Some(&service_selector(s)))
            });
            let by_name = || {
                set.services().find(|s| {
                    s.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.ends_with("aggregator"))
                })
            };
            match by_label.or_else(by_name) {
                Some(s) => s,
                None => {
                    problems.push(format!(
                        "aggregator: no Service carries {COMPONENT_LABEL}: aggregator and none is \
                         named *aggregator (Services: {})",
                        list_or_none(
                            set.services()
                                .map(|s| s.metadata.name.clone().unwrap_or_default())
                        )
                    ));
                    return None;
                }
            }
        }
    };
    let name = service.metadata.name.clone().unwrap_or_default();
    let namespace = service
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_string());
    let ports = service_ports(service);
    let Some(first) = ports.first() else {
        problems.push(format!("aggregator: Service {name} has no ports"));
        return None;
    };
    let port = u16::try_from(first.port).unwrap_or_default();
    let selected = selected_workload(set, service);
    let workload = match &selected {
        Ok((w, _)) => Some(w.clone()),
        Err(why) => {
            problems.push(format!("aggregator: {why}"));
            None
        }
    };
    let resolved = selected
        .as_ref()
        .ok()
        .and_then(|(_, t)| t.spec.as_ref())
        .map(|spec| resolve_target_port(spec, first));
    let target_port = match resolved {
        Some(Ok((_, p))) => p,
        Some(Err(why)) => {
            problems.push(format!("aggregator: Service {name} port {port}: {why}"));
            port
        }
        // No workload: a numeric targetPort still says where the traffic goes.
        None => match &first.target_port {
            Some(IntOrString::Int(n)) => u16::try_from(*n).unwrap_or(port),
            _ => port,
        },
    };
    Some(AggregatorRole {
        service: name,
        namespace,
        port,
        target_port,
        workload,
    })
}

fn find_backfill(
    set: &ManifestSet,
    overrides: &RoleOverrides,
    webhook: Option<&WebhookServiceRef>,
    problems: &mut Vec<String>,
) -> Vec<WorkloadRef> {
    let templates = set.pod_templates();
    if let Some(wanted) = &overrides.backfill {
        let mut found = Vec::new();
        for entry in wanted {
            let parsed = entry.split_once('/').map(|(kind, name)| WorkloadRef {
                kind: kind.to_string(),
                name: name.to_string(),
            });
            match parsed {
                Some(w) if templates.iter().any(|(t, _)| *t == w) => found.push(w),
                Some(w) => problems.push(format!(
                    "backfill: roles.backfill names {w}, which is not in the manifests"
                )),
                None => problems.push(format!(
                    "backfill: roles.backfill entry `{entry}` is not Kind/name (CronJob/x, Job/y)"
                )),
            }
        }
        return found;
    }
    let Some(webhook) = webhook else {
        problems.push(
            "backfill: without a webhook Service there is no host to look for in CronJobs and Jobs"
                .to_string(),
        );
        return Vec::new();
    };
    let jobs: Vec<_> = templates
        .iter()
        .filter(|(w, _)| matches!(w.kind.as_str(), "CronJob" | "Job"))
        .collect();
    let found: Vec<WorkloadRef> = jobs
        .iter()
        .filter(|(_, t)| {
            let texts = pod_texts(set, t);
            texts.iter().any(|s| mentions_host(s, &webhook.name)) && !patches_ca_bundle(&texts)
        })
        .map(|(w, _)| w.clone())
        .collect();
    if found.is_empty() {
        problems.push(format!(
            "backfill: no CronJob or Job mentions the webhook host {}. in its command, args, env \
             or mounted ConfigMaps (jobs: {})",
            webhook.name,
            list_or_none(jobs.iter().map(|(w, _)| w.to_string()))
        ));
    }
    found
}

/// The init-cert job names the webhook Service too (in its certificate's SANs) but
/// talks to the API server: it is the one that patches the caBundle.
fn patches_ca_bundle(texts: &[String]) -> bool {
    texts.iter().any(|t| t.contains("caBundle"))
}

fn find_senders(
    set: &ManifestSet,
    aggregator: Option<&AggregatorRole>,
    problems: &mut Vec<String>,
) -> Vec<WorkloadRef> {
    let Some(aggregator) = aggregator else {
        problems.push(
            "senders: without an aggregator Service there is no host to look for".to_string(),
        );
        return Vec::new();
    };
    let found: Vec<WorkloadRef> = set
        .pod_templates()
        .into_iter()
        .filter(|(w, _)| Some(w) != aggregator.workload.as_ref())
        .filter(|(_, t)| {
            pod_texts(set, t)
                .iter()
                .any(|s| mentions_host(s, &aggregator.service))
        })
        .map(|(w, _)| w)
        .collect();
    if found.is_empty() {
        problems.push(format!(
            "senders: no workload mentions the aggregator host {}. in its command, args, env or \
             mounted ConfigMaps",
            aggregator.service
        ));
    }
    found
}

fn find_validator(
    set: &ManifestSet,
    overrides: &RoleOverrides,
    problems: &mut Vec<String>,
) -> Option<ValidatorRole> {
    let is_validator = |c: &Container| match &overrides.validator_container {
        Some(wanted) => c.name == *wanted,
        None => {
            c.name.contains("validator") || c.env.iter().flatten().any(|e| e.name == AMBIENT_ENV)
        }
    };
    for (workload, template) in set.pod_templates() {
        let Some(spec) = template.spec.as_ref() else {
            continue;
        };
        let init = spec.init_containers.iter().flatten().map(|c| (c, true));
        let regular = spec.containers.iter().map(|c| (c, false));
        if let Some((container, init)) = init.chain(regular).find(|(c, _)| is_validator(c)) {
            return Some(ValidatorRole {
                workload,
                container: container.name.clone(),
                init,
                expected_cluster_id: expected_cluster_id(container),
            });
        }
    }
    problems.push(match &overrides.validator_container {
        Some(wanted) => format!(
            "validator: roles.validatorContainer names container {wanted}, which no pod template has"
        ),
        None => format!(
            "validator: no container is named *validator* or reads {AMBIENT_ENV}"
        ),
    });
    None
}

/// The literal value of the first env var whose name contains `CLUSTER_ID` (but is
/// not the `CLUSTER_ID_EXPLICIT` flag).
fn expected_cluster_id(container: &Container) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name.contains("CLUSTER_ID") && e.name != "CLUSTER_ID_EXPLICIT")
        .find_map(|e| e.value.clone().filter(|v| !v.is_empty()))
}

/// Every string a pod template hands its containers: command, args and env values of
/// init and regular containers, plus the data of ConfigMaps it mounts or imports
/// (a chart often puts URLs in a config file rather than on the command line).
pub fn pod_texts(set: &ManifestSet, template: &PodTemplateSpec) -> Vec<String> {
    let Some(spec) = template.spec.as_ref() else {
        return Vec::new();
    };
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let mut texts: Vec<String> = containers
        .iter()
        .flat_map(|c| {
            let env_values = c.env.iter().flatten().filter_map(|e| e.value.clone());
            c.command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
                .chain(env_values)
        })
        .collect();
    let mut config_maps: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .flat_map(|v| {
            let direct = v.config_map.as_ref().map(|c| c.name.clone());
            let projected = v
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|s| s.config_map.as_ref().map(|c| c.name.clone()));
            direct.into_iter().chain(projected)
        })
        .collect();
    for c in &containers {
        config_maps.extend(
            c.env_from
                .iter()
                .flatten()
                .filter_map(|e| e.config_map_ref.as_ref().map(|r| r.name.clone())),
        );
    }
    for r in set.resources() {
        if let Resource::ConfigMap(cm) = r
            && cm
                .metadata
                .name
                .as_ref()
                .is_some_and(|n| config_maps.contains(n))
        {
            texts.extend(cm.data.iter().flatten().map(|(_, v)| v.clone()));
        }
    }
    texts
}

/// True when `text` names the host `service.` (`svc.ns.svc.cluster.local`, `svc.ns`):
/// the service name as a whole DNS label followed by a dot, and not as a certificate
/// SAN (`DNS:svc.ns.svc`), which names the host without calling it.
pub fn mentions_host(text: &str, service: &str) -> bool {
    if service.is_empty() {
        return false;
    }
    let needle = format!("{service}.");
    text.match_indices(&needle).any(|(at, _)| {
        let before = &text[..at];
        let boundary = before
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        boundary && !before.to_ascii_lowercase().ends_with("dns:")
    })
}

/// The namespace most namespaced objects in the set declare, if any declares one.
fn namespace_hint(set: &ManifestSet) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in set.resources() {
        if let Some(ns) = r.metadata().namespace {
            *counts.entry(ns).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(ns, _)| ns)
}

fn list_or_none(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifests::parse_documents;

    /// A chart the harness has never seen: release `acme` in namespace `costs`, with a
    /// named targetPort, a projected TLS Secret, an init-cert job, a ConfigMap URL and a
    /// second (unrelated) webhook configuration.
    const ACME: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: other-webhook}
webhooks:
  - name: other.example.com
    admissionReviewVersions: [v1]
    sideEffects: None
    clientConfig:
      service: {name: gone, namespace: elsewhere}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: acme-hooks}
webhooks:
  - name: acme.example.com
    admissionReviewVersions: [v1]
    sideEffects: None
    clientConfig:
      service: {name: acme-admission, namespace: costs, path: /validate, port: 9443}
---
apiVersion: v1
kind: Service
metadata: {name: acme-admission, namespace: costs}
spec:
  selector: {app: acme-admission}
  ports:
    - {port: 9443, targetPort: https-hook}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: acme-admission-server, namespace: costs}
spec:
  selector: {matchLabels: {app: acme-admission}}
  template:
    metadata:
      labels: {app: acme-admission, tier: hook}
    spec:
      containers:
        - name: metrics-sidekick
          image: x
          ports: [{name: metrics, containerPort: 9090}]
        - name: server
          image: x
          ports: [{name: https-hook, containerPort: 7443}]
          env:
            - {name: SINK, value: "http://acme-sink.costs.svc.cluster.local/collector"}
          volumeMounts: [{name: certs, mountPath: /certs}]
      volumes:
        - name: certs
          projected:
            sources:
              - secret: {name: acme-admission-certs}
---
apiVersion: v1
kind: Service
metadata:
  name: acme-sink
  namespace: costs
  labels: {app.kubernetes.io/component: aggregator}
spec:
  selector: {app: acme-sink}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: acme-sink, namespace: costs}
spec:
  selector: {matchLabels: {app: acme-sink}}
  template:
    metadata: {labels: {app: acme-sink}}
    spec:
      initContainers:
        - name: preflight
          image: x
          env:
            - {name: ISTIO_AMBIENT_REDIRECTION, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['ambient.istio.io/redirection']"}}}
            - {name: CLUSTER_ID_EXPLICIT, value: "true"}
            - {name: EXPECTED_CLUSTER_ID, value: east-1}
      containers:
        - name: sink
          image: x
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: acme-prom, namespace: costs}
data:
  prometheus.yml: |
    remote_write:
      - url: http://acme-sink.costs.svc.cluster.local/collector
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: acme-metrics, namespace: costs}
spec:
  selector: {matchLabels: {app: acme-metrics}}
  template:
    metadata: {labels: {app: acme-metrics}}
    spec:
      containers: [{name: prom, image: x, volumeMounts: [{name: cfg, mountPath: /etc/prom}]}]
      volumes: [{name: cfg, configMap: {name: acme-prom}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: acme-init-cert, namespace: costs}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: certs
          image: x
          command: [sh, -c]
          args:
            - |
              openssl req -subj /CN=acme -addext "subjectAltName=DNS:acme-admission.costs.svc"
              kubectl patch validatingwebhookconfiguration acme-hooks --type json -p '[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"'$CA'"}]'
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: acme-rescan, namespace: costs}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: rescan
              image: x
              args: ["--target", "https://acme-admission.costs.svc.cluster.local:9443/validate"]
"#;

    fn acme() -> ManifestSet {
        parse_documents(Path::new("acme"), ACME).unwrap()
    }

    fn workload(kind: &str, name: &str) -> WorkloadRef {
        WorkloadRef {
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn follows_the_webhook_trail_on_an_unseen_chart() {
        let roles = discover(&acme(), &RoleOverrides::default());
        let webhook = roles.webhook.expect("webhook found");
        assert_eq!(webhook.configuration, "acme-hooks");
        assert_eq!(webhook.service, "acme-admission");
        assert_eq!(webhook.namespace, "costs");
        assert_eq!(webhook.path, "/validate");
        assert_eq!(webhook.service_port, 9443);
        assert_eq!(
            webhook.workload,
            workload("Deployment", "acme-admission-server")
        );
        assert_eq!(webhook.container, "server");
        assert_eq!(webhook.container_port, 7443);
        assert_eq!(webhook.tls_secret.as_deref(), Some("acme-admission-certs"));
        assert_eq!(webhook.service_dns_name(), "acme-admission.costs.svc");
    }

    #[test]
    fn finds_aggregator_senders_backfill_and_validator() {
        let roles = discover(&acme(), &RoleOverrides::default());
        let aggregator = roles.aggregator.expect("aggregator found");
        assert_eq!(aggregator.service, "acme-sink");
        assert_eq!(aggregator.fqdn(), "acme-sink.costs.svc.cluster.local");
        assert_eq!((aggregator.port, aggregator.target_port), (80, 8080));
        assert_eq!(
            aggregator.workload,
            Some(workload("Deployment", "acme-sink"))
        );
        // The init-cert job names the webhook in a SAN and patches the caBundle: not a
        // backfill.
        assert_eq!(roles.backfill, vec![workload("CronJob", "acme-rescan")]);
        assert_eq!(
            roles.senders,
            vec![
                workload("Deployment", "acme-admission-server"),
                workload("DaemonSet", "acme-metrics"),
            ]
        );
        let validator = roles.validator.expect("validator found");
        assert_eq!(validator.container, "preflight");
        assert!(validator.init);
        assert_eq!(validator.expected_cluster_id.as_deref(), Some("east-1"));
        assert!(roles.problems.is_empty(), "{:?}", roles.problems);
    }

    #[test]
    fn overrides_win_and_missing_ones_are_problems() {
        let overrides = RoleOverrides {
            webhook_configuration: Some("other-webhook".into()),
            aggregator_service: Some("acme-admission".into()),
            backfill: Some(vec![
                "Job/acme-init-cert".into(),
                "Job/nope".into(),
                "junk".into(),
            ]),
            validator_container: Some("sink".into()),
        };
        let roles = discover(&acme(), &overrides);
        assert!(roles.webhook.is_none());
        assert!(
            roles.problems.iter().any(|p| p
                == "webhook: ValidatingWebhookConfiguration other-webhook points at Service gone, which is not in the manifests"),
            "{:?}",
            roles.problems
        );
        assert_eq!(
            roles.aggregator.map(|a| a.service).as_deref(),
            Some("acme-admission")
        );
        assert_eq!(roles.backfill, vec![workload("Job", "acme-init-cert")]);
        assert!(roles.problems.iter().any(|p| p.contains("Job/nope")));
        assert!(roles.problems.iter().any(|p| p.contains("`junk`")));
        let validator = roles.validator.expect("validator by override");
        assert_eq!(
            (validator.container.as_str(), validator.init),
            ("sink", false)
        );
    }

    #[test]
    fn empty_set_explains_every_missing_role() {
        let roles = discover(&ManifestSet::default(), &RoleOverrides::default());
        assert_eq!(
            roles,
            Roles {
                problems: roles.problems.clone(),
                ..Roles::default()
            }
        );
        for role in [
            "webhook:",
            "aggregator:",
            "backfill:",
            "senders:",
            "validator:",
        ] {
            assert!(
                roles.problems.iter().any(|p| p.starts_with(role)),
                "no problem for {role}: {:?}",
                roles.problems
            );
        }
    }

    #[test]
    fn selector_without_matching_pods_says_so() {
        let text = ACME.replace(
            "labels: {app: acme-admission, tier: hook}",
            "labels: {app: renamed}",
        );
        let roles = discover(
            &parse_documents(Path::new("acme"), &text).unwrap(),
            &RoleOverrides::default(),
        );
        assert!(roles.webhook.is_none());
        assert!(
            roles
                .problems
                .iter()
                .any(|p| p.contains("selects {app=acme-admission}")),
            "{:?}",
            roles.problems
        );
    }

    #[test]
    fn host_mentions_need_a_label_boundary_and_not_a_san() {
        assert!(mentions_host(
            "https://cz-webhook.ns.svc/validate",
            "cz-webhook"
        ));
        assert!(mentions_host("cz-webhook.ns", "cz-webhook"));
        assert!(!mentions_host("https://xcz-webhook.ns.svc", "cz-webhook"));
        assert!(!mentions_host("cz-webhook-tls", "cz-webhook"));
        assert!(!mentions_host(
            "subjectAltName=DNS:cz-webhook.ns.svc",
            "cz-webhook"
        ));
        assert!(!mentions_host("anything", ""));
    }
}
