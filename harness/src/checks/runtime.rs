//! The runtime checks: each asks a running mesh to act, then judges what it saw.
//!
//! They judge ONLY from observations and the scenario's ground truth (topology, Istio
//! facts, values), never from the scenario's expectations.

use super::{CheckId, Evidence, Outcome};
use crate::provider::{
    AdmissionObservation, CallObservation, ClusterAttribution, Handshake, Hop, RunningMesh,
    ValidatorVerdict,
};
use crate::scenario::{Cluster, IstioMode, Scenario};
use crate::subject::{self, InstalledSet, Rendered};

/// Samples each sender pushes for ATTRIBUTION.
pub const SAMPLES_PER_SENDER: u32 = 20;

/// Runs one runtime check.
pub fn check(
    check: CheckId,
    scenario: &Scenario,
    rendered: &Rendered,
    mesh: &mut dyn RunningMesh,
) -> Outcome {
    match check {
        CheckId::WebhookReach => {
            per_cluster(scenario, rendered, |c, set| webhook_reach(c, set, mesh))
        }
        CheckId::BackfillReach => {
            per_cluster(scenario, rendered, |c, set| backfill_reach(c, set, mesh))
        }
        CheckId::Attribution => attribution(scenario, rendered, mesh),
        CheckId::Validator => per_cluster(scenario, rendered, |c, set| validator(c, set, mesh)),
        CheckId::JobCompletion => {
            per_cluster(scenario, rendered, |c, set| job_completion(c, set, mesh))
        }
        other => Outcome::fail(format!("{other} is not a runtime check")),
    }
}

/// Runs `f` on every cluster with an install; clusters where the subject refused to
/// install are skipped with the refusal as the reason.
fn per_cluster(
    scenario: &Scenario,
    rendered: &Rendered,
    mut f: impl FnMut(&Cluster, &InstalledSet) -> Outcome,
) -> Outcome {
    let outcomes = scenario
        .clusters
        .iter()
        .map(|cluster| {
            let outcome = match rendered.install(&cluster.name).map(|i| &i.result) {
                None => Outcome::fail("no install was rendered for this cluster"),
                Some(Err(refusal)) => Outcome::skip(format!(
                    "the subject refused to install here: {}",
                    refusal.message
                )),
                Some(Ok(set)) => f(cluster, set),
            };
            (cluster.name.clone(), outcome)
        })
        .collect();
    Outcome::fold(outcomes)
}

fn hops_evidence(cluster: &str, who: &str, hops: &[Hop]) -> Evidence {
    let lines: Vec<String> = hops
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}. {}: {}", i + 1, h.component, h.action))
        .collect();
    Evidence::new(
        cluster,
        format!("hops of {who}"),
        "(the path the connection took)",
        lines.join("\n"),
    )
}

fn describe_handshake(h: &Handshake) -> String {
    match h {
        Handshake::Verified {
            presented,
            presented_by,
        } => format!(
            "handshake verified: {presented_by} presented {}",
            crate::twin::tls::describe(presented)
        ),
        Handshake::Failed {
            presented,
            presented_by,
            error,
        } => match presented {
            Some(c) => format!(
                "handshake failed: {presented_by} presented {}; verification failed: {error}",
                crate::twin::tls::describe(c)
            ),
            None => format!(
                "handshake failed before any certificate was verified (last hop: {presented_by}): {error}"
            ),
        },
        Handshake::NoConnection { error } => format!("no TLS connection: {error}"),
    }
}

/// One phrase for a handshake that did not verify: who presented what and why it
/// failed, or who closed the connection.
fn failure_words(handshake: &Handshake) -> String {
    match handshake {
        Handshake::Failed {
            presented: Some(_),
            presented_by,
            error,
        } => format!(
            "TLS handshake failed: {presented_by} presented a certificate that does not verify ({error})"
        ),
        Handshake::Failed {
            presented: None,
            presented_by,
            error,
        } => format!(
            "TLS handshake failed before any certificate was presented: the connection was closed by {presented_by} ({error})"
        ),
        Handshake::NoConnection { error } => format!("connection failed: {error}"),
        Handshake::Verified { presented_by, .. } => {
            format!("handshake with {presented_by} verified")
        }
    }
}

