//! Probes on live clusters with kube-rs. They produce the same observation types as
//! the twin ([`crate::provider`]), so the same runtime checks judge both.
//!
//! - [`admission`]: WEBHOOK-REACH: a labelled Pod is created in the probe namespace;
//!   the webhook's log must name it; the API server's log says why when it does not.
//! - [`attribution`]: ATTRIBUTION: a probe pod per cluster pushes remote_write
//!   samples with unique markers to the aggregator Service; every aggregator's logs
//!   (container and sidecar access log) say which markers landed there.
//! - [`validator`]: VALIDATOR: the validator container's state and log, plus
//!   istiod's CLUSTER_ID as Envoy reports it (`/server_info` over port-forward).
//! - [`jobs`]: JOB-COMPLETION and BACKFILL-REACH: a Job made from the backfill
//!   CronJob, judged by its status conditions.

pub mod admission;
pub mod attribution;
pub mod envoy;
pub mod jobs;
pub mod kube_api;
#[cfg(test)]
mod mock_api;
#[cfg(test)]
mod tests;
pub mod validator;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;

use super::LiveOptions;
use super::build::PROBE_NAMESPACE;
use super::plan::ClusterTarget;
use crate::error::Error;
use crate::manifests::WorkloadRef;
use crate::provider::{
    AdmissionObservation, AttributionObservation, CallObservation, JobObservation, ProbeError,
    RunningMesh, ValidatorObservation,
};
use crate::roles::Roles;
use crate::scenario::{IstioMode, Scenario};
use crate::subject::Rendered;

/// Makes the probe backend once a mesh is up.
///
/// The kube-rs backend owns a tokio runtime and blocks on it, like the rest of the
/// synchronous [`RunningMesh`] API: call it from plain threads, not from inside an
/// async task.
pub trait ProbeFactory: Send + Sync {
    /// Connects to every cluster of the plan.
    fn connect(
        &self,
        scenario: &Scenario,
        rendered: &Rendered,
        targets: &[ClusterTarget],
        options: &LiveOptions,
    ) -> Result<Box<dyn RunningMesh>, Error>;
}

/// The real probes: kube-rs clients from the kubeconfig contexts of the plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeProbes;

impl ProbeFactory for KubeProbes {
    fn connect(
        &self,
        scenario: &Scenario,
        rendered: &Rendered,
        targets: &[ClusterTarget],
        options: &LiveOptions,
    ) -> Result<Box<dyn RunningMesh>, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| probe_setup(format!("cannot start the probe runtime: {e}")))?;
        let mut clusters = BTreeMap::new();
        for target in targets {
            let client = rt.block_on(client_for(target))?;
            let cluster = scenario.cluster(&target.cluster).ok_or_else(|| {
                probe_setup(format!("no cluster {} in the scenario", target.cluster))
            })?;
            let roles = match rendered.install(&target.cluster).map(|i| &i.result) {
                Some(Ok(installed)) => installed.roles.clone(),
                _ => Roles::default(),
            };
            clusters.insert(
                target.cluster.clone(),
                ClusterProbe {
                    client,
                    namespace: rendered.namespace.clone(),
                    roles,
                    mode: cluster.istio.mode,
                },
            );
        }
        Ok(Box::new(KubeMesh {
            rt,
            clusters,
            timeout: options.probe_timeout,
            run: options.run_id.to_string(),
            sequence: 0,
        }))
    }
}

fn probe_setup(message: String) -> Error {
    Error::Provider {
        provider: "kube".into(),
        message,
    }
}

async fn client_for(target: &ClusterTarget) -> Result<Client, Error> {
    let options = kube::config::KubeConfigOptions {
        context: Some(target.context.clone()),
        ..Default::default()
    };
    let config = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| probe_setup(format!("cannot read kubeconfig {path}: {e}")))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| probe_setup(format!("kubeconfig context {}: {e}", target.context)))?;
    Client::try_from(config)
        .map_err(|e| probe_setup(format!("kube client for {}: {e}", target.context)))
}

