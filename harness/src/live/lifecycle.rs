//! The life of a live mesh, shared by the live providers: preflight, plan, execute,
//! connect the probes; on failure collect artifacts and remove what this run created;
//! on `down` remove the agent (clusters go back to the pool) or everything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::LiveOptions;
use super::artifacts;
use super::build::PROBE_NAMESPACE;
use super::cancel::CancelToken;
use super::command::{Command, CommandRunner, run_pipeline};
use super::execute::Executor;
use super::plan::{ClusterTarget, Phase, Plan, Step};
use super::probes::ProbeFactory;
use crate::error::Error;
use crate::provider::{
    AdmissionObservation, AttributionObservation, CallObservation, JobObservation, ProbeError,
    RunningMesh, ValidatorObservation,
};
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// Clusters kept between scenarios, by topology key.
#[derive(Debug, Default)]
pub struct ClusterPool {
    entries: BTreeMap<String, PooledClusters>,
}

/// Clusters one topology built.
#[derive(Debug, Clone)]
pub struct PooledClusters {
    /// Scenario cluster name -> kind cluster name.
    pub names: BTreeMap<String, String>,
    /// How to delete them.
    pub cleanup: Vec<Step>,
}

impl ClusterPool {
    /// Takes the clusters of a topology out of the pool (one scenario at a time).
    pub fn take(&mut self, key: &str) -> Option<PooledClusters> {
        self.entries.remove(key)
    }

    /// Puts clusters back for the next scenario of the topology.
    pub fn put(&mut self, key: String, clusters: PooledClusters) {
        self.entries.insert(key, clusters);
    }

    /// Empties the pool.
    pub fn drain(&mut self) -> Vec<PooledClusters> {
        std::mem::take(&mut self.entries).into_values().collect()
    }

