//! Builds a [`Plan`] from a scenario: clusters, mesh, agent, teardown, cleanup.

mod agent;
mod clusters;
mod faults;
mod mesh;

pub use clusters::{KIND_CONFIGS, kind_config_for};

use super::names::{kind_cluster_name, topology_key};
use super::plan::{ClusterTarget, Plan};
use super::{LiveOptions, ProviderKind};
use crate::error::Error;
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// Namespace of the probe objects (admission probes): outside the mesh, like a
/// user's `kubectl apply`.
pub const PROBE_NAMESPACE: &str = "meshconform-probe";
/// Istio's mesh ID for every live mesh.
pub const MESH_ID: &str = "meshconform";

/// Builds the plan (see [`super::plan::render_plan`]).
pub fn plan(
    scenario: &Scenario,
    rendered: &Rendered,
    provider: &ProviderKind,
    options: &LiveOptions,
) -> Result<Plan, Error> {
    // kind-configs/ holds configs (distinct pod and service subnets, MetalLB pools)
    // for two clusters; a third would silently overlap the second.
    if *provider == ProviderKind::Kind && scenario.clusters.len() > 2 {
        return Err(Error::Provider {
            provider: "kind".into(),
            message: format!(
                "scenario {} has {} clusters; the kind provider supports one or two \
                 (kind-configs/ has subnets for two). Run it on the twin, or on clusters \
                 you made with --provider existing",
                scenario.name,
                scenario.clusters.len()
            ),
        });
    }
    let clusters = targets(scenario, provider, options)?;
    let mut steps = Vec::new();
    if *provider == ProviderKind::Kind {
        steps.extend(clusters::kind_steps(scenario, &clusters, options)?);
    }
    steps.extend(mesh::steps(scenario, &clusters, provider, options));
    let existing = matches!(provider, ProviderKind::Existing(_));
    steps.extend(agent::steps(
        scenario, rendered, &clusters, options, existing,
    ));
    steps.extend(faults::steps(
        scenario, rendered, &clusters, provider, options,
    )?);
    if existing {
        for step in &mut steps {
            mesh::guard_for_existing(step);
        }
    }
    // Only kind pools clusters between scenarios; the others undo what they did.
    let teardown = match provider {
        ProviderKind::Kind => agent::teardown(rendered, &clusters, options),
        _ => Vec::new(),
    };
    let cleanup = match provider {
        ProviderKind::Kind => clusters::kind_cleanup(&clusters),
        _ => Vec::new(),
    };
    Ok(Plan {
        scenario: scenario.name.clone(),
        provider: provider.name().to_string(),
        run_id: options.run_id.to_string(),
        topology_key: topology_key(scenario, &options.versions),
        clusters,
        steps,
        teardown,
        cleanup,
    })
}

fn targets(
    scenario: &Scenario,
    provider: &ProviderKind,
    options: &LiveOptions,
) -> Result<Vec<ClusterTarget>, Error> {
    match provider {
        ProviderKind::Kind => {
            if scenario.clusters.len() > KIND_CONFIGS.len() - 2 {
                return Err(Error::Provider {
                    provider: "kind".into(),
                    message: format!(
                        "scenario {} has {} clusters; the kind provider builds at most 2 (kind-configs/multi-a.yaml and multi-b.yaml)",
                        scenario.name,
                        scenario.clusters.len()
                    ),
                });
            }
            Ok(scenario
                .clusters
                .iter()
                .map(|c| {
                    let name = kind_cluster_name(&scenario.name, &c.name, &options.run_id);
                    ClusterTarget {
                        cluster: c.name.clone(),
                        istio_cluster_id: c.istio_cluster_id.clone(),
                        context: format!("kind-{name}"),
                        kubeconfig: None,
                        kind_name: Some(name),
                    }
                })
                .collect())
        }
        ProviderKind::Existing(map) => {
            let missing: Vec<&str> = scenario
                .clusters
                .iter()
                .filter(|c| !map.0.contains_key(&c.name))
                .map(|c| c.name.as_str())
                .collect();
            if !missing.is_empty() {
                let example: Vec<String> = missing
                    .iter()
                    .map(|c| format!("--context {c}=<kube-context>"))
                    .collect();
                return Err(Error::Usage(format!(
                    "scenario {} needs a kubeconfig context for cluster(s) {}; pass {}",
                    scenario.name,
                    missing.join(", "),
                    example.join(" ")
                )));
            }
            Ok(scenario
                .clusters
                .iter()
                .map(|c| ClusterTarget {
                    cluster: c.name.clone(),
                    istio_cluster_id: c.istio_cluster_id.clone(),
                    context: map.0.get(&c.name).cloned().unwrap_or_default(),
                    kubeconfig: None,
                    kind_name: None,
                })
                .collect())
        }
        ProviderKind::K3s => {
            if scenario.clusters.len() != 1 {
                return Err(k3s_refusal(scenario));
            }
            Ok(scenario
                .clusters
                .iter()
                .map(|c| ClusterTarget {
                    cluster: c.name.clone(),
                    istio_cluster_id: c.istio_cluster_id.clone(),
                    context: "default".into(),
                    kubeconfig: Some(format!("{}/k3s/{}.kubeconfig", super::plan::WORK, c.name)),
                    kind_name: None,
                })
                .collect())
        }
    }
}

/// The k3s provider's refusal of a multi-cluster scenario.
pub fn k3s_refusal(scenario: &Scenario) -> Error {
    Error::Provider {
        provider: "k3s".into(),
        message: format!(
            "scenario {} has {} clusters; the k3s provider runs one k3s container and supports single-cluster scenarios only: use --provider kind for multi-cluster scenarios",
            scenario.name,
            scenario.clusters.len()
        ),
    }
}
