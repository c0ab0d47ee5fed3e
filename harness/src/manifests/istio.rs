//! Small serde types for the Istio and cert-manager kinds the rules read.
//!
//! Fields the rules do not read are kept in `extra`, so a manifest survives a
//! parse/serialize round trip unchanged.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields a type does not model, kept as they were.
pub type Extra = BTreeMap<String, Value>;

/// `networking.istio.io/v1` DestinationRule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DestinationRule {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: DestinationRuleSpec,
}

/// DestinationRule spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service host the rule applies to.
    #[serde(default)]
    pub host: String,
    /// Named subsets of the host's endpoints, selected by workload labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A DestinationRule subset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Subset {
    /// Subset name, referenced by VirtualService routes.
    #[serde(default)]
    pub name: String,
    /// Labels an endpoint must carry (Istio applies `topology.istio.io/cluster`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `networking.istio.io/v1` VirtualService.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VirtualService {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: VirtualServiceSpec,
}

/// VirtualService spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// HTTP routes, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Everything else (tcp, tls, gateways, exportTo).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One HTTP route of a VirtualService.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HttpRoute {
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Everything else (match, retries, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A weighted destination.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouteDestination {
    /// Where traffic goes.
    #[serde(default)]
    pub destination: Destination,
    /// Percentage of traffic; Istio treats a lone destination without weight as 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A route destination.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Destination {
    /// Destination host.
    #[serde(default)]
    pub host: String,
    /// DestinationRule subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Everything else (port).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `security.istio.io/v1` PeerAuthentication.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PeerAuthentication {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: PeerAuthenticationSpec,
}

/// PeerAuthentication spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    /// Which workloads; none means the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Workload-wide mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per-port modes, keyed by the workload (container) port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, MutualTls>,
}

/// A workload selector.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels the pod must carry.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// An mTLS mode setting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MutualTls {
    /// UNSET, DISABLE, PERMISSIVE or STRICT.
    #[serde(default)]
    pub mode: String,
}

/// `cert-manager.io/v1` Certificate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Certificate {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: CertificateSpec,
}

/// Certificate spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// DNS SANs.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// The Secret cert-manager writes.
    #[serde(default)]
    pub secret_name: String,
    /// Everything else (issuerRef, duration, ...).
    #[serde(flatten)]
    pub extra: Extra,
}
