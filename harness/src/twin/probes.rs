//! The probes: the API server's admission call, the backfill's call, the senders'
//! samples, the validator and the backfill Job, each run as real clients against the
//! mesh's real listeners.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::apps::{self, ORIGIN_LABEL, SENDER_LABEL, SEQ_LABEL};
use super::dataplane;
use super::journal::Trace;
use super::model::{AMBIENT_REDIRECTION, Dataplane, Reach};
use super::remote_write;
use super::state::Shared;
use super::stream::BoxStream;
use super::tls::{self, RecordingVerifier};
use crate::provider::{
    AdmissionObservation, AttributionObservation, CallObservation, ClusterAttribution, Flow,
    Handshake, JobObservation, ProbeError, ValidatorObservation, ValidatorVerdict,
};
use crate::scenario::SidecarKind;

/// Samples per remote_write request (senders batch, as Prometheus agents do).
pub const BATCH: u32 = 5;

fn cluster_index(shared: &Shared, cluster: &str) -> Result<usize, ProbeError> {
    shared
        .model
        .cluster_index(cluster)
        .ok_or_else(|| ProbeError(format!("no cluster `{cluster}` in this mesh")))
}

/// The pod running `workload` in cluster `c` (named `cluster` in the error).
fn pod_of(
    shared: &Shared,
    c: usize,
    cluster: &str,
    workload: &crate::manifests::WorkloadRef,
) -> Result<usize, ProbeError> {
    shared
        .model
        .pod_of(c, workload)
        .ok_or_else(|| ProbeError(format!("{cluster}: {workload} has no pod template")))
}

fn admission_review(name: &str, uid: &str) -> String {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
        }
    })
    .to_string()
}

/// The outcome of a TLS + HTTP call from a client's point of view.
struct Called {
    handshake: Handshake,
    status: Option<u16>,
    timed_out: bool,
}

