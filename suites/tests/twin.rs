//! The twin reproduces the seed's failures for the right reasons, observably.
//!
//! Each test renders the reference install for a small scenario, breaks one thing the
//! way a real chart could (drops an annotation, a VirtualService, a PeerAuthentication,
//! swaps a caBundle), brings the twin up and looks at what the probes observed.

use std::collections::BTreeMap;
use std::path::Path;

use meshconform::checks::{self, CheckId, CheckKind, Outcome, Status};
use meshconform::manifests::{Resource, WorkloadRef};
use meshconform::provider::{Handshake, Provider, RunningMesh, ValidatorVerdict};
use meshconform::runner::{self, Scope};
use meshconform::scenario::{self, Scenario};
use meshconform::subject::{self, InstalledSet, Rendered, Subject};
use meshconform::twin::Twin;

const EXCLUDE_INBOUND: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
const EXCLUDE_OUTBOUND: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";

/// A scenario from its topology; every expectation is filled in (runtime checks never
/// read them).
fn scenario(name: &str, body: &str) -> Scenario {
    let mut yaml = format!("name: {name}\ndescription: twin test\n{body}\nexpect:\n");
    for id in CheckId::ALL {
        yaml.push_str(&format!("  {id}: pass\n"));
    }
    scenario::load_str(Path::new(&format!("{name}.yaml")), &yaml).unwrap()
}

fn sidecar(name: &str, mtls: &str) -> Scenario {
    scenario(
        name,
        &format!(
            "certificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      mtls: {mtls}\n    values:\n      clusterName: alpha\n"
        ),
    )
}

fn two_sidecar_clusters(name: &str) -> Scenario {
    scenario(
        name,
        "certificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      mtls: strict\n    values:\n      clusterName: alpha\n  - name: beta\n    istio:\n      mode: sidecar\n      mtls: strict\n    values:\n      clusterName: beta\n",
    )
}

fn render(s: &Scenario) -> Rendered {
    subject::render(&Subject::default(), s).unwrap()
}

fn installed<'a>(r: &'a mut Rendered, cluster: &str) -> &'a mut InstalledSet {
    r.installs
        .iter_mut()
        .find(|i| i.cluster == cluster)
        .and_then(|i| i.result.as_mut().ok())
        .unwrap()
}

/// Removes a pod annotation from a workload and finds the roles again.
fn drop_annotation(r: &mut Rendered, cluster: &str, workload: &WorkloadRef, key: &str) {
    let set = installed(r, cluster);
    let template = set.manifests.pod_template_mut(workload).unwrap();
    let removed = template
        .metadata
        .as_mut()
        .and_then(|m| m.annotations.as_mut())
        .and_then(|a| a.remove(key));
    assert!(removed.is_some(), "{workload} had no {key} to remove");
    rediscover(set);
}

fn rediscover(set: &mut InstalledSet) {
    set.roles = meshconform::roles::discover(&set.manifests, &Default::default());
}

fn webhook_workload(r: &mut Rendered, cluster: &str) -> WorkloadRef {
    installed(r, cluster)
        .roles
        .webhook
        .clone()
        .unwrap()
        .workload
}

/// The rendered agent of `s` with the webhook's inbound port exclusion removed in
/// cluster `alpha`, so the API server's call meets the sidecar.
fn without_inbound_exclusion(s: &Scenario) -> Rendered {
    let mut r = render(s);
    let webhook = webhook_workload(&mut r, "alpha");
    drop_annotation(&mut r, "alpha", &webhook, EXCLUDE_INBOUND);
    r
}

fn up(s: &Scenario, r: &Rendered) -> Box<dyn RunningMesh> {
    Twin::new().up(s, r).unwrap()
}

fn run(check: CheckId, s: &Scenario, r: &Rendered) -> Outcome {
    let mut mesh = up(s, r);
    let outcome = checks::run_runtime(check, s, r, mesh.as_mut());
    mesh.down().unwrap();
    outcome
}

