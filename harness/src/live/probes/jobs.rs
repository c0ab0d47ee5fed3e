//! Jobs on a live cluster: a Job made from the backfill CronJob (or a copy of the
//! backfill Job), judged by its status conditions (`Complete`, `Failed`) and its
//! pod's container states. Under classic sidecars the pod never completes: the
//! proxy keeps running after the main container exits.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use super::kube_api::{self, api_error};
use crate::manifests::WorkloadRef;
use crate::provider::{CallObservation, Handshake, Hop, JobObservation, ProbeError};
use crate::roles::WebhookRole;

/// How a Job ended, from its status conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Condition `Complete` is True.
    Complete,
    /// Condition `Failed` is True, with its message.
    Failed(String),
    /// Neither yet.
    Running,
}

/// Reads a Job's end from its conditions.
pub fn job_end(job: &Job) -> JobEnd {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        if c.status == "True" && c.type_ == "Complete" {
            return JobEnd::Complete;
        }
        if c.status == "True" && c.type_ == "Failed" {
            return JobEnd::Failed(format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            ));
        }
    }
    JobEnd::Running
}

/// Reads `workload` (of the kind `K` stands for) from the API.
async fn read_workload<K>(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
) -> Result<K, ProbeError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.get(&workload.name)
        .await
        .map_err(|e| api_error(&format!("reading {workload}"), e))
}

/// A Job with the pod template of a CronJob's jobTemplate (what
/// `kubectl create job --from=cronjob/x` does) or of an existing Job (selector and
/// controller labels dropped so the API server assigns new ones).
pub async fn job_from(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    name: &str,
) -> Result<Job, ProbeError> {
    let spec: JobSpec = match workload.kind.as_str() {
        "CronJob" => {
            let cj: CronJob = read_workload(client, namespace, workload).await?;
            cj.spec
                .and_then(|s| s.job_template.spec)
                .ok_or_else(|| ProbeError(format!("{workload} has no jobTemplate.spec")))?
        }
        "Job" => {
            let job: Job = read_workload(client, namespace, workload).await?;
            let mut spec = job
                .spec
                .ok_or_else(|| ProbeError(format!("{workload} has no spec")))?;
            spec.selector = None;
            spec.manual_selector = None;
            if let Some(labels) = spec
                .template
                .metadata
                .as_mut()
                .and_then(|m| m.labels.as_mut())
            {
                labels.retain(|k, _| {
                    !k.contains("controller-uid")
                        && k != "job-name"
                        && !k.starts_with("batch.kubernetes.io/")
                });
            }
            spec
        }
        other => {
            return Err(ProbeError(format!(
                "{other}/{} is not a Job or CronJob",
                workload.name
            )));
        }
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some([(super::admission::PROBE_LABEL.to_string(), "job".to_string())].into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // One try: a retry would hide the first failure.
            backoff_limit: Some(0),
            ..spec
        }),
        status: None,
    })
}

/// Polls a Job until it completes, fails, or the time is up.
pub async fn wait_for_job(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(JobEnd, Job), ProbeError> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    loop {
        let job = api
            .get(name)
            .await
            .map_err(|e| api_error(&format!("reading Job {namespace}/{name}"), e))?;
        let end = job_end(&job);
        if end != JobEnd::Running || started.elapsed() >= timeout {
            return Ok((end, job));
        }
        tokio::time::sleep(Duration::from_millis(500).min(timeout)).await;
    }
}

async fn job_pods(client: &Client, namespace: &str, name: &str) -> Result<Vec<Pod>, ProbeError> {
    kube_api::pods(client, namespace, &format!("job-name={name}")).await
}

/// Creates Job `name` from `workload`, waits for its end (or the timeout) and
/// returns that end with the Job's pods.
async fn run_job(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    name: &str,
    timeout: Duration,
) -> Result<(JobEnd, Vec<Pod>), ProbeError> {
    let job = job_from(client, namespace, workload, name).await?;
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &job)
        .await
        .map_err(|e| api_error(&format!("creating Job {name}"), e))?;
    let (end, _) = wait_for_job(client, namespace, name, timeout).await?;
    let pods = job_pods(client, namespace, name).await?;
    Ok((end, pods))
}

