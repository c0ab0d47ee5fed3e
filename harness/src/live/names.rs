//! Names: run IDs, kind cluster names, and the topology key clusters are reused by.

use sha2::{Digest, Sha256};

use super::versions::Versions;
use crate::scenario::Scenario;

/// kind derives node container names (`<name>-control-plane`, `<name>-worker2`) from
/// the cluster name, and they are the nodes' hostnames: at most 63 characters, so
/// the name may have 63 - len("-control-plane") = 49.
pub const MAX_KIND_NAME: usize = 49;

/// A run's ID: six lowercase characters, part of every cluster name it creates, so a
/// run deletes only what it made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// The fixed ID printed in plans (`runid0`): same width as a real one, so names
    /// are truncated the same way, and obviously not a real run.
    pub fn placeholder() -> Self {
        RunId("runid0".into())
    }

    /// A fresh random ID.
    pub fn generate() -> Self {
        let mut rng = fastrand::Rng::new();
        let id: String = (0..6)
            .map(|_| {
                let i = rng.u8(0..36);
                char::from_digit(u32::from(i), 36).unwrap_or('0')
            })
            .collect();
        RunId(id)
    }

    /// A given ID, when it is six lowercase letters or digits.
    pub fn parse(id: &str) -> Option<Self> {
        (id.len() == 6
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        .then(|| RunId(id.to_string()))
    }

    /// The ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind cluster name for one scenario cluster: `mc-<scenario>-<cluster>-<run>`,
/// truncated to [`MAX_KIND_NAME`] with a short hash so truncated names stay unique.
pub fn kind_cluster_name(scenario: &str, cluster: &str, run: &RunId) -> String {
    let full = format!("mc-{scenario}-{cluster}-{run}");
    if full.len() <= MAX_KIND_NAME {
        return full;
    }
    let hash = hex(&Sha256::digest(format!("{scenario}/{cluster}").as_bytes()))[..4].to_string();
    // mc- + scenario part + - + hash + - + cluster part + - + run
    let cluster_part: String = cluster.chars().take(8).collect();
    let fixed = 3 + 1 + hash.len() + 1 + cluster_part.len() + 1 + run.as_str().len();
    let room = MAX_KIND_NAME.saturating_sub(fixed);
    let scenario_part: String = scenario.chars().take(room).collect();
    let scenario_part = scenario_part.trim_end_matches('-');
    format!("mc-{scenario_part}-{hash}-{cluster_part}-{run}").replace("--", "-")
}

/// The key clusters are reused by: a hash of everything that shapes the clusters and
/// the mesh (cluster names, Istio mode, cluster ID, network, sidecar kind, certificate
/// mode) and every pinned version. The agent, values and mTLS policy are not in it:
/// they are reinstalled per scenario.
pub fn topology_key(scenario: &Scenario, versions: &Versions) -> String {
    let mut h = Sha256::new();
    for c in &scenario.clusters {
        h.update(
            format!(
                "cluster={};mode={:?};id={};network={:?};sidecar={:?}\n",
                c.name, c.istio.mode, c.istio_cluster_id, c.istio.network, c.istio.sidecar
            )
            .as_bytes(),
        );
    }
    h.update(format!("certificates={:?}\n", scenario.certificates).as_bytes());
    h.update(
        serde_json::to_string(versions)
            .unwrap_or_default()
            .as_bytes(),
    );
    hex(&h.finalize())[..16].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_whole() {
        let run = RunId::placeholder();
        assert_eq!(
            kind_cluster_name("single-no-istio", "alpha", &run),
            "mc-single-no-istio-alpha-runid0"
        );
    }

    #[test]
    fn long_names_are_truncated_unique_and_valid() {
        let run = RunId::parse("abc123").unwrap();
        let a = kind_cluster_name("multi-sidecar-name-differs-unset-and-longer", "alpha", &run);
        let b = kind_cluster_name("multi-sidecar-name-differs-unset-and-longex", "alpha", &run);
        assert!(a.len() <= MAX_KIND_NAME, "{a}");
        assert_ne!(a, b);
        assert!(a.ends_with("-alpha-abc123"), "{a}");
        assert!(crate::scenario::dns_label_problem(&a).is_none(), "{a}");
    }

    #[test]
    fn generated_run_ids_parse() {
        let id = RunId::generate();
        assert_eq!(RunId::parse(id.as_str()), Some(id));
        assert_eq!(RunId::parse("ABCDEF"), None);
    }
}
