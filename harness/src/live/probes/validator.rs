//! VALIDATOR on a live cluster: the validator container's state and log, read from
//! the pods of the workload it runs in; plus, where the pod has a sidecar, the
//! CLUSTER_ID Envoy reports (`/server_info`), so the evidence shows both sides.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::ClusterProbe;
use super::envoy;
use super::kube_api::{self, api_error};
use crate::manifests::WorkloadRef;
use crate::provider::{ProbeError, ValidatorObservation, ValidatorVerdict};

/// The pod label selector of a workload, read from the cluster.
pub async fn workload_selector(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
) -> Result<String, ProbeError> {
    let what = format!("reading {workload}");
    let labels: Option<BTreeMap<String, String>> = match workload.kind.as_str() {
        "Deployment" => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(&workload.name)
            .await
            .map_err(|e| api_error(&what, e))?
            .spec
            .and_then(|s| s.selector.match_labels),
        "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get(&workload.name)
            .await
            .map_err(|e| api_error(&what, e))?
            .spec
            .and_then(|s| s.selector.match_labels),
        "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get(&workload.name)
            .await
            .map_err(|e| api_error(&what, e))?
            .spec
            .and_then(|s| s.selector.match_labels),
        other => {
            return Err(ProbeError(format!(
                "the validator runs in a {other}; only Deployments, DaemonSets and StatefulSets are probed"
            )));
        }
    };
    labels
        .map(|l| kube_api::selector(&l))
        .ok_or_else(|| ProbeError(format!("{workload} has no matchLabels selector")))
}

/// The verdict from the validator container's exit code and log.
///
/// Exit 0: it found the configuration correct. Non-zero: it reported a
/// misconfiguration, unless its log says it could not reach what it checks (Envoy's
/// admin port before a classic sidecar started), which is an error, not a verdict.
pub fn verdict(exit_code: Option<i32>, running: bool, log: &[String]) -> ValidatorVerdict {
    let last = log
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_default();
    let unreachable = log.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        (l.contains("15000") || l.contains("admin"))
            && (l.contains("refused") || l.contains("unreachable") || l.contains("timeout"))
    });
    match (exit_code, running) {
        (Some(0), _) => ValidatorVerdict::Ok,
        (Some(code), _) if unreachable => ValidatorVerdict::Errored(format!("exit {code}: {last}")),
        (Some(code), _) => ValidatorVerdict::Reported(format!("exit {code}: {last}")),
        (None, true) => ValidatorVerdict::Ok,
        (None, false) => {
            ValidatorVerdict::Errored(format!("the validator has not run yet: {last}"))
        }
    }
}

fn validator_exit(pod: &Pod, container: &str, init: bool) -> (Option<i32>, bool) {
    let Some(status) = &pod.status else {
        return (None, false);
    };
    let statuses = if init {
        &status.init_container_statuses
    } else {
        &status.container_statuses
    };
    let Some(s) = statuses.iter().flatten().find(|s| s.name == container) else {
        return (None, false);
    };
    let terminated = s
        .state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .or(s.last_state.as_ref().and_then(|st| st.terminated.as_ref()));
    let running = s.state.as_ref().is_some_and(|st| st.running.is_some());
    (terminated.map(|t| t.exit_code), running)
}

/// Observes the validator of one cluster.
pub async fn observe(c: &ClusterProbe) -> Result<ValidatorObservation, ProbeError> {
    let Some(role) = &c.roles.validator else {
        return Ok(ValidatorObservation {
            ran: false,
            verdict: ValidatorVerdict::Errored("the manifests have no validator container".into()),
            log: Vec::new(),
        });
    };
    let selector = workload_selector(&c.client, &c.namespace, &role.workload).await?;
    let pods = kube_api::pods(&c.client, &c.namespace, &selector).await?;
    let pod = pods
        .first()
        .ok_or_else(|| ProbeError(format!("no pod of {} is running", role.workload)))?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let text = kube_api::logs(&c.client, &c.namespace, &pod_name, &role.container, None)
        .await
        .unwrap_or_default();
    let mut log: Vec<String> = text.lines().map(str::to_string).collect();
    let (exit, running) = validator_exit(pod, &role.container, role.init);
    if kube_api::container_names(pod)
        .iter()
        .any(|n| n == "istio-proxy")
    {
        match envoy::admin_get(&c.client, &c.namespace, &pod_name, "/server_info").await {
            Ok(info) => log.push(format!(
                "[meshconform] Envoy /server_info of {pod_name}: CLUSTER_ID={}",
                envoy::cluster_id(&info).unwrap_or_else(|| "(absent)".into())
            )),
            Err(e) => log.push(format!(
                "[meshconform] Envoy /server_info of {pod_name} unreadable: {e}"
            )),
        }
    }
    let verdict = verdict(exit, running, &log);
    Ok(ValidatorObservation {
        ran: exit.is_some() || running,
        verdict,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_logs_make_the_verdict() {
        assert_eq!(verdict(Some(0), false, &[]), ValidatorVerdict::Ok);
        let mismatch = vec!["cluster ID mismatch: chart says beta, Envoy says alpha".to_string()];
        assert!(
            matches!(verdict(Some(1), false, &mismatch), ValidatorVerdict::Reported(m) if m.contains("mismatch"))
        );
        let refused =
            vec!["GET http://localhost:15000/server_info: connection refused".to_string()];
        assert!(matches!(
            verdict(Some(1), false, &refused),
            ValidatorVerdict::Errored(_)
        ));
        assert!(matches!(
            verdict(None, false, &[]),
            ValidatorVerdict::Errored(_)
        ));
    }
}
