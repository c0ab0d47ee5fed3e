//! The runner: scenario -> subject -> manifests -> checks -> outcomes.
//!
//! It compares each outcome with the scenario's expectation and never looks at the
//! expectation before the check has run.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checks::{self, CheckId, CheckKind, Evidence, Outcome, Severity, Status};
use crate::error::Error;
use crate::provider::{Provider, RunningMesh};
use crate::scenario::Scenario;
use crate::subject::{self, Rendered, Subject};

/// How an outcome compares with its expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The outcome is what the scenario expects.
    Matched,
    /// A required check's outcome differs from the expectation: the run fails.
    Mismatched,
    /// A recommended check's outcome differs: reported, the run does not fail.
    Warned,
}

/// One check's result in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check.
    pub check: CheckId,
    /// Static or runtime.
    pub kind: CheckKind,
    /// Its severity in this scenario.
    pub severity: Severity,
    /// What the scenario expects.
    pub expected: Status,
    /// What the check found.
    pub outcome: Outcome,
    /// Matched, mismatched or warned.
    pub verdict: Verdict,
    /// How long the check took.
    #[serde(serialize_with = "ser_millis")]
    pub duration: Duration,
}

/// Every check's result in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// True for negative controls.
    pub negative_control: bool,
    /// `single`, `multi-2`, ...
    pub topology: String,
    /// Istio modes (`sidecar`, `ambient+sidecar`).
    pub istio_modes: String,
    /// Subject label.
    pub subject: String,
    /// Provider name, or `none` when only static checks ran.
    pub provider: String,
    /// Per check, in catalogue order.
    pub checks: Vec<CheckResult>,
    /// Wall time of the whole scenario.
    #[serde(serialize_with = "ser_millis")]
    pub duration: Duration,
}

impl CheckResult {
    /// A check's result, judged against its expectation at its severity.
    pub fn new(
        check: CheckId,
        expected: Status,
        severity: Severity,
        outcome: Outcome,
        duration: Duration,
    ) -> Self {
        Self {
            check,
            kind: check.kind(),
            severity,
            expected,
            verdict: verdict(expected, &outcome, severity),
            outcome,
            duration,
        }
    }

    /// Replaces the outcome and judges it again.
    pub fn rejudge(&mut self, outcome: Outcome) {
        self.verdict = verdict(self.expected, &outcome, self.severity);
        self.outcome = outcome;
    }
}

impl ScenarioResult {
    /// True when no required check mismatched.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Mismatched)
    }
}

fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Which checks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Static checks only; runtime checks are not run and not reported.
    StaticOnly,
    /// Static and runtime checks.
    All,
}

/// Decides how an outcome compares with an expectation.
pub fn verdict(expected: Status, outcome: &Outcome, severity: Severity) -> Verdict {
    if outcome.status == expected {
        Verdict::Matched
    } else if severity == Severity::Recommended {
        Verdict::Warned
    } else {
        Verdict::Mismatched
    }
}

/// Renders the subject and runs every check of the scope on one scenario.
///
/// `provider` is used for runtime checks when the scope includes them. When the
/// provider cannot bring the mesh up, every runtime check fails with that error as
/// evidence: nothing is silently skipped.
pub fn run_scenario(
    scenario: &Scenario,
    subject: &Subject,
    provider: Option<&dyn Provider>,
    scope: Scope,
) -> Result<ScenarioResult, Error> {
    let started = Instant::now();
    let rendered = subject::render(subject, scenario)?;
    let mut results = Vec::new();
    for check in CheckId::ALL
        .iter()
        .filter(|c| c.kind() == CheckKind::Static)
    {
        let t = Instant::now();
        let outcome = checks::run_static(*check, scenario, &rendered);
        results.push(result(scenario, *check, outcome, t.elapsed()));
    }
    let provider_name = match (scope, provider) {
        (Scope::All, Some(p)) => {
            results.extend(run_runtime(scenario, &rendered, p));
            p.name().to_string()
        }
        (Scope::All, None) => {
            return Err(Error::Usage(
                "runtime checks need a provider; pass one or run static checks only".into(),
            ));
        }
        (Scope::StaticOnly, _) => "none".to_string(),
    };
    Ok(ScenarioResult {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        negative_control: scenario.negative_control,
        topology: scenario.topology(),
        istio_modes: scenario.istio_modes(),
        subject: rendered.subject.clone(),
        provider: provider_name,
        checks: results,
        duration: started.elapsed(),
    })
}

fn run_runtime(
    scenario: &Scenario,
    rendered: &Rendered,
    provider: &dyn Provider,
) -> Vec<CheckResult> {
    let runtime: Vec<CheckId> = CheckId::ALL
        .iter()
        .copied()
        .filter(|c| c.kind() == CheckKind::Runtime)
        .collect();
    let t = Instant::now();
    match provider.up(scenario, rendered) {
        Ok(mut mesh) => {
            let mut out = Vec::new();
            for check in runtime {
                let t = Instant::now();
                let outcome = checks::run_runtime(check, scenario, rendered, mesh.as_mut());
                out.push(result(scenario, check, outcome, t.elapsed()));
            }
            attach_artifacts(&mut out, mesh.as_mut());
            if let Err(e) = mesh.down() {
                // Teardown trouble is reported on every runtime check: leaked
                // resources are a failure people must see.
                for r in &mut out {
                    // The check's own evidence stays: it says what was seen before.
                    let mut failed = Outcome::fail(format!("teardown failed: {e}"));
                    failed.evidence = std::mem::take(&mut r.outcome.evidence);
                    failed.traffic = std::mem::take(&mut r.outcome.traffic);
                    r.rejudge(failed);
                }
            }
            out
        }
        Err(e) => runtime
            .into_iter()
            .map(|check| {
                let outcome = Outcome::fail(format!(
                    "provider {} could not bring the mesh up: {e}",
                    provider.name()
                ));
                result(scenario, check, outcome, t.elapsed())
            })
            .collect(),
    }
}

