//! The k3s provider (cargo feature `k3s`): one k3s container started with
//! testcontainers, then the same mesh and agent steps as the other live providers,
//! addressed through the container's kubeconfig. Single-cluster scenarios only: one
//! container is one cluster, and a multi-cluster mesh needs networking between
//! clusters that the kind provider builds.

use std::path::Path;
use std::sync::Arc;

use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::ImageExt;
use testcontainers_modules::testcontainers::runners::SyncRunner;

use super::build::k3s_refusal;
use super::cancel::CancelToken;
use super::command::{CommandRunner, SystemRunner};
use super::doctor::{self, DoctorEnv};
use super::lifecycle::{self, Context, Guard};
use super::plan::render_plan;
use super::probes::{KubeProbes, ProbeFactory};
use super::{LiveOptions, ProviderKind};
use crate::error::Error;
use crate::provider::{Provider, RunningMesh};
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// One k3s container per scenario.
pub struct K3sProvider {
    runner: Arc<dyn CommandRunner>,
    options: LiveOptions,
    cancel: CancelToken,
    probes: Arc<dyn ProbeFactory>,
    doctor_env: DoctorEnv,
}

impl K3sProvider {
    /// A provider running real commands, probing with kube-rs.
    pub fn new(options: LiveOptions) -> Self {
        let pinned_istio = options.versions.istio.clone();
        Self {
            runner: Arc::new(SystemRunner::default()),
            options: LiveOptions {
                reuse_clusters: false,
                ..options
            },
            cancel: CancelToken::new(),
            probes: Arc::new(KubeProbes),
            doctor_env: DoctorEnv {
                pinned_istio: Some(pinned_istio.clone()),
                ..DoctorEnv::default()
            },
        }
    }

    /// The token that cancels this provider's work.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
}

/// Points a k3s kubeconfig at the host port Docker mapped the API server to.
pub fn rewrite_server(kubeconfig: &str, host_port: u16) -> String {
    kubeconfig
        .lines()
        .map(|line| match line.trim_start().strip_prefix("server: ") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}server: https://127.0.0.1:{host_port}")
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn start_k3s(work: &Path, cluster: &str, image: &str) -> Result<Option<Guard>, Error> {
    let fail = |message: String| Error::Provider {
        provider: "k3s".into(),
        message,
    };
    let tag = image
        .rsplit_once(':')
        .map(|(_, t)| t)
        .unwrap_or("latest")
        .to_string();
    let conf = work.join("k3s-conf");
    std::fs::create_dir_all(&conf).map_err(|e| Error::io(&conf, e))?;
    let container = K3s::default()
        .with_conf_mount(&conf)
        .with_tag(tag)
        .with_privileged(true)
        .with_userns_mode("host")
        .start()
        .map_err(|e| fail(format!("cannot start the k3s container: {e}")))?;
    let port = container
        .get_host_port_ipv4(KUBE_SECURE_PORT)
        .map_err(|e| fail(format!("k3s API port not mapped: {e}")))?;
    let raw = container
        .image()
        .read_kube_config()
        .map_err(|e| fail(format!("cannot read the k3s kubeconfig: {e}")))?;
    let path = work.join("k3s").join(format!("{cluster}.kubeconfig"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(&path, rewrite_server(&raw, port)).map_err(|e| Error::io(&path, e))?;
    Ok(Some(Box::new(container)))
}

impl Provider for K3sProvider {
    fn name(&self) -> &'static str {
        "k3s"
    }

    fn up(&self, scenario: &Scenario, rendered: &Rendered) -> Result<Box<dyn RunningMesh>, Error> {
        if scenario.clusters.len() != 1 {
            return Err(k3s_refusal(scenario));
        }
        let report = doctor::run(
            Some(&ProviderKind::K3s),
            self.runner.as_ref(),
            &self.doctor_env,
        );
        if let Some(e) = report.into_error("k3s") {
            return Err(e);
        }
        let plan = render_plan(scenario, rendered, &ProviderKind::K3s, &self.options)?;
        let cluster = scenario.clusters[0].name.clone();
        let image = self.options.versions.k3s_image.clone();
        let ctx = Context {
            provider: "k3s",
            runner: Arc::clone(&self.runner),
            options: self.options.clone(),
            cancel: self.cancel.clone(),
            probes: Arc::clone(&self.probes),
            pool: None,
        };
        lifecycle::up_with(&ctx, scenario, rendered, plan, None, &|work| {
            start_k3s(work, &cluster, &image)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_points_at_the_mapped_port() {
        let raw = "clusters:\n- cluster:\n    certificate-authority-data: x\n    server: https://127.0.0.1:6443\n  name: default\n";
        let out = rewrite_server(raw, 32768);
        assert!(out.contains("    server: https://127.0.0.1:32768"), "{out}");
        assert!(!out.contains("6443"));
    }
}
