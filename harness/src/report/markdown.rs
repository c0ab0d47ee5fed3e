//! summary.md: for a GitHub step summary.
//!
//! A headline, the matrix, a table per scenario, failures and warnings in `<details>`
//! blocks, and a Mermaid picture of the traffic ATTRIBUTION observed. Every string that
//! comes from an outcome is escaped (inline) or fenced (evidence), so it cannot inject
//! markup into the page.

use std::fmt::Write as _;

use super::{
    RunMeta, Totals, abbreviations, attribution_traffic, evidence_block, evidence_label,
    expected_vs_got, matrix_columns, mermaid, meta_parts, scenario_facts, shows_evidence,
    status_symbol, verdict_word,
};
use crate::runner::{CheckResult, RunResult, ScenarioResult, Verdict};

/// Renders the run as Markdown.
pub fn render(run: &RunResult, meta: &RunMeta) -> String {
    let totals = Totals::of(run);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", headline(&totals));
    let _ = writeln!(out, "{}\n", meta_line(meta));
    let _ = writeln!(out, "**{}**.\n", totals.sentence());
    render_matrix(&mut out, run);
    for scenario in &run.scenarios {
        render_scenario(&mut out, scenario);
    }
    out
}

/// The headline with a mark GitHub renders: `✅ meshconform: all 196 expectations matched`.
pub fn headline(totals: &Totals) -> String {
    let mark = if totals.failed == 0 { "✅" } else { "❌" };
    format!("{mark} {}", super::headline(totals))
}

fn meta_line(meta: &RunMeta) -> String {
    format!("_{}_", meta_parts(meta, inline).join(" · "))
}

/// The mark GitHub renders for a verdict: ✓ matched, ❌ mismatch, ⚠️ warning.
fn verdict_mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Matched => "✓",
        Verdict::Mismatched => "❌",
        Verdict::Warned => "⚠️",
    }
}

/// The cell symbol: status, then ❌ for a mismatch or ⚠️ for a warning.
fn cell(check: &CheckResult) -> String {
    let status = status_symbol(check.outcome.status);
    match check.verdict {
        Verdict::Matched => status.to_string(),
        other => format!("{status} {}", verdict_mark(other)),
    }
}

fn render_matrix(out: &mut String, run: &RunResult) {
    let columns = abbreviations(&matrix_columns(run));
    if columns.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Matrix\n");
    let mut header = "| Scenario |".to_string();
    let mut rule = "|---|".to_string();
    for (_, abbrev) in &columns {
        let _ = write!(header, " {abbrev} |");
        rule.push_str(":-:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for scenario in &run.scenarios {
        let mut row = format!("| {} |", scenario_name(scenario));
        for (id, _) in &columns {
            let text = scenario
                .checks
                .iter()
                .find(|c| c.check == *id)
                .map(cell)
                .unwrap_or_default();
            let _ = write!(row, " {text} |");
        }
        let _ = writeln!(out, "{row}");
    }
    let legend: Vec<String> = columns
        .iter()
        .map(|(id, abbrev)| format!("{abbrev} = `{id}`"))
        .collect();
    let _ = writeln!(
        out,
        "\n✓ pass · ✗ fail · `·` skip · ❌ mismatch (fails the run) · ⚠️ warning (recommended check) · _(negative control)_\n\n{}\n",
        legend.join(" · ")
    );
}

fn scenario_name(scenario: &ScenarioResult) -> String {
    if scenario.negative_control {
        format!("{} _(negative control)_", inline(&scenario.scenario))
    } else {
        inline(&scenario.scenario)
    }
}

fn render_scenario(out: &mut String, scenario: &ScenarioResult) {
    let mark = if scenario.ok() { "✅" } else { "❌" };
    let _ = writeln!(out, "## {mark} {}\n", scenario_name(scenario));
    if !scenario.description.is_empty() {
        let _ = writeln!(out, "{}\n", inline(&scenario.description));
    }
    let _ = writeln!(out, "{}\n", scenario_facts(scenario, inline));
    let _ = writeln!(
        out,
        "| Check | Expected | Observed | Verdict | Summary |\n|---|---|---|---|---|"
    );
    for check in &scenario.checks {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} {} | {} |",
            check.check,
            check.expected,
            check.outcome.status,
            verdict_mark(check.verdict),
            verdict_word(check.verdict),
            inline(&check.outcome.summary)
        );
    }
    out.push('\n');
    // Mismatches, warnings and observed negative-control failures (`shows_evidence`),
    // each with its evidence, folded so the page stays short.
    for check in scenario.checks.iter().filter(|c| shows_evidence(c)) {
        let _ = writeln!(
            out,
            "<details><summary>{} {}: <code>{}</code>: {}</summary>\n",
            verdict_mark(check.verdict),
            evidence_label(check.verdict),
            check.check,
            inline(&expected_vs_got(check))
        );
        let _ = writeln!(out, "{}\n", inline(check.check.claim()));
        let _ = writeln!(
            out,
            "{}",
            fenced("text", &evidence_block(&check.outcome.evidence))
        );
        let _ = writeln!(out, "</details>\n");
    }
    if let Some(flows) = attribution_traffic(scenario) {
        let _ = writeln!(
            out,
            "**Observed traffic** (ATTRIBUTION; cross-cluster flows in red, lost flows dashed):\n"
        );
        let _ = writeln!(
            out,
            "{}",
            fenced("mermaid", &mermaid::traffic_flowchart(flows))
        );
    }
}

