//! The twin's picture of the mesh, built from the INSTALLED MANIFESTS and the scenario's
//! topology: pods (with injection decided as Istio decides it), Services, endpoints,
//! PeerAuthentication and routing rules. Pure data, no sockets: the data plane in
//! [`super::dataplane`] acts on it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::manifests::{ManifestSet, PeerAuthentication, WorkloadRef};
use crate::roles::Roles;
use crate::scenario::{Cluster, IstioMode, MtlsMode, SidecarKind};

/// Label Istio applies to every workload instance (not to pod objects) with the
/// cluster ID of the cluster it runs in (Istio resource label reference:
/// `topology.istio.io/cluster`).
pub const CLUSTER_LABEL: &str = "topology.istio.io/cluster";
/// Sidecar injection opt-out (Istio "Installing the sidecar > Controlling the
/// injection policy": the label wins, the annotation is still honoured).
pub const INJECT: &str = "sidecar.istio.io/inject";
/// Ambient opt-out label (Istio ambient docs, "Add workloads to the mesh").
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// Annotation the Istio CNI node agent sets on enrolled pods (ambient architecture).
pub const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";
/// Sidecar-only annotations (Istio annotation reference).
pub const EXCLUDE_INBOUND: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
/// See [`EXCLUDE_INBOUND`].
pub const EXCLUDE_OUTBOUND: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
/// Service label that makes an ambient service visible mesh-wide (Istio ambient
/// multicluster docs: services are cluster-local unless marked global).
pub const AMBIENT_GLOBAL: &str = "istio.io/global";
/// Istio's root namespace, where mesh-wide PeerAuthentication lives.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// How traffic enters and leaves a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dataplane {
    /// No proxy: traffic goes straight to the containers (kube-proxy for Services).
    Direct,
    /// An injected Envoy sidecar, with the ports its iptables rules skip.
    Sidecar {
        /// Native (init container with restartPolicy Always) or classic.
        kind: SidecarKind,
        /// `excludeInboundPorts`.
        exclude_inbound: BTreeSet<u16>,
        /// `excludeOutboundPorts`.
        exclude_outbound: BTreeSet<u16>,
    },
    /// Enrolled in ambient: ztunnel on the node does the mTLS (HBONE).
    Ambient,
}

/// One container of a pod, as the twin needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerModel {
    /// Container name.
    pub name: String,
    /// True for init containers.
    pub init: bool,
    /// Command and args, joined with spaces.
    pub command_line: String,
    /// Literal env values (downward API values are resolved by [`PodModel::env`]).
    pub env: BTreeMap<String, String>,
    /// Env vars filled from the downward API (`metadata.annotations['x']`), by name.
    pub env_from_annotation: BTreeMap<String, String>,
}

/// One pod of a workload role.
#[derive(Debug, Clone)]
pub struct PodModel {
    /// Index of its cluster in [`MeshModel::clusters`].
    pub cluster: usize,
    /// The workload that owns it.
    pub workload: WorkloadRef,
    /// Namespace.
    pub namespace: String,
    /// Pod labels (from the template).
    pub labels: BTreeMap<String, String>,
    /// Pod annotations (from the template, plus what the CNI adds).
    pub annotations: BTreeMap<String, String>,
    /// Service account (its SPIFFE identity).
    pub service_account: String,
    /// Data plane.
    pub dataplane: Dataplane,
    /// Container ports, by number, with their names.
    pub ports: BTreeMap<u16, Option<String>>,
    /// Containers (init first, in order).
    pub containers: Vec<ContainerModel>,
    /// False when the pod is not running (aggregator-down fault): not in EDS, no listener.
    pub ready: bool,
}

impl PodModel {
    /// `Kind/name@cluster`, as hops and evidence print it.
    pub fn label(&self, model: &MeshModel) -> String {
        format!("{}@{}", self.workload, model.clusters[self.cluster].name)
    }

    /// True when the pod has a sidecar.
    pub fn has_sidecar(&self) -> bool {
        matches!(self.dataplane, Dataplane::Sidecar { .. })
    }

