//! WEBHOOK-REACH on a live cluster: create a labelled Pod in the probe namespace
//! (outside the mesh, as a user's `kubectl apply` is), then look for its name in the
//! webhook's log. When the webhook never logs it, the API server's log says why
//! (`failed calling webhook ...: tls: ...`, `context deadline exceeded`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

use super::kube_api::{self, api_error};
use crate::provider::{
    AdmissionObservation, CallObservation, CertSummary, Handshake, Hop, ProbeError,
};
use crate::roles::WebhookRole;

/// Label on every probe object, so leftovers are easy to find and delete.
pub const PROBE_LABEL: &str = "meshconform.io/probe";

/// One admission probe.
pub struct AdmissionProbe<'a> {
    /// The scenario cluster.
    pub cluster: &'a str,
    /// Namespace the probe Pod is created in.
    pub probe_namespace: &'a str,
    /// The webhook as found in the manifests.
    pub webhook: &'a WebhookRole,
    /// The probe Pod's name (unique per probe).
    pub object: &'a str,
    /// How long to wait for the webhook's log to name the Pod.
    pub wait: Duration,
}

/// The probe Pod: pause, never scheduled anywhere interesting, labelled.
pub fn probe_pod(name: &str, namespace: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                PROBE_LABEL.to_string(),
                "admission".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "pause".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `failurePolicy` and `timeoutSeconds` of the configuration's webhook that calls
/// `service`, as the cluster has them (not as the manifest said).
pub fn policy_of(config: &ValidatingWebhookConfiguration, service: &str) -> (String, u64) {
    let hook = config.webhooks.iter().flatten().find(|w| {
        w.client_config
            .service
            .as_ref()
            .is_some_and(|s| s.name == service)
    });
    let policy = hook
        .and_then(|w| w.failure_policy.clone())
        .unwrap_or_else(|| "Fail".into());
    // Kubernetes' default timeout is 10 seconds.
    let timeout = hook.and_then(|w| w.timeout_seconds).unwrap_or(10);
    (policy, u64::try_from(timeout).unwrap_or(10) * 1000)
}

/// Whether an API server log line is about a call to this webhook that failed.
pub fn is_webhook_failure(line: &str, configuration: &str, service: &str) -> bool {
    line.contains("failed calling webhook")
        && (line.contains(configuration) || line.contains(service))
}

/// True when a failure line says the call ran out of time.
/// (`?timeout=1s` in the webhook URL is not one: every call carries it.)
pub fn is_timeout(line: &str) -> bool {
    [
        "context deadline exceeded",
        "Client.Timeout exceeded",
        "i/o timeout",
    ]
    .iter()
    .any(|m| line.contains(m))
}

impl AdmissionProbe<'_> {
    /// Runs the probe.
    pub async fn run(&self, client: &Client) -> Result<AdmissionObservation, ProbeError> {
        let w = self.webhook;
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let config = configs.get(&w.configuration).await.map_err(|e| {
            api_error(
                &format!("reading ValidatingWebhookConfiguration {}", w.configuration),
                e,
            )
        })?;
        let (failure_policy, timeout_ms) = policy_of(&config, &w.service);
        let services: Api<Service> = Api::namespaced(client.clone(), &w.namespace);
        let service = services
            .get(&w.service)
            .await
            .map_err(|e| api_error(&format!("reading Service {}/{}", w.namespace, w.service), e))?;
        let selector = service
            .spec
            .and_then(|s| s.selector)
            .map(|s| kube_api::selector(&s))
            .ok_or_else(|| {
                ProbeError(format!(
                    "Service {}/{} has no selector",
                    w.namespace, w.service
                ))
            })?;

        let pods: Api<Pod> = Api::namespaced(client.clone(), self.probe_namespace);
        let started = Instant::now();
        let created = pods
            .create(
                &PostParams::default(),
                &probe_pod(self.object, self.probe_namespace),
            )
            .await;
        let admit_ms = elapsed_ms(started);
        let (admitted, create_error) = match created {
            Ok(_) => (true, None),
            // A denial or a failed call under failurePolicy Fail: the API server's
            // answer is the evidence.
            Err(kube::Error::Api(status))
                if status.code < 500 || status.message.contains("webhook") =>
            {
                (
                    false,
                    Some(format!(
                        "{} {}: {}",
                        status.code, status.reason, status.message
                    )),
                )
            }
            Err(e) => return Err(api_error(&format!("creating probe Pod {}", self.object), e)),
        };
        // Saturating: the wait is the caller's option and may be any length.
        let since = Some(
            i64::try_from(self.wait.as_secs())
                .unwrap_or(300)
                .saturating_add(60),
        );
        let recorded = kube_api::wait_for_log_line(
            client,
            &w.namespace,
            &selector,
            self.object,
            since,
            self.wait,
        )
        .await?;
        let apiserver_line = if recorded.is_none() {
            kube_api::wait_for_log_line(
                client,
                "kube-system",
                "component=kube-apiserver",
                "failed calling webhook",
                since,
                Duration::from_secs(1),
            )
            .await
            .ok()
            .flatten()
            .filter(|(_, line)| is_webhook_failure(line, &w.configuration, &w.service))
        } else {
            None
        };
        if admitted {
            let _ = pods.delete(self.object, &DeleteParams::default()).await;
        }
        let timed_out = apiserver_line.as_ref().is_some_and(|(_, l)| is_timeout(l));
        let presented_by = format!(
            "Service {}/{}:{} -> {}",
            w.namespace, w.service, w.service_port, w.workload
        );
        let handshake = match (&recorded, &apiserver_line, &create_error) {
            (Some(_), _, _) => Handshake::Verified {
                presented: CertSummary {
                    subject: String::new(),
                    issuer: String::new(),
                    sans: vec![w.service_dns_name()],
                    not_after: String::new(),
                },
                presented_by: format!(
                    "{presented_by} (the webhook logged the object, so the API server's TLS check passed)"
                ),
            },
            (None, Some((_, line)), _) if timed_out => Handshake::NoConnection {
                error: line.clone(),
            },
            (None, Some((_, line)), _) => Handshake::Failed {
                presented: None,
                presented_by,
                error: line.clone(),
            },
            (None, None, Some(err)) => Handshake::Failed {
                presented: None,
                presented_by,
                error: err.clone(),
            },
            (None, None, None) => Handshake::Failed {
                presented: None,
                presented_by,
                error: format!(
                    "the webhook never logged {} within {}s and the API server logged no failed call",
                    self.object,
                    self.wait.as_secs()
                ),
            },
        };
        Ok(AdmissionObservation {
            object: self.object.to_string(),
            call: CallObservation {
                hops: vec![Hop {
                    component: format!("kube-apiserver@{}", self.cluster),
                    action: format!(
                        "POST https://{}:{}{} for Pod/{}",
                        w.service_dns_name(),
                        w.service_port,
                        w.path,
                        self.object
                    ),
                }],
                http_status: recorded.as_ref().map(|_| 200),
                recorded: recorded.is_some(),
                handshake,
                elapsed_ms: admit_ms,
            },
            failure_policy,
            timeout_ms,
            timed_out,
            admitted,
        })
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_api_servers_failure_lines() {
        let line = r#"W1203 dispatcher.go:217] Failed calling webhook, failing open cz-cz-webhook.cza.svc: failed calling webhook "cz-cz-webhook.cza.svc": failed to call webhook: Post "https://cz-cz-webhook.cza.svc:443/validate?timeout=1s": tls: failed to verify certificate: x509: certificate signed by unknown authority"#;
        assert!(is_webhook_failure(line, "cz-cz-webhook", "cz-cz-webhook"));
        assert!(!is_timeout(line));
        assert!(!is_webhook_failure(line, "other", "other-svc"));
        assert!(is_timeout(
            "failed calling webhook \"x\": context deadline exceeded"
        ));
    }

    #[test]
    fn policy_defaults_follow_kubernetes() {
        let config: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "w"},
            "webhooks": [{
                "name": "w.cza.svc", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"service": {"name": "cz-cz-webhook", "namespace": "cza"}}
            }]
        }))
        .unwrap();
        assert_eq!(
            policy_of(&config, "cz-cz-webhook"),
            ("Fail".to_string(), 10_000)
        );
    }
}
