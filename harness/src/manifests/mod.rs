//! One parsed manifest set per cluster, typed with k8s-openapi where Kubernetes has a
//! type and with small serde types for Istio and cert-manager kinds.

mod istio;
mod parse;

pub use istio::*;
pub use parse::parse_documents;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// A Kubernetes object the rules know, or any other object kept as JSON.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// apps/v1 Deployment.
    Deployment(Deployment),
    /// apps/v1 DaemonSet.
    DaemonSet(DaemonSet),
    /// apps/v1 StatefulSet.
    StatefulSet(StatefulSet),
    /// batch/v1 CronJob.
    CronJob(CronJob),
    /// batch/v1 Job.
    Job(Job),
    /// v1 Service.
    Service(Service),
    /// v1 Secret.
    Secret(Secret),
    /// v1 ConfigMap.
    ConfigMap(ConfigMap),
    /// admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration.
    ValidatingWebhookConfiguration(ValidatingWebhookConfiguration),
    /// networking.istio.io DestinationRule.
    DestinationRule(DestinationRule),
    /// networking.istio.io VirtualService.
    VirtualService(VirtualService),
    /// security.istio.io PeerAuthentication.
    PeerAuthentication(PeerAuthentication),
    /// cert-manager.io Certificate.
    Certificate(Certificate),
    /// Anything else, as JSON.
    Other {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
        /// The whole object.
        object: serde_json::Value,
    },
}

impl Resource {
    /// The object's `apiVersion`.
    pub fn api_version(&self) -> &str {
        match self {
            Resource::Deployment(_) | Resource::DaemonSet(_) | Resource::StatefulSet(_) => {
                "apps/v1"
            }
            Resource::CronJob(_) | Resource::Job(_) => "batch/v1",
            Resource::Service(_) | Resource::Secret(_) | Resource::ConfigMap(_) => "v1",
            Resource::ValidatingWebhookConfiguration(_) => "admissionregistration.k8s.io/v1",
            Resource::DestinationRule(_) | Resource::VirtualService(_) => "networking.istio.io/v1",
            Resource::PeerAuthentication(_) => "security.istio.io/v1",
            Resource::Certificate(_) => "cert-manager.io/v1",
            Resource::Other { api_version, .. } => api_version,
        }
    }

    /// The object's `kind`.
    pub fn kind(&self) -> &str {
        match self {
            Resource::Deployment(_) => "Deployment",
            Resource::DaemonSet(_) => "DaemonSet",
            Resource::StatefulSet(_) => "StatefulSet",
            Resource::CronJob(_) => "CronJob",
            Resource::Job(_) => "Job",
            Resource::Service(_) => "Service",
            Resource::Secret(_) => "Secret",
            Resource::ConfigMap(_) => "ConfigMap",
            Resource::ValidatingWebhookConfiguration(_) => "ValidatingWebhookConfiguration",
            Resource::DestinationRule(_) => "DestinationRule",
            Resource::VirtualService(_) => "VirtualService",
            Resource::PeerAuthentication(_) => "PeerAuthentication",
            Resource::Certificate(_) => "Certificate",
            Resource::Other { kind, .. } => kind,
        }
    }

    /// The object's metadata (for `Other`, a copy of the name and namespace only).
    pub fn metadata(&self) -> ObjectMeta {
        match self {
            Resource::Deployment(o) => o.metadata.clone(),
            Resource::DaemonSet(o) => o.metadata.clone(),
            Resource::StatefulSet(o) => o.metadata.clone(),
            Resource::CronJob(o) => o.metadata.clone(),
            Resource::Job(o) => o.metadata.clone(),
            Resource::Service(o) => o.metadata.clone(),
            Resource::Secret(o) => o.metadata.clone(),
            Resource::ConfigMap(o) => o.metadata.clone(),
            Resource::ValidatingWebhookConfiguration(o) => o.metadata.clone(),
            Resource::DestinationRule(o) => o.metadata.clone(),
            Resource::VirtualService(o) => o.metadata.clone(),
            Resource::PeerAuthentication(o) => o.metadata.clone(),
            Resource::Certificate(o) => o.metadata.clone(),
            Resource::Other { object, .. } => {
                serde_json::from_value(object.get("metadata").cloned().unwrap_or_default())
                    .unwrap_or_default()
            }
        }
    }

