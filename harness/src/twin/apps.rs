//! The containers' stand-ins: the webhook server (TLS with the Secret's certificate,
//! `/validate`, `/healthz`), the aggregator (`/collector`, Prometheus remote_write),
//! and Envoy's admin endpoint of each sidecar pod.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::remote_write;
use super::state::{Admin, App, Received, Shared, WebhookApp};
use super::stream::BoxStream;
use super::tls;

/// Label names of the marker every probe sample carries.
pub const ORIGIN_LABEL: &str = "meshconform_origin_cluster";
/// See [`ORIGIN_LABEL`].
pub const SENDER_LABEL: &str = "meshconform_sender";
/// See [`ORIGIN_LABEL`].
pub const SEQ_LABEL: &str = "meshconform_seq";

/// Hands a connection to the container behind `port`; nothing there means the
/// connection is refused/closed, as a closed port in the pod would.
pub async fn serve(
    shared: Arc<Shared>,
    pod: usize,
    port: u16,
    stream: BoxStream,
    peer: SocketAddr,
) {
    match shared.apps.get(&(pod, port)) {
        Some(App::Webhook(app)) => serve_webhook(&shared, pod, app, stream, peer).await,
        Some(App::Aggregator) => serve_aggregator(&shared, pod, stream).await,
        None => shared.journal.log(
            peer,
            &format!("pod {}", shared.pod_label(pod)),
            format!("no container listens on port {port}: connection closed"),
        ),
    }
}

fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(text.into()));
    *r.status_mut() = status;
    r
}

