//! The data plane: what happens to a connection entering a pod (iptables PREROUTING
//! to the sidecar's inbound listener, ztunnel inbound, or straight to the app) and
//! leaving one (iptables OUTPUT to the sidecar's outbound listener, ztunnel outbound,
//! or kube-proxy).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::apps;
use super::hello::{self, FirstBytes};
use super::journal::Trace;
use super::model::{Dataplane, Endpoint, Reach, mtls_name, split_host};
use super::state::Shared;
use super::stream::{BoxStream, Prefixed};
use super::tls::{self, HBONE_ALPN, ISTIO_ALPN, RecordingVerifier};
use crate::scenario::MtlsMode;

/// Serves one connection accepted on a pod address (pod IP + container port).
///
/// This is what the pod's iptables PREROUTING rules decide (istio-iptables,
/// tools/istio-iptables/pkg/capture): a sidecar pod's inbound traffic goes to Envoy's
/// inbound listener (15006) unless the port is in `excludeInboundPorts`; an ambient
/// pod's goes through ztunnel (the CNI's in-pod redirection, which ignores the
/// sidecar-only annotations); other pods' straight to the container.
pub async fn serve_pod_port(
    shared: Arc<Shared>,
    pod: usize,
    port: u16,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let label = shared.pod_label(pod);
    match &shared.model.pods[pod].dataplane {
        Dataplane::Sidecar {
            exclude_inbound, ..
        } if !exclude_inbound.contains(&port) => {
            sidecar_inbound(shared, pod, port, tcp, peer).await
        }
        Dataplane::Sidecar { .. } => {
            shared.journal.log(
                peer,
                &format!("iptables of {label}"),
                format!(
                    "port {port} is in {}: bypassed the sidecar, straight to the container",
                    super::model::EXCLUDE_INBOUND
                ),
            );
            apps::serve(shared, pod, port, Box::new(tcp), peer).await
        }
        Dataplane::Ambient => ztunnel_inbound(shared, pod, port, tcp, peer).await,
        Dataplane::Direct => apps::serve(shared, pod, port, Box::new(tcp), peer).await,
    }
}

/// Envoy's inbound listener. Its filter chains (istio pilot/pkg/networking/core,
/// inbound listener build; security.istio.io PeerAuthentication reference):
/// - STRICT: only the TLS chain, which terminates Istio mTLS with the workload's
///   SPIFFE certificate and requires a client certificate from the mesh CA; any TLS
///   client gets that certificate, plaintext matches no chain and is closed.
/// - PERMISSIVE: the mTLS chain matches TLS whose ALPN is an Istio value
///   (`istio-peer-exchange`, `istio`, ...); other TLS and plaintext match passthrough
///   chains that forward the bytes as TCP, so the app's own TLS reaches the caller.
/// - DISABLE: passthrough only.
async fn sidecar_inbound(
    shared: Arc<Shared>,
    pod: usize,
    port: u16,
    mut tcp: TcpStream,
    peer: SocketAddr,
) {
    let component = format!("sidecar inbound of {}", shared.pod_label(pod));
    let Ok((first, buf)) = hello::inspect(&mut tcp).await else {
        return;
    };
    let (mode, why) = shared.model.effective_mtls(pod, port);
    shared.journal.log(
        peer,
        &component,
        format!(
            "intercepted port {port} (not in {}); PeerAuthentication {} ({why}); {}",
            super::model::EXCLUDE_INBOUND,
            mtls_name(mode),
            describe_first(&first)
        ),
    );
    let stream = Prefixed::new(buf, tcp);
    let terminate = match (mode, &first) {
        (_, FirstBytes::Closed) => return,
        (MtlsMode::Strict, FirstBytes::Tls { .. }) => true,
        (MtlsMode::Strict, FirstBytes::Plain) => {
            shared.journal.log(
                peer,
                &component,
                "STRICT: plaintext matches no filter chain; connection closed",
            );
            return;
        }
        (MtlsMode::Permissive, f) if f.is_istio_mtls() => true,
        (MtlsMode::Permissive, _) => {
            shared.journal.log(
                peer,
                &component,
                "PERMISSIVE: not Istio mTLS; passed through as TCP to the container",
            );
            false
        }
        (MtlsMode::Disable, _) => {
            shared.journal.log(
                peer,
                &component,
                "DISABLE: passed through as TCP to the container",
            );
            false
        }
    };
    if !terminate {
        return apps::serve(shared, pod, port, Box::new(stream), peer).await;
    }
    terminate_mtls(shared, pod, port, stream, peer, &component).await
}

