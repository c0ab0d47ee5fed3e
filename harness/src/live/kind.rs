//! The kind provider: real kind clusters with real Istio, built from the plan.
//!
//! Before anything is created, the doctor's checks run: without Docker (or kind,
//! kubectl, helm, istioctl) `up` fails at once with the doctor's lines and leaves
//! nothing behind, not even a temporary directory.

use std::sync::{Arc, Mutex};

use super::cancel::CancelToken;
use super::command::{CommandRunner, SystemRunner};
use super::doctor::{self, DoctorEnv};
use super::lifecycle::{self, ClusterPool, Context};
use super::plan::render_plan;
use super::probes::{KubeProbes, ProbeFactory};
use super::{LiveOptions, ProviderKind};
use crate::error::Error;
use crate::provider::{Provider, RunningMesh};
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// Fresh kind clusters per topology, reused across the scenarios that share it.
pub struct KindProvider {
    runner: Arc<dyn CommandRunner>,
    options: LiveOptions,
    cancel: CancelToken,
    probes: Arc<dyn ProbeFactory>,
    doctor_env: DoctorEnv,
    pool: Arc<Mutex<ClusterPool>>,
}

impl KindProvider {
    /// A provider running real commands, probing with kube-rs.
    pub fn new(options: LiveOptions) -> Self {
        Self::with_parts(
            Arc::new(SystemRunner::default()),
            Arc::new(KubeProbes),
            options,
        )
    }

    /// A provider with its runner and probes given (tests use fakes).
    pub fn with_parts(
        runner: Arc<dyn CommandRunner>,
        probes: Arc<dyn ProbeFactory>,
        options: LiveOptions,
    ) -> Self {
        let pinned_istio = options.versions.istio.clone();
        Self {
            runner,
            options,
            cancel: CancelToken::new(),
            probes,
            doctor_env: DoctorEnv {
                pinned_istio: Some(pinned_istio.clone()),
                ..DoctorEnv::default()
            },
            pool: Arc::new(Mutex::new(ClusterPool::default())),
        }
    }

    /// Where the preflight looks for tools and host limits.
    pub fn with_doctor_env(mut self, env: DoctorEnv) -> Self {
        self.doctor_env = env.keeping_pin_of(&self.doctor_env);
        self
    }

    /// Shares a cancellation token (one Ctrl-C handler for the whole run).
    pub fn with_cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The token that cancels this provider's work (the CLI's Ctrl-C handler
    /// cancels it).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The doctor's checks for this scenario: required tools, a reachable Docker
    /// daemon, and for several clusters the inotify limits.
    pub fn preflight(&self, scenario: &Scenario) -> Result<(), Error> {
        let report = doctor::run(
            Some(&ProviderKind::Kind),
            self.runner.as_ref(),
            &self.doctor_env,
        );
        let low = doctor::inotify_too_low(&report)
            .into_iter()
            .map(|f| format!("{}: {}", f.subject, f.message))
            .collect::<Vec<_>>();
        if let Some(e) = report.into_error("kind") {
            return Err(e);
        }
        if scenario.clusters.len() > 1 && !low.is_empty() {
            return Err(Error::Tool {
                tool: "kind".into(),
                message: format!(
                    "scenario {} needs {} kind clusters and this host's limits are too low:\n{}",
                    scenario.name,
                    scenario.clusters.len(),
                    low.join("\n")
                ),
            });
        }
        Ok(())
    }

    /// The preflight for a whole run, before any scenario starts: the CLI calls it so
    /// that `run --provider kind` without Docker stops at once, with the doctor's
    /// lines, having created nothing.
    pub fn preflight_run(&self, scenarios: &[Scenario]) -> Result<(), Error> {
        match scenarios.iter().max_by_key(|s| s.clusters.len()) {
            Some(widest) => self.preflight(widest),
            None => Ok(()),
        }
    }

    /// Deletes every cluster kept for reuse (or, with `--keep`, lists them).
    pub fn finish(&self) -> Result<Vec<String>, Error> {
        lifecycle::drain_pool(self.runner.as_ref(), &self.options, &self.pool)
    }

    /// Topology keys whose clusters are kept for the next scenario.
    pub fn pooled(&self) -> Vec<String> {
        self.pool.lock().map(|p| p.keys()).unwrap_or_default()
    }
}

impl Provider for KindProvider {
    fn name(&self) -> &'static str {
        "kind"
    }

    fn up(&self, scenario: &Scenario, rendered: &Rendered) -> Result<Box<dyn RunningMesh>, Error> {
        self.preflight(scenario)?;
        if self.cancel.is_cancelled() {
            return Err(Error::Provider {
                provider: "kind".into(),
                message: "cancelled before the scenario started".into(),
            });
        }
        let plan = render_plan(scenario, rendered, &ProviderKind::Kind, &self.options)?;
        let reused = if self.options.reuse_clusters {
            self.pool
                .lock()
                .ok()
                .and_then(|mut p| p.take(&plan.topology_key))
        } else {
            None
        };
        let ctx = Context {
            provider: "kind",
            runner: Arc::clone(&self.runner),
            options: self.options.clone(),
            cancel: self.cancel.clone(),
            probes: Arc::clone(&self.probes),
            pool: Some(Arc::clone(&self.pool)),
        };
        lifecycle::up(&ctx, scenario, rendered, plan, reused)
    }

    fn finish(&self) -> Result<Vec<String>, Error> {
        KindProvider::finish(self)
    }
}

impl Drop for KindProvider {
    /// Clusters kept for reuse are deleted when the provider goes (best effort; call
    /// [`KindProvider::finish`] to see errors).
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