/// One cluster as the probes see it.
#[derive(Clone)]
pub struct ClusterProbe {
    /// The cluster's API client.
    pub client: Client,
    /// The agent's namespace.
    pub namespace: String,
    /// The agent's roles, found in its manifests.
    pub roles: Roles,
    /// The cluster's Istio mode.
    pub mode: IstioMode,
}

impl ClusterProbe {
    /// The first backfill workload of the agent (`cluster` names it in the error).
    fn backfill_workload(&self, cluster: &str) -> Result<WorkloadRef, ProbeError> {
        self.roles
            .backfill
            .first()
            .cloned()
            .ok_or_else(|| ProbeError(format!("no backfill workload in cluster {cluster}")))
    }
}

/// The probe backend of a live mesh.
pub struct KubeMesh {
    rt: tokio::runtime::Runtime,
    clusters: BTreeMap<String, ClusterProbe>,
    timeout: Duration,
    run: String,
    sequence: u32,
}

impl KubeMesh {
    fn cluster(&self, name: &str) -> Result<ClusterProbe, ProbeError> {
        self.clusters
            .get(name)
            .cloned()
            .ok_or_else(|| ProbeError(format!("no cluster {name} in this mesh")))
    }

    /// The next number of this run's probe objects, so their names never repeat.
    fn next_sequence(&mut self) -> u32 {
        self.sequence += 1;
        self.sequence
    }

    fn next_name(&mut self, what: &str, cluster: &str) -> String {
        let sequence = self.next_sequence();
        format!("mc-{what}-{cluster}-{}-{sequence}", self.run)
    }
}

impl RunningMesh for KubeMesh {
    fn admit(&mut self, cluster: &str) -> Result<AdmissionObservation, ProbeError> {
        let c = self.cluster(cluster)?;
        let webhook = c.roles.webhook.clone().ok_or_else(|| {
            ProbeError(format!(
                "no webhook role in cluster {cluster}: {}",
                c.roles.problems.join("; ")
            ))
        })?;
        let object = self.next_name("admit", cluster);
        let probe = admission::AdmissionProbe {
            cluster,
            probe_namespace: PROBE_NAMESPACE,
            webhook: &webhook,
            object: &object,
            wait: self.timeout,
        };
        self.rt.block_on(probe.run(&c.client))
    }

    fn backfill(&mut self, cluster: &str) -> Result<CallObservation, ProbeError> {
        let c = self.cluster(cluster)?;
        let workload = c.backfill_workload(cluster)?;
        let name = self.next_name("backfill", cluster);
        let timeout = self.timeout;
        self.rt.block_on(jobs::backfill_call(
            &c.client,
            &c.namespace,
            &workload,
            &name,
            c.roles.webhook.as_ref(),
            timeout,
        ))
    }

    fn attribution(
        &mut self,
        samples_per_sender: u32,
    ) -> Result<AttributionObservation, ProbeError> {
        let clusters: Vec<(String, ClusterProbe)> = self
            .clusters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let sequence = self.next_sequence();
        let run = format!("{}-{sequence}", self.run);
        let timeout = self.timeout;
        self.rt.block_on(attribution::run(
            &clusters,
            &run,
            samples_per_sender,
            timeout,
        ))
    }

    fn validator(&mut self, cluster: &str) -> Result<ValidatorObservation, ProbeError> {
        let c = self.cluster(cluster)?;
        self.rt.block_on(validator::observe(&c))
    }

    fn job_completion(&mut self, cluster: &str) -> Result<JobObservation, ProbeError> {
        let c = self.cluster(cluster)?;
        let workload = c.backfill_workload(cluster)?;
        let name = self.next_name("job", cluster);
        let timeout = self.timeout;
        self.rt.block_on(jobs::run_to_completion(
            &c.client,
            &c.namespace,
            &workload,
            &name,
            timeout,
        ))
    }

    fn down(self: Box<Self>) -> Result<(), Error> {
        // Probe objects live in namespaces the teardown deletes; only connections here.
        Ok(())
    }
}