    /// The object's name (empty when it has none).
    pub fn name(&self) -> String {
        self.metadata().name.unwrap_or_default()
    }

    /// `Kind/name`, as reports print it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// True for objects in the `networking.istio.io` or `security.istio.io` groups.
    pub fn is_istio(&self) -> bool {
        let group = self.api_version().split('/').next().unwrap_or("");
        group.ends_with("istio.io")
    }

    /// The object as JSON, with apiVersion and kind.
    pub fn to_json(&self) -> serde_json::Value {
        fn with_type<T: Serialize>(o: &T, api: &str, kind: &str) -> serde_json::Value {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            if let Some(map) = v.as_object_mut() {
                map.insert("apiVersion".into(), api.into());
                map.insert("kind".into(), kind.into());
            }
            v
        }
        let (api, kind) = (self.api_version(), self.kind());
        match self {
            Resource::Deployment(o) => with_type(o, api, kind),
            Resource::DaemonSet(o) => with_type(o, api, kind),
            Resource::StatefulSet(o) => with_type(o, api, kind),
            Resource::CronJob(o) => with_type(o, api, kind),
            Resource::Job(o) => with_type(o, api, kind),
            Resource::Service(o) => with_type(o, api, kind),
            Resource::Secret(o) => with_type(o, api, kind),
            Resource::ConfigMap(o) => with_type(o, api, kind),
            Resource::ValidatingWebhookConfiguration(o) => with_type(o, api, kind),
            Resource::DestinationRule(o) => with_type(o, api, kind),
            Resource::VirtualService(o) => with_type(o, api, kind),
            Resource::PeerAuthentication(o) => with_type(o, api, kind),
            Resource::Certificate(o) => with_type(o, api, kind),
            Resource::Other { object, .. } => object.clone(),
        }
    }
}

/// One object and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The template that produced it (`cloudzero-agent/templates/webhook.yaml`), or
    /// `reference-install` for objects the harness generated.
    pub source: String,
    /// The object.
    pub resource: Resource,
}

/// A workload that owns a pod template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkloadRef {
    /// Deployment, DaemonSet, StatefulSet, CronJob or Job.
    pub kind: String,
    /// The workload's name.
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Every object installed in one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManifestSet {
    /// The objects, in install order.
    pub items: Vec<Manifest>,
}

impl ManifestSet {
    /// Adds an object.
    pub fn push(&mut self, source: impl Into<String>, resource: Resource) {
        self.items.push(Manifest {
            source: source.into(),
            resource,
        });
    }