/// Terminates Istio mTLS (sidecar inbound or ztunnel inbound) and hands the
/// decrypted stream to the container.
async fn terminate_mtls(
    shared: Arc<Shared>,
    pod: usize,
    port: u16,
    stream: Prefixed<TcpStream>,
    peer: SocketAddr,
    component: &str,
) {
    let (Some(config), Some(identity)) = (
        shared.pods[pod].inbound_tls.clone(),
        shared.pods[pod].identity.as_ref(),
    ) else {
        shared
            .journal
            .log(peer, component, "no mesh identity; connection closed");
        return;
    };
    let presented = crate::certs::summarize(identity.leaf_der());
    shared.journal.presented(
        peer,
        component,
        format!(
            "terminated TLS with the Istio workload certificate ({}) and required a client certificate from the mesh CA",
            tls::describe(&presented)
        ),
    );
    match TlsAcceptor::from(config).accept(stream).await {
        Ok(tls) => {
            let client = tls::peer_spiffe(tls.get_ref().1.peer_certificates())
                .unwrap_or_else(|| "(no SPIFFE ID)".into());
            shared.journal.log(
                peer,
                component,
                format!("mTLS established with {client}; forwarded plaintext to port {port}"),
            );
            apps::serve(shared, pod, port, Box::new(tls), peer).await
        }
        Err(e) => shared
            .journal
            .log(peer, component, format!("mTLS handshake failed: {e}")),
    }
}

/// ztunnel's inbound side for an ambient pod. HBONE (mTLS between ztunnels) is
/// terminated; anything else arrives on the pod's port as plain TCP, which STRICT
/// rejects (istio/istio#52874: the API server's webhook calls are reset) and
/// PERMISSIVE (including a port-level PERMISSIVE PeerAuthentication) passes through.
async fn ztunnel_inbound(
    shared: Arc<Shared>,
    pod: usize,
    port: u16,
    mut tcp: TcpStream,
    peer: SocketAddr,
) {
    let component = format!("ztunnel inbound of {}", shared.pod_label(pod));
    let Ok((first, buf)) = hello::inspect(&mut tcp).await else {
        return;
    };
    let stream = Prefixed::new(buf, tcp);
    if first.is_hbone() {
        shared.journal.log(
            peer,
            &component,
            format!("HBONE (mTLS) connection for port {port}"),
        );
        return terminate_mtls(shared, pod, port, stream, peer, &component).await;
    }
    let (mode, why) = shared.model.effective_mtls(pod, port);
    if mode == MtlsMode::Strict {
        shared.journal.log(
            peer,
            &component,
            format!(
                "non-HBONE connection to port {port} rejected: PeerAuthentication STRICT ({why}); connection reset (istio/istio#52874; excludeInboundPorts is sidecar-only and does not apply)"
            ),
        );
        return;
    }
    shared.journal.log(
        peer,
        &component,
        format!(
            "non-HBONE connection to port {port} allowed: {} ({why}); passed through",
            mtls_name(mode)
        ),
    );
    apps::serve(shared, pod, port, Box::new(stream), peer).await
}

fn describe_first(first: &FirstBytes) -> String {
    match first {
        FirstBytes::Tls { alpn, sni } => format!(
            "TLS inspector: ClientHello, SNI {}, ALPN [{}]",
            sni.as_deref().unwrap_or("(none)"),
            alpn.join(", ")
        ),
        FirstBytes::Plain => "TLS inspector: not TLS".into(),
        FirstBytes::Closed => "closed before sending".into(),
    }
}

