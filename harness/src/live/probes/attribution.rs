//! ATTRIBUTION on live clusters. In every cluster a probe pod, in the agent's
//! namespace (so it is in the mesh like the real senders), pushes `n` Prometheus
//! remote_write requests to the aggregator Service. Each request carries a unique
//! marker in its User-Agent (`meshconform-probe/<run>/<cluster>/<i>`), which the
//! sidecar access log records (Istio's default access log format includes the
//! user agent; the live meshes turn access logging on), and a marker label in the
//! samples for aggregators that log what they receive. Then every aggregator's logs
//! are read: a marker of cluster X found at cluster Y's aggregator is a sample of
//! X attributed to Y.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, Pod, PodSpec, Service, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use super::ClusterProbe;
use super::admission::PROBE_LABEL;
use super::kube_api::{self, api_error};
use crate::provider::{AttributionObservation, ClusterAttribution, Flow, ProbeError};
use crate::scenario::IstioMode;

/// Image of the probe pod (curl and a POSIX shell).
pub const CURL_IMAGE: &str = "curlimages/curl:8.11.1";

/// The User-Agent prefix of every probe request.
pub const MARKER: &str = "meshconform-probe";

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A Prometheus remote_write 1.0 body (`WriteRequest` protobuf, snappy block
/// compressed) with one series `meshconform_probe{meshconform_marker=<marker>}`.
pub fn remote_write_body(marker: &str, timestamp_ms: i64) -> Result<Vec<u8>, ProbeError> {
    let label = |name: &str, value: &str| {
        let mut l = Vec::new();
        field_bytes(1, name.as_bytes(), &mut l);
        field_bytes(2, value.as_bytes(), &mut l);
        l
    };
    let mut sample = Vec::new();
    // value (double, field 1, fixed64) = 1.0; timestamp (int64, field 2, varint).
    sample.push(0x09);
    sample.extend_from_slice(&1.0f64.to_le_bytes());
    varint(2 << 3, &mut sample);
    varint(timestamp_ms as u64, &mut sample);
    let mut series = Vec::new();
    field_bytes(1, &label("__name__", "meshconform_probe"), &mut series);
    field_bytes(1, &label("meshconform_marker", marker), &mut series);
    field_bytes(2, &sample, &mut series);
    let mut request = Vec::new();
    field_bytes(1, &series, &mut request);
    snap::raw::Encoder::new()
        .compress_vec(&request)
        .map_err(|e| ProbeError(format!("snappy: {e}")))
}

/// The probe pod's shell script: wait for a sidecar when there is one, then send `n`
/// requests and print `sample <i> <http code>` for each (000: no response).
pub fn probe_script(url: &str, run: &str, cluster: &str, n: u32, wait_for_sidecar: bool) -> String {
    let mut s = String::new();
    if wait_for_sidecar {
        // A classic sidecar starts alongside this container; requests sent before it
        // is ready bypass nothing, they just fail.
        s.push_str("for t in $(seq 1 60); do curl -s -o /dev/null http://localhost:15021/healthz/ready && break; sleep 1; done\n");
    }
    s.push_str(&format!(
        "i=0\nwhile [ $i -lt {n} ]; do\n  code=$(curl -s -o /dev/null -w '%{{http_code}}' -m 5 -A \"{MARKER}/{run}/{cluster}/$i\" -H 'Content-Encoding: snappy' -H 'Content-Type: application/x-protobuf' -H 'X-Prometheus-Remote-Write-Version: 0.1.0' --data-binary @/payload/payload.bin {url})\n  echo \"sample $i $code\"\n  i=$((i+1))\ndone\n"
    ));
    s
}

/// Parses the probe pod's log: sample index -> HTTP code (`000`: no response).
pub fn parse_probe_log(log: &str) -> BTreeMap<u32, String> {
    log.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "sample").then_some(())?;
            let i = w.next()?.parse().ok()?;
            Some((i, w.next().unwrap_or("000").to_string()))
        })
        .collect()
}

/// Markers of `run` found in log text: `(sending cluster, sample index)`.
pub fn markers_in(text: &str, run: &str) -> BTreeSet<(String, u32)> {
    let prefix = format!("{MARKER}/{run}/");
    let mut out = BTreeSet::new();
    for (pos, _) in text.match_indices(&prefix) {
        let rest = &text[pos + prefix.len()..];
        let mut parts = rest.splitn(2, '/');
        let (Some(cluster), Some(tail)) = (parts.next(), parts.next()) else {
            continue;
        };
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(i) = digits.parse() {
            out.insert((cluster.to_string(), i));
        }
    }
    out
}

