//! junit.xml: the file release gating reads.
//!
//! One `<testsuite>` per scenario with its properties, one `<testcase>` per scenario x
//! check named `<scenario>::<CHECK-ID>`. Only a mismatch of a required check is a
//! `<failure>`; a warning passes with the warning in system-out; an expected skip is
//! `<skipped>` and always carries its reason.

use quick_junit::{
    NonSuccessKind, Property, Report, SerializeError, TestCase, TestCaseStatus, TestSuite,
};

use super::{RunMeta, evidence_block, expected_vs_got, flow_text, severity_and_kind};
use crate::checks::{CheckId, Status};
use crate::runner::{CheckResult, RunResult, ScenarioResult, Verdict};

/// Renders the whole run as JUnit XML.
pub fn render(run: &RunResult, meta: &RunMeta) -> Result<String, SerializeError> {
    report(run, meta).to_string()
}

/// Builds the JUnit report (exposed so callers can add to it before serialising).
pub fn report(run: &RunResult, meta: &RunMeta) -> Report {
    let mut report = Report::new("meshconform");
    report.set_timestamp(meta.started_at.fixed_offset());
    report.set_time(run.scenarios.iter().map(|s| s.duration).sum());
    report.add_test_suites(run.scenarios.iter().map(|s| suite(s, meta)));
    report
}

fn suite(scenario: &ScenarioResult, meta: &RunMeta) -> TestSuite {
    let mut suite = TestSuite::new(scenario.scenario.as_str());
    suite.set_timestamp(meta.started_at.fixed_offset());
    suite.set_time(scenario.duration);
    suite.add_properties(properties(scenario, meta));
    suite.add_test_cases(scenario.checks.iter().map(|c| test_case(scenario, c)));
    suite
}

fn properties(scenario: &ScenarioResult, meta: &RunMeta) -> Vec<Property> {
    let mut props = vec![
        Property::new("description", scenario.description.as_str()),
        Property::new("topology", scenario.topology.as_str()),
        Property::new("istio-modes", scenario.istio_modes.as_str()),
        Property::new("subject", scenario.subject.as_str()),
        Property::new("provider", scenario.provider.as_str()),
        Property::new("negative-control", scenario.negative_control.to_string()),
        Property::new("meshconform-version", meta.meshconform_version.as_str()),
    ];
    // Versions and the file are omitted when unknown rather than written as a
    // placeholder a reader could mistake for a real value.
    if let Some(helm) = &meta.helm_version {
        props.push(Property::new("helm-version", helm.as_str()));
    }
    if let Some(istio) = &meta.istio_version {
        props.push(Property::new("istio-version", istio.as_str()));
    }
    if let Some(file) = meta.scenario_files.get(&scenario.scenario) {
        props.push(Property::new("scenario-file", file.display().to_string()));
    }
    props.push(Property::new("started-at", meta.started_at_rfc3339()));
    props
}

fn test_case(scenario: &ScenarioResult, check: &CheckResult) -> TestCase {
    let name = format!("{}::{}", scenario.scenario, check.check);
    let (status, system_out) = match (check.verdict, check.outcome.status) {
        (Verdict::Mismatched, _) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(expected_vs_got(check))
                .set_type("mismatch")
                .set_description(details(check));
            (status, None)
        }
        (Verdict::Warned, _) => (
            TestCaseStatus::success(),
            Some(format!(
                "WARNING (recommended check): {}\n\n{}",
                expected_vs_got(check),
                details(check)
            )),
        ),
        (Verdict::Matched, Status::Skip) => {
            let mut status = TestCaseStatus::skipped();
            let reason = if check.outcome.summary.trim().is_empty() {
                "skipped: the check gave no reason".to_string()
            } else {
                check.outcome.summary.clone()
            };
            status.set_message(reason);
            (status, None)
        }
        (Verdict::Matched, Status::Fail) => (
            TestCaseStatus::success(),
            // A failure the scenario expects is a negative control observed: show what
            // was seen, that is the point of the control.
            Some(format!(
                "observed as expected (fail): {}\n\n{}",
                check.outcome.summary,
                details(check)
            )),
        ),
        (Verdict::Matched, Status::Pass) => (
            TestCaseStatus::success(),
            Some(format!("pass: {}", check.outcome.summary)),
        ),
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(scenario.scenario.as_str());
    case.set_time(check.duration);
    if let Some(out) = system_out {
        case.set_system_out(out);
    }
    case
}

