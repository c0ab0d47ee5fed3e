//! Probes against a mocked API server: success paths, API errors (403, 404, 500 with
//! Status bodies) and timeouts.

use std::time::{Duration, Instant};

use serde_json::json;

use super::admission::AdmissionProbe;
use super::jobs::{JobEnd, wait_for_job};
use super::kube_api;
use super::mock_api::{MockApi, Route};
use crate::manifests::WorkloadRef;
use crate::provider::Handshake;
use crate::roles::WebhookRole;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const JOB: &str = "/apis/batch/v1/namespaces/cza/jobs/j";

fn webhook() -> WebhookRole {
    WebhookRole {
        configuration: "cz-cz-webhook".into(),
        service: "cz-cz-webhook".into(),
        namespace: "cza".into(),
        path: "/validate".into(),
        service_port: 443,
        workload: WorkloadRef {
            kind: "Deployment".into(),
            name: "cz-cz-webhook".into(),
        },
        container: "server".into(),
        container_port: 8443,
        tls_secret: None,
    }
}

fn webhook_routes() -> Vec<Route> {
    vec![
        Route::json(
            "GET",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/cz-cz-webhook",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "cz-cz-webhook"},
                "webhooks": [{"name": "cz.cza.svc", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                    "failurePolicy": "Ignore", "timeoutSeconds": 1,
                    "clientConfig": {"service": {"name": "cz-cz-webhook", "namespace": "cza", "path": "/validate"}}}]}),
        ),
        Route::json(
            "GET",
            "/api/v1/namespaces/cza/services/cz-cz-webhook",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cz-cz-webhook"},
                "spec": {"selector": {"app": "webhook"}}}),
        ),
    ]
}

/// The admission probe of cluster `alpha` into `meshconform-probe`.
fn admission_probe<'a>(
    webhook: &'a WebhookRole,
    object: &'a str,
    wait: Duration,
) -> AdmissionProbe<'a> {
    AdmissionProbe {
        cluster: "alpha",
        probe_namespace: "meshconform-probe",
        webhook,
        object,
        wait,
    }
}

fn pod_list(name: &str, container: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": name}, "spec": {"containers": [{"name": container}]}}
    ]})
}

#[test]
fn job_conditions_are_read_from_the_api() {
    rt().block_on(async {
        let api = MockApi::start(vec![Route::json(
            "GET",
            JOB,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
        )])
        .await;
        let (end, _) = wait_for_job(&api.client(None), "cza", "j", Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(end, JobEnd::Complete);
        assert_eq!(api.seen(), vec![format!("GET {JOB}")]);
    });
}

#[test]
fn api_errors_carry_code_reason_and_message() {
    rt().block_on(async {
        for (code, reason, message) in [
            (
                403,
                "Forbidden",
                "jobs.batch \"j\" is forbidden: User \"ci\" cannot get resource \"jobs\"",
            ),
            (404, "NotFound", "jobs.batch \"j\" not found"),
            (
                500,
                "InternalError",
                "Internal error occurred: etcdserver: request timed out",
            ),
        ] {
            let api = MockApi::start(vec![Route::status("GET", JOB, code, reason, message)]).await;
            let err = wait_for_job(&api.client(None), "cza", "j", Duration::from_secs(1))
                .await
                .unwrap_err();
            assert!(err.0.contains(&code.to_string()), "{err}");
            assert!(err.0.contains(reason) && err.0.contains(message), "{err}");
        }
    });
}

#[test]
fn a_hung_api_server_times_out() {
    rt().block_on(async {
        let api = MockApi::start(vec![
            Route::json("GET", JOB, json!({})).delayed(Duration::from_secs(5)),
        ])
        .await;
        let started = Instant::now();
        let err = wait_for_job(
            &api.client(Some(Duration::from_millis(300))),
            "cza",
            "j",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
        assert!(err.0.contains("reading Job cza/j"), "{err}");
    });
}

#[test]
fn admission_is_recorded_when_the_webhook_logs_the_object() {
    rt().block_on(async {
        let mut routes = webhook_routes();
        routes.push(Route::json(
            "POST",
            "/api/v1/namespaces/meshconform-probe/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mc-admit-1"}}),
        ));
        routes.push(Route::json(
            "DELETE",
            "/api/v1/namespaces/meshconform-probe/pods/mc-admit-1",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mc-admit-1"}}),
        ));
        routes.push(Route::text(
            "/api/v1/namespaces/cza/pods/wh-1/log",
            "level=info msg=\"admission review\" kind=Pod name=mc-admit-1\n",
        ));
        routes.push(Route::json(
            "GET",
            "/api/v1/namespaces/cza/pods",
            pod_list("wh-1", "server"),
        ));
        let api = MockApi::start(routes).await;
        let w = webhook();
        let probe = admission_probe(&w, "mc-admit-1", Duration::from_millis(500));
        let obs = probe.run(&api.client(None)).await.unwrap();
        assert!(obs.admitted && obs.call.recorded, "{obs:?}");
        assert!(obs.call.handshake.verified());
        assert_eq!(
            (obs.failure_policy.as_str(), obs.timeout_ms),
            ("Ignore", 1000)
        );
        let seen = api.seen();
        assert!(
            seen.iter()
                .any(|r| r.starts_with("GET /api/v1/namespaces/cza/pods?")
                    && r.contains("labelSelector=app%3Dwebhook")),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|r| r
                    .starts_with("DELETE /api/v1/namespaces/meshconform-probe/pods/mc-admit-1")),
            "{seen:?}"
        );
    });
}

