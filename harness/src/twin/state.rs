//! The running mesh's shared state: the model, each pod's sockets and identity, the
//! apps behind each container port, and what the apps recorded.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::journal::Journal;
use super::model::MeshModel;
use crate::certs::WorkloadCert;
use crate::provider::CertSummary;

/// The webhook container.
pub struct WebhookApp {
    /// Its serving config from the Secret, or why it cannot serve.
    pub tls: Result<Arc<ServerConfig>, String>,
    /// What it presents (the leaf of `tls.crt`).
    pub presented: Option<CertSummary>,
    /// The slow-webhook fault's delay before answering.
    pub delay: Duration,
}

/// What runs behind a container port.
pub enum App {
    /// The webhook server (TLS, `/validate`, `/healthz`).
    Webhook(WebhookApp),
    /// The aggregator (`/collector`, remote_write); stamps its own cluster.
    Aggregator,
}

/// A sample as an aggregator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The cluster whose aggregator received it (stamped by the aggregator).
    pub at_cluster: String,
    /// The marker labels: origin cluster, sender, sequence.
    pub origin: String,
    /// Sender label.
    pub sender: String,
    /// Sequence number.
    pub seq: String,
}

/// The Envoy admin listener of a sidecar pod.
pub struct Admin {
    /// Its loopback address (the pod's `localhost:15000`).
    pub addr: SocketAddr,
    /// The serving task while the proxy runs.
    pub task: Option<JoinHandle<()>>,
}

/// A pod's runtime parts.
pub struct PodRuntime {
    /// Pod address per container port.
    pub addrs: BTreeMap<u16, SocketAddr>,
    /// Mesh identity (sidecar or ambient pods).
    pub identity: Option<WorkloadCert>,
    /// Inbound mTLS config (sidecar or ztunnel inbound).
    pub inbound_tls: Option<Arc<ServerConfig>>,
    /// Load-balancing choices of this pod's proxy (seeded).
    pub rng: Mutex<fastrand::Rng>,
    /// Envoy admin (sidecar pods only).
    pub admin: Mutex<Option<Admin>>,
}

impl PodRuntime {
    /// The address of the Envoy admin listener while the proxy runs; `None` for a
    /// pod without a sidecar or whose proxy has exited (a poisoned lock reads as
    /// "not running", since no listener state can be trusted then).
    pub fn running_admin(&self) -> Option<SocketAddr> {
        self.admin
            .lock()
            .ok()
            .and_then(|a| a.as_ref().filter(|a| a.task.is_some()).map(|a| a.addr))
    }
}

/// Everything the mesh's tasks share.
pub struct Shared {
    /// The model.
    pub model: MeshModel,
    /// The mesh root certificate (every proxy's trust anchor).
    pub mesh_root: CertificateDer<'static>,
    /// Per pod, parallel to `model.pods`.
    pub pods: Vec<PodRuntime>,
    /// The app behind (pod, container port).
    pub apps: HashMap<(usize, u16), App>,
    /// Hops written by server-side components.
    pub journal: Journal,
    /// Objects the webhooks recorded: (cluster, object name).
    pub webhook_records: Mutex<Vec<(String, String)>>,
    /// Samples the aggregators received.
    pub received: Mutex<Vec<Received>>,
    /// Flips to true when the mesh shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// `Kind/name@cluster` of a pod.
    pub fn pod_label(&self, pod: usize) -> String {
        self.model.pods[pod].label(&self.model)
    }

    /// True when any webhook recorded `object`.
    pub fn recorded(&self, object: &str) -> Option<String> {
        self.webhook_records
            .lock()
            .ok()?
            .iter()
            .find(|(_, o)| o == object)
            .map(|(c, _)| c.clone())
    }
}
