//! The static checks: each reads one cluster's installed manifests.

use super::{CheckId, ClusterContext, Outcome};
use crate::scenario::{Cluster, Scenario};

/// Runs one static check on one cluster.
pub fn check(check: CheckId, ctx: &ClusterContext<'_>) -> Outcome {
    let _ = ctx;
    Outcome::fail(format!("{check} is not implemented yet"))
}

/// The outcome of a check on a cluster where the subject refused to install.
pub fn on_refusal(check: CheckId, scenario: &Scenario, cluster: &Cluster, message: &str) -> Outcome {
    let _ = (scenario, cluster);
    Outcome::fail(format!("{check}: the subject refused to install: {message}"))
}