/// A client app in `pod` opens a connection to `host:port`.
///
/// The pod's iptables OUTPUT rules decide where it goes (istio-iptables): a sidecar
/// pod's traffic goes to Envoy's outbound listener (15001) unless the port is in
/// `excludeOutboundPorts`; an ambient pod's to ztunnel; otherwise kube-proxy
/// load-balances over the Service's LOCAL endpoints only.
pub async fn dial(
    shared: &Arc<Shared>,
    pod: usize,
    host: &str,
    port: u16,
    trace: &Trace,
) -> io::Result<BoxStream> {
    let label = shared.pod_label(pod);
    match &shared.model.pods[pod].dataplane {
        Dataplane::Sidecar {
            exclude_outbound, ..
        } if !exclude_outbound.contains(&port) => {
            trace.hop(
                &format!("iptables of {label}"),
                format!(
                    "port {port} not in {}: redirected to the sidecar's outbound listener",
                    super::model::EXCLUDE_OUTBOUND
                ),
            );
            let (app_end, proxy_end) = tokio::io::duplex(64 * 1024);
            let shared = Arc::clone(shared);
            let (host, trace) = (host.to_string(), trace.clone());
            tokio::spawn(async move {
                sidecar_outbound(shared, pod, host, port, proxy_end, trace).await
            });
            Ok(Box::new(app_end))
        }
        Dataplane::Sidecar { .. } => {
            trace.hop(
                &format!("iptables of {label}"),
                format!(
                    "port {port} is in {}: bypassed the sidecar",
                    super::model::EXCLUDE_OUTBOUND
                ),
            );
            kube_proxy(shared, pod, host, port, trace).await
        }
        Dataplane::Ambient => ztunnel_outbound(shared, pod, host, port, trace).await,
        Dataplane::Direct => kube_proxy(shared, pod, host, port, trace).await,
    }
}

/// kube-proxy: a Service's local endpoints only; none means the connection is refused
/// (kube-proxy installs a REJECT rule for Services without endpoints).
async fn kube_proxy(
    shared: &Arc<Shared>,
    pod: usize,
    host: &str,
    port: u16,
    trace: &Trace,
) -> io::Result<BoxStream> {
    let p = &shared.model.pods[pod];
    let (svc, ns) = split_host(host, &p.namespace);
    let endpoints = shared
        .model
        .endpoints(&svc, &ns, port, Reach::Local(p.cluster));
    let component = format!("kube-proxy@{}", shared.model.clusters[p.cluster].name);
    let Some(ep) = pick(shared, pod, &endpoints) else {
        trace.hop(
            &component,
            format!("Service {svc}.{ns}:{port} has no ready local endpoint: connection refused"),
        );
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("no endpoints for {svc}.{ns}:{port}"),
        ));
    };
    trace.hop(
        &component,
        format!(
            "{svc}.{ns}:{port} -> {} port {} (local endpoints only)",
            shared.pod_label(ep.pod),
            ep.port
        ),
    );
    Ok(Box::new(connect(shared, &ep, trace).await?))
}

/// ztunnel outbound for an ambient pod: L4 only (no VirtualService without a
/// waypoint), cluster-local endpoints unless the Service is marked global (Istio
/// ambient multicluster docs), HBONE to ambient destinations.
async fn ztunnel_outbound(
    shared: &Arc<Shared>,
    pod: usize,
    host: &str,
    port: u16,
    trace: &Trace,
) -> io::Result<BoxStream> {
    let p = &shared.model.pods[pod];
    let (svc, ns) = split_host(host, &p.namespace);
    let global = shared.model.service_is_global(p.cluster, &svc, &ns);
    let reach = if global {
        Reach::Mesh
    } else {
        Reach::Local(p.cluster)
    };
    let endpoints = shared.model.endpoints(&svc, &ns, port, reach);
    let component = format!("ztunnel outbound of {}", shared.pod_label(pod));
    let Some(ep) = pick(shared, pod, &endpoints) else {
        trace.hop(
            &component,
            format!("{svc}.{ns}:{port}: no endpoint; connection reset"),
        );
        return Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("ztunnel: no endpoint for {svc}.{ns}:{port}"),
        ));
    };
    trace.hop(
        &component,
        format!(
            "{svc}.{ns}:{port} ({}) -> {} port {}",
            if global {
                "global service: mesh-wide endpoints"
            } else {
                "cluster-local service"
            },
            shared.pod_label(ep.pod),
            ep.port
        ),
    );
    let tcp = connect(shared, &ep, trace).await?;
    if shared.model.pods[ep.pod].dataplane != Dataplane::Ambient {
        return Ok(Box::new(tcp));
    }
    let local = tcp.local_addr()?;
    match originate_mtls(shared, pod, tcp, &[HBONE_ALPN], &host_name(host)).await {
        Ok(s) => Ok(s),
        Err(e) => {
            trace.absorb(local, &shared.journal, None);
            trace.hop(&component, format!("HBONE handshake failed: {e}"));
            Err(io::Error::new(io::ErrorKind::ConnectionReset, e))
        }
    }
}