fn evidence_text(o: &Outcome) -> String {
    o.evidence
        .iter()
        .map(|e| format!("{} | {} | {}", e.subject, e.expected, e.found))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn strict_sidecar_without_the_inbound_exclusion_presents_the_istio_certificate() {
    let s = sidecar("mtls-conflict", "strict");
    let r = without_inbound_exclusion(&s);

    let mut mesh = up(&s, &r);
    let obs = mesh.admit("alpha").unwrap();
    // Steps 2-5 of the seed: Envoy terminates, presents the Istio certificate, the
    // chain does not match the caBundle, the connection fails.
    match &obs.call.handshake {
        Handshake::Failed {
            presented: Some(cert),
            presented_by,
            error,
        } => {
            assert!(
                cert.sans
                    .iter()
                    .any(|s| s.starts_with("spiffe://cluster.local/ns/")),
                "{cert:?}"
            );
            assert!(
                cert.issuer.contains("intermediate CA for cluster alpha"),
                "{cert:?}"
            );
            assert!(
                presented_by.starts_with("sidecar inbound of Deployment/"),
                "{presented_by}"
            );
            assert!(error.contains("UnknownIssuer"), "{error}");
        }
        other => panic!("expected a failed handshake, got {other:?}"),
    }
    assert!(!obs.call.recorded);
    assert_eq!(obs.failure_policy, "Ignore");
    assert!(obs.admitted, "failurePolicy Ignore admits anyway");
    assert!(
        obs.call
            .hops
            .iter()
            .any(|h| h.action.contains("PeerAuthentication STRICT"))
    );
    mesh.down().unwrap();

    let outcome = run(CheckId::WebhookReach, &s, &r);
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        outcome.summary.contains("sidecar inbound of"),
        "{}",
        outcome.summary
    );
    assert!(
        outcome.summary.contains("metadata silently missed"),
        "{}",
        outcome.summary
    );
    assert!(
        evidence_text(&outcome).contains("spiffe://"),
        "{}",
        evidence_text(&outcome)
    );
}

#[test]
fn strict_sidecar_with_the_inbound_exclusion_reaches_the_webhook() {
    let s = sidecar("mtls-excluded", "strict");
    let r = render(&s);
    let outcome = run(CheckId::WebhookReach, &s, &r);
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.summary);
    assert!(evidence_text(&outcome).contains("bypassed the sidecar"));
}

#[test]
fn permissive_passes_the_webhooks_own_certificate_through() {
    let s = sidecar("permissive", "permissive");
    let r = without_inbound_exclusion(&s);
    let mut mesh = up(&s, &r);
    let obs = mesh.admit("alpha").unwrap();
    match &obs.call.handshake {
        Handshake::Verified {
            presented,
            presented_by,
        } => {
            assert!(presented.issuer.contains("init-cert CA"), "{presented:?}");
            assert!(
                presented_by.starts_with("webhook container of"),
                "{presented_by}"
            );
        }
        other => panic!("expected the webhook's own certificate, got {other:?}"),
    }
    assert!(obs.call.recorded);
    assert!(
        obs.call
            .hops
            .iter()
            .any(|h| h.component.starts_with("sidecar inbound")
                && h.action.contains("passed through as TCP"))
    );
}

