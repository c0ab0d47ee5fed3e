//! Small kube-rs helpers the probes share: errors a person can act on, pods behind
//! a selector, logs, and polling a log for a marker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

use crate::provider::ProbeError;

/// A kube error as a probe error: the API's code, reason and message when the API
/// answered (403 RBAC, 404 missing object, 500 webhook failure), else the transport
/// error.
pub fn api_error(what: &str, e: kube::Error) -> ProbeError {
    match e {
        kube::Error::Api(status) => ProbeError(format!(
            "{what}: the API server answered {} {}: {}",
            status.code, status.reason, status.message
        )),
        other => ProbeError(format!("{what}: {other}")),
    }
}

/// A label selector string from a map (`a=b,c=d`).
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Pods matching a selector.
pub async fn pods(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Pod>, ProbeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .map_err(|e| api_error(&format!("listing pods {selector} in {namespace}"), e))
}

/// Every container and init container name of a pod.
pub fn container_names(pod: &Pod) -> Vec<String> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .collect()
}

/// The log of one container.
pub async fn logs(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    since_seconds: Option<i64>,
) -> Result<String, ProbeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some(container.to_string()),
        since_seconds,
        ..Default::default()
    };
    api.logs(pod, &params).await.map_err(|e| {
        api_error(
            &format!("reading the log of {namespace}/{pod} container {container}"),
            e,
        )
    })
}

/// Every line of every container log of the pods behind `selector` (one string
/// per pod/container), skipping containers whose logs cannot be read.
pub async fn all_logs(
    client: &Client,
    namespace: &str,
    selector: &str,
    since_seconds: Option<i64>,
) -> Result<Vec<(String, String)>, ProbeError> {
    let mut out = Vec::new();
    for pod in pods(client, namespace, selector).await? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for c in container_names(&pod) {
            if let Ok(text) = logs(client, namespace, &name, &c, since_seconds).await {
                out.push((format!("{name}/{c}"), text));
            }
        }
    }
    Ok(out)
}

/// Polls the logs of the pods behind `selector` until a line contains `needle`, or
/// the time is up. Returns `(pod/container, line)`.
pub async fn wait_for_log_line(
    client: &Client,
    namespace: &str,
    selector: &str,
    needle: &str,
    since_seconds: Option<i64>,
    timeout: Duration,
) -> Result<Option<(String, String)>, ProbeError> {
    let started = Instant::now();
    loop {
        for (source, text) in all_logs(client, namespace, selector, since_seconds).await? {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Ok(Some((source, line.to_string())));
            }
        }
        if started.elapsed() >= timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500).min(timeout)).await;
    }
}

/// Container states of a pod, one line each (`istio-proxy: running`,
/// `main: terminated (exit 0, Completed)`).
pub fn container_states(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return vec!["(no status yet)".into()];
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|s| (s, true))
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .map(|s| (s, false)),
        )
        .map(|(s, init)| {
            let state = match &s.state {
                Some(st) if st.running.is_some() => "running".to_string(),
                Some(st) if st.terminated.is_some() => {
                    let t = st
                        .terminated
                        .as_ref()
                        .map(|t| (t.exit_code, t.reason.clone().unwrap_or_default()));
                    match t {
                        Some((code, reason)) => format!("terminated (exit {code}, {reason})"),
                        None => "terminated".into(),
                    }
                }
                Some(st) => match st.waiting.as_ref().and_then(|w| w.reason.clone()) {
                    Some(reason) => format!("waiting ({reason})"),
                    None => "waiting".into(),
                },
                None => "unknown".into(),
            };
            format!("{}{}: {state}", s.name, if init { " (init)" } else { "" })
        })
        .collect()
}