    /// The env of a container with downward API annotation refs resolved.
    pub fn env(&self, container: &ContainerModel) -> BTreeMap<String, String> {
        let mut env = container.env.clone();
        for (var, annotation) in &container.env_from_annotation {
            env.insert(
                var.clone(),
                self.annotations
                    .get(annotation)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        env
    }
}

/// A Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortModel {
    /// Service port.
    pub port: u16,
    /// targetPort.
    pub target: Option<IntOrString>,
}

/// A Service of one cluster.
#[derive(Debug, Clone)]
pub struct ServiceModel {
    /// Index of its cluster.
    pub cluster: usize,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Selector.
    pub selector: BTreeMap<String, String>,
    /// Ports.
    pub ports: Vec<ServicePortModel>,
    /// Service labels.
    pub labels: BTreeMap<String, String>,
}

/// A cluster of the mesh.
#[derive(Debug, Clone)]
pub struct ClusterModel {
    /// Cluster name.
    pub name: String,
    /// istiod's CLUSTER_ID.
    pub istio_cluster_id: String,
    /// Istio mode.
    pub mode: IstioMode,
    /// Namespace-wide PeerAuthentication mode from the scenario.
    pub mtls: MtlsMode,
    /// Sidecar kind.
    pub sidecar: SidecarKind,
    /// The installed manifests (empty when the subject refused).
    pub manifests: ManifestSet,
    /// Roles found in them.
    pub roles: Roles,
    /// The subject's refusal, when it declined to install.
    pub refusal: Option<String>,
    /// The scenario's cluster (topology facts and the agent's values).
    pub spec: Cluster,
}

/// An endpoint of a Service: a ready pod and the port the Service targets on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Index into [`MeshModel::pods`].
    pub pod: usize,
    /// Container port.
    pub port: u16,
    /// Workload instance labels: pod labels plus `topology.istio.io/cluster`.
    pub labels: BTreeMap<String, String>,
}

/// Which clusters a lookup may return endpoints from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only the client's cluster (kube-proxy; ambient non-global services).
    Local(usize),
    /// Every cluster of the mesh that has the Service (namespace sameness).
    Mesh,
}

/// The whole mesh.
#[derive(Debug, Clone, Default)]
pub struct MeshModel {
    /// Clusters in scenario order.
    pub clusters: Vec<ClusterModel>,
    /// Pods of every cluster.
    pub pods: Vec<PodModel>,
    /// Services of every cluster.
    pub services: Vec<ServiceModel>,
}

/// The workloads of a role set that the twin runs as pods, deduplicated, in a fixed order.
pub fn role_workloads(roles: &Roles) -> Vec<WorkloadRef> {
    let mut out: Vec<WorkloadRef> = Vec::new();
    let mut add = |w: &WorkloadRef| {
        if !out.contains(w) {
            out.push(w.clone());
        }
    };
    if let Some(w) = &roles.webhook {
        add(&w.workload);
    }
    if let Some(w) = roles.aggregator.as_ref().and_then(|a| a.workload.as_ref()) {
        add(w);
    }
    roles.senders.iter().for_each(&mut add);
    roles.backfill.iter().for_each(&mut add);
    if let Some(v) = &roles.validator {
        add(&v.workload);
    }
    out
}

