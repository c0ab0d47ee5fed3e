//! Reports: JUnit for the release gate, JSON for machines, Markdown for a GitHub step
//! summary, a self-contained HTML page, and the terminal summary a person reads first.
//!
//! Every report reads the same [`RunResult`] plus a [`RunMeta`]; none of them decides
//! anything: verdicts come from the runner.

pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod mermaid;
pub mod terminal;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::checks::{CheckId, CheckKind, Evidence, Severity, Status};
use crate::error::Error;
use crate::provider::Flow;
use crate::runner::{CheckResult, RunResult, ScenarioResult, Verdict};

/// File name of the JUnit report.
pub const JUNIT_FILE: &str = "junit.xml";
/// File name of the JSON report.
pub const JSON_FILE: &str = "results.json";
/// File name of the Markdown summary.
pub const MARKDOWN_FILE: &str = "summary.md";
/// File name of the HTML report.
pub const HTML_FILE: &str = "report.html";

/// What a run ran on, for the reports' headers and JUnit properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMeta {
    /// Provider name (`twin`, `kind`, `existing`, or `none` for static-only runs).
    pub provider: String,
    /// Subject label (`reference` or the chart's path).
    pub subject: String,
    /// meshconform's version.
    pub meshconform_version: String,
    /// `helm version` of the binary that rendered the chart, when a chart was rendered.
    pub helm_version: Option<String>,
    /// Istio version of the mesh, when one was installed or detected.
    pub istio_version: Option<String>,
    /// When the run started (UTC, RFC 3339 in reports).
    #[serde(serialize_with = "ser_rfc3339")]
    pub started_at: DateTime<Utc>,
    /// Scenario name -> the file it was loaded from.
    pub scenario_files: BTreeMap<String, PathBuf>,
}

impl RunMeta {
    /// Meta for a run starting now, with this build's version and no tool versions.
    pub fn new(provider: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            subject: subject.into(),
            meshconform_version: env!("CARGO_PKG_VERSION").to_string(),
            helm_version: None,
            istio_version: None,
            started_at: Utc::now(),
            scenario_files: BTreeMap::new(),
        }
    }

    /// Records the helm version.
    pub fn with_helm_version(mut self, version: impl Into<String>) -> Self {
        self.helm_version = Some(version.into());
        self
    }

    /// Records the Istio version.
    pub fn with_istio_version(mut self, version: impl Into<String>) -> Self {
        self.istio_version = Some(version.into());
        self
    }

    /// Records the file a scenario was loaded from.
    pub fn with_scenario_file(
        mut self,
        scenario: impl Into<String>,
        file: impl Into<PathBuf>,
    ) -> Self {
        self.scenario_files.insert(scenario.into(), file.into());
        self
    }

    /// The started-at time as RFC 3339 (`2026-12-03T16:43:57Z`).
    pub fn started_at_rfc3339(&self) -> String {
        self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

fn ser_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Counts over a run. `passed` counts matched expectations (a skip or an observed
/// failure that the scenario expects is a pass), `failed` counts mismatches of required
/// checks, `warnings` counts mismatches of recommended checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Totals {
    /// Scenarios in the run.
    pub scenarios: usize,
    /// Check results in the run (scenario x check).
    pub checks: usize,
    /// Matched expectations.
    pub passed: usize,
    /// Mismatched required checks: these fail the run.
    pub failed: usize,
    /// Mismatched recommended checks: reported, not failing.
    pub warnings: usize,
    /// Of the matched ones, how many were expected skips.
    pub skipped: usize,
}

impl Totals {
    /// Counts a whole run.
    pub fn of(run: &RunResult) -> Self {
        let mut totals = Totals {
            scenarios: run.scenarios.len(),
            ..Totals::default()
        };
        for check in run.scenarios.iter().flat_map(|s| &s.checks) {
            totals.checks += 1;
            match check.verdict {
                Verdict::Matched => {
                    totals.passed += 1;
                    if check.outcome.status == Status::Skip {
                        totals.skipped += 1;
                    }
                }
                Verdict::Mismatched => totals.failed += 1,
                Verdict::Warned => totals.warnings += 1,
            }
        }
        totals
    }

    /// `5 passed, 1 failed, 1 warning across 2 scenarios (7 checks, 1 expected skip)`.
    pub fn sentence(&self) -> String {
        format!(
            "{} passed, {} failed, {} across {} ({}, {})",
            self.passed,
            self.failed,
            count(self.warnings, "warning", "warnings"),
            count(self.scenarios, "scenario", "scenarios"),
            count(self.checks, "check", "checks"),
            count(self.skipped, "expected skip", "expected skips"),
        )
    }
}

/// `meshconform: all 196 expectations matched` or `meshconform: 2 mismatches (1 warning)`.
pub fn headline(totals: &Totals) -> String {
    let warnings = match totals.warnings {
        0 => String::new(),
        n => format!(" ({})", count(n, "warning", "warnings")),
    };
    match totals.failed {
        0 => format!(
            "meshconform: all {} expectations matched{warnings}",
            totals.passed
        ),
        n => format!(
            "meshconform: {}{warnings}",
            count(n, "mismatch", "mismatches")
        ),
    }
}

/// The matrix symbol of an outcome: `✓` pass, `✗` fail, `·` skip.
pub fn status_symbol(status: Status) -> char {
    match status {
        Status::Pass => '✓',
        Status::Fail => '✗',
        Status::Skip => '·',
    }
}

/// The matrix marker of a verdict: `!` mismatch, `~` warning, a space when matched.
pub fn verdict_marker(verdict: Verdict) -> char {
    match verdict {
        Verdict::Matched => ' ',
        Verdict::Mismatched => '!',
        Verdict::Warned => '~',
    }
}

/// A verdict as the results tables of the Markdown and HTML reports name it.
fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Matched => "matched",
        Verdict::Mismatched => "mismatch",
        Verdict::Warned => "warning",
    }
}

