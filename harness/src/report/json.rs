//! results.json: the run for machines.
//!
//! Top-level fields, in this order: `schema`, `meta`, `totals`, `ok`, `version`,
//! `scenarios`. Field order follows the Rust declarations, so it is stable across runs.

use serde::Serialize;

use super::{RunMeta, Totals};
use crate::runner::RunResult;

/// Identifies the document's shape; bumped when a field changes meaning or goes away.
pub const SCHEMA: &str = "meshconform/results/v1";

#[derive(Serialize)]
struct ResultsDocument<'a> {
    schema: &'static str,
    meta: &'a RunMeta,
    totals: Totals,
    ok: bool,
    #[serde(flatten)]
    run: &'a RunResult,
}

/// Renders the run and its meta as pretty-printed JSON.
pub fn render(run: &RunResult, meta: &RunMeta) -> Result<String, serde_json::Error> {
    let document = ResultsDocument {
        schema: SCHEMA,
        meta,
        totals: Totals::of(run),
        ok: run.ok(),
        run,
    };
    let mut text = serde_json::to_string_pretty(&document)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::report::{JSON_FILE, fixtures, terminal, write_all};

    /// Reads `N passed, N failed` and `N warnings` from the terminal summary.
    fn terminal_counts(summary: &str) -> (usize, usize, usize) {
        let totals = summary
            .lines()
            .find_map(|l| {
                l.strip_prefix("meshconform: ")
                    .filter(|r| r.contains(" passed, "))
            })
            .unwrap_or_else(|| panic!("no totals line in:\n{summary}"));
        let numbers: Vec<usize> = totals
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let warnings = summary
            .lines()
            .find_map(|l| {
                l.strip_prefix("meshconform: ")
                    .and_then(|r| r.strip_suffix(" warnings").or(r.strip_suffix(" warning")))
            })
            .unwrap_or_else(|| panic!("no warnings line in:\n{summary}"))
            .parse()
            .unwrap();
        (numbers[0], numbers[1], warnings)
    }

    #[test]
    fn written_json_reads_back_and_its_counts_agree_with_the_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let run = fixtures::run();
        write_all(&run, dir.path(), &fixtures::meta()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(JSON_FILE)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();

        assert_eq!(doc["schema"], SCHEMA);
        assert_eq!(doc["meta"]["provider"], "twin");
        assert_eq!(doc["meta"]["helm_version"], "v3.17.3");
        assert_eq!(doc["meta"]["started_at"], "2026-12-03T16:00:00Z");
        assert_eq!(doc["ok"], false);

        // Count verdicts in the document itself, not from its totals field.
        let verdicts: Vec<&str> = doc["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["checks"].as_array().unwrap())
            .map(|c| c["verdict"].as_str().unwrap())
            .collect();
        let count = |v: &str| verdicts.iter().filter(|x| **x == v).count();
        let from_json = (count("matched"), count("mismatched"), count("warned"));
        let from_terminal = terminal_counts(&terminal::render(&run, false));
        assert_eq!(from_json, from_terminal);
        assert_eq!(from_json, (5, 1, 1));
        assert_eq!(doc["totals"]["passed"], 5);
        assert_eq!(doc["totals"]["failed"], 1);
        assert_eq!(doc["totals"]["warnings"], 1);
    }

    #[test]
    fn field_order_is_stable() {
        let text = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let position = |key: &str| {
            text.find(&format!("\n  \"{key}\":"))
                .unwrap_or_else(|| panic!("no top-level {key}"))
        };
        let order = ["schema", "meta", "totals", "ok", "version", "scenarios"];
        let positions: Vec<usize> = order.iter().map(|k| position(k)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(text, render(&fixtures::run(), &fixtures::meta()).unwrap());
    }

    #[test]
    fn traffic_and_evidence_survive_in_the_json() {
        let text = render(&fixtures::run(), &fixtures::meta()).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let attribution = &doc["scenarios"][1]["checks"][1];
        assert_eq!(attribution["check"], "ATTRIBUTION");
        let traffic = attribution["outcome"]["traffic"].as_array().unwrap();
        assert_eq!(traffic.len(), 5);
        assert_eq!(traffic[4]["to_cluster"], Value::Null);
        let found = &doc["scenarios"][0]["checks"][1]["outcome"]["evidence"][0]["found"];
        assert_eq!(found, fixtures::HOSTILE);
    }
}