async fn serve_webhook(
    shared: &Arc<Shared>,
    pod: usize,
    app: &WebhookApp,
    stream: BoxStream,
    peer: SocketAddr,
) {
    let component = format!("webhook container of {}", shared.pod_label(pod));
    let config = match &app.tls {
        Ok(c) => Arc::clone(c),
        Err(e) => {
            shared.journal.log(
                peer,
                &component,
                format!("cannot serve TLS: {e}; connection closed"),
            );
            return;
        }
    };
    let presented = app
        .presented
        .as_ref()
        .map(tls::describe)
        .unwrap_or_else(|| "(unreadable tls.crt)".into());
    shared.journal.presented(
        peer,
        &component,
        format!("answered the TLS handshake with its own serving certificate from the Secret ({presented})"),
    );
    let tls = match TlsAcceptor::from(config).accept(stream).await {
        Ok(t) => t,
        Err(e) => {
            shared
                .journal
                .log(peer, &component, format!("TLS handshake failed: {e}"));
            return;
        }
    };
    let cluster = shared.model.clusters[shared.model.pods[pod].cluster]
        .name
        .clone();
    let delay = app.delay;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (shared, cluster) = (Arc::clone(shared), cluster.clone());
        async move { Ok::<_, Infallible>(webhook_request(shared, cluster, delay, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn webhook_request(
    shared: Arc<Shared>,
    cluster: String,
    delay: std::time::Duration,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => plain(StatusCode::OK, "ok"),
        (&Method::POST, "/validate") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
            };
            let review: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        format!("not an AdmissionReview: {e}"),
                    );
                }
            };
            let uid = review["request"]["uid"].clone();
            let name = review["request"]["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // The slow-webhook fault: the answer (and the metadata it extracts) comes late.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Ok(mut records) = shared.webhook_records.lock() {
                records.push((cluster, name));
            }
            let answer = serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": true}
            });
            plain(StatusCode::OK, answer.to_string())
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn serve_aggregator(shared: &Arc<Shared>, pod: usize, stream: BoxStream) {
    let cluster = shared.model.clusters[shared.model.pods[pod].cluster]
        .name
        .clone();
    let shared = Arc::clone(shared);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (shared, cluster) = (Arc::clone(&shared), cluster.clone());
        async move { Ok::<_, Infallible>(collect(shared, cluster, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// `/collector`: decodes remote_write and stamps THIS aggregator's cluster on every
/// sample (DESIGN.md section 4: a misrouted sample is silently misattributed).
async fn collect(
    shared: Arc<Shared>,
    cluster: String,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST || req.uri().path() != "/collector" {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let series = match remote_write::decode(&body) {
        Ok(s) => s,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    let get = |labels: &[(String, String)], key: &str| {
        labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if let Ok(mut received) = shared.received.lock() {
        for labels in series {
            received.push(Received {
                at_cluster: cluster.clone(),
                origin: get(&labels, ORIGIN_LABEL),
                sender: get(&labels, SENDER_LABEL),
                seq: get(&labels, SEQ_LABEL),
            });
        }
    }
    plain(StatusCode::NO_CONTENT, "")
}

/// Sends one HTTP/1.1 request over a connection and reads the whole response.
pub async fn http_call(
    stream: BoxStream,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    result
}

/// Starts (or restarts) the Envoy admin listener of a sidecar pod on its address.
///
/// Serves `/server_info` (`node.metadata.CLUSTER_ID` = the cluster's istiod
/// CLUSTER_ID, as in the bootstrap istiod generates), `/clusters`, and
/// `POST /quitquitquit` (pilot-agent's endpoint that stops the proxy; in Istio it is
/// on the agent port 15020, the twin serves it on the same loopback listener).
pub async fn start_admin(shared: &Arc<Shared>, pod: usize) -> std::io::Result<()> {
    let addr = {
        let guard = shared.pods[pod]
            .admin
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        match guard.as_ref() {
            Some(Admin { task: Some(_), .. }) => return Ok(()),
            Some(a) => a.addr,
            None => return Ok(()),
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        // The port was taken meanwhile: a new one (the pod's localhost is the twin's).
        Err(_) => TcpListener::bind("127.0.0.1:0").await?,
    };
    serve_admin_on(shared, pod, listener)
}

/// Serves the admin endpoint of `pod` on an already bound listener.
pub fn serve_admin_on(
    shared: &Arc<Shared>,
    pod: usize,
    listener: TcpListener,
) -> std::io::Result<()> {
    let bound = listener.local_addr()?;
    let task = tokio::spawn(admin_loop(Arc::clone(shared), pod, listener));
    if let Ok(mut guard) = shared.pods[pod].admin.lock() {
        *guard = Some(Admin {
            addr: bound,
            task: Some(task),
        });
    }
    Ok(())
}

/// Stops the admin listener (the proxy exited); its port is closed afterwards.
pub fn stop_admin(shared: &Shared, pod: usize) {
    if let Ok(mut guard) = shared.pods[pod].admin.lock()
        && let Some(admin) = guard.as_mut()
        && let Some(task) = admin.task.take()
    {
        task.abort();
    }
}

async fn admin_loop(shared: Arc<Shared>, pod: usize, listener: TcpListener) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(admin_request(&shared, pod, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn admin_request(
    shared: &Arc<Shared>,
    pod: usize,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let p = &shared.model.pods[pod];
    let cluster = &shared.model.clusters[p.cluster];
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/server_info") => {
            let info = serde_json::json!({
                "state": "LIVE",
                "node": {
                    "id": format!("sidecar~127.0.0.1~{}.{}~{}.svc.cluster.local", p.workload.name, p.namespace, p.namespace),
                    "cluster": format!("{}.{}", p.workload.name, p.namespace),
                    "metadata": {
                        "CLUSTER_ID": cluster.istio_cluster_id,
                        "NAMESPACE": p.namespace,
                        "SERVICE_ACCOUNT": p.service_account,
                    }
                }
            });
            plain(StatusCode::OK, info.to_string())
        }
        (&Method::GET, "/clusters") => {
            let mut out = String::new();
            for svc in &shared.model.services {
                for port in &svc.ports {
                    for ep in shared.model.endpoints(
                        &svc.name,
                        &svc.namespace,
                        port.port,
                        super::model::Reach::Mesh,
                    ) {
                        let c = &shared.model.clusters[shared.model.pods[ep.pod].cluster];
                        out.push_str(&format!(
                            "outbound|{}||{}.{}.svc.cluster.local::{}::cluster::{}\n",
                            port.port,
                            svc.name,
                            svc.namespace,
                            shared.pod_label(ep.pod),
                            c.istio_cluster_id
                        ));
                    }
                }
            }
            plain(StatusCode::OK, out)
        }
        (&Method::POST, "/quitquitquit") => {
            let shared = Arc::clone(shared);
            // Answer first, then stop the proxy (pilot-agent exits after responding).
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                stop_admin(&shared, pod);
            });
            plain(StatusCode::OK, "")
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}