/// The heading of a check's evidence block in the Markdown and HTML reports.
fn evidence_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Mismatched => "mismatch",
        Verdict::Warned => "warning (recommended check)",
        Verdict::Matched => "observed as expected",
    }
}

/// Whether a check's evidence is shown in full: every mismatch and warning, and the
/// failures a negative control observed, because that evidence is what the control
/// is for.
fn shows_evidence(check: &CheckResult) -> bool {
    check.verdict != Verdict::Matched || check.outcome.status == Status::Fail
}

/// The run's header facts (`meshconform 0.1.0`, `provider twin`, ..., `started ...`),
/// each value passed through `escape` for the page it goes on; versions that are not
/// known are left out.
fn meta_parts(meta: &RunMeta, escape: impl Fn(&str) -> String) -> Vec<String> {
    let mut parts = vec![
        format!("meshconform {}", escape(&meta.meshconform_version)),
        format!("provider {}", escape(&meta.provider)),
        format!("subject {}", escape(&meta.subject)),
    ];
    if let Some(helm) = &meta.helm_version {
        parts.push(format!("helm {}", escape(helm)));
    }
    if let Some(istio) = &meta.istio_version {
        parts.push(format!("Istio {}", escape(istio)));
    }
    parts.push(format!("started {}", escape(&meta.started_at_rfc3339())));
    parts
}

/// `topology single · Istio sidecar · subject reference · provider twin · 0.3s`: a
/// scenario's header facts, each value passed through `escape` for the page it goes on.
fn scenario_facts(scenario: &ScenarioResult, escape: impl Fn(&str) -> String) -> String {
    format!(
        "topology {} · Istio {} · subject {} · provider {} · {:.1}s",
        escape(&scenario.topology),
        escape(&scenario.istio_modes),
        escape(&scenario.subject),
        escape(&scenario.provider),
        scenario.duration.as_secs_f64()
    )
}

/// A matrix cell: the outcome's status symbol, then the verdict marker (a space when
/// matched, so terminal columns line up).
fn matrix_cell(check: &CheckResult) -> String {
    format!(
        "{}{}",
        status_symbol(check.outcome.status),
        verdict_marker(check.verdict)
    )
}

