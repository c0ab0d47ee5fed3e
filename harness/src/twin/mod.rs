//! The twin: an in-process Istio mesh on loopback (DESIGN.md section 6).
//!
//! Real TCP sockets on ephemeral 127.0.0.1 ports, real TLS (rustls with ring,
//! certificates from rcgen), real HTTP (hyper). Everything is materialised from the
//! INSTALLED MANIFESTS and the scenario's topology, Istio facts and faults; the
//! scenario's expectations are never read. Each mesh owns one current-thread tokio
//! runtime: its tasks run only while a probe runs, and dropping the runtime closes
//! every listener, so many meshes can live side by side in one process.
//!
//! - [`model`]: pods (injection), Services, endpoints, PeerAuthentication.
//! - [`dataplane`]: iptables redirection, sidecar inbound/outbound, ztunnel, kube-proxy.
//! - [`routing`]: VirtualService and DestinationRule subsets.
//! - [`apps`]: the webhook, the aggregator, Envoy's admin endpoint.
//! - [`probes`]: the API server, the backfill, the senders, the validator, the Job.

pub mod apps;
pub mod dataplane;
pub mod hello;
pub mod journal;
pub mod model;
pub mod probes;
pub mod remote_write;
pub mod routing;
pub mod state;
pub mod stream;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::certs::{self, MeshPki};
use crate::error::Error;
use crate::provider::{
    AdmissionObservation, AttributionObservation, CallObservation, JobObservation, ProbeError,
    Provider, RunningMesh, ValidatorObservation,
};
use crate::scenario::{CertificateMode, Fault, Scenario};
use crate::subject::{Rendered, install};
use model::{ClusterModel, Dataplane, MeshModel};
use state::{Admin, App, PodRuntime, Shared, WebhookApp};

/// A cancellation switch shared by a provider and every mesh it brings up: the CLI
/// flips it on Ctrl-C; probes in flight return an error and the mesh still cleans up
/// on `down()` or drop.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Cancel {
    /// A switch that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every probe of every mesh watching this switch (callable from any thread).
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
}

/// The embedded provider.
#[derive(Debug, Clone, Default)]
pub struct Twin {
    cancel: Cancel,
}

/// The name the CLI uses for the twin provider.
pub type TwinProvider = Twin;

impl Twin {
    /// A twin provider with its own cancellation switch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A twin provider whose meshes watch `cancel` (wire it to Ctrl-C).
    pub fn with_cancel(cancel: Cancel) -> Self {
        Self { cancel }
    }

    /// The cancellation switch.
    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
    }
}

fn provider_error(message: impl Into<String>) -> Error {
    Error::Provider {
        provider: "twin".into(),
        message: message.into(),
    }
}

impl Provider for Twin {
    fn name(&self) -> &'static str {
        "twin"
    }

    fn up(&self, scenario: &Scenario, rendered: &Rendered) -> Result<Box<dyn RunningMesh>, Error> {
        Ok(Box::new(self.start(scenario, rendered)?))
    }
}

impl Twin {
    /// Brings a mesh up and returns it as the concrete type (for callers that want
    /// [`TwinMesh::addresses`]); [`Provider::up`] boxes this.
    pub fn start(&self, scenario: &Scenario, rendered: &Rendered) -> Result<TwinMesh, Error> {
        let model = build_model(scenario, rendered)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| provider_error(format!("cannot start a tokio runtime: {e}")))?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = runtime.block_on(materialise(scenario, model, shutdown_rx))?;
        Ok(TwinMesh {
            runtime: Some(runtime),
            shared,
            shutdown: shutdown_tx,
            cancel: self.cancel.clone(),
            probes: 0,
        })
    }
}

