//! The catalogue of checks: stable IDs, one-line claims and where each rule comes from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a check reads manifests or asks a provider to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Reads the rendered manifests only.
    Static,
    /// Needs a running mesh (the twin, kind, or an existing cluster).
    Runtime,
}

/// How much a failed expectation on this check matters to the release gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A mismatch fails the run (exit 1, a JUnit failure).
    Required,
    /// A mismatch is reported as a warning; the scenario may raise it to required.
    Recommended,
}

macro_rules! checks {
    ($( $variant:ident = $id:literal, $kind:ident, $severity:ident, $claim:literal, $source:literal; )*) => {
        /// A check's stable identifier, as written in scenario files and reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CheckId { $( #[doc = $claim] $variant, )* }

        impl CheckId {
            /// Every check, in report order.
            pub const ALL: &'static [CheckId] = &[ $( CheckId::$variant, )* ];

            /// The stable ID (`MTLS-INBOUND`).
            pub fn as_str(self) -> &'static str { match self { $( CheckId::$variant => $id, )* } }

            /// The one-line claim the check holds a subject to.
            pub fn claim(self) -> &'static str { match self { $( CheckId::$variant => $claim, )* } }

            /// The seed section or Istio source the rule comes from.
            pub fn source(self) -> &'static str { match self { $( CheckId::$variant => $source, )* } }

            /// Static or runtime.
            pub fn kind(self) -> CheckKind { match self { $( CheckId::$variant => CheckKind::$kind, )* } }

            /// The default severity; a scenario may override it.
            pub fn default_severity(self) -> Severity { match self { $( CheckId::$variant => Severity::$severity, )* } }
        }
    };
}

checks! {
    MtlsInbound = "MTLS-INBOUND", Static, Required,
        "With Istio on and no cert-manager, the webhook pod template excludes the webhook container port from inbound interception.",
        "seed: Strict mTLS > Solutions > Port Exclusion Annotations";
    MtlsOutbound = "MTLS-OUTBOUND", Static, Required,
        "With Istio on, every backfill pod template (CronJob and Job) excludes the webhook Service port from outbound interception.",
        "seed: Strict mTLS > Solutions > Port Exclusion Annotations (backfill job)";
    CertChain = "CERT-CHAIN", Static, Required,
        "init-cert: the served certificate chains to the webhook caBundle and names the Service DNS name; cert-manager: a Certificate for that name and CA injection; never both.",
        "seed: How the Webhook Server Works; cert-manager Integration";
    FencePresent = "FENCE-PRESENT", Static, Required,
        "With Istio on, a DestinationRule and a VirtualService exist for the aggregator's fully qualified host.",
        "seed: Cross-Cluster Load Balancing > Preventing Cross-Cluster Requests";
    FenceSubset = "FENCE-SUBSET", Static, Required,
        "The DestinationRule has subset `local-cluster` selecting `topology.istio.io/cluster: <effective cluster ID>`.",
        "seed: Preventing Cross-Cluster Requests; Istio resource label reference (topology.istio.io/cluster)";
    FenceRoute = "FENCE-ROUTE", Static, Required,
        "The VirtualService routes 100% of aggregator traffic to subset `local-cluster`.",
        "seed: Preventing Cross-Cluster Requests";
    ClusterId = "CLUSTER-ID", Static, Required,
        "The fencing uses effective = integrations.istio.clusterID || clusterName.",
        "seed: Preventing Cross-Cluster Requests (effective cluster ID)";
    AmbientExplicit = "AMBIENT-EXPLICIT", Static, Required,
        "In ambient mode the subject refuses to install without an explicit integrations.istio.clusterID; it never falls back to clusterName.",
        "seed: The Ambient Mode Wrinkle";
    Detect = "DETECT", Static, Required,
        "integrations.istio.enabled: null follows the Istio CRDs, true forces on, false renders no Istio annotation or resource at all.",
        "seed: Settings (integrations.istio.enabled)";
    AmbientStrictPermissive = "AMBIENT-STRICT-PERMISSIVE", Static, Recommended,
        "In ambient mode under STRICT, a port-level PERMISSIVE PeerAuthentication opens the webhook port to the API server.",
        "istio/istio#52874; Istio PeerAuthentication reference (portLevelMtls)";
    CertManagerStrict = "CERT-MANAGER-STRICT", Static, Recommended,
        "In cert-manager mode under STRICT sidecars, the webhook port is still excluded or PERMISSIVE: the API server cannot speak Istio mTLS.",
        "istio/istio#39290; knative/net-istio#150";
    SidecarJobExit = "SIDECAR-JOB-EXIT", Static, Recommended,
        "Backfill Jobs under classic sidecars tell the proxy to quit, or opt out of injection, so they can complete.",
        "Istio FAQ (Jobs and sidecars); Kubernetes native sidecars (Istio 1.27+)";
    ValidatorInitOrder = "VALIDATOR-INIT-ORDER", Static, Recommended,
        "A validator in an init container is paired with native sidecars; a classic sidecar starts after init containers.",
        "Istio native sidecar docs; Kubernetes init container ordering";
    WebhookReach = "WEBHOOK-REACH", Runtime, Required,
        "An admission request from the API server completes a TLS handshake verified against the caBundle and the webhook records the object.",
        "seed: How Strict mTLS Conflicts with the Webhook (steps 1-5)";
    BackfillReach = "BACKFILL-REACH", Runtime, Required,
        "The backfill job reaches the webhook.",
        "seed: Port Exclusion Annotations (backfill); Istio FAQ auto mTLS and excludeInboundPorts";
    Attribution = "ATTRIBUTION", Runtime, Required,
        "Every sample sent in cluster X lands at cluster X's aggregator: none misattributed, none lost.",
        "seed: Cross-Cluster Load Balancing";
    Validator = "VALIDATOR", Runtime, Required,
        "The validator reports a wrong cluster ID in sidecar mode and a missing clusterID in ambient mode, and passes a correct setup.",
        "seed: The Ambient Mode Wrinkle; Finding Your Istio Cluster ID";
    JobCompletion = "JOB-COMPLETION", Runtime, Recommended,
        "The backfill Job's pod completes.",
        "Istio FAQ (Jobs and sidecars); Kubernetes sidecar containers (native sidecars)";
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCheck(pub String);

impl fmt::Display for UnknownCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<_> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
        write!(
            f,
            "unknown check `{}`; known checks: {}",
            self.0,
            known.join(", ")
        )
    }
}

impl FromStr for CheckId {
    type Err = UnknownCheck;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckId::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCheck(s.to_string()))
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for id in CheckId::ALL {
            assert_eq!(id.as_str().parse::<CheckId>(), Ok(*id));
            assert!(seen.insert(id.as_str()), "duplicate id {id}");
            assert!(!id.claim().is_empty() && !id.source().is_empty());
        }
        assert!("NOPE".parse::<CheckId>().is_err());
    }
}
