//! A tiny Kubernetes API server on 127.0.0.1 for the probe tests: it answers the few
//! endpoints the probes use with canned JSON or text, Status bodies for errors, and
//! optional delays for timeouts. Requests are recorded so tests can assert on them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One canned answer: of the routes whose method matches and whose `path` the
/// request path starts with, the longest answers.
#[derive(Debug, Clone)]
pub struct Route {
    /// `GET`, `POST`, ...
    pub method: &'static str,
    /// Path prefix (no query).
    pub path: String,
    /// HTTP status.
    pub status: u16,
    /// Body (JSON or log text).
    pub body: String,
    /// Wait before answering.
    pub delay: Duration,
}

impl Route {
    /// A 200 with a JSON body.
    pub fn json(method: &'static str, path: &str, body: serde_json::Value) -> Self {
        Self {
            method,
            path: path.into(),
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// A 200 with a text body (pod logs).
    pub fn text(path: &str, body: &str) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            status: 200,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// An API error with a Kubernetes Status body.
    pub fn status(
        method: &'static str,
        path: &str,
        code: u16,
        reason: &str,
        message: &str,
    ) -> Self {
        Self {
            method,
            path: path.into(),
            status: code,
            body: serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": reason, "code": code
            })
            .to_string(),
            delay: Duration::ZERO,
        }
    }

    /// The same route, answered after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A running mock API server.
pub struct MockApi {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// `METHOD path?query` of every request, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl MockApi {
    /// Starts serving `routes` on an ephemeral port (inside the current runtime).
    pub async fn start(routes: Vec<Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let routes = Arc::clone(&routes);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let routes = Arc::clone(&routes);
                        let seen = Arc::clone(&seen);
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_string();
                            let full = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let _ = req.into_body().collect().await;
                            seen.lock().unwrap().push(format!("{method} {full}"));
                            // The longest matching prefix wins: a pod's log route beats the pod list.
                            let route = routes
                                .iter()
                                .filter(|r| r.method == method && path.starts_with(&r.path))
                                .max_by_key(|r| r.path.len())
                                .cloned();
                            let (status, body, delay) = match route {
                                Some(r) => (r.status, r.body, r.delay),
                                None => (
                                    404,
                                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "message": format!("no route for {method} {path}"), "reason": "NotFound", "code": 404})
                                    .to_string(),
                                    Duration::ZERO,
                                ),
                            };
                            tokio::time::sleep(delay).await;
                            let response = Response::builder()
                                .status(status)
                                .header(
                                    "content-type",
                                    if body.starts_with('{') {
                                        "application/json"
                                    } else {
                                        "text/plain"
                                    },
                                )
                                .body(Full::new(Bytes::from(body)))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, requests }
    }

    /// A kube client for this server.
    pub fn client(&self, read_timeout: Option<Duration>) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().unwrap());
        config.read_timeout = read_timeout;
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
