//! Envoy's admin endpoint (localhost:15000 inside a sidecar pod) over a kube-rs
//! port-forward: `/server_info` (istiod's CLUSTER_ID for this proxy) and `/clusters`
//! (the endpoints Envoy would send to, with their locality and cluster).

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::kube_api::api_error;
use crate::provider::ProbeError;

/// Envoy's admin port in an Istio sidecar.
pub const ADMIN_PORT: u16 = 15000;

/// GETs `path` from the admin endpoint of `pod` and returns the body.
pub async fn admin_get(
    client: &Client,
    namespace: &str,
    pod: &str,
    path: &str,
) -> Result<String, ProbeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut forwarder = api.portforward(pod, &[ADMIN_PORT]).await.map_err(|e| {
        api_error(
            &format!("port-forward to {namespace}/{pod}:{ADMIN_PORT}"),
            e,
        )
    })?;
    let mut stream = forwarder
        .take_stream(ADMIN_PORT)
        .ok_or_else(|| ProbeError(format!("port-forward to {pod}:{ADMIN_PORT} gave no stream")))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| ProbeError(format!("writing to Envoy admin of {pod}: {e}")))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| ProbeError(format!("reading Envoy admin of {pod}: {e}")))?;
    drop(stream);
    let _ = forwarder.join().await;
    http_body(&String::from_utf8_lossy(&raw))
}

/// The body of a raw HTTP/1.1 response; an error for a non-2xx status.
pub fn http_body(raw: &str) -> Result<String, ProbeError> {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| ProbeError("Envoy admin answered no complete HTTP response".into()))?;
    let status = head.lines().next().unwrap_or("");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..300).contains(&c) => {}
        _ => return Err(ProbeError(format!("Envoy admin answered {status:?}"))),
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        // `get`, not indexing: the size comes from the peer and may be too large or
        // fall inside a character the lossy UTF-8 decoding produced.
        let (Some(chunk), Some(tail)) = (after.get(..n), after.get(n..)) else {
            break;
        };
        out.push_str(chunk);
        rest = tail.trim_start_matches("\r\n");
    }
    out
}

/// `node.metadata.CLUSTER_ID` from `/server_info`: the cluster ID istiod gave this
/// proxy, which the validator compares with the chart's effective cluster ID.
pub fn cluster_id(server_info: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(server_info).ok()?;
    v.pointer("/node/metadata/CLUSTER_ID")
        .and_then(|c| c.as_str())
        .map(str::to_string)
}

/// Endpoints of one outbound cluster in `/clusters` text output
/// (`outbound|80||host::10.20.0.5:8080::...`), deduplicated.
pub fn endpoints_of(clusters: &str, host: &str) -> Vec<String> {
    let mut out: Vec<String> = clusters
        .lines()
        .filter(|l| l.starts_with("outbound|") && l.contains(&format!("||{host}::")))
        .filter_map(|l| l.split("::").nth(1).map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cluster_id_from_server_info() {
        let info = r#"{"state":"LIVE","node":{"id":"sidecar~10.10.0.7~x","metadata":{"CLUSTER_ID":"alpha","MESH_ID":"meshconform"}}}"#;
        assert_eq!(cluster_id(info).as_deref(), Some("alpha"));
        assert_eq!(cluster_id("{}"), None);
    }

    #[test]
    fn parses_http_responses_plain_and_chunked() {
        assert_eq!(
            http_body("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap(),
            "ok"
        );
        assert_eq!(http_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(), "abcde");
        assert!(http_body("HTTP/1.1 503 Service Unavailable\r\n\r\n").is_err());
    }

    #[test]
    fn a_chunk_size_that_splits_a_character_or_overruns_ends_the_body() {
        // "é" is two bytes: a chunk of one byte would cut it in half.
        let split =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\né\r\n0\r\n\r\n";
        assert_eq!(http_body(split).unwrap(), "ab");
        let overrun =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nff\r\nxy\r\n";
        assert_eq!(http_body(overrun).unwrap(), "ab");
    }

    #[test]
    fn finds_endpoints_of_an_outbound_cluster() {
        let text = "outbound|80||cz-agg.cza.svc.cluster.local::10.10.0.5:8080::cx_active::0\noutbound|80||cz-agg.cza.svc.cluster.local::10.20.0.9:8080::health_flags::healthy\noutbound|80||other::1.2.3.4:80::x\n";
        assert_eq!(
            endpoints_of(text, "cz-agg.cza.svc.cluster.local"),
            vec!["10.10.0.5:8080", "10.20.0.9:8080"]
        );
    }
}