#[test]
fn a_failed_call_is_explained_by_the_api_servers_log() {
    rt().block_on(async {
        let mut routes = webhook_routes();
        routes.push(Route::json("POST", "/api/v1/namespaces/meshconform-probe/pods", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mc-admit-2"}})));
        routes.push(Route::json("DELETE", "/api/v1/namespaces/meshconform-probe/pods/", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mc-admit-2"}})));
        routes.push(Route::json("GET", "/api/v1/namespaces/cza/pods", pod_list("wh-1", "server")));
        routes.push(Route::text("/api/v1/namespaces/cza/pods/wh-1/log", "started\n"));
        routes.push(Route::json("GET", "/api/v1/namespaces/kube-system/pods", pod_list("kube-apiserver-node", "kube-apiserver")));
        routes.push(Route::text(
            "/api/v1/namespaces/kube-system/pods/kube-apiserver-node/log",
            "W1203 dispatcher.go:217] Failed calling webhook, failing open cz.cza.svc: failed calling webhook \"cz.cza.svc\": failed to call webhook: Post \"https://cz-cz-webhook.cza.svc:443/validate?timeout=1s\": tls: failed to verify certificate: x509: certificate signed by unknown authority\n",
        ));
        let api = MockApi::start(routes).await;
        let w = webhook();
        let probe = admission_probe(&w, "mc-admit-2", Duration::from_millis(300));
        let obs = probe.run(&api.client(None)).await.unwrap();
        // failurePolicy Ignore: admitted, but the webhook never saw it.
        assert!(obs.admitted && !obs.call.recorded, "{obs:?}");
        match &obs.call.handshake {
            Handshake::Failed { error, .. } => assert!(error.contains("x509: certificate signed by unknown authority"), "{error}"),
            other => panic!("expected a failed handshake, got {other:?}"),
        }
        assert!(!obs.timed_out);
    });
}

#[test]
fn a_denied_create_is_reported_not_raised() {
    rt().block_on(async {
        let mut routes = webhook_routes();
        routes.push(Route::status(
            "POST",
            "/api/v1/namespaces/meshconform-probe/pods",
            500,
            "InternalError",
            "Internal error occurred: failed calling webhook \"cz.cza.svc\": context deadline exceeded",
        ));
        routes.push(Route::json("GET", "/api/v1/namespaces/cza/pods", json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})));
        routes.push(Route::json("GET", "/api/v1/namespaces/kube-system/pods", json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})));
        let api = MockApi::start(routes).await;
        let w = webhook();
        let probe = admission_probe(&w, "mc-admit-3", Duration::from_millis(200));
        let obs = probe.run(&api.client(None)).await.unwrap();
        assert!(!obs.admitted && !obs.call.recorded);
        match &obs.call.handshake {
            Handshake::Failed { error, .. } => assert!(error.contains("500") && error.contains("context deadline exceeded"), "{error}"),
            other => panic!("expected a failed handshake, got {other:?}"),
        }
    });
}

#[test]
fn a_forbidden_webhook_configuration_is_a_probe_error() {
    rt().block_on(async {
        let api = MockApi::start(vec![Route::status(
            "GET",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/cz-cz-webhook",
            403,
            "Forbidden",
            "validatingwebhookconfigurations is forbidden",
        )])
        .await;
        let w = webhook();
        let probe = admission_probe(&w, "x", Duration::from_millis(100));
        let err = probe.run(&api.client(None)).await.unwrap_err();
        assert!(err.0.contains("403 Forbidden"), "{err}");
    });
}

#[test]
fn logs_are_read_per_container() {
    rt().block_on(async {
        let api = MockApi::start(vec![
            Route::json(
                "GET",
                "/api/v1/namespaces/cza/pods",
                pod_list("agg-1", "aggregator"),
            ),
            Route::text(
                "/api/v1/namespaces/cza/pods/agg-1/log",
                "meshconform-probe/r/alpha/0\n",
            ),
        ])
        .await;
        let logs = kube_api::all_logs(&api.client(None), "cza", "app=agg", None)
            .await
            .unwrap();
        assert_eq!(
            logs,
            vec![(
                "agg-1/aggregator".to_string(),
                "meshconform-probe/r/alpha/0\n".to_string()
            )]
        );
        assert!(
            api.seen()
                .iter()
                .any(|r| r.contains("/pods/agg-1/log?") && r.contains("container=aggregator")),
            "{:?}",
            api.seen()
        );
    });
}
