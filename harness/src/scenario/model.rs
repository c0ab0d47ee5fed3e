//! The scenario as written in `scenarios/*.yaml`.
//!
//! Unknown fields are rejected everywhere (`deny_unknown_fields`): a typo in a
//! scenario must never silently turn into a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::checks::{CheckId, Severity, Status};

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioFile {
    /// DNS-1123 label; becomes part of cluster and resource names.
    pub name: Spanned<String>,
    /// One or two sentences: what this scenario shows.
    pub description: String,
    /// A negative control: a broken setup whose failures must be observed.
    #[serde(default)]
    pub negative_control: bool,
    /// How the webhook gets its serving certificate.
    pub certificates: CertificateMode,
    /// Helm values shared by every cluster (per-cluster values are merged on top).
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// The clusters of the topology. Clusters with Istio form one multi-primary mesh.
    pub clusters: Spanned<Vec<ClusterSpec>>,
    /// Where the harness should look for roles when discovery would guess wrong.
    #[serde(default)]
    pub roles: Option<Spanned<RoleOverrides>>,
    /// Faults injected into the running mesh (runtime checks only).
    #[serde(default)]
    pub faults: Option<Spanned<Vec<Fault>>>,
    /// Seed for every random choice (load balancing); same seed, same outcomes.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Severity overrides per check (`ATTRIBUTION: required`).
    #[serde(default)]
    pub severity: Option<Spanned<BTreeMap<String, Severity>>>,
    /// The expected status of every check. Every check must be listed.
    pub expect: Spanned<BTreeMap<String, Status>>,
}

/// How the webhook's serving certificate is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateMode {
    /// The chart's init-cert job makes a CA and a serving cert and patches the caBundle.
    InitCert,
    /// cert-manager issues the cert and injects the CA (`useCertManager: true`).
    CertManager,
}

/// One cluster of the topology.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// DNS-1123 label, unique in the scenario.
    pub name: Spanned<String>,
    /// How Istio runs in this cluster.
    #[serde(default)]
    pub istio: IstioSpec,
    /// Helm values for the agent in this cluster (merged over the scenario's values).
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// Istio in one cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioSpec {
    /// none, sidecar or ambient.
    #[serde(default)]
    pub mode: IstioMode,
    /// istiod's CLUSTER_ID: the truth Istio stamps on this cluster's workloads.
    /// Defaults to the cluster's name.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Mesh-wide PeerAuthentication mode in the agent's namespace.
    #[serde(default)]
    pub mtls: MtlsMode,
    /// Native (Kubernetes sidecar containers) or classic sidecars.
    #[serde(default)]
    pub sidecar: SidecarKind,
    /// The Istio network (multi-network meshes use east-west gateways).
    #[serde(default)]
    pub network: Option<String>,
}

impl Default for IstioSpec {
    fn default() -> Self {
        Self {
            mode: IstioMode::None,
            cluster_id: None,
            mtls: MtlsMode::Permissive,
            sidecar: SidecarKind::Native,
            network: None,
        }
    }
}

/// The Istio data plane mode of a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IstioMode {
    /// No Istio: no CRDs, no proxies.
    #[default]
    None,
    /// Envoy sidecars injected into the agent's namespace.
    Sidecar,
    /// ztunnel on each node; pods enrolled with `istio.io/dataplane-mode=ambient`.
    Ambient,
}

/// PeerAuthentication mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    /// Istio's default: mTLS and plain traffic both accepted.
    #[default]
    Permissive,
    /// Only Istio mTLS accepted.
    Strict,
    /// mTLS off.
    Disable,
}

/// Sidecar container kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SidecarKind {
    /// An init container with restartPolicy Always (Istio 1.27+ on Kubernetes 1.29+).
    #[default]
    Native,
    /// A regular container: starts after init containers, keeps Jobs alive.
    Classic,
}

/// Role discovery overrides (DESIGN.md section 4).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleOverrides {
    /// Name of the ValidatingWebhookConfiguration to follow.
    #[serde(default)]
    pub webhook_configuration: Option<String>,
    /// Name of the aggregator Service.
    #[serde(default)]
    pub aggregator_service: Option<String>,
    /// `Kind/name` of each backfill workload (CronJob or Job).
    #[serde(default)]
    pub backfill: Option<Vec<String>>,
    /// Name of the validator container (init or regular).
    #[serde(default)]
    pub validator_container: Option<String>,
}

/// A fault injected into a running mesh, to see the outcome people would want reported.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// The aggregator of `cluster` is not running.
    #[serde(rename = "aggregator-down")]
    AggregatorDown {
        /// The cluster whose aggregator is down.
        cluster: String,
    },
    /// The webhook answers after `delay_ms`.
    #[serde(rename = "slow-webhook", rename_all = "camelCase")]
    SlowWebhook {
        /// The cluster whose webhook is slow.
        cluster: String,
        /// How long the webhook waits before answering.
        delay_ms: u64,
    },
    /// The webhook's certificate was rotated to a new CA; the caBundle was not.
    #[serde(rename = "rotated-ca-bundle")]
    RotatedCaBundle {
        /// The cluster whose webhook certificate was rotated.
        cluster: String,
    },
    /// The webhook serves a certificate whose validity has ended.
    #[serde(rename = "expired-webhook-cert")]
    ExpiredWebhookCert {
        /// The cluster whose webhook certificate expired.
        cluster: String,
    },
}

impl Fault {
    /// The cluster the fault is injected into.
    pub fn cluster(&self) -> &str {
        match self {
            Fault::AggregatorDown { cluster }
            | Fault::SlowWebhook { cluster, .. }
            | Fault::RotatedCaBundle { cluster }
            | Fault::ExpiredWebhookCert { cluster } => cluster,
        }
    }
}

/// Parses the scenario's check IDs; used by validation.
pub(crate) fn parse_check(id: &str) -> Option<CheckId> {
    id.parse().ok()
}
