//! Cluster steps for kind: create the clusters in parallel, then give them a network
//! Istio can use (pod routes for a flat mesh, MetalLB for east-west gateways).

use super::super::LiveOptions;
use super::super::command::Command;
use super::super::plan::{Capture, ClusterTarget, FileContent, Phase, Retry, Step, WORK};
use crate::error::Error;
use crate::scenario::{IstioMode, Scenario};

/// The kind configs, embedded so the binary runs from any directory:
/// `(file name, content)`.
pub const KIND_CONFIGS: [(&str, &str); 4] = [
    (
        "single.yaml",
        include_str!("../../../../kind-configs/single.yaml"),
    ),
    (
        "ambient.yaml",
        include_str!("../../../../kind-configs/ambient.yaml"),
    ),
    (
        "multi-a.yaml",
        include_str!("../../../../kind-configs/multi-a.yaml"),
    ),
    (
        "multi-b.yaml",
        include_str!("../../../../kind-configs/multi-b.yaml"),
    ),
];

/// Pod subnets of the multi configs, by cluster index (must match the files).
const MULTI_POD_SUBNETS: [&str; 2] = ["10.10.0.0/16", "10.20.0.0/16"];

/// The kind config for cluster `index` of a scenario: `(file name, content)`.
pub fn kind_config_for(scenario: &Scenario, index: usize) -> (&'static str, &'static str) {
    if scenario.clusters.len() > 1 {
        KIND_CONFIGS[2 + index.min(1)]
    } else if scenario
        .clusters
        .first()
        .is_some_and(|c| c.istio.mode == IstioMode::Ambient)
    {
        KIND_CONFIGS[1]
    } else {
        KIND_CONFIGS[0]
    }
}

/// True when the scenario's Istio clusters sit on more than one network.
pub fn multi_network(scenario: &Scenario) -> bool {
    let mut nets: Vec<Option<&str>> = scenario
        .clusters
        .iter()
        .filter(|c| c.has_istio())
        .map(|c| c.istio.network.as_deref())
        .collect();
    nets.sort();
    nets.dedup();
    nets.len() > 1
}

pub(super) fn kind_steps(
    scenario: &Scenario,
    clusters: &[ClusterTarget],
    options: &LiveOptions,
) -> Result<Vec<Step>, Error> {
    let mut create = Step::new(Phase::Clusters, "Create kind clusters");
    create.concurrent = true;
    create.retry = Retry { attempts: 3 };
    create.note = Some(
        "kind create is retried with backoff (image pulls and the API server's first start are flaky on CI runners); a failed attempt is deleted before the next".into(),
    );
    for (i, target) in clusters.iter().enumerate() {
        let name = kind_name(target)?;
        let (file, content) = kind_config_for(scenario, i);
        let path = format!("{WORK}/kind/{file}");
        if !create.files.iter().any(|f| f.path == path) {
            create = create.file(
                path.clone(),
                format!("kind-configs/{file}"),
                FileContent::Text(content.to_string()),
            );
        }
        create = create.command(
            Command::new("kind")
                .args(["create", "cluster", "--name", name, "--config", &path])
                .args([
                    "--image",
                    options.versions.kind_node_image.as_str(),
                    "--wait",
                    "120s",
                ]),
        );
        create
            .before_retry
            .push(Command::new("kind").args(["delete", "cluster", "--name", name]));
    }
    let mut steps = vec![create];
    let istio_multi = clusters.len() > 1 && scenario.clusters.iter().any(|c| c.has_istio());
    if istio_multi && !multi_network(scenario) {
        steps.extend(flat_network(clusters)?);
    }
    if multi_network(scenario) {
        steps.extend(metallb(clusters, options));
    }
    Ok(steps)
}

fn kind_name(target: &ClusterTarget) -> Result<&str, Error> {
    target.kind_name.as_deref().ok_or_else(|| Error::Provider {
        provider: "kind".into(),
        message: format!("cluster {} has no kind name", target.cluster),
    })
}