impl MeshModel {
    /// Adds a cluster and materialises its pods and Services from its manifests.
    pub fn add_cluster(&mut self, cluster: ClusterModel, namespace: &str) {
        let index = self.clusters.len();
        for workload in role_workloads(&cluster.roles) {
            if let Some(template) = cluster.manifests.pod_template(&workload) {
                let ns = workload_namespace(&cluster.manifests, &workload).unwrap_or(namespace);
                self.pods
                    .push(pod_from_template(index, &cluster, workload, ns, template));
            }
        }
        for svc in cluster.manifests.services() {
            let spec = svc.spec.clone().unwrap_or_default();
            self.services.push(ServiceModel {
                cluster: index,
                name: svc.metadata.name.clone().unwrap_or_default(),
                namespace: svc
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| namespace.to_string()),
                selector: spec.selector.unwrap_or_default(),
                ports: spec
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        Some(ServicePortModel {
                            port: u16::try_from(p.port).ok()?,
                            target: p.target_port,
                        })
                    })
                    .collect(),
                labels: svc.metadata.labels.clone().unwrap_or_default(),
            });
        }
        self.clusters.push(cluster);
    }

    /// The pod of a workload in a cluster.
    pub fn pod_of(&self, cluster: usize, workload: &WorkloadRef) -> Option<usize> {
        self.pods
            .iter()
            .position(|p| p.cluster == cluster && &p.workload == workload)
    }

    /// The cluster index by name.
    pub fn cluster_index(&self, name: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == name)
    }

    /// Ready endpoints of Service `name.namespace`, port `port`, in the clusters `reach`
    /// allows, each labelled with its cluster's Istio cluster ID.
    ///
    /// With [`Reach::Mesh`], every cluster that has a Service of the same name in the
    /// same namespace contributes its endpoints (Istio multicluster "namespace
    /// sameness"; the seed's cross-cluster load balancing).
    pub fn endpoints(&self, name: &str, namespace: &str, port: u16, reach: Reach) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for svc in &self.services {
            if svc.name != name || svc.namespace != namespace {
                continue;
            }
            if let Reach::Local(c) = reach
                && svc.cluster != c
            {
                continue;
            }
            let Some(svc_port) = svc.ports.iter().find(|p| p.port == port) else {
                continue;
            };
            if svc.selector.is_empty() {
                continue;
            }
            for (i, pod) in self.pods.iter().enumerate() {
                if pod.cluster != svc.cluster
                    || pod.namespace != svc.namespace
                    || !pod.ready
                    || !svc
                        .selector
                        .iter()
                        .all(|(k, v)| pod.labels.get(k) == Some(v))
                {
                    continue;
                }
                let Some(target) = resolve_target(svc_port, pod) else {
                    continue;
                };
                let mut labels = pod.labels.clone();
                labels.insert(
                    CLUSTER_LABEL.into(),
                    self.clusters[pod.cluster].istio_cluster_id.clone(),
                );
                out.push(Endpoint {
                    pod: i,
                    port: target,
                    labels,
                });
            }
        }
        out
    }

    /// True when the Service is marked global for ambient multicluster.
    pub fn service_is_global(&self, cluster: usize, name: &str, namespace: &str) -> bool {
        self.services.iter().any(|s| {
            s.cluster == cluster
                && s.name == name
                && s.namespace == namespace
                && (s.labels.get(AMBIENT_GLOBAL).map(String::as_str) == Some("true")
                    || s.labels.get("istio.io/global-service").map(String::as_str) == Some("true"))
        })
    }

    /// The effective PeerAuthentication mode for a pod's container port, and where it
    /// came from. Istio's precedence (PeerAuthentication reference): workload-selector
    /// policy over namespace policy over mesh-wide (root namespace) policy; `UNSET`
    /// inherits; `portLevelMtls` (workload policies only) overrides per container port.
    pub fn effective_mtls(&self, pod: usize, port: u16) -> (MtlsMode, String) {
        let p = &self.pods[pod];
        let cluster = &self.clusters[p.cluster];
        let mut mode = cluster.mtls;
        let mut why = format!("scenario namespace-wide mode {}", mtls_name(mode));
        let pas: Vec<&PeerAuthentication> = cluster.manifests.peer_authentications().collect();
        let ns_of = |pa: &PeerAuthentication| {
            pa.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| p.namespace.clone())
        };
        let named = |pa: &PeerAuthentication| {
            format!(
                "PeerAuthentication/{}",
                pa.metadata.name.clone().unwrap_or_default()
            )
        };
        // Mesh-wide, then namespace-wide, then workload: later levels override.
        for level in 0..3 {
            for pa in &pas {
                let ns = ns_of(pa);
                let applies = match (&pa.spec.selector, level) {
                    (None, 0) => ns == ROOT_NAMESPACE,
                    (None, 1) => ns == p.namespace,
                    (Some(sel), 2) => {
                        ns == p.namespace
                            && !sel.match_labels.is_empty()
                            && sel
                                .match_labels
                                .iter()
                                .all(|(k, v)| p.labels.get(k) == Some(v))
                    }
                    _ => false,
                };
                if !applies {
                    continue;
                }
                if let Some(m) = pa.spec.mtls.as_ref().and_then(|m| parse_mtls(&m.mode)) {
                    mode = m;
                    why = format!("{} mode {}", named(pa), mtls_name(m));
                }
                if level == 2
                    && let Some(m) = pa
                        .spec
                        .port_level_mtls
                        .get(&port.to_string())
                        .and_then(|m| parse_mtls(&m.mode))
                {
                    mode = m;
                    why = format!("{} portLevelMtls {port}: {}", named(pa), mtls_name(m));
                }
            }
        }
        (mode, why)
    }
}

/// STRICT, PERMISSIVE, DISABLE.
pub fn mtls_name(mode: MtlsMode) -> &'static str {
    match mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
        MtlsMode::Disable => "DISABLE",
    }
}

fn parse_mtls(mode: &str) -> Option<MtlsMode> {
    match mode.to_ascii_uppercase().as_str() {
        "STRICT" => Some(MtlsMode::Strict),
        "PERMISSIVE" => Some(MtlsMode::Permissive),
        "DISABLE" => Some(MtlsMode::Disable),
        _ => None, // UNSET or empty: inherit.
    }
}

fn resolve_target(port: &ServicePortModel, pod: &PodModel) -> Option<u16> {
    match &port.target {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(name)) => pod
            .ports
            .iter()
            .find(|(_, n)| n.as_deref() == Some(name.as_str()))
            .map(|(p, _)| *p)
            .or_else(|| name.parse().ok()),
    }
}

