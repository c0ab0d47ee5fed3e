//! Agent steps: the agent's namespace (enrolled in the mesh), the scenario's
//! PeerAuthentication, the agent itself (reference manifests or a chart), and the
//! teardown that removes it between scenarios.

use super::super::command::Command;
use super::super::plan::{ClusterTarget, FileContent, Phase, Step, WORK};
use super::super::{AgentSource, LiveOptions};
use super::PROBE_NAMESPACE;
use crate::scenario::{Cluster, IstioMode, MtlsMode, Scenario};
use crate::subject::Rendered;

/// The namespace manifest, labelled for sidecar injection or ambient enrollment.
pub fn namespace_manifest(name: &str, mode: IstioMode) -> String {
    let label = match mode {
        IstioMode::None => String::new(),
        IstioMode::Sidecar => "  labels:\n    istio-injection: enabled\n".into(),
        IstioMode::Ambient => "  labels:\n    istio.io/dataplane-mode: ambient\n".into(),
    };
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n{label}")
}

/// The namespace-wide PeerAuthentication for the scenario's mTLS mode.
pub fn peer_authentication(namespace: &str, mode: MtlsMode) -> String {
    let mode = match mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
        MtlsMode::Disable => "DISABLE",
    };
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: {namespace}\nspec:\n  mtls:\n    mode: {mode}\n"
    )
}

pub(super) fn steps(
    scenario: &Scenario,
    rendered: &Rendered,
    targets: &[ClusterTarget],
    options: &LiveOptions,
    existing: bool,
) -> Vec<Step> {
    let ns = rendered.namespace.as_str();
    let mut steps = Vec::new();
    for (cluster, target) in scenario.clusters.iter().zip(targets) {
        // One step per namespace and policy, so the existing provider can check each
        // and remove only those it created.
        for (name, mode) in [(ns, cluster.istio.mode), (PROBE_NAMESPACE, IstioMode::None)] {
            let mut step = Step::new(Phase::Agent, format!("Create namespace {name}"))
                .cluster(&target.cluster)
                .command(
                    target
                        .kubectl()
                        .args(["apply", "-f", "-"])
                        .stdin_text(namespace_manifest(name, mode)),
                );
            step.undo = vec![target.kubectl().args([
                "delete",
                "namespace",
                name,
                "--ignore-not-found",
                "--wait",
            ])];
            steps.push(step);
        }
        if cluster.has_istio() {
            let mut step = Step::new(
                Phase::Agent,
                format!("Apply PeerAuthentication default in {ns}"),
            )
            .cluster(&target.cluster)
            .command(
                target
                    .kubectl()
                    .args(["apply", "-f", "-"])
                    .stdin_text(peer_authentication(ns, cluster.istio.mtls)),
            );
            step.undo = vec![target.kubectl().args([
                "delete",
                "peerauthentication.security.istio.io",
                "default",
                "-n",
                ns,
                "--ignore-not-found",
            ])];
            steps.push(step);
        }
        let mut install = install_agent(cluster, rendered, target, options);
        if existing {
            install.refuse_if = Some(already_installed(rendered, target, options));
        }
        steps.push(install);
    }
    steps
}

/// A command that succeeds when the agent is already installed in the cluster: a
/// run must neither overwrite nor delete an install it did not make.
fn already_installed(
    rendered: &Rendered,
    target: &ClusterTarget,
    options: &LiveOptions,
) -> (Command, String) {
    let ns = rendered.namespace.as_str();
    let release = rendered.release.as_str();
    let check = match &options.agent {
        AgentSource::Chart { .. } => target.helm().args(["status", release, "-n", ns]),
        AgentSource::Reference => {
            let webhook = rendered
                .install(&target.cluster)
                .and_then(|i| i.result.as_ref().ok())
                .and_then(|i| i.roles.webhook.as_ref().map(|w| w.configuration.clone()))
                .unwrap_or_else(|| format!("{release}-cz-webhook"));
            target
                .kubectl()
                .args(["get", "validatingwebhookconfiguration", webhook.as_str()])
        }
    };
    (
        check,
        format!(
            "the agent (release {release}) is already installed in context {}: meshconform neither overwrites nor deletes an install it did not make; uninstall it or pick another --release/--namespace",
            target.context
        ),
    )
}