/// Builds the observation from what each sender saw and where markers were found.
///
/// `sent`: per sending cluster, sample index -> HTTP code. `landed`: per receiving
/// cluster, the markers found in its aggregator's logs.
pub fn observation(
    sent: &BTreeMap<String, BTreeMap<u32, String>>,
    landed: &BTreeMap<String, BTreeSet<(String, u32)>>,
    n: u32,
) -> AttributionObservation {
    let mut obs = AttributionObservation::default();
    for (from, codes) in sent {
        let mut row = ClusterAttribution {
            cluster: from.clone(),
            sent: u64::from(n),
            ..Default::default()
        };
        for i in 0..n {
            let at: Vec<&String> = landed
                .iter()
                .filter(|(_, found)| found.contains(&(from.clone(), i)))
                .map(|(to, _)| to)
                .collect();
            match at.first() {
                Some(to) if *to == from => row.delivered += 1,
                Some(to) => *row.misattributed.entry((*to).clone()).or_default() += 1,
                None => {
                    row.lost += 1;
                    let reason = match codes.get(&i).map(String::as_str) {
                        None => "the probe never sent it".to_string(),
                        Some("000") => "no response (connection failed or timed out)".to_string(),
                        Some(c) if c.starts_with('2') => {
                            format!("HTTP {c} but no aggregator logged it")
                        }
                        Some(c) => format!("HTTP {c}"),
                    };
                    *row.lost_reasons.entry(reason).or_default() += 1;
                }
            }
        }
        obs.flows.push(Flow {
            from_cluster: from.clone(),
            sender: "probe pod".into(),
            to_cluster: Some(from.clone()),
            samples: row.delivered,
        });
        for (to, count) in &row.misattributed {
            obs.flows.push(Flow {
                from_cluster: from.clone(),
                sender: "probe pod".into(),
                to_cluster: Some(to.clone()),
                samples: *count,
            });
        }
        if row.lost > 0 {
            obs.flows.push(Flow {
                from_cluster: from.clone(),
                sender: "probe pod".into(),
                to_cluster: None,
                samples: row.lost,
            });
        }
        obs.clusters.push(row);
    }
    obs.flows.retain(|f| f.samples > 0);
    obs
}