#[test]
fn backfill_without_the_outbound_exclusion_fails_through_auto_mtls() {
    let s = sidecar("backfill-auto-mtls", "strict");
    let mut r = render(&s);
    let backfill = installed(&mut r, "alpha").roles.backfill[0].clone();
    drop_annotation(&mut r, "alpha", &backfill, EXCLUDE_OUTBOUND);
    let mut mesh = up(&s, &r);
    let call = mesh.backfill("alpha").unwrap();
    assert!(!call.handshake.verified());
    assert!(!call.recorded);
    let hops: Vec<String> = call
        .hops
        .iter()
        .map(|h| format!("{}: {}", h.component, h.action))
        .collect();
    let text = hops.join("\n");
    // The client sidecar wrapped the backfill's TLS in Istio mTLS; the webhook's port is
    // excluded on the server, so its APP answered with its own certificate and the
    // client sidecar's verification failed.
    assert!(text.contains("auto mTLS"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("bypassed the sidecar"), "{text}");
    mesh.down().unwrap();

    let outcome = run(CheckId::BackfillReach, &s, &r);
    assert_eq!(outcome.status, Status::Fail);
}

#[test]
fn dropping_the_virtual_service_misattributes_samples() {
    let s = two_sidecar_clusters("no-vs");
    let mut r = render(&s);
    for cluster in ["alpha", "beta"] {
        let set = installed(&mut r, cluster);
        let removed = set
            .manifests
            .remove_where(|res| matches!(res, Resource::VirtualService(_)));
        assert_eq!(removed, 1);
    }
    let mut mesh = up(&s, &r);
    let obs = mesh.attribution(20).unwrap();
    let misattributed: u64 = obs
        .clusters
        .iter()
        .flat_map(|c| c.misattributed.values())
        .sum();
    assert!(misattributed > 0, "{obs:?}");
    assert!(obs.clusters.iter().all(|c| c.lost == 0), "{obs:?}");
    assert!(obs.flows.iter().any(|f| {
        f.to_cluster
            .as_deref()
            .is_some_and(|to| to != f.from_cluster)
    }));
    mesh.down().unwrap();

    let outcome = run(CheckId::Attribution, &s, &r);
    assert_eq!(outcome.status, Status::Fail);
    assert!(!outcome.traffic.is_empty());
}

#[test]
fn the_fencing_keeps_every_sample_local() {
    let s = two_sidecar_clusters("fenced");
    let r = render(&s);
    let outcome = run(CheckId::Attribution, &s, &r);
    assert_eq!(outcome.status, Status::Pass, "{}", outcome.summary);
    assert!(
        outcome
            .traffic
            .iter()
            .all(|f| f.to_cluster.as_deref() == Some(f.from_cluster.as_str()))
    );
}

/// Sets the `local-cluster` subset of one cluster's DestinationRule to select `id`.
fn set_subset_cluster(r: &mut Rendered, cluster: &str, id: &str) {
    let set = installed(r, cluster);
    let mut changed = 0;
    for m in &mut set.manifests.items {
        if let Resource::DestinationRule(dr) = &mut m.resource {
            for subset in &mut dr.spec.subsets {
                subset
                    .labels
                    .insert("topology.istio.io/cluster".into(), id.into());
                changed += 1;
            }
        }
    }
    assert_eq!(changed, 1);
}

#[test]
fn a_subset_naming_the_other_cluster_misattributes_and_an_unknown_id_loses() {
    let s = two_sidecar_clusters("swapped");
    let mut r = render(&s);
    // alpha selects beta's cluster ID: every sample goes to beta's aggregator.
    set_subset_cluster(&mut r, "alpha", "beta");
    // beta selects an ID no cluster has: the subset is empty, Envoy answers 503.
    set_subset_cluster(&mut r, "beta", "gamma");
    let mut mesh = up(&s, &r);
    let obs = mesh.attribution(10).unwrap();
    let by: BTreeMap<_, _> = obs
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c))
        .collect();
    assert_eq!(
        by["alpha"].misattributed.get("beta"),
        Some(&by["alpha"].sent)
    );
    assert_eq!(by["alpha"].delivered, 0);
    assert_eq!(by["beta"].lost, by["beta"].sent);
    assert!(
        by["beta"].lost_reasons.keys().all(|k| k.contains("503")),
        "{:?}",
        by["beta"].lost_reasons
    );
}