/// Does a TLS handshake (roots, SNI, no client cert) then one POST, under `timeout`.
async fn tls_post(
    stream: std::io::Result<BoxStream>,
    roots: &[rustls_pki_types::CertificateDer<'static>],
    sni: &str,
    path: &str,
    body: String,
    timeout: Duration,
) -> Called {
    let verifier = RecordingVerifier::new(roots, false);
    let work = async {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                return Called {
                    handshake: Handshake::NoConnection {
                        error: e.to_string(),
                    },
                    status: None,
                    timed_out: false,
                };
            }
        };
        let config = match tls::client_config(verifier.clone(), None, &["http/1.1"]) {
            Ok(c) => c,
            Err(e) => {
                return Called {
                    handshake: Handshake::NoConnection { error: e },
                    status: None,
                    timed_out: false,
                };
            }
        };
        let name = match ServerName::try_from(sni.to_string()) {
            Ok(n) => n,
            Err(e) => {
                return Called {
                    handshake: Handshake::NoConnection {
                        error: e.to_string(),
                    },
                    status: None,
                    timed_out: false,
                };
            }
        };
        let tls = match TlsConnector::from(config).connect(name, stream).await {
            Ok(t) => t,
            Err(e) => {
                return Called {
                    handshake: Handshake::Failed {
                        presented: verifier.presented(),
                        presented_by: String::new(),
                        error: tls::handshake_error(&e),
                    },
                    status: None,
                    timed_out: false,
                };
            }
        };
        let handshake = Handshake::Verified {
            presented: verifier.presented().unwrap_or_default(),
            presented_by: String::new(),
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", sni)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)));
        let status = match req {
            Ok(req) => apps::http_call(Box::new(tls), req)
                .await
                .ok()
                .map(|(s, _)| s.as_u16()),
            Err(_) => None,
        };
        Called {
            handshake,
            status,
            timed_out: false,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(c) => c,
        Err(_) => Called {
            handshake: match verifier.presented() {
                Some(presented) => Handshake::Verified {
                    presented,
                    presented_by: String::new(),
                },
                None => Handshake::NoConnection {
                    error: format!("timed out after {} ms", timeout.as_millis()),
                },
            },
            status: None,
            timed_out: true,
        },
    }
}

fn fill_presented_by(handshake: &mut Handshake, by: Option<String>, hops: &[crate::provider::Hop]) {
    let fallback = || {
        hops.last()
            .map(|h| h.component.clone())
            .unwrap_or_else(|| "(nobody)".into())
    };
    match handshake {
        Handshake::Verified { presented_by, .. } | Handshake::Failed { presented_by, .. } => {
            *presented_by = by.unwrap_or_else(fallback);
        }
        Handshake::NoConnection { .. } => {}
    }
}

/// The API server of `cluster` submits a Pod for admission (kube-apiserver's webhook
/// dispatcher: `clientConfig.service` -> Service -> endpoint, TLS verified against
/// `caBundle` only, ServerName `svc.ns.svc`, no client certificate, `timeoutSeconds`,
/// `failurePolicy`).
pub async fn admit(
    shared: Arc<Shared>,
    cluster: &str,
    marker: u64,
) -> Result<AdmissionObservation, ProbeError> {
    let c = cluster_index(&shared, cluster)?;
    let cm = &shared.model.clusters[c];
    let role = cm
        .roles
        .webhook
        .as_ref()
        .ok_or_else(|| ProbeError(format!("{cluster}: no webhook role in the manifests")))?;
    let config = cm
        .manifests
        .webhook_configurations()
        .find(|w| w.metadata.name.as_deref() == Some(role.configuration.as_str()))
        .ok_or_else(|| {
            ProbeError(format!(
                "{cluster}: no ValidatingWebhookConfiguration {}",
                role.configuration
            ))
        })?;
    let hook = config
        .webhooks
        .as_ref()
        .and_then(|w| w.first())
        .ok_or_else(|| ProbeError(format!("{cluster}: {} has no webhooks", role.configuration)))?;
    let svc_ref = hook.client_config.service.as_ref().ok_or_else(|| {
        ProbeError(format!(
            "{cluster}: webhooks[0].clientConfig has no service"
        ))
    })?;
    let failure_policy = hook.failure_policy.clone().unwrap_or_else(|| "Fail".into());
    let timeout_ms =
        u64::try_from(hook.timeout_seconds.unwrap_or(10).clamp(1, 30)).unwrap_or(10) * 1000;
    let port = svc_ref
        .port
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = svc_ref.path.clone().unwrap_or_else(|| "/".into());
    let sni = format!("{}.{}.svc", svc_ref.name, svc_ref.namespace);
    let roots = hook
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| crate::certs::certs_from_pem(&String::from_utf8_lossy(&b.0)).unwrap_or_default())
        .unwrap_or_default();
    let object = format!("meshconform-probe-{cluster}-{marker}");
    let component = format!("kube-apiserver@{cluster}");
    let trace = Trace::default();
    trace.hop(
        &component,
        format!(
            "admission call for Pod {object}: Service {}.{}:{port}{path}, TLS ServerName {sni}, roots = caBundle ({} certificate(s)), no client certificate, timeout {timeout_ms} ms",
            svc_ref.name,
            svc_ref.namespace,
            roots.len()
        ),
    );
    let endpoints =
        shared
            .model
            .endpoints(&svc_ref.name, &svc_ref.namespace, port, Reach::Local(c));
    let stream: std::io::Result<BoxStream> = match endpoints.first() {
        None => {
            trace.hop(&component, "the Service has no ready endpoint");
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "no endpoints available for the webhook Service",
            ))
        }
        Some(ep) => {
            trace.hop(
                &component,
                format!(
                    "dialled endpoint {} port {}",
                    shared.pod_label(ep.pod),
                    ep.port
                ),
            );
            match shared.pods[ep.pod].addrs.get(&ep.port) {
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                )),
                Some(addr) => match TcpStream::connect(addr).await {
                    Ok(tcp) => {
                        if let Ok(local) = tcp.local_addr() {
                            trace.connected(local);
                        }
                        Ok(Box::new(tcp) as BoxStream)
                    }
                    Err(e) => Err(e),
                },
            }
        }
    };
    let started = Instant::now();
    let uid = format!("uid-{marker}");
    let called = tls_post(
        stream,
        &roots,
        &sni,
        &path,
        admission_review(&object, &uid),
        Duration::from_millis(timeout_ms),
    )
    .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // Let server-side components finish logging the connection before reading hops.
    tokio::task::yield_now().await;
    let recorded = shared.recorded(&object).is_some();
    let (hops, by) = trace.finish(&shared.journal);
    let mut handshake = called.handshake;
    fill_presented_by(&mut handshake, by, &hops);
    let ok = called.status.is_some_and(|s| s / 100 == 2);
    let admitted = ok || failure_policy == "Ignore";
    Ok(AdmissionObservation {
        object,
        call: CallObservation {
            hops,
            handshake,
            http_status: called.status,
            recorded,
            elapsed_ms,
        },
        failure_policy,
        timeout_ms,
        timed_out: called.timed_out,
        admitted,
    })
}