fn probe_pod(name: &str, namespace: &str, config_map: &str, script: String) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some([(PROBE_LABEL.to_string(), "attribution".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            containers: vec![Container {
                name: "probe".into(),
                image: Some(CURL_IMAGE.into()),
                command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "payload".into(),
                    mount_path: "/payload".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "payload".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config_map.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn start_probe(
    cluster: &str,
    c: &ClusterProbe,
    run: &str,
    n: u32,
) -> Result<(String, String), ProbeError> {
    let agg = c
        .roles
        .aggregator
        .as_ref()
        .ok_or_else(|| ProbeError(format!("no aggregator role in cluster {cluster}")))?;
    let name = format!("mc-attr-{cluster}-{run}");
    let body = remote_write_body(&format!("{run}/{cluster}"), chrono_ms())?;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(PROBE_LABEL.to_string(), "attribution".to_string())].into()),
            ..Default::default()
        },
        binary_data: Some([("payload.bin".to_string(), ByteString(body))].into()),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm)
        .await
        .map_err(|e| api_error(&format!("creating ConfigMap {name}"), e))?;
    let url = format!("http://{}:{}/collector", agg.fqdn(), agg.port);
    let script = probe_script(&url, run, cluster, n, c.mode == IstioMode::Sidecar);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    pods.create(
        &PostParams::default(),
        &probe_pod(&name, &c.namespace, &name, script),
    )
    .await
    .map_err(|e| api_error(&format!("creating probe Pod {name}"), e))?;
    Ok((name, agg.service.clone()))
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn wait_probe(c: &ClusterProbe, name: &str, timeout: Duration) -> Result<String, ProbeError> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    let started = Instant::now();
    loop {
        let pod = pods
            .get(name)
            .await
            .map_err(|e| api_error(&format!("reading probe Pod {name}"), e))?;
        let done = kube_api::container_states(&pod)
            .iter()
            .any(|s| s.starts_with("probe: terminated"));
        if done || started.elapsed() >= timeout {
            return Ok(kube_api::logs(&c.client, &c.namespace, name, "probe", None)
                .await
                .unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the attribution probe in every cluster.
pub async fn run(
    clusters: &[(String, ClusterProbe)],
    run: &str,
    n: u32,
    timeout: Duration,
) -> Result<AttributionObservation, ProbeError> {
    let mut started = Vec::new();
    for (name, c) in clusters {
        let (pod, service) = start_probe(name, c, run, n).await?;
        started.push((name.clone(), c.clone(), pod, service));
    }
    let mut sent = BTreeMap::new();
    for (name, c, pod, _) in &started {
        let log = wait_probe(c, pod, timeout).await?;
        sent.insert(name.clone(), parse_probe_log(&log));
    }
    let mut landed = BTreeMap::new();
    // Saturating: the wait is the caller's option and may be any length.
    let since = Some(
        i64::try_from(timeout.as_secs())
            .unwrap_or(300)
            .saturating_add(300),
    );
    for (name, c, _, service) in &started {
        let services: Api<Service> = Api::namespaced(c.client.clone(), &c.namespace);
        let selector = services
            .get(service)
            .await
            .map_err(|e| api_error(&format!("reading Service {service}"), e))?
            .spec
            .and_then(|s| s.selector)
            .map(|s| kube_api::selector(&s))
            .ok_or_else(|| ProbeError(format!("Service {service} has no selector")))?;
        let mut found = BTreeSet::new();
        for (_, text) in kube_api::all_logs(&c.client, &c.namespace, &selector, since).await? {
            found.extend(markers_in(&text, run));
        }
        landed.insert(name.clone(), found);
    }
    for (_, c, pod, _) in &started {
        let _ = Api::<Pod>::namespaced(c.client.clone(), &c.namespace)
            .delete(pod, &DeleteParams::default())
            .await;
        let _ = Api::<ConfigMap>::namespaced(c.client.clone(), &c.namespace)
            .delete(pod, &DeleteParams::default())
            .await;
    }
    Ok(observation(&sent, &landed, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_write_body_is_snappy_protobuf_with_the_marker() {
        let body = remote_write_body("r1/alpha", 1_700_000_000_000).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(raw[0], 0x0a, "field 1 (timeseries), length-delimited");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("meshconform_marker") && text.contains("r1/alpha"));
    }

    #[test]
    fn markers_are_found_in_access_log_lines() {
        let log = r#"[2026-12-03T17:00:00Z] "POST /collector HTTP/1.1" 200 - via_upstream - "-" 120 0 3 2 "-" "meshconform-probe/r1/alpha/7" "id" "cz-agg.cza.svc.cluster.local""#;
        assert_eq!(
            markers_in(log, "r1"),
            BTreeSet::from([("alpha".to_string(), 7)])
        );
        assert!(markers_in(log, "r2").is_empty());
    }

    #[test]
    fn observation_counts_delivered_misattributed_and_lost() {
        let sent = BTreeMap::from([(
            "alpha".to_string(),
            parse_probe_log("sample 0 200\nsample 1 200\nsample 2 503\n"),
        )]);
        let landed = BTreeMap::from([
            (
                "alpha".to_string(),
                BTreeSet::from([("alpha".to_string(), 0)]),
            ),
            (
                "beta".to_string(),
                BTreeSet::from([("alpha".to_string(), 1)]),
            ),
        ]);
        let obs = observation(&sent, &landed, 3);
        let a = &obs.clusters[0];
        assert_eq!((a.delivered, a.lost), (1, 1));
        assert_eq!(a.misattributed.get("beta"), Some(&1));
        assert_eq!(a.lost_reasons.get("HTTP 503"), Some(&1));
        assert!(
            obs.flows
                .iter()
                .any(|f| f.to_cluster.as_deref() == Some("beta") && f.samples == 1)
        );
    }

    #[test]
    fn script_waits_for_sidecars_only_when_there_are_some() {
        assert!(probe_script("http://a/collector", "r", "alpha", 3, true).contains("15021"));
        assert!(!probe_script("http://a/collector", "r", "alpha", 3, false).contains("15021"));
    }
}
