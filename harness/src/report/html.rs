//! report.html: one self-contained page (inline CSS, no external assets, no script).
//!
//! Same content as the Markdown summary. Everything that comes from an outcome is
//! HTML-escaped; a Content-Security-Policy forbids scripts and remote loads as a second
//! line of defence. The traffic picture is Mermaid source shown as text in a
//! `<pre class="mermaid">`: rendering needs mermaid.js, which the page does not load.

use std::fmt::Write as _;

use super::{
    RunMeta, Totals, abbreviations, attribution_traffic, evidence_block, evidence_label,
    expected_vs_got, flow_text, headline, matrix_cell, matrix_columns, mermaid, meta_parts,
    scenario_facts, shows_evidence, verdict_word,
};
use crate::checks::Status;
use crate::runner::{CheckResult, RunResult, ScenarioResult, Verdict};

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
table.matrix td.cell{text-align:center;font-family:ui-monospace,monospace}
td.mismatched{background:#ffebe9}td.warned{background:#fff8c5}td.skip{color:#6e7781}
pre{background:#f6f8fa;padding:.75rem;overflow:auto;white-space:pre-wrap}
.meta,.legend{color:#57606a}
.problem{border-left:4px solid #cf222e;padding-left:.75rem;margin:1rem 0}
.problem.warned{border-color:#bf8700}
ul.traffic li.cross{color:#cf222e;font-weight:600}ul.traffic li.lost{color:#6e7781;text-decoration:underline dashed}
.badge{font-size:.75em;padding:.1em .45em;border-radius:4px;color:#fff;vertical-align:middle}
.badge.ok{background:#1a7f37}.badge.fail{background:#cf222e}
";

/// Renders the run as a self-contained HTML page.
pub fn render(run: &RunResult, meta: &RunMeta) -> String {
    let totals = Totals::of(run);
    let mut out = String::new();
    let title = headline(&totals);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{} {}</h1>\n",
        escape(&title),
        badge(totals.failed == 0),
        escape(&title)
    );
    let _ = writeln!(out, "<p class=\"meta\">{}</p>", meta_line(meta));
    let _ = writeln!(out, "<p><strong>{}</strong>.</p>", totals.sentence());
    render_matrix(&mut out, run);
    render_problems(&mut out, run);
    for scenario in &run.scenarios {
        render_scenario(&mut out, scenario);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn meta_line(meta: &RunMeta) -> String {
    meta_parts(meta, escape).join(" · ")
}

/// Status symbol and verdict marker, as in the terminal matrix, without the padding.
fn cell(check: &CheckResult) -> String {
    matrix_cell(check).trim_end().to_string()
}

/// A coloured `PASS` / `FAIL` label; text, not emoji, so it shows without emoji fonts.
fn badge(ok: bool) -> &'static str {
    if ok {
        "<span class=\"badge ok\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

fn cell_class(check: &CheckResult) -> &'static str {
    match (check.verdict, check.outcome.status) {
        (Verdict::Mismatched, _) => "cell mismatched",
        (Verdict::Warned, _) => "cell warned",
        (Verdict::Matched, Status::Skip) => "cell skip",
        (Verdict::Matched, _) => "cell",
    }
}

fn scenario_name(scenario: &ScenarioResult) -> String {
    if scenario.negative_control {
        format!("{} <em>(negative control)</em>", escape(&scenario.scenario))
    } else {
        escape(&scenario.scenario)
    }
}

fn render_matrix(out: &mut String, run: &RunResult) {
    let columns = abbreviations(&matrix_columns(run));
    if columns.is_empty() {
        return;
    }
    out.push_str("<h2>Matrix</h2>\n<table class=\"matrix\">\n<tr><th>Scenario</th>");
    for (id, abbrev) in &columns {
        let _ = write!(
            out,
            "<th title=\"{}\">{}</th>",
            escape(id.as_str()),
            escape(abbrev)
        );
    }
    out.push_str("</tr>\n");
    for scenario in &run.scenarios {
        let _ = write!(
            out,
            "<tr><td><a href=\"#{}\">{}</a></td>",
            anchor(&scenario.scenario),
            scenario_name(scenario)
        );
        for (id, _) in &columns {
            match scenario.checks.iter().find(|c| c.check == *id) {
                Some(check) => {
                    let _ = write!(
                        out,
                        "<td class=\"{}\" title=\"{}\">{}</td>",
                        cell_class(check),
                        escape(&format!("{}: {}", check.check, expected_vs_got(check))),
                        escape(&cell(check))
                    );
                }
                None => out.push_str("<td class=\"cell\"></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    let legend: Vec<String> = columns
        .iter()
        .map(|(id, abbrev)| format!("{} = {}", escape(abbrev), escape(id.as_str())))
        .collect();
    let _ = writeln!(
        out,
        "<p class=\"legend\">✓ pass · ✗ fail · · skip · ! mismatch (fails the run) · ~ warning (recommended check)<br>{}</p>",
        legend.join(" · ")
    );
}

fn render_problems(out: &mut String, run: &RunResult) {
    let problems: Vec<(&ScenarioResult, &CheckResult)> = run
        .scenarios
        .iter()
        .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
        .filter(|(_, c)| c.verdict != Verdict::Matched)
        .collect();
    if problems.is_empty() {
        return;
    }
    out.push_str("<h2>Mismatches and warnings</h2>\n");
    for (scenario, check) in problems {
        let class = match check.verdict {
            Verdict::Warned => "problem warned",
            _ => "problem",
        };
        let _ = writeln!(
            out,
            "<div class=\"{class}\"><h3>{}: {} :: {}</h3>\n<p>{}</p>\n<p class=\"meta\">{}</p>\n<pre>{}</pre></div>",
            evidence_label(check.verdict),
            escape(&scenario.scenario),
            escape(check.check.as_str()),
            escape(&expected_vs_got(check)),
            escape(check.check.claim()),
            escape(&evidence_block(&check.outcome.evidence))
        );
    }
}

fn render_scenario(out: &mut String, scenario: &ScenarioResult) {
    let _ = writeln!(
        out,
        "<h2 id=\"{}\">{} {}</h2>",
        anchor(&scenario.scenario),
        badge(scenario.ok()),
        scenario_name(scenario)
    );
    if !scenario.description.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", escape(&scenario.description));
    }
    let _ = writeln!(
        out,
        "<p class=\"meta\">{}</p>",
        scenario_facts(scenario, escape)
    );
    out.push_str("<table>\n<tr><th>Check</th><th>Expected</th><th>Observed</th><th>Verdict</th><th>Summary</th></tr>\n");
    for check in &scenario.checks {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(check.check.as_str()),
            check.expected,
            check.outcome.status,
            cell_class(check),
            verdict_word(check.verdict),
            escape(&check.outcome.summary)
        );
    }
    out.push_str("</table>\n");
    for check in scenario.checks.iter().filter(|c| shows_evidence(c)) {
        let _ = writeln!(
            out,
            "<details><summary>{}: <code>{}</code>: {}</summary>\n<pre>{}</pre>\n</details>",
            evidence_label(check.verdict),
            escape(check.check.as_str()),
            escape(&expected_vs_got(check)),
            escape(&evidence_block(&check.outcome.evidence))
        );
    }
    if let Some(flows) = attribution_traffic(scenario) {
        let _ = writeln!(
            out,
            "<p><strong>Observed traffic</strong> (cross-cluster flows in red, lost flows dashed):</p>\n<ul class=\"traffic\">"
        );
        // The list reads without mermaid.js; the Mermaid source below renders where it
        // is available (e.g. pasted into a Markdown viewer).
        for flow in flows {
            let class = match &flow.to_cluster {
                Some(to) if *to != flow.from_cluster => "cross",
                Some(_) => "local",
                None => "lost",
            };
            let _ = writeln!(
                out,
                "<li class=\"{class}\">{}</li>",
                escape(&flow_text(flow))
            );
        }
        let _ = writeln!(
            out,
            "</ul>\n<details><summary>Mermaid source</summary>\n<pre class=\"mermaid\">{}</pre>\n</details>",
            escape(&mermaid::traffic_flowchart(flows))
        );
    }
}

/// An element ID from a scenario name: only `[a-z0-9-]`, prefixed so it never starts
/// with a digit.
fn anchor(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("scenario-{slug}")
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn script_from_evidence_is_escaped() {
        let html = render(&fixtures::run(), &fixtures::meta());
        assert!(
            !html.contains(fixtures::HOSTILE),
            "raw evidence reached the page"
        );
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        // The page itself has no script at all, so any <script> would be injected.
        assert!(!html.to_ascii_lowercase().contains("<script"));
    }

    #[test]
    fn page_is_self_contained() {
        let html = render(&fixtures::run(), &fixtures::meta());
        for external in ["src=", "href=\"http", "<link", "@import", "url("] {
            assert!(!html.contains(external), "{external} in the page");
        }
        assert!(html.contains("default-src 'none'"));
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    }

    #[test]
    fn page_has_the_matrix_failures_and_traffic() {
        let html = render(&fixtures::run(), &fixtures::meta());
        assert!(html.contains("<table class=\"matrix\">"));
        assert!(html.contains("<h3>mismatch: single-sidecar-strict :: MTLS-OUTBOUND</h3>"));
        assert!(html.contains(
            "<h3>warning (recommended check): single-sidecar-strict :: SIDECAR-JOB-EXIT</h3>"
        ));
        assert_eq!(
            html.matches("<pre class=\"mermaid\">flowchart LR").count(),
            2
        );
        // Mermaid's quotes are escaped like everything else.
        assert!(html.contains("subgraph c0[&quot;cluster alpha&quot;]"));
        // Cells of a mismatch and of a warning carry their classes.
        assert!(html.contains("class=\"cell mismatched\""));
        assert!(html.contains("class=\"cell warned\""));
    }

    #[test]
    fn escape_covers_attribute_quotes() {
        assert_eq!(escape(r#"a"b'c<d>&"#), "a&quot;b&#39;c&lt;d&gt;&amp;");
    }
}