/// The backfill of `cluster`: from its pod, HTTPS to the webhook's cluster-local FQDN
/// through the pod's outbound path, verifying against the Secret's `ca.crt`.
pub async fn backfill(
    shared: Arc<Shared>,
    cluster: &str,
    marker: u64,
) -> Result<CallObservation, ProbeError> {
    let c = cluster_index(&shared, cluster)?;
    let cm = &shared.model.clusters[c];
    let role = cm
        .roles
        .webhook
        .as_ref()
        .ok_or_else(|| ProbeError(format!("{cluster}: no webhook role")))?;
    let workload = cm
        .roles
        .backfill
        .first()
        .ok_or_else(|| ProbeError(format!("{cluster}: no backfill role")))?;
    let pod = pod_of(&shared, c, cluster, workload)?;
    let roots = role
        .tls_secret
        .as_ref()
        .and_then(|s| cm.manifests.secret(s))
        .and_then(|s| secret_value(s, "ca.crt"))
        .map(|pem| crate::certs::certs_from_pem(&pem).unwrap_or_default())
        .unwrap_or_default();
    let host = role.fqdn();
    let object = format!("meshconform-backfill-{cluster}-{marker}");
    let trace = Trace::default();
    trace.hop(
        &format!("backfill container of {}", shared.pod_label(pod)),
        format!(
            "POST https://{host}:{}{} verifying against the Secret's ca.crt",
            role.service_port, role.path
        ),
    );
    let started = Instant::now();
    let stream = dataplane::dial(&shared, pod, &host, role.service_port, &trace).await;
    let called = tls_post(
        stream,
        &roots,
        &host,
        &role.path,
        admission_review(&object, &object),
        Duration::from_secs(5),
    )
    .await;
    tokio::task::yield_now().await;
    let (hops, by) = trace.finish(&shared.journal);
    let mut handshake = called.handshake;
    fill_presented_by(&mut handshake, by, &hops);
    Ok(CallObservation {
        hops,
        handshake,
        http_status: called.status,
        recorded: shared.recorded(&object).is_some(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// A Secret value from `data` (base64-decoded by serde) or `stringData`.
pub fn secret_value(secret: &k8s_openapi::api::core::v1::Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
        .filter(|s| !s.trim().is_empty())
}

/// A sender label for reports.
fn sender_name(
    shared: &Shared,
    cluster: usize,
    workload: &crate::manifests::WorkloadRef,
) -> String {
    let is_webhook = shared.model.clusters[cluster]
        .roles
        .webhook
        .as_ref()
        .is_some_and(|w| &w.workload == workload);
    if is_webhook {
        format!("webhook server ({workload})")
    } else {
        format!("metrics agent ({workload})")
    }
}

/// Every sender pushes `n` samples; where did each land?
pub async fn attribution(
    shared: Arc<Shared>,
    n: u32,
) -> Result<AttributionObservation, ProbeError> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut order = Vec::new();
    for (c, cm) in shared.model.clusters.iter().enumerate() {
        if cm.refusal.is_some() {
            continue;
        }
        let mut senders = cm.roles.senders.clone();
        if let Some(w) = &cm.roles.webhook
            && !senders.contains(&w.workload)
        {
            senders.push(w.workload.clone());
        }
        for workload in senders {
            let name = sender_name(&shared, c, &workload);
            order.push((c, name.clone()));
            let Some(pod) = shared.model.pod_of(c, &workload) else {
                continue;
            };
            let target = cm.roles.aggregator.as_ref().map(|a| (a.fqdn(), a.port));
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                (
                    c,
                    name.clone(),
                    send_samples(shared, c, pod, &name, target, n).await,
                )
            });
        }
    }
    let mut outcomes: BTreeMap<(usize, String), BTreeMap<u32, Result<(), String>>> =
        BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok((c, name, per_seq)) = r {
            outcomes.insert((c, name), per_seq);
        }
    }
    let received = shared
        .received
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let mut per_cluster: BTreeMap<usize, ClusterAttribution> = BTreeMap::new();
    let mut flows: BTreeMap<(usize, String, Option<String>), u64> = BTreeMap::new();
    for (c, name) in order {
        let origin = shared.model.clusters[c].name.clone();
        let entry = per_cluster.entry(c).or_insert_with(|| ClusterAttribution {
            cluster: origin.clone(),
            ..Default::default()
        });
        let per_seq = outcomes.remove(&(c, name.clone())).unwrap_or_else(|| {
            (0..n)
                .map(|s| (s, Err("the sender has no pod".to_string())))
                .collect()
        });
        for (seq, result) in per_seq {
            entry.sent += 1;
            let seq_s = seq.to_string();
            let landed = received
                .iter()
                .find(|r| r.origin == origin && r.sender == name && r.seq == seq_s)
                .map(|r| r.at_cluster.clone());
            match (&landed, result) {
                (Some(at), _) if *at == origin => entry.delivered += 1,
                (Some(at), _) => *entry.misattributed.entry(at.clone()).or_default() += 1,
                (None, Err(why)) => {
                    entry.lost += 1;
                    *entry.lost_reasons.entry(why).or_default() += 1;
                }
                (None, Ok(())) => {
                    entry.lost += 1;
                    *entry
                        .lost_reasons
                        .entry("accepted but not recorded by any aggregator".into())
                        .or_default() += 1;
                }
            }
            *flows.entry((c, name.clone(), landed)).or_default() += 1;
        }
    }
    Ok(AttributionObservation {
        clusters: per_cluster.into_values().collect(),
        flows: flows
            .into_iter()
            .map(|((c, sender, to), samples)| Flow {
                from_cluster: shared.model.clusters[c].name.clone(),
                sender,
                to_cluster: to,
                samples,
            })
            .collect(),
    })
}