    /// Every object of the set.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.items.iter().map(|m| &m.resource)
    }

    /// Every pod template, with the workload that owns it.
    pub fn pod_templates(&self) -> Vec<(WorkloadRef, &PodTemplateSpec)> {
        self.resources()
            .filter_map(|r| {
                let (kind, meta, template) = match r {
                    Resource::Deployment(d) => {
                        ("Deployment", &d.metadata, &d.spec.as_ref()?.template)
                    }
                    Resource::DaemonSet(d) => {
                        ("DaemonSet", &d.metadata, &d.spec.as_ref()?.template)
                    }
                    Resource::StatefulSet(d) => {
                        ("StatefulSet", &d.metadata, &d.spec.as_ref()?.template)
                    }
                    Resource::Job(j) => ("Job", &j.metadata, &j.spec.as_ref()?.template),
                    Resource::CronJob(c) => (
                        "CronJob",
                        &c.metadata,
                        &c.spec.as_ref()?.job_template.spec.as_ref()?.template,
                    ),
                    _ => return None,
                };
                let name = meta.name.clone().unwrap_or_default();
                Some((
                    WorkloadRef {
                        kind: kind.into(),
                        name,
                    },
                    template,
                ))
            })
            .collect()
    }

    /// The pod template of one workload, for changing it (mutations, install steps).
    pub fn pod_template_mut(&mut self, workload: &WorkloadRef) -> Option<&mut PodTemplateSpec> {
        self.items.iter_mut().find_map(|m| {
            let (kind, name, template) = match &mut m.resource {
                Resource::Deployment(d) => (
                    "Deployment",
                    d.metadata.name.clone(),
                    &mut d.spec.as_mut()?.template,
                ),
                Resource::DaemonSet(d) => (
                    "DaemonSet",
                    d.metadata.name.clone(),
                    &mut d.spec.as_mut()?.template,
                ),
                Resource::StatefulSet(d) => (
                    "StatefulSet",
                    d.metadata.name.clone(),
                    &mut d.spec.as_mut()?.template,
                ),
                Resource::Job(j) => (
                    "Job",
                    j.metadata.name.clone(),
                    &mut j.spec.as_mut()?.template,
                ),
                Resource::CronJob(c) => (
                    "CronJob",
                    c.metadata.name.clone(),
                    &mut c.spec.as_mut()?.job_template.spec.as_mut()?.template,
                ),
                _ => return None,
            };
            (kind == workload.kind && name.as_deref() == Some(workload.name.as_str()))
                .then_some(template)
        })
    }

    /// The pod template of one workload.
    pub fn pod_template(&self, workload: &WorkloadRef) -> Option<&PodTemplateSpec> {
        self.pod_templates()
            .into_iter()
            .find(|(w, _)| w == workload)
            .map(|(_, t)| t)
    }

    /// Services.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.resources().filter_map(|r| match r {
            Resource::Service(s) => Some(s),
            _ => None,
        })
    }

    /// The Service with this name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// Secrets.
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.resources().filter_map(|r| match r {
            Resource::Secret(s) => Some(s),
            _ => None,
        })
    }

    /// The Secret with this name.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// ValidatingWebhookConfigurations.
    pub fn webhook_configurations(&self) -> impl Iterator<Item = &ValidatingWebhookConfiguration> {
        self.resources().filter_map(|r| match r {
            Resource::ValidatingWebhookConfiguration(v) => Some(v),
            _ => None,
        })
    }

    /// DestinationRules.
    pub fn destination_rules(&self) -> impl Iterator<Item = &DestinationRule> {
        self.resources().filter_map(|r| match r {
            Resource::DestinationRule(v) => Some(v),
            _ => None,
        })
    }

    /// VirtualServices.
    pub fn virtual_services(&self) -> impl Iterator<Item = &VirtualService> {
        self.resources().filter_map(|r| match r {
            Resource::VirtualService(v) => Some(v),
            _ => None,
        })
    }

    /// PeerAuthentications.
    pub fn peer_authentications(&self) -> impl Iterator<Item = &PeerAuthentication> {
        self.resources().filter_map(|r| match r {
            Resource::PeerAuthentication(v) => Some(v),
            _ => None,
        })
    }

    /// cert-manager Certificates.
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.resources().filter_map(|r| match r {
            Resource::Certificate(v) => Some(v),
            _ => None,
        })
    }

    /// Objects of a kind the rules do not model (Issuer, Namespace, ...).
    pub fn others(&self, kind: &str) -> impl Iterator<Item = &serde_json::Value> {
        self.resources().filter_map(move |r| match r {
            Resource::Other {
                kind: k, object, ..
            } if k == kind => Some(object),
            _ => None,
        })
    }

    /// Removes every object for which `drop` returns true; returns how many went.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&Resource) -> bool) -> usize {
        let before = self.items.len();
        self.items.retain(|m| !drop(&m.resource));
        before - self.items.len()
    }

    /// The whole set as a multi-document YAML stream (what `kubectl apply -f` takes).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for m in &self.items {
            out.push_str("---\n");
            out.push_str(&format!("# Source: {}\n", m.source));
            match serde_saphyr::to_string(&m.resource.to_json()) {
                Ok(yaml) => out.push_str(&yaml),
                Err(e) => out.push_str(&format!("# cannot serialize {}: {e}\n", m.resource.key())),
            }
        }
        out
    }
}
