//! Live providers: real clusters with real Istio.
//!
//! - [`kind`]: creates kind clusters, installs Istio and the agent, probes, cleans up.
//! - [`existing`]: kubeconfig contexts the user already has; installs only what is
//!   missing and removes only what it created.
//! - `k3s` (cargo feature `k3s`): one k3s container through testcontainers.
//!
//! Everything a live provider does is first built as a [`plan::Plan`] (ordered steps
//! with their exact command lines), printed by `meshconform plan` and executed step
//! by step through a [`command::CommandRunner`], so tests drive the whole lifecycle
//! with a fake runner and no cluster.

pub mod artifacts;
pub mod build;
pub mod cancel;
pub mod command;
pub mod doctor;
pub mod execute;
pub mod existing;
#[cfg(feature = "k3s")]
pub mod k3s;
pub mod kind;
pub mod lifecycle;
pub mod matrix;
pub mod names;
pub mod plan;
pub mod probes;
pub mod versions;

use std::path::PathBuf;
use std::time::Duration;

pub use names::RunId;
pub use versions::Versions;

use crate::subject::{ChartSubject, Subject};

/// The CloudZero chart's Helm repository.
pub const CLOUDZERO_CHART_REPO: &str = "https://cloudzero.github.io/cloudzero-charts";
/// The CloudZero chart's name in that repository.
pub const CLOUDZERO_CHART_NAME: &str = "cloudzero-agent";

/// How the agent gets into the clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// `kubectl apply` of the reference install's manifests.
    Reference,
    /// `helm upgrade --install` of a chart.
    Chart {
        /// A local chart directory or archive, or a chart name in `repo`.
        chart: String,
        /// The Helm repository URL, for a published chart.
        repo: Option<String>,
        /// The chart version, for a published chart.
        version: Option<String>,
        /// Extra values files, applied after the scenario's values.
        values_files: Vec<PathBuf>,
        /// Extra `--set` expressions, applied last.
        sets: Vec<String>,
    },
}

impl AgentSource {
    /// The published CloudZero chart at the pinned version of `versions`.
    pub fn published(versions: &Versions) -> Self {
        AgentSource::Chart {
            chart: CLOUDZERO_CHART_NAME.into(),
            repo: Some(CLOUDZERO_CHART_REPO.into()),
            version: Some(versions.agent_chart.clone()),
            values_files: Vec::new(),
            sets: Vec::new(),
        }
    }

    /// What the subject says: the reference install, or the chart at `--chart PATH`.
    pub fn for_subject(subject: &Subject) -> Self {
        match subject {
            Subject::Reference { .. } => AgentSource::Reference,
            Subject::Chart(ChartSubject {
                path,
                values_files,
                sets,
                ..
            }) => AgentSource::Chart {
                chart: path.display().to_string(),
                repo: None,
                version: None,
                values_files: values_files.clone(),
                sets: sets.clone(),
            },
        }
    }
}

/// Options shared by the live providers.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Pinned tool and component versions.
    pub versions: Versions,
    /// How the agent is installed.
    pub agent: AgentSource,
    /// This run's ID (part of every cluster name); fresh by default. Plans printed for
    /// people use [`RunId::placeholder`] so they are the same from one run to the next.
    pub run_id: RunId,
    /// Keep clusters after the run (`--keep`).
    pub keep: bool,
    /// Where per-scenario artifact folders are written on failure.
    pub artifacts_dir: PathBuf,
    /// First retry delay of a retried step; doubled on each attempt.
    pub backoff: Duration,
    /// How long a probe waits for something to happen (a log line, a Job).
    pub probe_timeout: Duration,
    /// Where the run's temporary work directory is made; `None` for the system's.
    pub work_root: Option<PathBuf>,
    /// Reuse clusters between scenarios of one topology (the agent is reinstalled).
    pub reuse_clusters: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            versions: Versions::default(),
            agent: AgentSource::Reference,
            // A fresh ID: a real run must name (and delete) only its own clusters.
            // Plans printed for people set the placeholder.
            run_id: RunId::generate(),
            keep: false,
            artifacts_dir: PathBuf::from("reports/artifacts"),
            backoff: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(120),
            work_root: None,
            reuse_clusters: true,
        }
    }
}

/// Which live provider a plan is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// Fresh kind clusters.
    Kind,
    /// Existing kubeconfig contexts, by scenario cluster name.
    Existing(ContextMap),
    /// One k3s container (single-cluster scenarios only).
    K3s,
}

impl ProviderKind {
    /// `kind`, `existing`, `k3s`.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderKind::Kind => "kind",
            ProviderKind::Existing(_) => "existing",
            ProviderKind::K3s => "k3s",
        }
    }
}

/// Scenario cluster name -> kubeconfig context (`--context alpha=ctx1`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContextMap(pub std::collections::BTreeMap<String, String>);

impl ContextMap {
    /// Parses `--context` arguments of the form `cluster=context`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, crate::Error> {
        let mut map = std::collections::BTreeMap::new();
        for arg in args {
            let arg = arg.as_ref();
            let (cluster, context) = arg.split_once('=').ok_or_else(|| {
                crate::Error::Usage(format!(
                    "--context {arg:?}: expected CLUSTER=CONTEXT, e.g. --context alpha=kind-alpha"
                ))
            })?;
            if cluster.is_empty() || context.is_empty() {
                return Err(crate::Error::Usage(format!(
                    "--context {arg:?}: both the cluster and the context must be named"
                )));
            }
            if map
                .insert(cluster.to_string(), context.to_string())
                .is_some()
            {
                return Err(crate::Error::Usage(format!(
                    "--context names cluster {cluster:?} twice"
                )));
            }
        }
        Ok(Self(map))
    }
}