fn webhook_reach(cluster: &Cluster, set: &InstalledSet, mesh: &mut dyn RunningMesh) -> Outcome {
    if set.roles.webhook.is_none() {
        return Outcome::fail(format!(
            "no webhook found in the manifests: {}",
            set.roles.problems.join("; ")
        ));
    }
    let obs: AdmissionObservation = match mesh.admit(&cluster.name) {
        Ok(o) => o,
        Err(e) => return Outcome::fail(format!("the admission probe could not run: {e}")),
    };
    let call = &obs.call;
    let expected = "the API server's TLS handshake verifies against the caBundle and the webhook records the object";
    let found = format!(
        "{}; HTTP {}; recorded: {}; timed out: {} (timeout {} ms); failurePolicy {}; admitted: {}",
        describe_handshake(&call.handshake),
        call.http_status.map_or("-".to_string(), |s| s.to_string()),
        call.recorded,
        obs.timed_out,
        obs.timeout_ms,
        obs.failure_policy,
        obs.admitted
    );
    let evidence = Evidence::new(
        &cluster.name,
        format!("admission of Pod {}", obs.object),
        expected,
        found,
    );
    let hops = hops_evidence(&cluster.name, "the admission call", &call.hops);
    if call.handshake.verified() && call.recorded {
        return Outcome::pass("admission request verified against the caBundle and recorded")
            .with(evidence)
            .with(hops);
    }
    let after = if obs.admitted {
        "; admitted anyway (failurePolicy Ignore): metadata silently missed"
    } else {
        "; admission rejected (failurePolicy Fail)"
    };
    let summary = match (&call.handshake, obs.timed_out) {
        (Handshake::Verified { .. }, true) if obs.admitted => format!(
            "the webhook did not answer within {} ms: the object was admitted (failurePolicy Ignore) but its metadata was silently missed",
            obs.timeout_ms
        ),
        (Handshake::Verified { .. }, _) => format!(
            "the handshake verified but the webhook did not record the object (HTTP {}){after}",
            call.http_status.map_or("-".to_string(), |s| s.to_string())
        ),
        (handshake, _) => format!("the API server's {}{after}", failure_words(handshake)),
    };
    Outcome::fail(summary).with(evidence).with(hops)
}

fn call_outcome(
    cluster: &str,
    who: &str,
    call: &CallObservation,
    expected: &str,
    ok_summary: &str,
) -> Outcome {
    let found = format!(
        "{}; HTTP {}; recorded: {}",
        describe_handshake(&call.handshake),
        call.http_status.map_or("-".to_string(), |s| s.to_string()),
        call.recorded
    );
    let evidence = Evidence::new(cluster, who, expected, found.clone());
    let hops = hops_evidence(cluster, who, &call.hops);
    if call.handshake.verified() && call.recorded {
        return Outcome::pass(ok_summary).with(evidence).with(hops);
    }
    // The summary names who and why; certificate details are in the evidence.
    let why = match &call.handshake {
        Handshake::Verified { presented_by, .. } => format!(
            "the handshake with {presented_by} verified, but the request was not recorded (HTTP {})",
            call.http_status.map_or("-".to_string(), |s| s.to_string())
        ),
        other => failure_words(other),
    };
    Outcome::fail(format!("{who}: {why}"))
        .with(evidence)
        .with(hops)
}

fn backfill_reach(cluster: &Cluster, set: &InstalledSet, mesh: &mut dyn RunningMesh) -> Outcome {
    if set.roles.backfill.is_empty() {
        return Outcome::skip("no backfill CronJob or Job in the manifests");
    }
    if set.roles.webhook.is_none() {
        return Outcome::fail("there is a backfill but no webhook for it to reach");
    }
    match mesh.backfill(&cluster.name) {
        Err(e) => Outcome::fail(format!("the backfill probe could not run: {e}")),
        Ok(call) => call_outcome(
            &cluster.name,
            "the backfill's call to the webhook",
            &call,
            "the backfill's TLS handshake verifies against the Secret's ca.crt and the webhook records the request",
            "the backfill reached the webhook",
        ),
    }
}

