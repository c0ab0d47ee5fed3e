//! The provider trait: where a scenario runs (the twin, kind, existing clusters).
//!
//! Runtime checks talk only to [`RunningMesh`]; they never know which provider is
//! behind it. A provider brings a scenario's clusters up with the rendered subject
//! installed, answers probes with observations, and tears everything down.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Error;
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// Where scenarios run.
pub trait Provider: Send + Sync {
    /// `twin`, `kind`, `existing`.
    fn name(&self) -> &'static str;

    /// Brings up the scenario's clusters with the subject installed.
    ///
    /// On error nothing is left behind: whatever was created is removed first.
    fn up(&self, scenario: &Scenario, rendered: &Rendered) -> Result<Box<dyn RunningMesh>, Error>;

    /// Ends the run: removes what the provider kept between scenarios (clusters kept
    /// for reuse), or with `--keep` leaves it. Returns one line per thing removed or
    /// kept. Providers that keep nothing between scenarios have nothing to do.
    fn finish(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
}

/// A mesh that is up, with the subject installed, ready to be probed.
///
/// Probe methods return `Err` only when the probe itself could not be carried out
/// (a role is missing, the provider lost its cluster); what the probe *saw*, failures
/// included, is in the observation.
pub trait RunningMesh: Send {
    /// The API server of `cluster` submits one object for admission to the webhook.
    fn admit(&mut self, cluster: &str) -> Result<AdmissionObservation, ProbeError>;

    /// The backfill client of `cluster` calls the webhook.
    fn backfill(&mut self, cluster: &str) -> Result<CallObservation, ProbeError>;

    /// Every sender in every cluster pushes `samples_per_sender` samples to its
    /// aggregator Service; the provider reports where each landed.
    fn attribution(
        &mut self,
        samples_per_sender: u32,
    ) -> Result<AttributionObservation, ProbeError>;

    /// Runs the validator of `cluster` and reports its verdict.
    fn validator(&mut self, cluster: &str) -> Result<ValidatorObservation, ProbeError>;

    /// Runs the backfill Job of `cluster` and reports whether its pod completes.
    fn job_completion(&mut self, cluster: &str) -> Result<JobObservation, ProbeError>;

    /// Collects diagnostics (logs, events, proxy configuration) after a check went
    /// wrong, and returns the folder they are in so reports can link it. `None` when
    /// the provider has nothing to collect (the twin keeps its evidence in outcomes).
    fn collect_artifacts(&mut self, reason: &str) -> Option<std::path::PathBuf> {
        let _ = reason;
        None
    }

    /// Tears everything down. Also done on drop, best effort.
    fn down(self: Box<Self>) -> Result<(), Error>;
}

/// A probe that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// A certificate as a person reads it in evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS and URI SANs (`spiffe://...` for Istio workload certs).
    pub sans: Vec<String>,
    /// End of validity (RFC 3339).
    pub not_after: String,
}

/// How a TLS handshake went, seen from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Handshake {
    /// The peer's chain verified.
    Verified {
        /// What the peer presented.
        presented: CertSummary,
        /// Who presented it (`webhook container`, `sidecar of Deployment/x`).
        presented_by: String,
    },
    /// The handshake failed.
    Failed {
        /// What the peer presented, if it got that far.
        presented: Option<CertSummary>,
        /// Who was on the other end.
        presented_by: String,
        /// Why it failed (the TLS library's own words).
        error: String,
    },
    /// No TCP connection, or it was closed before the handshake.
    NoConnection {
        /// What happened.
        error: String,
    },
}

impl Handshake {
    /// True when the chain verified.
    pub fn verified(&self) -> bool {
        matches!(self, Handshake::Verified { .. })
    }
}

/// One hop of a connection: who forwarded it where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The component (`kube-apiserver@alpha`, `sidecar inbound of Deployment/cz-webhook@alpha`).
    pub component: String,
    /// What it did (`intercepted port 8443 (not excluded)`, `routed to subset local-cluster`).
    pub action: String,
}

/// What happened when a client called the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallObservation {
    /// The hops the connection took.
    pub hops: Vec<Hop>,
    /// The client's view of the TLS handshake with the webhook.
    pub handshake: Handshake,
    /// HTTP status, when a response came back.
    pub http_status: Option<u16>,
    /// Whether the webhook recorded the request's object.
    pub recorded: bool,
    /// Time from connect to response or failure.
    pub elapsed_ms: u64,
}

/// What happened when the API server sent an admission request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdmissionObservation {
    /// The name of the object submitted (unique per probe).
    pub object: String,
    /// The call itself.
    pub call: CallObservation,
    /// `Ignore` or `Fail`, from the webhook configuration.
    pub failure_policy: String,
    /// The webhook configuration's timeout.
    pub timeout_ms: u64,
    /// Whether the call timed out.
    pub timed_out: bool,
    /// Whether the API server admitted the object (after failurePolicy).
    pub admitted: bool,
}

/// Where one cluster's samples went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ClusterAttribution {
    /// The sending cluster.
    pub cluster: String,
    /// Samples sent from this cluster.
    pub sent: u64,
    /// Samples that landed at this cluster's own aggregator.
    pub delivered: u64,
    /// Samples that landed at another cluster's aggregator, by that cluster.
    pub misattributed: BTreeMap<String, u64>,
    /// Samples that landed nowhere.
    pub lost: u64,
    /// Why samples were lost (`503 no healthy upstream from sidecar`, `connection refused`).
    pub lost_reasons: BTreeMap<String, u64>,
}

/// One observed flow, for the traffic picture in reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Sending cluster.
    pub from_cluster: String,
    /// Sending workload (`metrics agent`, `webhook server`).
    pub sender: String,
    /// The cluster whose aggregator received the samples; `None` when lost.
    pub to_cluster: Option<String>,
    /// How many samples.
    pub samples: u64,
}

/// Where every cluster's samples went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct AttributionObservation {
    /// Per sending cluster.
    pub clusters: Vec<ClusterAttribution>,
    /// Every flow observed.
    pub flows: Vec<Flow>,
}

/// The validator's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "message", rename_all = "kebab-case")]
pub enum ValidatorVerdict {
    /// It found the configuration correct.
    Ok,
    /// It reported a misconfiguration.
    Reported(String),
    /// It could not check (e.g. the admin port was unreachable).
    Errored(String),
}

/// What the validator did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorObservation {
    /// Whether a validator exists and ran.
    pub ran: bool,
    /// Its verdict.
    pub verdict: ValidatorVerdict,
    /// What it logged, line by line.
    pub log: Vec<String>,
}

/// Whether a Job's pod completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobObservation {
    /// The Job.
    pub job: String,
    /// True when the pod reached Succeeded.
    pub completed: bool,
    /// Container states at the end, one line each.
    pub containers: Vec<String>,
}
