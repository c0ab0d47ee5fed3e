//! The existing provider: clusters the user already has, named by kubeconfig
//! context (`--context alpha=ctx1`). Every install step first checks whether what it
//! installs is there; only what this run created is removed at the end.

use std::sync::Arc;

use super::cancel::CancelToken;
use super::command::{CommandRunner, SystemRunner};
use super::doctor::{self, DoctorEnv};
use super::lifecycle::{self, Context};
use super::plan::render_plan;
use super::probes::{KubeProbes, ProbeFactory};
use super::{ContextMap, LiveOptions, ProviderKind};
use crate::error::Error;
use crate::provider::{Provider, RunningMesh};
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// Existing clusters by kubeconfig context.
pub struct ExistingProvider {
    contexts: ContextMap,
    runner: Arc<dyn CommandRunner>,
    options: LiveOptions,
    cancel: CancelToken,
    probes: Arc<dyn ProbeFactory>,
    doctor_env: DoctorEnv,
}

impl ExistingProvider {
    /// A provider running real commands against these contexts.
    pub fn new(contexts: ContextMap, options: LiveOptions) -> Self {
        Self::with_parts(
            contexts,
            Arc::new(SystemRunner::default()),
            Arc::new(KubeProbes),
            options,
        )
    }

    /// A provider with its runner and probes given (tests use fakes).
    pub fn with_parts(
        contexts: ContextMap,
        runner: Arc<dyn CommandRunner>,
        probes: Arc<dyn ProbeFactory>,
        options: LiveOptions,
    ) -> Self {
        let pinned_istio = options.versions.istio.clone();
        Self {
            contexts,
            runner,
            options: LiveOptions {
                // Clusters the user owns are never pooled or deleted.
                reuse_clusters: false,
                ..options
            },
            cancel: CancelToken::new(),
            probes,
            doctor_env: DoctorEnv {
                pinned_istio: Some(pinned_istio.clone()),
                ..DoctorEnv::default()
            },
        }
    }

    /// Where the preflight looks for tools.
    pub fn with_doctor_env(mut self, env: DoctorEnv) -> Self {
        self.doctor_env = env.keeping_pin_of(&self.doctor_env);
        self
    }

    /// Shares a cancellation token (one Ctrl-C handler for the whole run).
    pub fn with_cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The token that cancels this provider's work.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
}

impl Provider for ExistingProvider {
    fn name(&self) -> &'static str {
        "existing"
    }

    fn up(&self, scenario: &Scenario, rendered: &Rendered) -> Result<Box<dyn RunningMesh>, Error> {
        let kind = ProviderKind::Existing(self.contexts.clone());
        let report = doctor::run(Some(&kind), self.runner.as_ref(), &self.doctor_env);
        if let Some(e) = report.into_error("existing") {
            return Err(e);
        }
        let plan = render_plan(scenario, rendered, &kind, &self.options)?;
        let ctx = Context {
            provider: "existing",
            runner: Arc::clone(&self.runner),
            options: self.options.clone(),
            cancel: self.cancel.clone(),
            probes: Arc::clone(&self.probes),
            pool: None,
        };
        lifecycle::up(&ctx, scenario, rendered, plan, None)
    }
}
