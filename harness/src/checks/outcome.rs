//! What a check found: a status, a summary, and the evidence behind it.

use serde::{Deserialize, Serialize};

/// The three statuses a check can end in, and the three a scenario can expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The subject holds to the claim.
    Pass,
    /// The subject breaks the claim; evidence says how.
    Fail,
    /// The claim does not apply here (the reason says why).
    Skip,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        })
    }
}

/// One piece of evidence: what was expected, what was seen, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The cluster it concerns (`alpha`), or empty for the whole scenario.
    pub cluster: String,
    /// The object or component it concerns (`Deployment/cz-cz-webhook`, `sidecar of backfill`).
    pub subject: String,
    /// What the rule requires.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// A unified diff of the relevant fields, where one helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Evidence {
    /// Evidence without a diff.
    pub fn new(
        cluster: impl Into<String>,
        subject: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self {
            cluster: cluster.into(),
            subject: subject.into(),
            expected: expected.into(),
            found: found.into(),
            diff: None,
        }
    }

    /// Adds a unified diff between the expected and the found text.
    pub fn with_diff(mut self, expected: &str, found: &str) -> Self {
        let diff = similar::TextDiff::from_lines(expected, found)
            .unified_diff()
            .header("expected", "found")
            .to_string();
        self.diff = (!diff.is_empty()).then_some(diff);
        self
    }
}

/// The outcome of one check on one scenario (all clusters together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Pass, fail or skip.
    pub status: Status,
    /// One line a person reads first.
    pub summary: String,
    /// Evidence: on failure what broke; on pass what was verified.
    pub evidence: Vec<Evidence>,
    /// Traffic observed while checking (ATTRIBUTION), for the reports' picture.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<crate::provider::Flow>,
}

impl Outcome {
    /// A pass with a summary.
    pub fn pass(summary: impl Into<String>) -> Self {
        Self {
            status: Status::Pass,
            summary: summary.into(),
            evidence: Vec::new(),
            traffic: Vec::new(),
        }
    }

    /// A failure with a summary; add evidence with [`Outcome::with`].
    pub fn fail(summary: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            summary: summary.into(),
            evidence: Vec::new(),
            traffic: Vec::new(),
        }
    }

    /// A skip, with the reason the check does not apply.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Skip,
            summary: reason.into(),
            evidence: Vec::new(),
            traffic: Vec::new(),
        }
    }

    /// Adds one piece of evidence.
    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }

    /// Folds per-cluster outcomes into one: any failure fails, all skips skip, else pass.
    ///
    /// Summaries are prefixed with their cluster so the folded outcome still says where.
    pub fn fold(per_cluster: Vec<(String, Outcome)>) -> Outcome {
        if per_cluster.is_empty() {
            return Outcome::skip("no cluster to check");
        }
        let status = if per_cluster.iter().any(|(_, o)| o.status == Status::Fail) {
            Status::Fail
        } else if per_cluster.iter().all(|(_, o)| o.status == Status::Skip) {
            Status::Skip
        } else {
            Status::Pass
        };
        let summary = per_cluster
            .iter()
            .filter(|(_, o)| status != Status::Fail || o.status == Status::Fail)
            .map(|(c, o)| format!("{c}: {}", o.summary))
            .collect::<Vec<_>>()
            .join("; ");
        let mut evidence = Vec::new();
        let mut traffic = Vec::new();
        for (_, o) in per_cluster {
            evidence.extend(o.evidence);
            traffic.extend(o.traffic);
        }
        Outcome {
            status,
            summary,
            evidence,
            traffic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_fails_when_any_cluster_fails_and_keeps_its_evidence() {
        let folded = Outcome::fold(vec![
            ("a".into(), Outcome::pass("ok")),
            (
                "b".into(),
                Outcome::fail("bad").with(Evidence::new("b", "x", "1", "2")),
            ),
        ]);
        assert_eq!(folded.status, Status::Fail);
        assert_eq!(folded.summary, "b: bad");
        assert_eq!(folded.evidence.len(), 1);
    }

    #[test]
    fn fold_of_skips_and_passes_passes_and_all_skips_skip() {
        let folded = Outcome::fold(vec![
            ("a".into(), Outcome::skip("n/a")),
            ("b".into(), Outcome::pass("ok")),
        ]);
        assert_eq!(folded.status, Status::Pass);
        let folded = Outcome::fold(vec![("a".into(), Outcome::skip("n/a"))]);
        assert_eq!(folded.status, Status::Skip);
    }

    #[test]
    fn diff_is_present_only_when_texts_differ() {
        assert!(
            Evidence::new("", "", "", "")
                .with_diff("a\n", "a\n")
                .diff
                .is_none()
        );
        let d = Evidence::new("", "", "", "")
            .with_diff("a\n", "b\n")
            .diff
            .unwrap();
        assert!(d.contains("-a") && d.contains("+b"), "{d}");
    }
}