/// One sender's pushes, batch by batch, through its pod's outbound path.
async fn send_samples(
    shared: Arc<Shared>,
    cluster: usize,
    pod: usize,
    sender: &str,
    target: Option<(String, u16)>,
    n: u32,
) -> BTreeMap<u32, Result<(), String>> {
    let mut out = BTreeMap::new();
    let origin = shared.model.clusters[cluster].name.clone();
    let Some((host, port)) = target else {
        return (0..n)
            .map(|s| (s, Err("no aggregator Service in the manifests".into())))
            .collect();
    };
    let mut seq = 0;
    while seq < n {
        // Saturating: `n` comes from the check, and a count near u32::MAX must not
        // overflow the batch bound.
        let end = seq.saturating_add(BATCH).min(n);
        let batch: Vec<u32> = (seq..end).collect();
        seq = end;
        let series: Vec<remote_write::Series> = batch
            .iter()
            .map(|s| {
                vec![
                    ("__name__".to_string(), "meshconform_probe".to_string()),
                    (ORIGIN_LABEL.into(), origin.clone()),
                    (SENDER_LABEL.into(), sender.to_string()),
                    (SEQ_LABEL.into(), s.to_string()),
                ]
            })
            .collect();
        let body = remote_write::encode(&series, 1_700_000_000_000 + i64::from(batch[0]));
        let trace = Trace::default();
        let result = match dataplane::dial(&shared, pod, &host, port, &trace).await {
            Err(e) => Err(format!("connect to {host}:{port}: {e}")),
            Ok(stream) => {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/collector")
                    .header("host", host.as_str())
                    .header("content-encoding", "snappy")
                    .header("content-type", "application/x-protobuf")
                    .header("x-prometheus-remote-write-version", "0.1.0")
                    .body(Full::new(Bytes::from(body)));
                match req {
                    Err(e) => Err(e.to_string()),
                    Ok(req) => match apps::http_call(stream, req).await {
                        Ok((status, _)) if status.is_success() => Ok(()),
                        Ok((status, body)) => Err(format!(
                            "HTTP {} {}",
                            status.as_u16(),
                            String::from_utf8_lossy(&body)
                                .chars()
                                .take(120)
                                .collect::<String>()
                        )),
                        Err(e) => Err(format!("connection reset: {e}")),
                    },
                }
            }
        };
        let _ = trace.finish(&shared.journal);
        for s in batch {
            out.insert(s, result.clone());
        }
    }
    out
}