/// Reads each cluster's installed manifests (playing cert-manager where the scenario
/// uses it) into the model; faults that concern running pods are applied here.
fn build_model(scenario: &Scenario, rendered: &Rendered) -> Result<MeshModel, Error> {
    let mut model = MeshModel::default();
    for cluster in &scenario.clusters {
        let install = rendered.install(&cluster.name);
        let (mut manifests, mut roles, refusal) = match install.map(|i| &i.result) {
            Some(Ok(set)) => (set.manifests.clone(), set.roles.clone(), None),
            Some(Err(r)) => (
                Default::default(),
                Default::default(),
                Some(r.message.clone()),
            ),
            None => (
                Default::default(),
                Default::default(),
                Some("no install was rendered".into()),
            ),
        };
        if refusal.is_none() && scenario.certificates == CertificateMode::CertManager {
            // cert-manager issues the Certificate and cainjector fills the caBundle
            // once the objects are applied: played at install time.
            install::play_cert_manager(&mut manifests, &roles, &rendered.namespace)?;
            install::apply_cert_faults(
                &mut manifests,
                &roles,
                &cluster.name,
                &scenario.faults,
                &rendered.release,
                &rendered.namespace,
            )?;
            roles = crate::roles::discover(&manifests, &scenario.roles);
        }
        model.add_cluster(
            ClusterModel {
                name: cluster.name.clone(),
                istio_cluster_id: cluster.istio_cluster_id.clone(),
                mode: cluster.istio.mode,
                mtls: cluster.istio.mtls,
                sidecar: cluster.istio.sidecar,
                manifests,
                roles,
                refusal,
                spec: cluster.clone(),
            },
            &rendered.namespace,
        );
    }
    for fault in &scenario.faults {
        if let Fault::AggregatorDown { cluster } = fault
            && let Some(c) = model.cluster_index(cluster)
            && let Some(w) = model.clusters[c]
                .roles
                .aggregator
                .as_ref()
                .and_then(|a| a.workload.clone())
            && let Some(p) = model.pod_of(c, &w)
        {
            // Not running: no listener, not ready, so not in any endpoint list.
            model.pods[p].ready = false;
        }
    }
    Ok(model)
}

/// Binds every pod address and admin listener, issues mesh identities and starts the
/// accept loops.
async fn materialise(
    scenario: &Scenario,
    model: MeshModel,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<Shared>, Error> {
    let names: Vec<&str> = model.clusters.iter().map(|c| c.name.as_str()).collect();
    let pki = MeshPki::new(&names)?;
    let mesh_root = pki.root_der().clone();
    let mut pods = Vec::new();
    let mut listeners = Vec::new();
    let mut admin_listeners = Vec::new();
    for (i, pod) in model.pods.iter().enumerate() {
        let cluster = &model.clusters[pod.cluster];
        let (identity, inbound_tls) = if pod.dataplane == Dataplane::Direct {
            (None, None)
        } else {
            let id = pki.issue_workload(&cluster.name, &pod.namespace, &pod.service_account)?;
            let cfg = tls::istio_server_config(&id, &mesh_root).map_err(provider_error)?;
            (Some(id), Some(cfg))
        };
        let mut addrs = BTreeMap::new();
        if pod.ready {
            for port in pod.ports.keys() {
                let l = TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| provider_error(format!("cannot bind a loopback port: {e}")))?;
                addrs.insert(
                    *port,
                    l.local_addr().map_err(|e| provider_error(e.to_string()))?,
                );
                listeners.push((i, *port, l));
            }
        }
        let admin = if pod.has_sidecar() {
            let l = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| provider_error(format!("cannot bind a loopback port: {e}")))?;
            let addr = l.local_addr().map_err(|e| provider_error(e.to_string()))?;
            admin_listeners.push((i, l));
            Some(Admin { addr, task: None })
        } else {
            None
        };
        let seed = scenario.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        pods.push(PodRuntime {
            addrs,
            identity,
            inbound_tls,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            admin: Mutex::new(admin),
        });
    }
    let apps = build_apps(scenario, &model);
    let shared = Arc::new(Shared {
        model,
        mesh_root,
        pods,
        apps,
        journal: Default::default(),
        webhook_records: Mutex::new(Vec::new()),
        received: Mutex::new(Vec::new()),
        shutdown,
    });
    for (pod, port, listener) in listeners {
        tokio::spawn(accept_loop(Arc::clone(&shared), pod, port, listener));
    }
    for (pod, listener) in admin_listeners {
        apps::serve_admin_on(&shared, pod, listener)
            .map_err(|e| provider_error(format!("cannot start Envoy admin: {e}")))?;
    }
    Ok(shared)
}