fn attribution_outcome(a: &ClusterAttribution) -> Outcome {
    let mis = a
        .misattributed
        .iter()
        .map(|(c, n)| format!("{n} to {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lost = a
        .lost_reasons
        .iter()
        .map(|(why, n)| format!("{n}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    let misattributed: u64 = a.misattributed.values().sum();
    let found = format!(
        "sent {}, delivered {}, misattributed {}{}, lost {}{}",
        a.sent,
        a.delivered,
        misattributed,
        if mis.is_empty() {
            String::new()
        } else {
            format!(" ({mis})")
        },
        a.lost,
        if lost.is_empty() {
            String::new()
        } else {
            format!(" ({lost})")
        }
    );
    let evidence = Evidence::new(
        &a.cluster,
        format!("samples sent from {}", a.cluster),
        format!(
            "all {} samples land at {}'s own aggregator",
            a.sent, a.cluster
        ),
        found.clone(),
    );
    if a.sent == 0 {
        Outcome::fail("no sender pushed any sample").with(evidence)
    } else if misattributed == 0 && a.lost == 0 {
        Outcome::pass(format!(
            "{} of {} samples delivered to the local aggregator",
            a.delivered, a.sent
        ))
        .with(evidence)
    } else {
        Outcome::fail(found).with(evidence)
    }
}

fn attribution(scenario: &Scenario, rendered: &Rendered, mesh: &mut dyn RunningMesh) -> Outcome {
    let installed = scenario
        .clusters
        .iter()
        .any(|c| matches!(rendered.install(&c.name).map(|i| &i.result), Some(Ok(_))));
    if !installed {
        return per_cluster(scenario, rendered, |_, _| Outcome::fail("unreachable"));
    }
    let obs = match mesh.attribution(SAMPLES_PER_SENDER) {
        Ok(o) => o,
        Err(e) => return Outcome::fail(format!("the attribution probe could not run: {e}")),
    };
    let mut outcome = per_cluster(scenario, rendered, |cluster, _| {
        match obs.clusters.iter().find(|a| a.cluster == cluster.name) {
            Some(a) => attribution_outcome(a),
            None => {
                Outcome::fail("no sender of this cluster pushed any sample (no sender role found)")
            }
        }
    });
    outcome.traffic = obs.flows;
    outcome
}

/// The validator's ground truth from the topology and values: sidecar mode with an
/// effective cluster ID other than istiod's, or ambient without an explicit clusterID.
fn validator_should_report(cluster: &Cluster) -> Option<String> {
    let effective = cluster.agent.effective_cluster_id().unwrap_or_default();
    match cluster.istio.mode {
        IstioMode::Sidecar if effective != cluster.istio_cluster_id => Some(format!(
            "the effective cluster ID `{effective}` differs from istiod's `{}`",
            cluster.istio_cluster_id
        )),
        IstioMode::Ambient if cluster.agent.istio_cluster_id.is_none() => {
            Some("ambient mode without an explicit integrations.istio.clusterID".into())
        }
        _ => None,
    }
}

fn validator(cluster: &Cluster, set: &InstalledSet, mesh: &mut dyn RunningMesh) -> Outcome {
    if !cluster.has_istio() || !subject::istio_active(cluster) {
        return Outcome::skip("Istio integration is not active in this cluster");
    }
    if set.roles.validator.is_none() {
        return Outcome::skip("no validator in the manifests");
    }
    let obs = match mesh.validator(&cluster.name) {
        Ok(o) => o,
        Err(e) => return Outcome::fail(format!("the validator probe could not run: {e}")),
    };
    let truth = validator_should_report(cluster);
    let expected = match &truth {
        Some(why) => format!("the validator reports the misconfiguration: {why}"),
        None => "the validator finds the configuration correct".to_string(),
    };
    let (verdict, ok) = match (&obs.verdict, &truth) {
        (ValidatorVerdict::Reported(m), Some(_)) => (format!("reported: {m}"), true),
        (ValidatorVerdict::Ok, None) => ("ok".to_string(), true),
        (ValidatorVerdict::Reported(m), None) => (format!("reported a correct setup: {m}"), false),
        (ValidatorVerdict::Ok, Some(_)) => (
            "said ok: the misconfiguration went unnoticed".to_string(),
            false,
        ),
        (ValidatorVerdict::Errored(m), _) => (format!("could not check: {m}"), false),
    };
    let evidence = Evidence::new(
        &cluster.name,
        "validator",
        expected,
        format!("{verdict}\nlog:\n{}", obs.log.join("\n")),
    );
    if ok {
        Outcome::pass(format!("the validator {verdict}")).with(evidence)
    } else {
        Outcome::fail(format!("the validator {verdict}")).with(evidence)
    }
}

fn job_completion(cluster: &Cluster, set: &InstalledSet, mesh: &mut dyn RunningMesh) -> Outcome {
    if !set.roles.backfill.iter().any(|w| w.kind == "Job") {
        return Outcome::skip("no backfill Job in the manifests");
    }
    match mesh.job_completion(&cluster.name) {
        Err(e) => Outcome::fail(format!("the Job probe could not run: {e}")),
        Ok(job) => {
            let evidence = Evidence::new(
                &cluster.name,
                format!("Job {}", job.job),
                "the Job's pod reaches Succeeded",
                job.containers.join("\n"),
            );
            if job.completed {
                Outcome::pass(format!("{} completed", job.job)).with(evidence)
            } else {
                Outcome::fail(format!(
                    "{} never completes: its sidecar keeps running",
                    job.job
                ))
                .with(evidence)
            }
        }
    }
}