/// `1 warning`, `2 warnings`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// `required, static`: how much a check matters and how it runs.
pub fn severity_and_kind(check: &CheckResult) -> String {
    let severity = match check.severity {
        Severity::Required => "required",
        Severity::Recommended => "recommended",
    };
    let kind = match check.kind {
        CheckKind::Static => "static",
        CheckKind::Runtime => "runtime",
    };
    format!("{severity}, {kind}")
}

/// Writes junit.xml, results.json, summary.md and report.html into `dir`, creating it,
/// and returns the paths written, in that order.
pub fn write_all(run: &RunResult, dir: &Path, meta: &RunMeta) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let junit_path = dir.join(JUNIT_FILE);
    let junit =
        junit::render(run, meta).map_err(|e| Error::io(&junit_path, std::io::Error::other(e)))?;
    let json_path = dir.join(JSON_FILE);
    let json =
        json::render(run, meta).map_err(|e| Error::io(&json_path, std::io::Error::other(e)))?;
    let files = [
        (junit_path, junit),
        (json_path, json),
        (dir.join(MARKDOWN_FILE), markdown::render(run, meta)),
        (dir.join(HTML_FILE), html::render(run, meta)),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// `expected pass, got fail: <summary>`: the one line every report leads with.
pub fn expected_vs_got(check: &CheckResult) -> String {
    format!(
        "expected {}, got {}: {}",
        check.expected, check.outcome.status, check.outcome.summary
    )
}

/// One piece of evidence as readable, indented plain text.
pub fn evidence_text(evidence: &Evidence) -> String {
    let mut out = String::new();
    let place = match (evidence.cluster.is_empty(), evidence.subject.is_empty()) {
        (false, false) => format!("[{}] {}", evidence.cluster, evidence.subject),
        (false, true) => format!("[{}]", evidence.cluster),
        (true, false) => evidence.subject.clone(),
        (true, true) => "(scenario)".to_string(),
    };
    let _ = writeln!(out, "{place}");
    let _ = writeln!(
        out,
        "  expected: {}",
        indent_continuation(&evidence.expected, 12)
    );
    let _ = writeln!(
        out,
        "  found:    {}",
        indent_continuation(&evidence.found, 12)
    );
    if let Some(diff) = &evidence.diff {
        let _ = writeln!(out, "  diff:");
        for line in diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// All evidence of a check as text, or a line saying there is none.
pub fn evidence_block(evidence: &[Evidence]) -> String {
    if evidence.is_empty() {
        return "(no evidence recorded)\n".to_string();
    }
    evidence
        .iter()
        .map(evidence_text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One flow as text: `alpha/metrics agent -> beta: 40 samples (cross-cluster)`.
pub fn flow_text(flow: &Flow) -> String {
    match &flow.to_cluster {
        Some(to) if *to != flow.from_cluster => format!(
            "{}/{} -> {to}: {} samples (cross-cluster)",
            flow.from_cluster, flow.sender, flow.samples
        ),
        Some(to) => format!(
            "{}/{} -> {to}: {} samples",
            flow.from_cluster, flow.sender, flow.samples
        ),
        None => format!(
            "{}/{} -> lost: {} samples",
            flow.from_cluster, flow.sender, flow.samples
        ),
    }
}

/// The traffic observed by a scenario's ATTRIBUTION check, when it observed any.
pub fn attribution_traffic(scenario: &ScenarioResult) -> Option<&[Flow]> {
    scenario
        .checks
        .iter()
        .find(|c| c.check == CheckId::Attribution)
        .map(|c| c.outcome.traffic.as_slice())
        .filter(|flows| !flows.is_empty())
}

/// The checks that appear anywhere in the run, in catalogue order: the matrix columns.
pub fn matrix_columns(run: &RunResult) -> Vec<CheckId> {
    let mut ids: Vec<CheckId> = run
        .scenarios
        .iter()
        .flat_map(|s| s.checks.iter().map(|c| c.check))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Short, unique column headers for check IDs: the initials of a hyphenated ID
/// (`MTLS-INBOUND` -> `MI`), the first three letters of a single word (`DETECT` ->
/// `DET`); a clash gets a numeric suffix so headers stay unique.
pub fn abbreviations(ids: &[CheckId]) -> Vec<(CheckId, String)> {
    let mut seen = std::collections::BTreeSet::new();
    ids.iter()
        .map(|id| {
            let parts: Vec<&str> = id.as_str().split('-').filter(|p| !p.is_empty()).collect();
            let base: String = if parts.len() > 1 {
                parts.iter().filter_map(|p| p.chars().next()).collect()
            } else {
                id.as_str().chars().take(3).collect()
            };
            let mut abbrev = base.clone();
            let mut n = 2;
            while !seen.insert(abbrev.clone()) {
                abbrev = format!("{base}{n}");
                n += 1;
            }
            (*id, abbrev)
        })
        .collect()
}

/// Indents every line after the first by `width` spaces, so multi-line values line up.
fn indent_continuation(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    text.lines().collect::<Vec<_>>().join(&format!("\n{pad}"))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A hand-built run covering every kind of result the reports must show.

    use std::time::Duration;

    use chrono::TimeZone;

    use super::RunMeta;
    use crate::checks::{CheckId, Evidence, Outcome, Severity, Status};
    use crate::provider::Flow;
    use crate::runner::{CheckResult, RunResult, ScenarioResult};

    /// The evidence string that must never reach a page unescaped.
    pub const HOSTILE: &str = "<script>alert('x')</script>";

    fn result(check: CheckId, expected: Status, outcome: Outcome, millis: u64) -> CheckResult {
        CheckResult::new(
            check,
            expected,
            check.default_severity(),
            outcome,
            Duration::from_millis(millis),
        )
    }

    fn flow(from: &str, sender: &str, to: Option<&str>, samples: u64) -> Flow {
        Flow {
            from_cluster: from.into(),
            sender: sender.into(),
            to_cluster: to.map(Into::into),
            samples,
        }
    }

    /// Two scenarios, 7 checks: 5 matched (a pass, a skip, a traffic pass, and two
    /// observed failures of a negative control), 1 mismatch, 1 warning.
    pub fn run() -> RunResult {
        let strict = ScenarioResult {
            scenario: "single-sidecar-strict".into(),
            description: "One cluster, sidecars, STRICT mTLS".into(),
            negative_control: false,
            topology: "single".into(),
            istio_modes: "sidecar".into(),
            subject: "reference".into(),
            provider: "twin".into(),
            checks: vec![
                result(
                    CheckId::MtlsInbound,
                    Status::Pass,
                    Outcome::pass("webhook port 8443 excluded"),
                    12,
                ),
                result(
                    CheckId::MtlsOutbound,
                    Status::Pass,
                    Outcome::fail("backfill CronJob does not exclude port 443").with(
                        Evidence::new(
                            "alpha",
                            "CronJob/cz-backfill",
                            "excludeOutboundPorts lists 443",
                            HOSTILE,
                        )
                        .with_diff("443\n", "8443\n"),
                    ),
                    1500,
                ),
                result(
                    CheckId::CertChain,
                    Status::Skip,
                    Outcome::skip("cert-manager mode: no served certificate to chain"),
                    3,
                ),
                result(
                    CheckId::SidecarJobExit,
                    Status::Pass,
                    Outcome::fail("backfill Job never tells the proxy to quit").with(
                        Evidence::new("alpha", "Job/cz-backfill", "quitquitquit", "nothing"),
                    ),
                    4,
                ),
                result(
                    CheckId::Attribution,
                    Status::Pass,
                    Outcome {
                        traffic: vec![flow("alpha", "metrics agent", Some("alpha"), 100)],
                        ..Outcome::pass("100 of 100 samples delivered locally")
                    },
                    250,
                ),
            ],
            duration: Duration::from_millis(1769),
        };
        let no_fencing = ScenarioResult {
            scenario: "multi-no-fencing".into(),
            description: "Istio forced off in a two-cluster mesh: data leaks".into(),
            negative_control: true,
            topology: "multi-2".into(),
            istio_modes: "sidecar".into(),
            subject: "reference".into(),
            provider: "twin".into(),
            checks: vec![
                result(
                    CheckId::FencePresent,
                    Status::Fail,
                    Outcome::fail("no DestinationRule for the aggregator").with(Evidence::new(
                        "alpha",
                        "DestinationRule/cz-cz-aggregator-cluster-local",
                        "present",
                        "absent",
                    )),
                    2,
                ),
                result(
                    CheckId::Attribution,
                    Status::Fail,
                    Outcome {
                        traffic: vec![
                            flow("alpha", "metrics agent", Some("alpha"), 60),
                            flow("alpha", "metrics agent", Some("beta"), 40),
                            flow("beta", "metrics agent", Some("beta"), 50),
                            flow("beta", "webhook server", Some("alpha"), 10),
                            flow("beta", "webhook server", None, 5),
                        ],
                        ..Outcome::fail("50 of 165 samples misattributed, 5 lost").with(
                            Evidence::new(
                                "alpha",
                                "aggregator",
                                "0 misattributed",
                                "40 from alpha at beta",
                            ),
                        )
                    },
                    800,
                ),
            ],
            duration: Duration::from_millis(900),
        };
        RunResult {
            version: "0.1.0".into(),
            scenarios: vec![strict, no_fencing],
        }
    }

    /// Meta with every optional field set, at a fixed time.
    pub fn meta() -> RunMeta {
        let mut meta = RunMeta::new("twin", "reference")
            .with_helm_version("v3.17.3")
            .with_istio_version("1.27.1")
            .with_scenario_file(
                "single-sidecar-strict",
                "scenarios/single-sidecar-strict.yaml",
            )
            .with_scenario_file("multi-no-fencing", "scenarios/multi-no-fencing.yaml");
        meta.started_at = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 16, 0, 0).unwrap();
        meta
    }

    #[test]
    fn fixture_has_the_verdicts_it_claims() {
        use crate::runner::Verdict;
        let run = run();
        let verdicts: Vec<Verdict> = run
            .scenarios
            .iter()
            .flat_map(|s| &s.checks)
            .map(|c| c.verdict)
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Matched).count(),
            5
        );
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == Verdict::Mismatched)
                .count(),
            1
        );
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Warned).count(),
            1
        );
        assert_eq!(
            Severity::Recommended,
            CheckId::SidecarJobExit.default_severity()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_matched_as_passed_and_split_mismatches_by_severity() {
        let totals = Totals::of(&fixtures::run());
        assert_eq!(
            totals,
            Totals {
                scenarios: 2,
                checks: 7,
                passed: 5,
                failed: 1,
                warnings: 1,
                skipped: 1,
            }
        );
    }

    #[test]
    fn totals_sentence_uses_singular_for_one() {
        let totals = Totals::of(&fixtures::run());
        assert_eq!(
            totals.sentence(),
            "5 passed, 1 failed, 1 warning across 2 scenarios (7 checks, 1 expected skip)"
        );
    }

    #[test]
    fn abbreviations_are_unique_and_short() {
        let abbrevs = abbreviations(CheckId::ALL);
        let unique: std::collections::BTreeSet<_> =
            abbrevs.iter().map(|(_, a)| a.clone()).collect();
        assert_eq!(unique.len(), CheckId::ALL.len());
        assert!(abbrevs.iter().all(|(_, a)| a.len() <= 4), "{abbrevs:?}");
        assert!(abbrevs.contains(&(CheckId::MtlsInbound, "MI".to_string())));
    }

    #[test]
    fn write_all_creates_the_directory_and_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nested/reports");
        let paths = write_all(&fixtures::run(), &target, &fixtures::meta()).unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [JUNIT_FILE, JSON_FILE, MARKDOWN_FILE, HTML_FILE]);
        for path in &paths {
            assert!(
                std::fs::metadata(path).unwrap().len() > 0,
                "{} is empty",
                path.display()
            );
        }
    }

    #[test]
    fn evidence_text_holds_every_field_and_the_diff() {
        let e = Evidence::new("alpha", "CronJob/x", "443", "8443").with_diff("443\n", "8443\n");
        let text = evidence_text(&e);
        assert!(text.starts_with("[alpha] CronJob/x\n"), "{text}");
        assert!(
            text.contains("expected: 443") && text.contains("found:    8443"),
            "{text}"
        );
        assert!(
            text.contains("    -443") && text.contains("    +8443"),
            "{text}"
        );
    }
}