/// The claim, the source, the evidence and any traffic, as readable text.
fn details(check: &CheckResult) -> String {
    let mut text = format!(
        "check: {} ({})\nclaim: {}\nsource: {}\n\nevidence:\n{}",
        check.check,
        severity_and_kind(check),
        check.check.claim(),
        check.check.source(),
        evidence_block(&check.outcome.evidence)
    );
    if check.check == CheckId::Attribution && !check.outcome.traffic.is_empty() {
        text.push_str("\ntraffic:\n");
        for flow in &check.outcome.traffic {
            text.push_str("  ");
            text.push_str(&flow_text(flow));
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    fn parsed(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap()
    }

    fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
        node.attribute(name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.tag_name().name()))
    }

    fn case<'a, 'i>(doc: &'a roxmltree::Document<'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no testcase {name}"))
    }

    fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
        node.children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
    }

    #[test]
    fn counts_of_tests_failures_and_skips_are_right() {
        let xml = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        // 7 checks: 1 mismatch, 1 expected skip; the warning and the observed
        // failures of the negative control are not failures.
        assert_eq!(attr(root, "tests"), "7");
        assert_eq!(attr(root, "failures"), "1");
        assert_eq!(attr(root, "skipped"), "1");
        let failures = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count();
        assert_eq!(failures, 1);
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(suites.len(), 2);
        assert_eq!(attr(suites[0], "name"), "single-sidecar-strict");
        assert_eq!(attr(suites[0], "tests"), "5");
        assert_eq!(attr(suites[1], "failures"), "0");
    }

    #[test]
    fn every_suite_carries_its_properties() {
        let xml = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let suite = doc
            .descendants()
            .find(|n| {
                n.has_tag_name("testsuite") && n.attribute("name") == Some("multi-no-fencing")
            })
            .unwrap();
        let props: std::collections::BTreeMap<&str, &str> = suite
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|n| (attr(n, "name"), attr(n, "value")))
            .collect();
        assert_eq!(props["topology"], "multi-2");
        assert_eq!(props["istio-modes"], "sidecar");
        assert_eq!(props["subject"], "reference");
        assert_eq!(props["provider"], "twin");
        assert_eq!(props["negative-control"], "true");
        assert_eq!(props["helm-version"], "v3.17.3");
        assert_eq!(props["istio-version"], "1.27.1");
        assert_eq!(props["scenario-file"], "scenarios/multi-no-fencing.yaml");
        assert_eq!(props["meshconform-version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(props["started-at"], "2026-12-03T16:00:00Z");
    }

    #[test]
    fn unknown_versions_are_left_out_not_invented() {
        let meta = crate::report::RunMeta::new("none", "reference");
        let xml = render(&fixtures::run(), &meta).unwrap();
        let doc = parsed(&xml);
        let names: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|n| attr(n, "name"))
            .collect();
        assert!(!names.contains(&"helm-version") && !names.contains(&"istio-version"));
        assert!(names.contains(&"topology"));
    }

    #[test]
    fn a_mismatch_is_a_failure_with_message_and_readable_evidence() {
        let xml = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let case = case(&doc, "single-sidecar-strict::MTLS-OUTBOUND");
        assert_eq!(attr(case, "classname"), "single-sidecar-strict");
        assert_eq!(attr(case, "time"), "1.500");
        let failure = case.children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(
            attr(failure, "message"),
            "expected pass, got fail: backfill CronJob does not exclude port 443"
        );
        let text = failure.text().unwrap();
        assert!(text.contains("[alpha] CronJob/cz-backfill"), "{text}");
        assert!(
            text.contains("expected: excludeOutboundPorts lists 443"),
            "{text}"
        );
        // The XML parser decoded the escaped evidence back to the original string.
        assert!(
            text.contains(&format!("found:    {}", fixtures::HOSTILE)),
            "{text}"
        );
        assert!(text.contains("+8443"), "diff missing: {text}");
    }

    #[test]
    fn a_warning_passes_and_says_so_in_system_out() {
        let xml = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let case = case(&doc, "single-sidecar-strict::SIDECAR-JOB-EXIT");
        assert!(
            !case
                .children()
                .any(|n| n.has_tag_name("failure") || n.has_tag_name("skipped"))
        );
        let out = child_text(case, "system-out").unwrap();
        assert!(
            out.starts_with(
                "WARNING (recommended check): expected pass, got fail: backfill Job never tells the proxy to quit"
            ),
            "{out}"
        );
    }

    #[test]
    fn an_expected_skip_is_skipped_with_its_reason() {
        let xml = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let case = case(&doc, "single-sidecar-strict::CERT-CHAIN");
        let skipped = case.children().find(|n| n.has_tag_name("skipped")).unwrap();
        assert_eq!(
            attr(skipped, "message"),
            "cert-manager mode: no served certificate to chain"
        );
    }

    #[test]
    fn a_skip_without_a_reason_still_says_why_it_has_none() {
        let mut run = fixtures::run();
        run.scenarios[0].checks[2].outcome.summary.clear();
        let xml = render(&run, &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let skipped = case(&doc, "single-sidecar-strict::CERT-CHAIN")
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert!(!attr(skipped, "message").is_empty());
    }

    #[test]
    fn an_observed_negative_control_passes_and_shows_what_was_observed() {
        let xml = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc = parsed(&xml);
        let case = case(&doc, "multi-no-fencing::ATTRIBUTION");
        assert!(!case.children().any(|n| n.has_tag_name("failure")));
        let out = child_text(case, "system-out").unwrap();
        assert!(out.contains("50 of 165 samples misattributed"), "{out}");
        assert!(
            out.contains("alpha/metrics agent -> beta: 40 samples (cross-cluster)"),
            "{out}"
        );
        assert!(
            out.contains("beta/webhook server -> lost: 5 samples"),
            "{out}"
        );
    }
}