/// Runs the validator of `cluster` as its documented rules say (DESIGN.md section 4;
/// seed "The Ambient Mode Wrinkle"), against the real admin listener of its pod.
pub async fn validator(
    shared: Arc<Shared>,
    cluster: &str,
) -> Result<ValidatorObservation, ProbeError> {
    let c = cluster_index(&shared, cluster)?;
    let cm = &shared.model.clusters[c];
    let role = cm
        .roles
        .validator
        .clone()
        .ok_or_else(|| ProbeError(format!("{cluster}: no validator role")))?;
    let pod = pod_of(&shared, c, cluster, &role.workload)?;
    let p = &shared.model.pods[pod];
    let container = p
        .containers
        .iter()
        .find(|k| k.name == role.container)
        .ok_or_else(|| {
            ProbeError(format!(
                "{cluster}: no container {} in {}",
                role.container, role.workload
            ))
        })?;
    let env = p.env(container);
    let mut log = Vec::new();
    // Pod start: init containers run before a classic sidecar starts; a native
    // sidecar (an init container with restartPolicy Always) starts before them
    // (Kubernetes sidecar containers; Istio native sidecar docs).
    let classic_before_admin = container.init
        && matches!(
            p.dataplane,
            Dataplane::Sidecar {
                kind: SidecarKind::Classic,
                ..
            }
        );
    if classic_before_admin {
        apps::stop_admin(&shared, pod);
        tokio::task::yield_now().await;
        log.push(
            "pod start: init container runs before the classic istio-proxy container starts".into(),
        );
    }
    let verdict = run_validator_rules(&shared, pod, &env, &mut log).await;
    if classic_before_admin {
        let _ = apps::start_admin(&shared, pod).await;
    }
    Ok(ValidatorObservation {
        ran: true,
        verdict,
        log,
    })
}

async fn run_validator_rules(
    shared: &Arc<Shared>,
    pod: usize,
    env: &BTreeMap<String, String>,
    log: &mut Vec<String>,
) -> ValidatorVerdict {
    let p = &shared.model.pods[pod];
    let cm = &shared.model.clusters[p.cluster];
    let values = &cm.spec.agent;
    let ambient = env.get("ISTIO_AMBIENT_REDIRECTION").map(String::as_str) == Some("enabled")
        || p.annotations.get(AMBIENT_REDIRECTION).map(String::as_str) == Some("enabled");
    let explicit = env.get("CLUSTER_ID_EXPLICIT").map(String::as_str) == Some("true")
        || values.istio_cluster_id.is_some();
    let expected = env
        .get("EXPECTED_CLUSTER_ID")
        .cloned()
        .or_else(|| {
            cm.roles
                .validator
                .as_ref()
                .and_then(|v| v.expected_cluster_id.clone())
        })
        .or_else(|| values.effective_cluster_id().map(str::to_string))
        .unwrap_or_default();
    log.push(format!(
        "expected cluster ID: `{expected}` (explicit: {explicit})"
    ));
    if ambient {
        log.push("ambient.istio.io/redirection: enabled: ambient mode, no sidecar to query".into());
        return if explicit {
            log.push(
                "clusterID is explicit; it cannot be verified in ambient mode and is trusted"
                    .into(),
            );
            ValidatorVerdict::Ok
        } else {
            ValidatorVerdict::Reported(
                "ambient mode: the cluster ID cannot be verified (no Envoy at localhost:15000) and integrations.istio.clusterID is not set explicitly"
                    .into(),
            )
        };
    }
    let addr = match shared.pods[pod].running_admin() {
        Some(a) => a,
        // Nothing listens on this pod's localhost:15000: a port nobody holds.
        None => match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a,
            Err(e) => return ValidatorVerdict::Errored(e.to_string()),
        },
    };
    log.push("GET localhost:15000/server_info".into());
    let tcp = match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let msg = format!(
                "GET localhost:15000/server_info: {e} (Envoy admin port not reachable from this container)"
            );
            log.push(msg.clone());
            return ValidatorVerdict::Errored(msg);
        }
        Err(_) => {
            return ValidatorVerdict::Errored("GET localhost:15000/server_info: timed out".into());
        }
    };
    let body = loopback_call(tcp, Method::GET, "/server_info", "localhost:15000").await;
    let info: serde_json::Value =
        match body.and_then(|(_, b)| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(v) => v,
            Err(e) => {
                return ValidatorVerdict::Errored(format!("GET localhost:15000/server_info: {e}"));
            }
        };
    let actual = info["node"]["metadata"]["CLUSTER_ID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    log.push(format!(
        "Envoy reports node.metadata.CLUSTER_ID = `{actual}`"
    ));
    if actual == expected {
        ValidatorVerdict::Ok
    } else {
        ValidatorVerdict::Reported(format!(
            "cluster ID mismatch: Envoy reports `{actual}`, the chart is configured with `{expected}`; set integrations.istio.clusterID"
        ))
    }
}

