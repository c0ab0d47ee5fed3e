//! Subjects: what is held to the policy. Either the reference install (manifests the
//! harness generates from the seed's rules) or a Helm chart rendered with `helm template`.
//!
//! Rendering gives one [`Install`] per cluster: the manifests as they stand once
//! installed (for a chart, with the harness playing the init-cert job's part), or the
//! subject's refusal to install (a chart's `fail`/`required`, the reference install's
//! ambient rule).

pub mod chart;
pub mod install;
pub mod reference;

use std::path::PathBuf;

use crate::error::Error;
use crate::manifests::ManifestSet;
use crate::roles::Roles;
use crate::scenario::{Cluster, Scenario};

/// Default Helm release name.
pub const DEFAULT_RELEASE: &str = "cz";
/// Default namespace.
pub const DEFAULT_NAMESPACE: &str = "cza";

/// What is being held to the policy.
#[derive(Debug, Clone)]
pub enum Subject {
    /// Manifests the harness generates from the seed's rules (policy as code).
    Reference {
        /// Release name used for object names.
        release: String,
        /// Namespace the agent is installed in.
        namespace: String,
    },
    /// A Helm chart rendered with `helm template`.
    Chart(ChartSubject),
}

impl Default for Subject {
    fn default() -> Self {
        Subject::Reference {
            release: DEFAULT_RELEASE.into(),
            namespace: DEFAULT_NAMESPACE.into(),
        }
    }
}

impl Subject {
    /// A short label for reports (`reference`, `chart:./charts/agent`).
    pub fn label(&self) -> String {
        match self {
            Subject::Reference { .. } => "reference".into(),
            Subject::Chart(c) => format!("chart:{}", c.path.display()),
        }
    }

    /// The release name.
    pub fn release(&self) -> &str {
        match self {
            Subject::Reference { release, .. } => release,
            Subject::Chart(c) => &c.release,
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        match self {
            Subject::Reference { namespace, .. } => namespace,
            Subject::Chart(c) => &c.namespace,
        }
    }
}

/// A chart and how to render it.
#[derive(Debug, Clone)]
pub struct ChartSubject {
    /// Chart directory or archive.
    pub path: PathBuf,
    /// Release name (`--release`).
    pub release: String,
    /// Namespace (`--namespace`).
    pub namespace: String,
    /// Extra values files (`--values`), applied after the scenario's values.
    pub values_files: Vec<PathBuf>,
    /// Extra `--set` expressions, applied last.
    pub sets: Vec<String>,
}

/// The subject declined to install in this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The subject's own message (helm's error, or the reference install's rule).
    pub message: String,
}

/// What the subject installs in one cluster.
#[derive(Debug, Clone)]
pub struct Install {
    /// The cluster's name.
    pub cluster: String,
    /// The manifests, or the subject's refusal.
    pub result: Result<InstalledSet, Refusal>,
}

/// An installed manifest set with its roles found.
#[derive(Debug, Clone)]
pub struct InstalledSet {
    /// Every object, as installed.
    pub manifests: ManifestSet,
    /// Roles found in the manifests (DESIGN.md section 4).
    pub roles: Roles,
    /// Steps the harness took to complete the install (playing init-cert, ...), for
    /// evidence.
    pub notes: Vec<String>,
}

/// A subject rendered for every cluster of a scenario.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The subject's label.
    pub subject: String,
    /// Release name.
    pub release: String,
    /// Namespace.
    pub namespace: String,
    /// One install per cluster, in the scenario's order.
    pub installs: Vec<Install>,
}

impl Rendered {
    /// The install of one cluster.
    pub fn install(&self, cluster: &str) -> Option<&Install> {
        self.installs.iter().find(|i| i.cluster == cluster)
    }
}

/// Renders the subject for every cluster of the scenario and completes each install.
///
/// Errors are bad input or a missing tool (exit 2); a subject that declines to
/// install is not an error but a [`Refusal`] that checks report on.
pub fn render(subject: &Subject, scenario: &Scenario) -> Result<Rendered, Error> {
    let mut installs = Vec::new();
    for cluster in &scenario.clusters {
        let raw = match subject {
            Subject::Reference { release, namespace } => {
                reference::generate(scenario, cluster, release, namespace)
            }
            Subject::Chart(chart) => chart::render(chart, scenario, cluster)?,
        };
        let result = match raw {
            Ok(manifests) => Ok(install::complete(
                scenario,
                cluster,
                subject.release(),
                subject.namespace(),
                manifests,
            )?),
            Err(refusal) => Err(refusal),
        };
        installs.push(Install {
            cluster: cluster.name.clone(),
            result,
        });
    }
    Ok(Rendered {
        subject: subject.label(),
        release: subject.release().to_string(),
        namespace: subject.namespace().to_string(),
        installs,
    })
}

/// Whether Istio integration is on for this cluster under the seed's detection rule.
pub fn istio_active(cluster: &Cluster) -> bool {
    cluster.agent.istio_enabled.resolve(cluster.has_istio())
}