fn host_name(host: &str) -> String {
    host.trim_end_matches('.').to_string()
}

/// Picks one endpoint with the pod's seeded RNG (Envoy's load balancer; the twin uses
/// uniform random choice so a given seed always gives the same routing).
fn pick(shared: &Shared, pod: usize, endpoints: &[Endpoint]) -> Option<Endpoint> {
    if endpoints.is_empty() {
        return None;
    }
    let i = shared.pods[pod].rng.lock().ok()?.usize(..endpoints.len());
    endpoints.get(i).cloned()
}

/// Opens TCP to an endpoint's pod address and registers it in the trace.
async fn connect(shared: &Shared, ep: &Endpoint, trace: &Trace) -> io::Result<TcpStream> {
    let addr = shared.pods[ep.pod]
        .addrs
        .get(&ep.port)
        .copied()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "nothing listens on that pod port",
            )
        })?;
    let tcp = TcpStream::connect(addr).await?;
    trace.connected(tcp.local_addr()?);
    Ok(tcp)
}

/// A proxy originates Istio mTLS with the pod's workload certificate, verifying the
/// peer against the mesh root by SPIFFE identity.
async fn originate_mtls(
    shared: &Shared,
    pod: usize,
    tcp: TcpStream,
    alpn: &[&str],
    host: &str,
) -> Result<BoxStream, String> {
    let identity = shared.pods[pod]
        .identity
        .as_ref()
        .ok_or("no mesh identity")?;
    let verifier = RecordingVerifier::new(std::slice::from_ref(&shared.mesh_root), true);
    let config = tls::client_config(verifier.clone(), Some(identity), alpn)?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    match TlsConnector::from(config).connect(name, tcp).await {
        Ok(s) => Ok(Box::new(s)),
        Err(e) => Err(match verifier.presented() {
            Some(c) => format!(
                "TLS error: {} (upstream presented {})",
                tls::handshake_error(&e),
                tls::describe(&c)
            ),
            None => format!("TLS error: {}", tls::handshake_error(&e)),
        }),
    }
}