/// An empty-bodied HTTP request over `tcp` to a pod's loopback endpoint (Envoy
/// admin, pilot-agent), as a container in that pod would send it.
async fn loopback_call(
    tcp: TcpStream,
    method: Method,
    path: &str,
    host: &str,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::new()));
    match req {
        Ok(req) => apps::http_call(Box::new(tcp), req).await,
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the backfill Job's pod to the end of its main container and reports whether
/// the pod completes (Istio FAQ on Jobs; Kubernetes sidecar containers).
pub async fn job_completion(
    shared: Arc<Shared>,
    cluster: &str,
) -> Result<JobObservation, ProbeError> {
    let c = cluster_index(&shared, cluster)?;
    let cm = &shared.model.clusters[c];
    let job = cm
        .roles
        .backfill
        .iter()
        .find(|w| w.kind == "Job")
        .cloned()
        .ok_or_else(|| ProbeError(format!("{cluster}: no backfill Job")))?;
    let pod = pod_of(&shared, c, cluster, &job)?;
    let p = &shared.model.pods[pod];
    let mut containers: Vec<String> = p
        .containers
        .iter()
        .filter(|k| !k.init)
        .map(|k| format!("{}: Terminated (Completed, exit code 0)", k.name))
        .collect();
    let completed = match &p.dataplane {
        Dataplane::Sidecar {
            kind: SidecarKind::Native,
            ..
        } => {
            containers.push("istio-proxy (native sidecar): Terminated by the kubelet after the main containers exited".into());
            true
        }
        Dataplane::Sidecar {
            kind: SidecarKind::Classic,
            ..
        } => {
            let quits = p
                .containers
                .iter()
                .any(|k| !k.init && k.command_line.contains("/quitquitquit"));
            let addr = shared.pods[pod].running_admin();
            if quits && let Some(addr) = addr {
                let posted = match TcpStream::connect(addr).await {
                    Ok(tcp) => loopback_call(tcp, Method::POST, "/quitquitquit", "localhost:15020")
                        .await
                        .is_ok(),
                    Err(_) => false,
                };
                containers.push(format!(
                    "main container ran POST localhost:15020/quitquitquit: {}",
                    if posted { "200" } else { "failed" }
                ));
            }
            // Bounded wait for the proxy to exit (stands for the Job's lifetime).
            let deadline = Instant::now() + Duration::from_millis(200);
            let mut exited = false;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if let Some(addr) = addr
                    && TcpStream::connect(addr).await.is_err()
                {
                    exited = true;
                    break;
                }
            }
            if exited {
                containers
                    .push("istio-proxy (classic sidecar): Terminated after /quitquitquit".into());
            } else {
                containers.push("istio-proxy (classic sidecar): Running: nothing told the proxy to quit, the Job never completes".into());
            }
            exited
        }
        Dataplane::Ambient => {
            containers.push("no sidecar (ambient: ztunnel runs on the node)".into());
            true
        }
        Dataplane::Direct => true,
    };
    Ok(JobObservation {
        job: job.to_string(),
        completed,
        containers,
    })
}