/// Escapes text for a Markdown table cell or paragraph: markup characters become
/// literal, pipes cannot end a cell, newlines become `<br>`.
pub(crate) fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code fence longer than any run of backticks inside, so the content cannot close it.
fn fenced(lang: &str, content: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in content.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    let body = content.trim_end_matches('\n');
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn headline_says_how_many_mismatched() {
        let text = render(&fixtures::run(), &fixtures::meta());
        assert!(
            text.starts_with("# ❌ meshconform: 1 mismatch (1 warning)\n"),
            "{text}"
        );
        let all_good = Totals {
            passed: 4,
            checks: 4,
            scenarios: 1,
            ..Totals::default()
        };
        assert_eq!(
            headline(&all_good),
            "✅ meshconform: all 4 expectations matched"
        );
    }

    #[test]
    fn one_table_per_scenario_with_a_row_per_check() {
        let text = render(&fixtures::run(), &fixtures::meta());
        assert_eq!(
            text.matches("| Check | Expected | Observed | Verdict | Summary |")
                .count(),
            2
        );
        assert!(
            text.contains("| `MTLS-OUTBOUND` | pass | fail | ❌ mismatch |"),
            "{text}"
        );
        assert!(
            text.contains("| `CERT-CHAIN` | skip | skip | ✓ matched |"),
            "{text}"
        );
        assert!(
            text.contains("\n## ✅ multi-no-fencing _(negative control)_\n"),
            "{text}"
        );
        assert!(text.contains("\n## ❌ single-sidecar-strict\n"), "{text}");
    }

    #[test]
    fn failures_are_in_details_with_fenced_evidence() {
        let text = render(&fixtures::run(), &fixtures::meta());
        // A mismatch, a warning and two observed failures of the negative control.
        assert_eq!(text.matches("<details>").count(), 4);
        assert_eq!(text.matches("</details>").count(), 4);
        let start = text
            .find("<summary>❌ mismatch: <code>MTLS-OUTBOUND</code>")
            .unwrap();
        let block = &text[start..start + text[start..].find("</details>").unwrap()];
        assert!(
            block.contains("```text\n[alpha] CronJob/cz-backfill"),
            "{block}"
        );
        // Evidence sits in a fence, where GitHub shows it as text.
        assert!(block.contains(fixtures::HOSTILE), "{block}");
        // Outside fences, outcome text is escaped.
        assert!(!text.replace(block, "").contains("<script>"));
    }

    #[test]
    fn traffic_is_drawn_only_where_attribution_observed_cross_cluster_red() {
        let text = render(&fixtures::run(), &fixtures::meta());
        assert_eq!(text.matches("```mermaid\nflowchart LR").count(), 2);
        let negative = &text[text.find("## ✅ multi-no-fencing").unwrap()..];
        let diagram = &negative[negative.find("```mermaid").unwrap()..];
        assert_eq!(diagram.matches("stroke:red").count(), 2, "{diagram}");
    }

    #[test]
    fn inline_text_cannot_break_a_table_or_open_markup() {
        assert_eq!(inline("a|b\nc <x>"), "a\\|b<br>c &lt;x&gt;");
        assert_eq!(fenced("text", "```\nx"), "````text\n```\nx\n````\n");
    }
}
