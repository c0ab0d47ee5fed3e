//! Artifacts of a failed scenario, one folder per scenario and cluster: pods, events,
//! webhook configurations, pod logs (current and `--previous`), Envoy config_dump
//! and clusters of every sidecar, istiod and ztunnel logs. Collection is best
//! effort: a command that fails leaves its error in the file instead of its output.

use std::path::{Path, PathBuf};

use super::command::{Command, CommandRunner, run_pipeline};
use super::plan::ClusterTarget;
use crate::error::Error;

/// The folder of one scenario's artifacts.
pub fn scenario_dir(root: &Path, scenario: &str) -> PathBuf {
    root.join(scenario)
}

/// A pod and its container names, as listed by [`pod_list_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainers {
    /// Pod name.
    pub pod: String,
    /// Every container and init container name.
    pub containers: Vec<String>,
}

/// Lists pods with their containers, one pod per line.
pub fn pod_list_command(target: &ClusterTarget, namespace: &str) -> Command {
    target.kubectl().args([
        "get",
        "pods",
        "-n",
        namespace,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\" \"}{.spec.containers[*].name}{\" \"}{.spec.initContainers[*].name}{\"\\n\"}{end}",
    ])
}

/// Parses [`pod_list_command`]'s output.
pub fn parse_pod_list(stdout: &str) -> Vec<PodContainers> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let pod = words.next()?.to_string();
            Some(PodContainers {
                pod,
                containers: words.map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The fixed (pod-independent) artifact commands of one cluster: `(file, command)`.
pub fn cluster_commands(target: &ClusterTarget) -> Vec<(String, Command)> {
    vec![
        ("pods.txt".into(), target.kubectl().args(["get", "pods", "-A", "-o", "wide"])),
        (
            "events.txt".into(),
            target.kubectl().args(["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        ),
        (
            "webhook-configurations.yaml".into(),
            target.kubectl().args([
                "get",
                "validatingwebhookconfigurations,mutatingwebhookconfigurations",
                "-o",
                "yaml",
            ]),
        ),
        (
            "istio-config.yaml".into(),
            target.kubectl().args([
                "get",
                "peerauthentications.security.istio.io,destinationrules.networking.istio.io,virtualservices.networking.istio.io",
                "-A",
                "-o",
                "yaml",
            ]),
        ),
        (
            "istiod.log".into(),
            target.kubectl().args(["logs", "-n", "istio-system", "-l", "app=istiod", "--all-containers", "--prefix", "--tail=-1"]),
        ),
        (
            "ztunnel.log".into(),
            target.kubectl().args(["logs", "-n", "istio-system", "-l", "app=ztunnel", "--all-containers", "--prefix", "--tail=-1"]),
        ),
    ]
}

/// The per-pod artifact commands: logs (current and previous) of every container,
/// and Envoy's config_dump and clusters where the pod has a sidecar.
pub fn pod_commands(
    target: &ClusterTarget,
    namespace: &str,
    pod: &PodContainers,
) -> Vec<(String, Command)> {
    let mut out = Vec::new();
    for c in &pod.containers {
        let logs =
            target
                .kubectl()
                .args(["logs", "-n", namespace, pod.pod.as_str(), "-c", c.as_str()]);
        out.push((format!("logs/{}.{c}.log", pod.pod), logs.clone()));
        out.push((
            format!("logs/{}.{c}.previous.log", pod.pod),
            logs.arg("--previous"),
        ));
    }
    if pod.containers.iter().any(|c| c == "istio-proxy") {
        for what in ["config_dump", "clusters"] {
            out.push((
                format!(
                    "envoy/{}.{what}.{}",
                    pod.pod,
                    if what == "config_dump" { "json" } else { "txt" }
                ),
                target.kubectl().args([
                    "exec",
                    "-n",
                    namespace,
                    pod.pod.as_str(),
                    "-c",
                    "istio-proxy",
                    "--",
                    "pilot-agent",
                    "request",
                    "GET",
                    what,
                ]),
            ));
        }
    }
    out
}

/// Collects every artifact of the scenario into `<root>/<scenario>/<cluster>/` and
/// returns the scenario folder.
pub fn collect(
    runner: &dyn CommandRunner,
    root: &Path,
    scenario: &str,
    targets: &[ClusterTarget],
    namespaces: &[&str],
    reason: &str,
) -> Result<PathBuf, Error> {
    let dir = scenario_dir(root, scenario);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    write(&dir.join("REASON.txt"), &format!("{reason}\n"))?;
    for target in targets {
        let cdir = dir.join(&target.cluster);
        for (file, cmd) in cluster_commands(target) {
            capture(runner, &cdir.join(file), &cmd)?;
        }
        for ns in namespaces {
            let listed = run_pipeline(runner, &pod_list_command(target, ns));
            let pods = match listed {
                Ok(o) if o.success() => parse_pod_list(&o.stdout),
                _ => Vec::new(),
            };
            for pod in &pods {
                for (file, cmd) in pod_commands(target, ns, pod) {
                    capture(runner, &cdir.join(ns).join(file), &cmd)?;
                }
            }
        }
    }
    Ok(dir)
}

fn capture(runner: &dyn CommandRunner, path: &Path, cmd: &Command) -> Result<(), Error> {
    let text = match run_pipeline(runner, cmd) {
        Ok(o) if o.success() => o.stdout,
        Ok(o) => format!(
            "# `{cmd}` exited with {:?}\n{}{}",
            o.code, o.stdout, o.stderr
        ),
        Err(e) => format!("# `{cmd}` could not run: {e}\n"),
    };
    write(path, &text)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ClusterTarget {
        ClusterTarget {
            cluster: "alpha".into(),
            istio_cluster_id: "alpha".into(),
            context: "kind-x".into(),
            kubeconfig: None,
            kind_name: Some("x".into()),
        }
    }

    #[test]
    fn sidecar_pods_get_envoy_dumps_and_previous_logs() {
        let pods = parse_pod_list("web-1 server istio-proxy istio-validate\njob-2 main\n");
        assert_eq!(pods.len(), 2);
        let files: Vec<String> = pod_commands(&target(), "cza", &pods[0])
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert!(files.contains(&"logs/web-1.server.previous.log".to_string()));
        assert!(files.contains(&"envoy/web-1.config_dump.json".to_string()));
        let files: Vec<String> = pod_commands(&target(), "cza", &pods[1])
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert!(!files.iter().any(|f| f.starts_with("envoy/")), "{files:?}");
    }
}
