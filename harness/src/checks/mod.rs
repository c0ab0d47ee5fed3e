//! Checks: each has a stable ID, a one-line claim, a source, and an outcome with
//! evidence. Static checks read manifests; runtime checks ask a [`RunningMesh`].

mod catalogue;
mod outcome;
pub mod runtime;
pub mod statics;

pub use catalogue::{CheckId, CheckKind, Severity, UnknownCheck};
pub use outcome::{Evidence, Outcome, Status};

use crate::provider::RunningMesh;
use crate::scenario::{Cluster, Scenario};
use crate::subject::{InstalledSet, Rendered};

/// What a static check sees of one cluster.
#[derive(Debug, Clone, Copy)]
pub struct ClusterContext<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The cluster.
    pub cluster: &'a Cluster,
    /// The installed manifests and their roles.
    pub installed: &'a InstalledSet,
    /// Namespace the agent is installed in.
    pub namespace: &'a str,
    /// Release name.
    pub release: &'a str,
}

/// Runs one static check on every cluster of a rendered scenario and folds the
/// outcomes.
///
/// A cluster where the subject refused to install passes AMBIENT-EXPLICIT when the
/// refusal is the one that check asks for; every other check skips with the refusal
/// as its reason. A scenario that did not expect the refusal then mismatches.
pub fn run_static(check: CheckId, scenario: &Scenario, rendered: &Rendered) -> Outcome {
    let per_cluster = scenario
        .clusters
        .iter()
        .map(|cluster| {
            let outcome = match rendered.install(&cluster.name).map(|i| &i.result) {
                None => Outcome::fail("no install was rendered for this cluster"),
                Some(Err(refusal)) => {
                    statics::on_refusal(check, scenario, cluster, &refusal.message)
                }
                Some(Ok(installed)) => statics::check(
                    check,
                    &ClusterContext {
                        scenario,
                        cluster,
                        installed,
                        namespace: &rendered.namespace,
                        release: &rendered.release,
                    },
                ),
            };
            (cluster.name.clone(), outcome)
        })
        .collect();
    Outcome::fold(per_cluster)
}

/// Runs one runtime check against a running mesh.
pub fn run_runtime(
    check: CheckId,
    scenario: &Scenario,
    rendered: &Rendered,
    mesh: &mut dyn RunningMesh,
) -> Outcome {
    runtime::check(check, scenario, rendered, mesh)
}