fn workload_namespace<'a>(set: &'a ManifestSet, workload: &WorkloadRef) -> Option<&'a str> {
    set.items.iter().find_map(|m| {
        let meta = match &m.resource {
            crate::manifests::Resource::Deployment(d) => &d.metadata,
            crate::manifests::Resource::DaemonSet(d) => &d.metadata,
            crate::manifests::Resource::StatefulSet(d) => &d.metadata,
            crate::manifests::Resource::Job(d) => &d.metadata,
            crate::manifests::Resource::CronJob(d) => &d.metadata,
            _ => return None,
        };
        (m.resource.kind() == workload.kind && meta.name.as_deref() == Some(workload.name.as_str()))
            .then_some(meta.namespace.as_deref())
            .flatten()
    })
}

/// Parses a comma-separated port list (`"8443, 9443"`); entries that are not ports are
/// ignored, as istio-iptables ignores them.
pub fn port_list(value: Option<&String>) -> BTreeSet<u16> {
    value
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn container_model(c: &Container, init: bool) -> ContainerModel {
    let mut env = BTreeMap::new();
    let mut env_from_annotation = BTreeMap::new();
    for e in c.env.iter().flatten() {
        if let Some(v) = &e.value {
            env.insert(e.name.clone(), v.clone());
        } else if let Some(path) = e
            .value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.clone())
        {
            // metadata.annotations['ambient.istio.io/redirection']
            if let Some(key) = path
                .strip_prefix("metadata.annotations['")
                .and_then(|s| s.strip_suffix("']"))
            {
                env_from_annotation.insert(e.name.clone(), key.to_string());
            }
        }
    }
    let command_line = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    ContainerModel {
        name: c.name.clone(),
        init,
        command_line,
        env,
        env_from_annotation,
    }
}

fn pod_from_template(
    cluster_index: usize,
    cluster: &ClusterModel,
    workload: WorkloadRef,
    namespace: &str,
    template: &PodTemplateSpec,
) -> PodModel {
    let meta = template.metadata.clone().unwrap_or_default();
    let labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    let dataplane = match cluster.mode {
        IstioMode::None => Dataplane::Direct,
        IstioMode::Sidecar => {
            // Injection opt-out: label or annotation sidecar.istio.io/inject: "false"
            // (Istio sidecar injection docs, "Controlling the injection policy").
            let opted_out = labels.get(INJECT).map(String::as_str) == Some("false")
                || annotations.get(INJECT).map(String::as_str) == Some("false");
            if opted_out {
                Dataplane::Direct
            } else {
                Dataplane::Sidecar {
                    kind: cluster.sidecar,
                    exclude_inbound: port_list(annotations.get(EXCLUDE_INBOUND)),
                    exclude_outbound: port_list(annotations.get(EXCLUDE_OUTBOUND)),
                }
            }
        }
        IstioMode::Ambient => {
            // Enrolled unless istio.io/dataplane-mode: none (Istio ambient docs);
            // the CNI then annotates the pod (ambient architecture, "Istio CNI").
            if labels.get(DATAPLANE_MODE).map(String::as_str) == Some("none") {
                Dataplane::Direct
            } else {
                annotations.insert(AMBIENT_REDIRECTION.into(), "enabled".into());
                Dataplane::Ambient
            }
        }
    };
    let mut ports = BTreeMap::new();
    let mut containers = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        containers.push(container_model(c, true));
    }
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            if let Ok(n) = u16::try_from(p.container_port) {
                ports.insert(n, p.name.clone());
            }
        }
        containers.push(container_model(c, false));
    }
    PodModel {
        cluster: cluster_index,
        workload,
        namespace: namespace.to_string(),
        labels,
        annotations,
        service_account: spec
            .service_account_name
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        dataplane,
        ports,
        containers,
        ready: true,
    }
}