/// Envoy's outbound side for one app connection. Protocol sniffing (Istio "Protocol
/// Selection", automatic detection): TLS from the app is proxied as TCP (routed by
/// Service, no HTTP routes); anything else is HTTP/1.1 and routed per request with
/// the VirtualService and DestinationRule of the client's cluster.
async fn sidecar_outbound(
    shared: Arc<Shared>,
    pod: usize,
    host: String,
    port: u16,
    mut app: tokio::io::DuplexStream,
    trace: Trace,
) {
    let Ok((first, buf)) = hello::inspect(&mut app).await else {
        return;
    };
    let stream = Prefixed::new(buf, app);
    match first {
        FirstBytes::Closed => {}
        FirstBytes::Tls { .. } => tcp_proxy(shared, pod, &host, port, stream, trace).await,
        FirstBytes::Plain => {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (shared, host, trace) = (Arc::clone(&shared), host.clone(), trace.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        http_route(shared, pod, &host, port, req, trace).await,
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

/// TCP proxying of the app's own TLS (e.g. the backfill's HTTPS): auto mTLS still
/// wraps it when the chosen endpoint has a sidecar (Istio FAQ "Does auto mTLS work
/// with excludeInboundPorts?"; istio/istio#30311): if the server excludes the port, its
/// APP answers the mTLS handshake with its own certificate, verification fails and
/// Envoy resets the app's connection.
async fn tcp_proxy(
    shared: Arc<Shared>,
    pod: usize,
    host: &str,
    port: u16,
    mut app: Prefixed<tokio::io::DuplexStream>,
    trace: Trace,
) {
    let component = format!("sidecar outbound of {}", shared.pod_label(pod));
    let p = &shared.model.pods[pod];
    let (svc, ns) = split_host(host, &p.namespace);
    let endpoints = shared.model.endpoints(&svc, &ns, port, Reach::Mesh);
    let Some(ep) = pick(&shared, pod, &endpoints) else {
        trace.hop(
            &component,
            format!(
                "TLS from the app to {svc}.{ns}:{port}: no healthy upstream; connection closed"
            ),
        );
        return;
    };
    trace.hop(
        &component,
        format!(
            "TLS from the app proxied as TCP to {svc}.{ns}:{port} -> {} port {} (endpoints of every cluster: namespace sameness)",
            shared.pod_label(ep.pod),
            ep.port
        ),
    );
    match upstream(&shared, pod, &ep, host, &trace, &component).await {
        Ok(mut up) => {
            let _ = tokio::io::copy_bidirectional(&mut app, &mut up).await;
        }
        Err(e) => trace.hop(&component, format!("{e}; downstream connection reset")),
    }
}

/// Connects to an endpoint the way the client sidecar does: Istio mTLS when the
/// endpoint has a sidecar (auto mTLS: Istio "Mutual TLS Migration", endpoints labelled
/// `security.istio.io/tlsMode: istio`), plain TCP otherwise.
async fn upstream(
    shared: &Arc<Shared>,
    pod: usize,
    ep: &Endpoint,
    host: &str,
    trace: &Trace,
    component: &str,
) -> Result<BoxStream, String> {
    let tcp = connect(shared, ep, trace)
        .await
        .map_err(|e| format!("upstream connect error: {e}"))?;
    // Auto mTLS sends plaintext to endpoints without a sidecar, and to ports whose
    // PeerAuthentication is DISABLE (istio pilot/pkg/networking/core/cluster_tls.go:
    // auto mTLS honours the server's mTLS mode).
    let server_disabled = shared.model.effective_mtls(ep.pod, ep.port).0 == MtlsMode::Disable;
    if !shared.model.pods[ep.pod].has_sidecar() || server_disabled {
        return Ok(Box::new(tcp));
    }
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let result = originate_mtls(shared, pod, tcp, ISTIO_ALPN, &host_name(host)).await;
    let note = |action: &str| {
        Some(crate::provider::Hop {
            component: component.to_string(),
            action: action.to_string(),
        })
    };
    match result {
        Ok(s) => {
            trace.absorb(
                local,
                &shared.journal,
                note("auto mTLS: originated Istio mTLS (ALPN istio) to the endpoint's sidecar; verified against the mesh root"),
            );
            Ok(s)
        }
        Err(e) => {
            trace.absorb(local, &shared.journal, None);
            Err(format!(
                "auto mTLS: upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: {e}"
            ))
        }
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r
}

/// One HTTP request through the sidecar outbound: VirtualService route (weighted
/// destinations), DestinationRule subset (label selection over the workload instance
/// labels, which include `topology.istio.io/cluster`), endpoint pick, auto mTLS.
async fn http_route(
    shared: Arc<Shared>,
    pod: usize,
    host: &str,
    port: u16,
    req: Request<Incoming>,
    trace: Trace,
) -> Response<Full<Bytes>> {
    let component = format!("sidecar outbound of {}", shared.pod_label(pod));
    let (endpoints, how) = match super::routing::route(&shared, pod, host, port) {
        Ok(r) => r,
        Err(e) => {
            trace.hop(&component, format!("{e}: 503 no healthy upstream"));
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy upstream".into(),
            );
        }
    };
    let Some(ep) = pick(&shared, pod, &endpoints) else {
        trace.hop(
            &component,
            format!("{how}: no endpoint left: 503 no healthy upstream"),
        );
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy upstream".into(),
        );
    };
    trace.hop(
        &component,
        format!("{how} -> {} port {}", shared.pod_label(ep.pod), ep.port),
    );
    let up = match upstream(&shared, pod, &ep, host, &trace, &component).await {
        Ok(s) => s,
        Err(e) => {
            trace.hop(&component, format!("{e}: 503"));
            return plain(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match apps::http_call(up, Request::from_parts(parts, Full::new(body))).await {
        Ok((status, body)) => {
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = status;
            r
        }
        Err(e) => {
            trace.hop(&component, format!("upstream reset: {e}: 503"));
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("upstream reset: {e}"),
            )
        }
    }
}