fn build_apps(scenario: &Scenario, model: &MeshModel) -> HashMap<(usize, u16), App> {
    let mut apps = HashMap::new();
    for (c, cluster) in model.clusters.iter().enumerate() {
        if let Some(w) = &cluster.roles.webhook
            && let Some(pod) = model.pod_of(c, &w.workload)
        {
            let secret = w
                .tls_secret
                .as_ref()
                .and_then(|s| cluster.manifests.secret(s));
            let cert = secret.and_then(|s| probes::secret_value(s, "tls.crt"));
            let key = secret.and_then(|s| probes::secret_value(s, "tls.key"));
            let tls = match (&cert, &key) {
                (Some(cert), Some(key)) => tls::server_config_from_pem(cert, key),
                _ => Err(format!(
                    "the TLS Secret {} has no tls.crt/tls.key",
                    w.tls_secret.as_deref().unwrap_or("(none mounted)")
                )),
            };
            let presented = cert
                .as_deref()
                .and_then(|pem| certs::certs_from_pem(pem).ok())
                .and_then(|chain| chain.first().map(|d| certs::summarize(d)));
            let delay = scenario
                .faults
                .iter()
                .find_map(|f| match f {
                    Fault::SlowWebhook {
                        cluster: name,
                        delay_ms,
                    } if *name == cluster.name => Some(Duration::from_millis(*delay_ms)),
                    _ => None,
                })
                .unwrap_or_default();
            apps.insert(
                (pod, w.container_port),
                App::Webhook(WebhookApp {
                    tls,
                    presented,
                    delay,
                }),
            );
        }
        if let Some(a) = &cluster.roles.aggregator
            && let Some(w) = &a.workload
            && let Some(pod) = model.pod_of(c, w)
        {
            apps.insert((pod, a.target_port), App::Aggregator);
        }
    }
    apps
}

async fn accept_loop(shared: Arc<Shared>, pod: usize, port: u16, listener: TcpListener) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        tokio::spawn(dataplane::serve_pod_port(
            Arc::clone(&shared),
            pod,
            port,
            tcp,
            peer,
        ));
    }
}

/// A running twin mesh.
pub struct TwinMesh {
    runtime: Option<Runtime>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    cancel: Cancel,
    probes: u64,
}

impl TwinMesh {
    /// Every loopback address the mesh listens on (pod addresses and admin ports).
    pub fn addresses(&self) -> Vec<std::net::SocketAddr> {
        let mut out = Vec::new();
        for pod in &self.shared.pods {
            out.extend(pod.addrs.values().copied());
            if let Ok(admin) = pod.admin.lock()
                && let Some(a) = admin.as_ref()
            {
                out.push(a.addr);
            }
        }
        out
    }

    fn run<T>(
        &mut self,
        probe: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(ProbeError("the mesh is down".into()));
        };
        let mut cancelled = self.cancel.0.subscribe();
        if *cancelled.borrow() {
            return Err(ProbeError("cancelled".into()));
        }
        runtime.block_on(async {
            tokio::select! {
                r = probe => r,
                _ = cancelled.wait_for(|c| *c) => Err(ProbeError("cancelled".into())),
            }
        })
    }

    fn next_marker(&mut self) -> u64 {
        self.probes += 1;
        self.probes
    }

    fn stop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropping a runtime inside another one panics; this one lets go of
                // its tasks (and their sockets) without blocking.
                rt.shutdown_background();
            } else {
                // A current-thread runtime drops every task, and so every listener,
                // right here.
                drop(rt);
            }
        }
    }
}

impl RunningMesh for TwinMesh {
    fn admit(&mut self, cluster: &str) -> Result<AdmissionObservation, ProbeError> {
        let marker = self.next_marker();
        let shared = Arc::clone(&self.shared);
        self.run(probes::admit(shared, cluster, marker))
    }

    fn backfill(&mut self, cluster: &str) -> Result<CallObservation, ProbeError> {
        let marker = self.next_marker();
        let shared = Arc::clone(&self.shared);
        self.run(probes::backfill(shared, cluster, marker))
    }

    fn attribution(
        &mut self,
        samples_per_sender: u32,
    ) -> Result<AttributionObservation, ProbeError> {
        let shared = Arc::clone(&self.shared);
        if let Ok(mut r) = shared.received.lock() {
            r.clear();
        }
        self.run(probes::attribution(shared, samples_per_sender))
    }

    fn validator(&mut self, cluster: &str) -> Result<ValidatorObservation, ProbeError> {
        let shared = Arc::clone(&self.shared);
        self.run(probes::validator(shared, cluster))
    }

    fn job_completion(&mut self, cluster: &str) -> Result<JobObservation, ProbeError> {
        let shared = Arc::clone(&self.shared);
        self.run(probes::job_completion(shared, cluster))
    }

    fn down(mut self: Box<Self>) -> Result<(), Error> {
        self.stop();
        Ok(())
    }
}

impl Drop for TwinMesh {
    fn drop(&mut self) {
        self.stop();
    }
}