/// Splits a Service host into (name, namespace): `svc.ns.svc.cluster.local`,
/// `svc.ns.svc`, `svc.ns`, or a short `svc` resolved in `client_namespace`
/// (Kubernetes DNS search path).
pub fn split_host(host: &str, client_namespace: &str) -> (String, String) {
    let trimmed = host
        .trim_end_matches('.')
        .trim_end_matches(".cluster.local")
        .trim_end_matches(".svc");
    match trimmed.split_once('.') {
        Some((svc, ns)) => (svc.to_string(), ns.to_string()),
        None => (trimmed.to_string(), client_namespace.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_service_and_namespace() {
        assert_eq!(
            split_host("agg.cza.svc.cluster.local", "x"),
            ("agg".into(), "cza".into())
        );
        assert_eq!(split_host("agg.cza.svc", "x"), ("agg".into(), "cza".into()));
        assert_eq!(split_host("agg", "x"), ("agg".into(), "x".into()));
    }

    use crate::checks::CheckId;
    use crate::manifests::Resource;
    use serde_json::json;

    fn cluster(mode: &str, mtls: &str) -> Cluster {
        let mut yaml = format!(
            "name: m\ndescription: d\ncertificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: {mode}\n      mtls: {mtls}\nexpect:\n"
        );
        for id in CheckId::ALL {
            yaml.push_str(&format!("  {id}: pass\n"));
        }
        let s = crate::scenario::load_str(std::path::Path::new("m.yaml"), &yaml).unwrap();
        s.clusters[0].clone()
    }

    fn deployment(
        name: &str,
        labels: serde_json::Value,
        annotations: serde_json::Value,
    ) -> Resource {
        Resource::Deployment(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "cza"},
                "spec": {"selector": {}, "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8443}]}]}
                }}
            }))
            .unwrap(),
        )
    }

    fn pa(name: &str, spec: serde_json::Value) -> Resource {
        Resource::PeerAuthentication(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "cza"}, "spec": spec}),
            )
            .unwrap(),
        )
    }

    fn mesh(mode: &str, mtls: &str, resources: Vec<Resource>) -> MeshModel {
        let mut set = ManifestSet::default();
        let mut senders = Vec::new();
        for r in resources {
            if let Resource::Deployment(d) = &r {
                senders.push(WorkloadRef {
                    kind: "Deployment".into(),
                    name: d.metadata.name.clone().unwrap_or_default(),
                });
            }
            set.push("test", r);
        }
        let spec = cluster(mode, mtls);
        let mut model = MeshModel::default();
        model.add_cluster(
            ClusterModel {
                name: "alpha".into(),
                istio_cluster_id: "alpha".into(),
                mode: spec.istio.mode,
                mtls: spec.istio.mtls,
                sidecar: spec.istio.sidecar,
                manifests: set,
                roles: Roles {
                    senders,
                    ..Roles::default()
                },
                refusal: None,
                spec,
            },
            "cza",
        );
        model
    }

    #[test]
    fn workload_and_port_level_policies_override_the_namespace_mode() {
        let m = mesh(
            "sidecar",
            "strict",
            vec![
                deployment("web", json!({"app": "web"}), json!({})),
                deployment("other", json!({"app": "other"}), json!({})),
                pa("ns", json!({"mtls": {"mode": "PERMISSIVE"}})),
                pa(
                    "web",
                    json!({"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"},
                           "portLevelMtls": {"8443": {"mode": "DISABLE"}}}),
                ),
            ],
        );
        assert_eq!(m.effective_mtls(0, 8443).0, MtlsMode::Disable);
        assert_eq!(m.effective_mtls(0, 80).0, MtlsMode::Strict);
        let (mode, why) = m.effective_mtls(1, 8443);
        assert_eq!(mode, MtlsMode::Permissive);
        assert!(why.contains("PeerAuthentication/ns"), "{why}");
    }

    #[test]
    fn injection_honours_opt_outs_and_ambient_pods_get_the_cni_annotation() {
        let m = mesh(
            "sidecar",
            "strict",
            vec![
                deployment("in", json!({}), json!({EXCLUDE_INBOUND: "8443"})),
                deployment("out", json!({INJECT: "false"}), json!({})),
            ],
        );
        assert!(
            matches!(&m.pods[0].dataplane, Dataplane::Sidecar { exclude_inbound, .. } if exclude_inbound.contains(&8443))
        );
        assert_eq!(m.pods[1].dataplane, Dataplane::Direct);
        let m = mesh(
            "ambient",
            "strict",
            vec![
                deployment("in", json!({}), json!({})),
                deployment("out", json!({DATAPLANE_MODE: "none"}), json!({})),
            ],
        );
        assert_eq!(m.pods[0].dataplane, Dataplane::Ambient);
        assert_eq!(
            m.pods[0]
                .annotations
                .get(AMBIENT_REDIRECTION)
                .map(String::as_str),
            Some("enabled")
        );
        assert_eq!(m.pods[1].dataplane, Dataplane::Direct);
        assert!(!m.pods[1].annotations.contains_key(AMBIENT_REDIRECTION));
    }

    #[test]
    fn port_lists_ignore_garbage() {
        let v = "8443, x,9443".to_string();
        assert_eq!(port_list(Some(&v)), BTreeSet::from([8443, 9443]));
        assert!(port_list(None).is_empty());
    }
}