/// JOB-COMPLETION: runs the backfill as a Job and reports whether its pod completed.
pub async fn run_to_completion(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    name: &str,
    timeout: Duration,
) -> Result<JobObservation, ProbeError> {
    let (end, pods) = run_job(client, namespace, workload, name, timeout).await?;
    Ok(job_observation(name, &end, &pods, timeout))
}

/// The observation from a Job's end and its pods.
pub fn job_observation(
    name: &str,
    end: &JobEnd,
    pods: &[Pod],
    timeout: Duration,
) -> JobObservation {
    let mut containers: Vec<String> = pods.iter().flat_map(kube_api::container_states).collect();
    match end {
        JobEnd::Running => {
            containers.push(format!("(Job still running after {}s)", timeout.as_secs()))
        }
        JobEnd::Failed(why) => containers.push(format!("(Job failed: {why})")),
        JobEnd::Complete => {}
    }
    JobObservation {
        job: format!("Job/{name}"),
        completed: *end == JobEnd::Complete,
        containers,
    }
}

/// BACKFILL-REACH: runs the backfill and reports the call as its pod saw it. The
/// pod's own exit and log are the evidence: a TLS or mTLS failure to the webhook
/// makes the backfill log it and exit non-zero.
pub async fn backfill_call(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    name: &str,
    webhook: Option<&WebhookRole>,
    timeout: Duration,
) -> Result<CallObservation, ProbeError> {
    let started = Instant::now();
    let (end, pods) = run_job(client, namespace, workload, name, timeout).await?;
    let mut log = String::new();
    for pod in &pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        for c in kube_api::container_names(pod)
            .into_iter()
            .filter(|c| !c.starts_with("istio-"))
        {
            if let Ok(text) = kube_api::logs(client, namespace, &pod_name, &c, None).await {
                log.push_str(&text);
            }
        }
    }
    let target = webhook.map_or("the webhook".to_string(), |w| {
        format!("https://{}:{}{}", w.fqdn(), w.service_port, w.path)
    });
    let main_exited_ok = pods
        .iter()
        .flat_map(kube_api::container_states)
        .any(|s| !s.starts_with("istio-") && s.contains("terminated (exit 0"));
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    let handshake = if end == JobEnd::Complete || main_exited_ok {
        Handshake::Verified {
            presented: Default::default(),
            presented_by: format!("{target} (the backfill finished its calls)"),
        }
    } else {
        Handshake::Failed {
            presented: None,
            presented_by: target.clone(),
            error: if last.is_empty() {
                format!(
                    "the backfill did not finish within {}s and logged nothing",
                    timeout.as_secs()
                )
            } else {
                last
            },
        }
    };
    Ok(CallObservation {
        hops: vec![Hop {
            component: format!("{workload} (Job {name})"),
            action: format!("POST {target}"),
        }],
        recorded: handshake.verified(),
        handshake,
        http_status: None,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    #[test]
    fn conditions_decide_the_end() {
        assert_eq!(
            job_end(&job(
                serde_json::json!([{"type": "Complete", "status": "True"}])
            )),
            JobEnd::Complete
        );
        assert_eq!(
            job_end(&job(
                serde_json::json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}])
            )),
            JobEnd::Failed("BackoffLimitExceeded: m".into())
        );
        assert_eq!(
            job_end(&job(
                serde_json::json!([{"type": "Complete", "status": "False"}])
            )),
            JobEnd::Running
        );
    }

    #[test]
    fn a_classic_sidecar_job_is_not_completed() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [
                {"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "istio-proxy", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}
            ]}
        }))
        .unwrap();
        let obs = job_observation(
            "backfill",
            &JobEnd::Running,
            &[pod],
            Duration::from_secs(60),
        );
        assert!(!obs.completed);
        assert!(
            obs.containers
                .contains(&"main: terminated (exit 0, Completed)".to_string()),
            "{:?}",
            obs.containers
        );
        assert!(obs.containers.contains(&"istio-proxy: running".to_string()));
    }
}