#[test]
fn a_replaced_ca_bundle_fails_the_handshake() {
    let s = sidecar("rotated", "strict");
    let mut r = render(&s);
    let role = installed(&mut r, "alpha").roles.webhook.clone().unwrap();
    let other = meshconform::certs::WebhookPki::generate(
        &role.service,
        &role.namespace,
        meshconform::certs::Validity::default(),
    )
    .unwrap();
    let set = installed(&mut r, "alpha");
    for m in &mut set.manifests.items {
        if let Resource::ValidatingWebhookConfiguration(v) = &mut m.resource {
            for hook in v.webhooks.iter_mut().flatten() {
                let bundle = hook.client_config.ca_bundle.as_mut().unwrap();
                bundle.0 = other.ca_pem().as_bytes().to_vec();
            }
        }
    }
    let mut mesh = up(&s, &r);
    let obs = mesh.admit("alpha").unwrap();
    match &obs.call.handshake {
        Handshake::Failed {
            presented_by,
            error,
            ..
        } => {
            assert!(
                presented_by.starts_with("webhook container of"),
                "{presented_by}"
            );
            assert!(error.contains("UnknownIssuer"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!obs.call.recorded);
}

#[test]
fn a_down_aggregator_counts_its_samples_as_lost() {
    let s = scenario(
        "agg-down",
        "certificates: init-cert\nfaults:\n  - kind: aggregator-down\n    cluster: alpha\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      mtls: strict\n    values:\n      clusterName: alpha\n",
    );
    let r = render(&s);
    let mut mesh = up(&s, &r);
    let obs = mesh.attribution(10).unwrap();
    let alpha = &obs.clusters[0];
    assert!(alpha.sent > 0);
    assert_eq!(alpha.lost, alpha.sent, "{alpha:?}");
    assert_eq!(alpha.delivered, 0);
    assert!(obs.flows.iter().all(|f| f.to_cluster.is_none()));
}

#[test]
fn a_slow_webhook_is_admitted_but_its_metadata_is_missed() {
    let s = scenario(
        "slow",
        "certificates: init-cert\nfaults:\n  - kind: slow-webhook\n    cluster: alpha\n    delayMs: 1500\nclusters:\n  - name: alpha\n    values:\n      clusterName: alpha\n",
    );
    let r = render(&s);
    let outcome = run(CheckId::WebhookReach, &s, &r);
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        outcome.summary.contains("silently missed"),
        "{}",
        outcome.summary
    );
    assert!(outcome.summary.contains("1000 ms"), "{}", outcome.summary);
}

fn ambient_strict() -> Scenario {
    scenario(
        "ambient",
        "certificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: ambient\n      mtls: strict\n    values:\n      clusterName: alpha\n      integrations:\n        istio:\n          clusterID: alpha\n",
    )
}

#[test]
fn ambient_strict_without_the_port_level_permissive_policy_rejects_the_api_server() {
    let s = ambient_strict();
    let r = render(&s);
    assert_eq!(run(CheckId::WebhookReach, &s, &r).status, Status::Pass);

    let mut broken = r.clone();
    let removed = installed(&mut broken, "alpha")
        .manifests
        .remove_where(|res| matches!(res, Resource::PeerAuthentication(_)));
    assert!(
        removed > 0,
        "the reference install should carry the port-level policy"
    );
    let outcome = run(CheckId::WebhookReach, &s, &broken);
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        outcome.summary.contains("closed by ztunnel inbound of"),
        "{}",
        outcome.summary
    );
    let text = evidence_text(&outcome);
    assert!(text.contains("ztunnel inbound"), "{text}");
    assert!(text.contains("istio/istio#52874"), "{text}");
}

#[test]
fn classic_sidecar_with_an_init_container_validator_cannot_reach_envoy() {
    let s = scenario(
        "classic-init",
        "certificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      mtls: strict\n      sidecar: classic\n    values:\n      clusterName: alpha\n",
    );
    let mut r = render(&s);
    let set = installed(&mut r, "alpha");
    let role = set.roles.validator.clone().unwrap();
    assert!(!role.init, "the reference runs it beside a classic sidecar");
    let spec = set
        .manifests
        .pod_template_mut(&role.workload)
        .and_then(|t| t.spec.as_mut())
        .unwrap();
    let at = spec
        .containers
        .iter()
        .position(|c| c.name == role.container)
        .unwrap();
    let container = spec.containers.remove(at);
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .push(container);
    rediscover(set);

    let mut mesh = up(&s, &r);
    let obs = mesh.validator("alpha").unwrap();
    match &obs.verdict {
        ValidatorVerdict::Errored(m) => assert!(m.contains("refused"), "{m}"),
        other => panic!("expected Errored, got {other:?}"),
    }
    // The proxy starts after the init container: the admin port answers afterwards.
    let again = mesh.validator("alpha").unwrap();
    assert!(
        matches!(again.verdict, ValidatorVerdict::Errored(_)),
        "a pod restart repeats the ordering"
    );
    mesh.down().unwrap();

    let outcome = run(CheckId::Validator, &s, &r);
    assert_eq!(outcome.status, Status::Fail);
}

#[test]
fn a_classic_sidecar_job_without_quitquitquit_never_completes() {
    let s = scenario(
        "classic-job",
        "certificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      mtls: strict\n      sidecar: classic\n    values:\n      clusterName: alpha\n",
    );
    let r = render(&s);
    assert_eq!(run(CheckId::JobCompletion, &s, &r).status, Status::Pass);
    let mut broken = r.clone();
    let set = installed(&mut broken, "alpha");
    let job = set
        .roles
        .backfill
        .iter()
        .find(|w| w.kind == "Job")
        .cloned()
        .unwrap();
    let spec = set
        .manifests
        .pod_template_mut(&job)
        .and_then(|t| t.spec.as_mut())
        .unwrap();
    for c in &mut spec.containers {
        c.command = Some(vec!["/backfill".into()]);
        c.args = None;
    }
    let outcome = run(CheckId::JobCompletion, &s, &broken);
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        evidence_text(&outcome).contains("Running"),
        "{}",
        evidence_text(&outcome)
    );
}