/// One network: every pod reaches every pod, as Istio's single-network
/// multi-primary model assumes. kind clusters share the Docker network but not pod
/// routes, so each node gets a route to the other cluster's pod subnet via that
/// cluster's node.
fn flat_network(clusters: &[ClusterTarget]) -> Result<Vec<Step>, Error> {
    let mut steps = Vec::new();
    for (i, target) in clusters.iter().enumerate() {
        let name = kind_name(target)?;
        let mut step = Step::new(Phase::Clusters, format!("Find the node IP of {name}"))
            .cluster(&target.cluster)
            .command(Command::new("docker").args([
                "inspect",
                "-f",
                "{{(index .NetworkSettings.Networks \"kind\").IPAddress}}",
                &format!("{name}-control-plane"),
            ]));
        step.capture = Some(Capture::Trimmed(format!("NODE_IP_{i}")));
        steps.push(step);
    }
    let mut routes = Step::new(
        Phase::Clusters,
        "Route pod subnets between the clusters (one flat network)",
    );
    for (i, target) in clusters.iter().enumerate() {
        let name = kind_name(target)?;
        for (j, _) in clusters.iter().enumerate().filter(|(j, _)| *j != i) {
            routes = routes.command(Command::new("docker").args([
                "exec",
                &format!("{name}-control-plane"),
                "ip",
                "route",
                "replace",
                MULTI_POD_SUBNETS[j.min(1)],
                "via",
                &format!("${{NODE_IP_{j}}}"),
            ]));
        }
    }
    steps.push(routes);
    Ok(steps)
}

/// LoadBalancer IPs for the east-west gateways: MetalLB with a small pool carved
/// from the top of the kind network, a distinct range per cluster.
fn metallb(clusters: &[ClusterTarget], options: &LiveOptions) -> Vec<Step> {
    let mut prefix = Step::new(
        Phase::Clusters,
        "Find the kind network's IPv4 prefix (for LoadBalancer IPs)",
    )
    .command(Command::new("docker").args([
        "network",
        "inspect",
        "kind",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ]));
    prefix.capture = Some(Capture::Ipv4Prefix16("KIND_NET".into()));
    let mut steps = vec![prefix];
    let manifest = format!(
        "https://raw.githubusercontent.com/metallb/metallb/{}/config/manifests/metallb-native.yaml",
        options.versions.metallb
    );
    for (i, target) in clusters.iter().enumerate() {
        let first = 200 + i * 25;
        let pool = format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: meshconform\n  namespace: metallb-system\nspec:\n  addresses:\n    - ${{KIND_NET}}.255.{first}-${{KIND_NET}}.255.{}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: meshconform\n  namespace: metallb-system\n",
            first + 24
        );
        steps.push(
            Step::new(Phase::Clusters, "Install MetalLB")
                .cluster(&target.cluster)
                .command(target.kubectl().args(["apply", "-f", manifest.as_str()]))
                .command(target.kubectl().args([
                    "wait",
                    "-n",
                    "metallb-system",
                    "--for=condition=Available",
                    "deployment/controller",
                    "--timeout=300s",
                ])),
        );
        let mut pool_step = Step::new(Phase::Clusters, "Give MetalLB an address pool")
            .cluster(&target.cluster)
            .command(target.kubectl().args(["apply", "-f", "-"]).stdin_text(pool));
        // MetalLB's own admission webhook answers a little after its Deployment is
        // Available.
        pool_step.retry = Retry { attempts: 5 };
        steps.push(pool_step);
    }
    steps
}

pub(super) fn kind_cleanup(clusters: &[ClusterTarget]) -> Vec<Step> {
    clusters
        .iter()
        .filter_map(|t| {
            let name = t.kind_name.as_deref()?;
            Some(
                Step::new(Phase::Clusters, format!("Delete kind cluster {name}"))
                    .cluster(&t.cluster)
                    .command(Command::new("kind").args(["delete", "cluster", "--name", name])),
            )
        })
        .collect()
}