fn install_agent(
    cluster: &Cluster,
    rendered: &Rendered,
    target: &ClusterTarget,
    options: &LiveOptions,
) -> Step {
    let ns = rendered.namespace.as_str();
    let release = rendered.release.as_str();
    match &options.agent {
        AgentSource::Reference => {
            let step = Step::new(Phase::Agent, "Install the agent (reference install)")
                .cluster(&target.cluster);
            match rendered.install(&cluster.name).map(|i| &i.result) {
                Some(Ok(installed)) => {
                    let yaml = installed.manifests.to_yaml();
                    let mut step = step
                        // `-n`: objects without a namespace land in the agent's, not `default`.
                        .command(
                            target
                                .kubectl()
                                .args(["apply", "--server-side", "-n", ns, "-f", "-"])
                                .stdin_text(yaml.clone()),
                        )
                        .command(wait_agent(target, ns));
                    step.undo = vec![delete_manifests(target, ns, yaml)];
                    step
                }
                Some(Err(refusal)) => step.note(format!(
                    "nothing to install: the subject refused this cluster ({})",
                    refusal.message
                )),
                None => step.note("nothing to install: no install was rendered for this cluster"),
            }
        }
        AgentSource::Chart {
            chart,
            repo,
            version,
            values_files,
            sets,
        } => {
            let values_path = format!("{WORK}/values/{}.json", target.cluster);
            let values =
                serde_json::to_string_pretty(&cluster.values).unwrap_or_else(|_| "{}".into());
            let mut helm =
                target
                    .helm()
                    .args(["upgrade", "--install", release, chart.as_str(), "-n", ns]);
            if let Some(repo) = repo {
                helm = helm.args(["--repo", repo.as_str()]);
            }
            if let Some(version) = version {
                helm = helm.args(["--version", version.as_str()]);
            }
            helm = helm.args(["-f", values_path.as_str()]);
            for f in values_files {
                helm = helm.args(["-f".to_string(), f.display().to_string()]);
            }
            for s in sets {
                helm = helm.args(["--set", s.as_str()]);
            }
            helm = helm.args(["--wait", "--timeout", "10m"]);
            let mut step = Step::new(Phase::Agent, format!("Install the agent (chart {chart})"))
                .cluster(&target.cluster)
                .file(
                    values_path,
                    "the scenario's values for this cluster",
                    FileContent::Text(values),
                )
                .command(helm)
                .command(wait_agent(target, ns));
            step.undo = vec![
                target
                    .helm()
                    .args(["uninstall", release, "-n", ns, "--wait"]),
            ];
            step
        }
    }
}

/// Deletes the objects of the reference manifests `yaml` (read from stdin) and waits
/// for them to go; objects without a namespace are looked up in `ns`.
fn delete_manifests(target: &ClusterTarget, ns: &str, yaml: String) -> Command {
    target
        .kubectl()
        .args([
            "delete",
            "-n",
            ns,
            "--ignore-not-found",
            "--wait",
            "-f",
            "-",
        ])
        .stdin_text(yaml)
}

fn wait_agent(target: &ClusterTarget, ns: &str) -> Command {
    target.kubectl().args([
        "wait",
        "-n",
        ns,
        "--for=condition=Available",
        "deployment",
        "--all",
        "--timeout=300s",
    ])
}

/// Between scenarios sharing clusters: the agent goes, with its namespaces (the
/// cluster-scoped webhook configuration goes with the manifest or the release).
pub(super) fn teardown(
    rendered: &Rendered,
    targets: &[ClusterTarget],
    options: &LiveOptions,
) -> Vec<Step> {
    let ns = rendered.namespace.as_str();
    targets
        .iter()
        .map(|target| {
            let mut step = Step::new(Phase::Agent, "Remove the agent").cluster(&target.cluster);
            match &options.agent {
                AgentSource::Reference => {
                    if let Some(Ok(installed)) =
                        rendered.install(&target.cluster).map(|i| &i.result)
                    {
                        step = step.command(delete_manifests(
                            target,
                            ns,
                            installed.manifests.to_yaml(),
                        ));
                    }
                }
                AgentSource::Chart { .. } => {
                    step = step.command(target.helm().args([
                        "uninstall",
                        rendered.release.as_str(),
                        "-n",
                        ns,
                        "--ignore-not-found",
                        "--wait",
                    ]));
                }
            }
            step.command(target.kubectl().args([
                "delete",
                "namespace",
                ns,
                PROBE_NAMESPACE,
                "--ignore-not-found",
                "--wait",
            ]))
        })
        .collect()
}