/// When a runtime check mismatched, asks the provider to collect diagnostics (logs,
/// events, proxy configuration) before teardown, and points the evidence at them.
fn attach_artifacts(results: &mut [CheckResult], mesh: &mut dyn RunningMesh) {
    let unexpected: Vec<String> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Matched)
        .map(|r| r.check.to_string())
        .collect();
    if unexpected.is_empty() {
        return;
    }
    let reason = format!("unexpected outcome of {}", unexpected.join(", "));
    if let Some(dir) = mesh.collect_artifacts(&reason) {
        for r in results.iter_mut().filter(|r| r.verdict != Verdict::Matched) {
            r.outcome.evidence.push(Evidence::new(
                "",
                "artifacts",
                "diagnostics collected after the unexpected outcome",
                dir.display().to_string(),
            ));
        }
    }
}

fn result(
    scenario: &Scenario,
    check: CheckId,
    outcome: Outcome,
    duration: Duration,
) -> CheckResult {
    let expected = scenario.expect.get(&check).copied().unwrap_or(Status::Pass);
    CheckResult::new(
        check,
        expected,
        scenario.severity_of(check),
        outcome,
        duration,
    )
}

/// A whole run: every scenario's result plus what it ran on.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// meshconform's version.
    pub version: String,
    /// Per scenario, in the order run.
    pub scenarios: Vec<ScenarioResult>,
}

impl RunResult {
    /// True when no required check mismatched anywhere.
    pub fn ok(&self) -> bool {
        self.scenarios.iter().all(ScenarioResult::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{
        AdmissionObservation, AttributionObservation, CallObservation, JobObservation, ProbeError,
        ValidatorObservation,
    };
    use crate::scenario;
    use std::path::{Path, PathBuf};

    /// A provider whose probes all fail, and which has an artifacts folder to offer;
    /// with `leaks`, its teardown fails too.
    struct BrokenProvider {
        leaks: bool,
    }
    struct BrokenMesh {
        leaks: bool,
    }

    impl Provider for BrokenProvider {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn up(&self, _: &Scenario, _: &Rendered) -> Result<Box<dyn RunningMesh>, Error> {
            Ok(Box::new(BrokenMesh { leaks: self.leaks }))
        }
    }

    impl RunningMesh for BrokenMesh {
        fn admit(&mut self, _: &str) -> Result<AdmissionObservation, ProbeError> {
            Err(ProbeError("lost the cluster".into()))
        }
        fn backfill(&mut self, _: &str) -> Result<CallObservation, ProbeError> {
            Err(ProbeError("lost the cluster".into()))
        }
        fn attribution(&mut self, _: u32) -> Result<AttributionObservation, ProbeError> {
            Err(ProbeError("lost the cluster".into()))
        }
        fn validator(&mut self, _: &str) -> Result<ValidatorObservation, ProbeError> {
            Err(ProbeError("lost the cluster".into()))
        }
        fn job_completion(&mut self, _: &str) -> Result<JobObservation, ProbeError> {
            Err(ProbeError("lost the cluster".into()))
        }
        fn collect_artifacts(&mut self, reason: &str) -> Option<PathBuf> {
            assert!(reason.contains("WEBHOOK-REACH"), "{reason}");
            Some(PathBuf::from("/artifacts/single-sidecar-strict"))
        }
        fn down(self: Box<Self>) -> Result<(), Error> {
            if self.leaks {
                return Err(Error::Provider {
                    provider: "broken".into(),
                    message: "cluster alpha could not be deleted".into(),
                });
            }
            Ok(())
        }
    }

    fn scenario(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.yaml"));
        scenario::load(&path).unwrap()
    }

    #[test]
    fn unexpected_runtime_outcomes_point_at_collected_artifacts() {
        let s = scenario("single-sidecar-strict");
        let provider = BrokenProvider { leaks: false };
        let result = run_scenario(&s, &Subject::default(), Some(&provider), Scope::All).unwrap();
        let webhook = result
            .checks
            .iter()
            .find(|c| c.check == CheckId::WebhookReach)
            .unwrap();
        assert_eq!(webhook.verdict, Verdict::Mismatched);
        assert!(
            webhook
                .outcome
                .evidence
                .iter()
                .any(|e| e.found == "/artifacts/single-sidecar-strict"),
            "{:?}",
            webhook.outcome.evidence
        );
        // Static checks matched, and got no artifacts.
        let inbound = result
            .checks
            .iter()
            .find(|c| c.check == CheckId::MtlsInbound)
            .unwrap();
        assert_eq!(inbound.verdict, Verdict::Matched);
        assert!(!result.ok());
    }

    #[test]
    fn a_failed_teardown_fails_every_runtime_check_and_keeps_its_evidence() {
        let s = scenario("single-sidecar-strict");
        let provider = BrokenProvider { leaks: true };
        let result = run_scenario(&s, &Subject::default(), Some(&provider), Scope::All).unwrap();
        for r in result
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::Runtime)
        {
            assert_eq!(r.outcome.status, Status::Fail, "{}", r.check);
            // Required checks mismatch; recommended ones (JOB-COMPLETION) warn.
            assert_ne!(r.verdict, Verdict::Matched, "{}", r.check);
            assert!(
                r.outcome
                    .summary
                    .contains("cluster alpha could not be deleted"),
                "{}",
                r.outcome.summary
            );
            // What the probe saw before the teardown is still there.
            assert!(!r.outcome.evidence.is_empty(), "{}", r.check);
        }
        assert!(!result.ok(), "a leaked cluster must fail the run");
    }
}