    /// Topology keys currently pooled.
    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

/// Everything a live mesh needs from its provider.
pub struct Context {
    /// `kind`, `existing`, `k3s`.
    pub provider: &'static str,
    /// Runs the commands.
    pub runner: Arc<dyn CommandRunner>,
    /// Options.
    pub options: LiveOptions,
    /// Cancellation (Ctrl-C).
    pub cancel: CancelToken,
    /// Makes the probes once the mesh is up.
    pub probes: Arc<dyn ProbeFactory>,
    /// Clusters kept between scenarios (kind only).
    pub pool: Option<Arc<Mutex<ClusterPool>>>,
}

/// Something a provider keeps alive for as long as the mesh runs (the k3s container).
pub type Guard = Box<dyn std::any::Any + Send>;

/// Runs in the fresh work directory before the first step (the k3s provider starts
/// its container and writes the kubeconfig the plan names).
pub type Prepare<'a> = &'a dyn Fn(&std::path::Path) -> Result<Option<Guard>, Error>;

/// Brings a planned mesh up. `reused` names clusters taken from the pool (their
/// cluster and mesh steps are skipped).
pub fn up(
    ctx: &Context,
    scenario: &Scenario,
    rendered: &Rendered,
    plan: Plan,
    reused: Option<PooledClusters>,
) -> Result<Box<dyn RunningMesh>, Error> {
    up_with(ctx, scenario, rendered, plan, reused, &|_| Ok(None))
}

/// [`up`] with a preparation step run in the work directory first.
pub fn up_with(
    ctx: &Context,
    scenario: &Scenario,
    rendered: &Rendered,
    mut plan: Plan,
    reused: Option<PooledClusters>,
    prepare: Prepare<'_>,
) -> Result<Box<dyn RunningMesh>, Error> {
    if let Some(r) = &reused {
        plan.rename_kind_clusters(&r.names);
    }
    if let Some(root) = &ctx.options.work_root {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix("meshconform-");
    let work = match &ctx.options.work_root {
        Some(root) => builder.tempdir_in(root),
        None => builder.tempdir(),
    }
    .map_err(|e| {
        Error::io(
            ctx.options
                .work_root
                .clone()
                .unwrap_or_else(std::env::temp_dir),
            e,
        )
    })?;
    let guard = prepare(work.path())?;
    let clusters: Vec<String> = plan.clusters.iter().map(|c| c.cluster.clone()).collect();
    let mut exec = Executor::new(
        ctx.runner.as_ref(),
        ctx.provider,
        work.path(),
        clusters,
        ctx.cancel.clone(),
        ctx.options.backoff,
    );
    let steps: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| reused.is_none() || s.phase == Phase::Agent)
        .collect();
    let mut outcome = Ok(());
    for step in steps {
        if let Err(e) = exec.run_step(step) {
            outcome = Err(e);
            break;
        }
    }
    let ledger = std::mem::take(&mut exec.ledger);
    let connected = outcome.and_then(|()| {
        ctx.probes
            .connect(scenario, rendered, &plan.clusters, &ctx.options)
    });
    match connected {
        Ok(inner) => Ok(Box::new(LiveMesh {
            provider: ctx.provider,
            runner: Arc::clone(&ctx.runner),
            options: ctx.options.clone(),
            cancel: ctx.cancel.clone(),
            pool: ctx.pool.clone(),
            scenario: scenario.name.clone(),
            namespace: rendered.namespace.clone(),
            plan,
            ledger,
            inner: Some(inner),
            _work: work,
            _guard: guard,
        })),
        Err(e) => {
            let mut message = e.to_string();
            // Only clusters that exist have anything to show: kind's exist once its
            // first step (creating them) went through.
            let clusters_exist = ctx.provider != "kind" || reused.is_some() || !exec.log.is_empty();
            if clusters_exist {
                match artifacts::collect(
                    ctx.runner.as_ref(),
                    &ctx.options.artifacts_dir,
                    &scenario.name,
                    &plan.clusters,
                    &[rendered.namespace.as_str(), PROBE_NAMESPACE],
                    &message,
                ) {
                    Ok(dir) => message.push_str(&format!("\nartifacts: {}", dir.display())),
                    Err(err) => {
                        message.push_str(&format!("\nartifacts could not be written: {err}"))
                    }
                }
            }
            let cleanup = remove_everything(ctx.runner.as_ref(), &ctx.options, &plan, ledger);
            message.push_str(&cleanup_note(&ctx.options, &plan, cleanup));
            Err(Error::Provider {
                provider: ctx.provider.into(),
                message,
            })
        }
    }
}

fn cleanup_note(options: &LiveOptions, plan: &Plan, result: Result<(), Error>) -> String {
    let names: Vec<&str> = plan
        .clusters
        .iter()
        .filter_map(|c| c.kind_name.as_deref())
        .collect();
    match result {
        Ok(()) if options.keep && !names.is_empty() => {
            format!("\nclusters kept (--keep): {}", names.join(", "))
        }
        Ok(()) => String::new(),
        Err(e) => format!("\n{e}"),
    }
}

/// Removes what this run created: its kind clusters (unless `--keep`) and whatever
/// the ledger of undo commands lists (the existing provider's installs).
fn remove_everything(
    runner: &dyn CommandRunner,
    options: &LiveOptions,
    plan: &Plan,
    mut ledger: Vec<Command>,
) -> Result<(), Error> {
    let mut errors = Vec::new();
    while let Some(cmd) = ledger.pop() {
        if let Err(e) = checked(runner, &cmd) {
            errors.push(e);
        }
    }
    if !options.keep {
        for step in &plan.cleanup {
            for cmd in &step.commands {
                if let Err(e) = checked(runner, cmd) {
                    errors.push(e);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Provider {
            provider: plan.provider.clone(),
            message: format!("cleanup left things behind: {}", errors.join("; ")),
        })
    }
}

fn checked(runner: &dyn CommandRunner, cmd: &Command) -> Result<(), String> {
    match run_pipeline(runner, cmd) {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(format!(
            "`{cmd}`: {}",
            super::command::last_lines(&o.stderr, 3)
        )),
        Err(e) => Err(format!("`{cmd}`: {e}")),
    }
}

/// A live mesh: probes delegate to the probe backend; `down` removes the agent and
/// returns the clusters to the pool, or removes everything this run created.
pub struct LiveMesh {
    provider: &'static str,
    runner: Arc<dyn CommandRunner>,
    options: LiveOptions,
    cancel: CancelToken,
    pool: Option<Arc<Mutex<ClusterPool>>>,
    scenario: String,
    namespace: String,
    plan: Plan,
    ledger: Vec<Command>,
    inner: Option<Box<dyn RunningMesh>>,
    _work: tempfile::TempDir,
    /// Dropped last: the k3s container outlives the cleanup commands.
    _guard: Option<Guard>,
}

impl LiveMesh {
    fn inner(&mut self) -> Result<&mut Box<dyn RunningMesh>, ProbeError> {
        self.inner
            .as_mut()
            .ok_or_else(|| ProbeError("the mesh was already taken down".into()))
    }

    /// The clusters, as the plan addresses them.
    pub fn targets(&self) -> &[ClusterTarget] {
        &self.plan.clusters
    }
}

impl RunningMesh for LiveMesh {
    fn admit(&mut self, cluster: &str) -> Result<AdmissionObservation, ProbeError> {
        self.inner()?.admit(cluster)
    }

    fn backfill(&mut self, cluster: &str) -> Result<CallObservation, ProbeError> {
        self.inner()?.backfill(cluster)
    }

    fn attribution(
        &mut self,
        samples_per_sender: u32,
    ) -> Result<AttributionObservation, ProbeError> {
        self.inner()?.attribution(samples_per_sender)
    }

    fn validator(&mut self, cluster: &str) -> Result<ValidatorObservation, ProbeError> {
        self.inner()?.validator(cluster)
    }

    fn job_completion(&mut self, cluster: &str) -> Result<JobObservation, ProbeError> {
        self.inner()?.job_completion(cluster)
    }

    fn collect_artifacts(&mut self, reason: &str) -> Option<PathBuf> {
        artifacts::collect(
            self.runner.as_ref(),
            &self.options.artifacts_dir,
            &self.scenario,
            &self.plan.clusters,
            &[self.namespace.as_str(), PROBE_NAMESPACE],
            reason,
        )
        .ok()
    }

    fn down(mut self: Box<Self>) -> Result<(), Error> {
        if let Some(inner) = self.inner.take() {
            // The probe backend holds only connections; its errors do not leak anything.
            let _ = inner.down();
        }
        let pool = self
            .pool
            .clone()
            .filter(|_| self.options.reuse_clusters && !self.cancel.is_cancelled());
        if let Some(pool) = pool {
            let mut exec = Executor::new(
                self.runner.as_ref(),
                self.provider,
                self._work.path(),
                Vec::new(),
                CancelToken::new(),
                self.options.backoff,
            );
            let removed = exec.run_all(&self.plan.teardown);
            if removed.is_ok() {
                let names = self
                    .plan
                    .clusters
                    .iter()
                    .filter_map(|c| Some((c.cluster.clone(), c.kind_name.clone()?)))
                    .collect();
                if let Ok(mut pool) = pool.lock() {
                    pool.put(
                        self.plan.topology_key.clone(),
                        PooledClusters {
                            names,
                            cleanup: self.plan.cleanup.clone(),
                        },
                    );
                    return Ok(());
                }
            }
            // The agent did not come off cleanly: these clusters are not fit for
            // reuse; delete them below.
        }
        let ledger = std::mem::take(&mut self.ledger);
        remove_everything(self.runner.as_ref(), &self.options, &self.plan, ledger)
    }
}

/// Deletes every pooled cluster (unless `--keep`); returns what was deleted or kept.
pub fn drain_pool(
    runner: &dyn CommandRunner,
    options: &LiveOptions,
    pool: &Mutex<ClusterPool>,
) -> Result<Vec<String>, Error> {
    let entries = pool.lock().map(|mut p| p.drain()).unwrap_or_default();
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        names.extend(entry.names.values().cloned());
        if options.keep {
            continue;
        }
        for step in &entry.cleanup {
            for cmd in &step.commands {
                if let Err(e) = checked(runner, cmd) {
                    errors.push(e);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(names)
    } else {
        Err(Error::Provider {
            provider: "kind".into(),
            message: format!("cleanup left things behind: {}", errors.join("; ")),
        })
    }
}