#[test]
fn a_wrong_cluster_id_is_reported_by_the_validator() {
    let s = scenario(
        "wrong-id",
        "certificates: init-cert\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      clusterId: cluster-a\n    values:\n      clusterName: alpha\n",
    );
    let r = render(&s);
    let mut mesh = up(&s, &r);
    let obs = mesh.validator("alpha").unwrap();
    match &obs.verdict {
        ValidatorVerdict::Reported(m) => {
            assert!(m.contains("cluster-a") && m.contains("alpha"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

/// Status and summary of every runtime check of every scenario (certificate details,
/// which carry random CA names, stay in the evidence).
fn matrix_outcomes() -> Vec<(String, String, Status, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let scenarios = scenario::load_dir(&dir).unwrap();
    let twin = Twin::new();
    let mut out = Vec::new();
    for s in &scenarios {
        let result = runner::run_scenario(s, &Subject::default(), Some(&twin), Scope::All).unwrap();
        for c in result
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::Runtime)
        {
            out.push((
                s.name.clone(),
                c.check.to_string(),
                c.outcome.status,
                c.outcome.summary.clone(),
            ));
        }
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_outcomes() {
    let s = two_sidecar_clusters("seeded");
    let mut r = render(&s);
    for cluster in ["alpha", "beta"] {
        installed(&mut r, cluster)
            .manifests
            .remove_where(|res| matches!(res, Resource::VirtualService(_)));
    }
    let once = |r: &Rendered| {
        let mut mesh = up(&s, r);
        let a = mesh.attribution(20).unwrap();
        mesh.down().unwrap();
        a
    };
    let first = once(&r);
    assert_eq!(first, once(&r));
    assert!(
        first.clusters.iter().any(|c| !c.misattributed.is_empty()),
        "the test must exercise random routing"
    );
}

#[test]
fn the_matrix_runs_the_same_twice() {
    assert_eq!(matrix_outcomes(), matrix_outcomes());
}

/// `scripts/determinism.sh` runs this: the whole matrix 50 times, identical outcomes.
#[test]
#[ignore = "slow: run by scripts/determinism.sh"]
fn the_matrix_runs_the_same_fifty_times() {
    let runs: usize = std::env::var("MESHCONFORM_DETERMINISM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let first = matrix_outcomes();
    for i in 1..runs {
        assert_eq!(first, matrix_outcomes(), "run {i} differs from run 0");
    }
}

#[test]
fn ports_are_closed_after_down() {
    let s = sidecar("ports", "strict");
    let r = render(&s);
    let mesh = Twin::new().start(&s, &r).unwrap();
    let addrs = mesh.addresses();
    assert!(addrs.len() >= 4, "{addrs:?}");
    for a in &addrs {
        assert!(
            std::net::TcpStream::connect(a).is_ok(),
            "{a} should be open while up"
        );
    }
    Box::new(mesh).down().unwrap();
    for a in &addrs {
        assert!(
            std::net::TcpStream::connect(a).is_err(),
            "{a} still open after down()"
        );
    }
}

#[test]
fn a_cancelled_mesh_refuses_probes_and_still_comes_down() {
    let s = sidecar("cancel", "strict");
    let r = render(&s);
    let twin = Twin::new();
    let mut mesh = twin.up(&s, &r).unwrap();
    twin.cancel_handle().cancel();
    assert_eq!(mesh.admit("alpha").unwrap_err().0, "cancelled");
    mesh.down().unwrap();
}

#[test]
fn many_meshes_run_side_by_side() {
    let s = sidecar("parallel", "strict");
    let r = render(&s);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (s, r) = (s.clone(), r.clone());
            std::thread::spawn(move || run(CheckId::WebhookReach, &s, &r).status)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Status::Pass);
    }
}

/// The agent's contract lists only `svc.ns.svc` in the cert-manager Certificate, but the
/// backfill dials `svc.ns.svc.cluster.local`: the backfill's own hostname check fails.
/// The API server, which verifies `svc.ns.svc`, is not affected.
#[test]
fn a_cert_manager_certificate_without_the_fqdn_fails_the_backfill_only() {
    let s = scenario(
        "cert-manager-short-sans",
        "certificates: cert-manager\nclusters:\n  - name: alpha\n    istio:\n      mode: sidecar\n      mtls: strict\n    values:\n      clusterName: alpha\n",
    );
    let mut r = render(&s);
    assert_eq!(run(CheckId::BackfillReach, &s, &r).status, Status::Pass);
    let set = installed(&mut r, "alpha");
    let mut trimmed = 0;
    for item in &mut set.manifests.items {
        if let Resource::Certificate(c) = &mut item.resource {
            let before = c.spec.dns_names.len();
            c.spec
                .dns_names
                .retain(|n| !n.ends_with(".svc.cluster.local"));
            trimmed += before - c.spec.dns_names.len();
        }
    }
    assert_eq!(trimmed, 1, "the reference Certificate names the FQDN once");
    rediscover(set);
    let backfill = run(CheckId::BackfillReach, &s, &r);
    assert_eq!(backfill.status, Status::Fail);
    assert!(
        evidence_text(&backfill).contains("not valid for name"),
        "{}",
        evidence_text(&backfill)
    );
    assert_eq!(run(CheckId::WebhookReach, &s, &r).status, Status::Pass);
}
