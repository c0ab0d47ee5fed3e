//! The terminal summary a person reads in a minute, and a live per-scenario progress
//! line for the CLI.
//!
//! The summary is a matrix (scenarios x checks), then every mismatch and warning with
//! its first evidence, then the totals. Its last line is `meshconform: N passed, N
//! failed` on its own, so CI tools that read closing lines can count it.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{
    Totals, abbreviations, count, evidence_text, expected_vs_got, matrix_cell, matrix_columns,
    severity_and_kind,
};
use crate::checks::Status;
use crate::runner::{CheckResult, RunResult, ScenarioResult, Verdict};

/// How many evidence items a problem shows before pointing at the full reports.
const EVIDENCE_SHOWN: usize = 2;
/// How many lines of one evidence item are shown (diffs can be long).
const EVIDENCE_LINES: usize = 12;

#[derive(Clone, Copy)]
enum Paint {
    Red,
    Yellow,
    Green,
    Dim,
    Bold,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Red => "\x1b[31m",
            Paint::Yellow => "\x1b[33m",
            Paint::Green => "\x1b[32m",
            Paint::Dim => "\x1b[2m",
            Paint::Bold => "\x1b[1m",
        }
    }
}

/// Wraps already-padded text in a colour, only when colour is on.
fn paint(text: &str, paint: Paint, color: bool) -> String {
    if color {
        format!("{}{text}\x1b[0m", paint.code())
    } else {
        text.to_string()
    }
}

/// Replaces control characters (other than newlines) from outcomes, so evidence cannot
/// move the cursor or change colours in someone's terminal.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn cell_paint(check: &CheckResult) -> Paint {
    match check.verdict {
        Verdict::Mismatched => Paint::Red,
        Verdict::Warned => Paint::Yellow,
        Verdict::Matched if check.outcome.status == Status::Skip => Paint::Dim,
        Verdict::Matched => Paint::Green,
    }
}

fn scenario_result_text(scenario: &ScenarioResult) -> (String, Paint) {
    let mismatches = scenario
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Mismatched)
        .count();
    let warnings = scenario
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Warned)
        .count();
    let warn_text = match warnings {
        0 => String::new(),
        n => format!(", {}", count(n, "warning", "warnings")),
    };
    if mismatches > 0 {
        (
            format!("FAIL: {mismatches} mismatched{warn_text}"),
            Paint::Red,
        )
    } else if warnings > 0 {
        (format!("ok{warn_text}"), Paint::Yellow)
    } else {
        ("ok".to_string(), Paint::Green)
    }
}

/// Renders the whole summary. Pure: the caller decides on colour.
pub fn render(run: &RunResult, color: bool) -> String {
    let mut out = String::new();
    let totals = Totals::of(run);
    let _ = writeln!(
        out,
        "{}",
        paint(
            &format!(
                "meshconform {}: {} scenarios, {} checks",
                run.version, totals.scenarios, totals.checks
            ),
            Paint::Bold,
            color
        )
    );
    render_matrix(&mut out, run, color);
    render_problems(&mut out, run, color);
    render_totals(&mut out, &totals, color);
    out
}

fn render_matrix(out: &mut String, run: &RunResult, color: bool) {
    let columns = abbreviations(&matrix_columns(run));
    let names: Vec<String> = run
        .scenarios
        .iter()
        .map(|s| {
            let name = sanitize(&s.scenario);
            if s.negative_control {
                format!("{name}*")
            } else {
                name
            }
        })
        .collect();
    let name_width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("scenario".len());
    let widths: Vec<usize> = columns.iter().map(|(_, a)| a.len().max(2)).collect();

    let _ = writeln!(out);
    let mut header = format!("{:<name_width$}", "scenario");
    for ((_, abbrev), width) in columns.iter().zip(&widths) {
        let _ = write!(header, " {abbrev:<width$}");
    }
    let _ = writeln!(out, "{}", paint(header.trim_end(), Paint::Bold, color));

    for (scenario, name) in run.scenarios.iter().zip(&names) {
        let _ = write!(out, "{name:<name_width$}");
        for ((id, _), width) in columns.iter().zip(&widths) {
            let text = match scenario.checks.iter().find(|c| c.check == *id) {
                Some(check) => paint(
                    &format!("{:<width$}", matrix_cell(check)),
                    cell_paint(check),
                    color,
                ),
                // Not run in this scenario (e.g. a static-only run of a runtime column).
                None => " ".repeat(*width),
            };
            let _ = write!(out, " {text}");
        }
        let (result, result_paint) = scenario_result_text(scenario);
        let _ = writeln!(
            out,
            "  {} {}",
            paint(&result, result_paint, color),
            paint(
                &format!("({})", seconds(scenario.duration)),
                Paint::Dim,
                color
            )
        );
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}",
        paint(
            "✓ pass  ✗ fail  · skip   ! mismatch (fails the run)  ~ warning (recommended check)  * negative control",
            Paint::Dim,
            color
        )
    );
    let legend: Vec<String> = columns
        .iter()
        .map(|(id, abbrev)| format!("{abbrev}={id}"))
        .collect();
    for line in wrap(&legend, 100) {
        let _ = writeln!(out, "{}", paint(&line, Paint::Dim, color));
    }
}

/// Joins items with two spaces, breaking lines before `width` characters.
fn wrap(items: &[String], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && line.len() + 2 + item.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str("  ");
        }
        line.push_str(item);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn render_problems(out: &mut String, run: &RunResult, color: bool) {
    for (verdict, title, marker, colour) in [
        (
            Verdict::Mismatched,
            "Mismatches (these fail the run):",
            "!",
            Paint::Red,
        ),
        (
            Verdict::Warned,
            "Warnings (recommended checks; they do not fail the run):",
            "~",
            Paint::Yellow,
        ),
    ] {
        let problems: Vec<(&ScenarioResult, &CheckResult)> = run
            .scenarios
            .iter()
            .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
            .filter(|(_, c)| c.verdict == verdict)
            .collect();
        if problems.is_empty() {
            continue;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", paint(title, Paint::Bold, color));
        for (scenario, check) in problems {
            let heading = format!(
                "{marker} {} :: {}  [{}]",
                sanitize(&scenario.scenario),
                check.check,
                severity_and_kind(check)
            );
            let _ = writeln!(out, "  {}", paint(&heading, colour, color));
            let _ = writeln!(out, "    {}", sanitize(&expected_vs_got(check)));
            for evidence in check.outcome.evidence.iter().take(EVIDENCE_SHOWN) {
                let text = sanitize(&evidence_text(evidence));
                let lines: Vec<&str> = text.lines().collect();
                for line in lines.iter().take(EVIDENCE_LINES) {
                    let _ = writeln!(out, "    {line}");
                }
                if lines.len() > EVIDENCE_LINES {
                    let _ = writeln!(out, "    ... ({} more lines)", lines.len() - EVIDENCE_LINES);
                }
            }
            let hidden = check.outcome.evidence.len().saturating_sub(EVIDENCE_SHOWN);
            if hidden > 0 {
                let _ = writeln!(
                    out,
                    "    {}",
                    paint(
                        &format!(
                            "... and {hidden} more evidence items in report.html / results.json"
                        ),
                        Paint::Dim,
                        color
                    )
                );
            }
        }
    }
}

fn render_totals(out: &mut String, totals: &Totals, color: bool) {
    let _ = writeln!(out);
    let warnings = match totals.warnings {
        1 => "1 warning".to_string(),
        n => format!("{n} warnings"),
    };
    let warn_line = format!("meshconform: {warnings}");
    let warn_paint = if totals.warnings > 0 {
        Paint::Yellow
    } else {
        Paint::Dim
    };
    let _ = writeln!(out, "{}", paint(&warn_line, warn_paint, color));
    // Last and alone on its line, in exactly this form: CI tools count from it. Colour
    // codes would break that, so it is painted only as a whole line.
    let line = format!(
        "meshconform: {} passed, {} failed",
        totals.passed, totals.failed
    );
    let line_paint = if totals.failed > 0 {
        Paint::Red
    } else {
        Paint::Green
    };
    let _ = writeln!(out, "{}", paint(&line, line_paint, color));
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// True when colour should be used on stdout: it is a terminal and `NO_COLOR` is unset
/// or empty (<https://no-color.org>).
pub fn stdout_wants_color() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn stderr_wants_color() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints the summary to stdout, coloured when stdout is a terminal and `NO_COLOR` is unset.
pub fn print(run: &RunResult) -> io::Result<()> {
    let text = render(run, stdout_wants_color());
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Live progress: `[2/11] multi-no-fencing ... ok (1.2s)`, one line per scenario.
///
/// Methods take `&self` (the writer sits behind a mutex) so a runner can share it.
/// Writing is best effort: a closed stderr must not stop a conformance run.
pub struct Progress<W: Write = io::Stderr> {
    state: Mutex<ProgressState<W>>,
    total: usize,
    color: bool,
}

struct ProgressState<W> {
    out: W,
    started: usize,
    current: Option<Instant>,
}

impl Progress<io::Stderr> {
    /// Progress on stderr for `total` scenarios, coloured when stderr is a terminal and
    /// `NO_COLOR` is unset.
    pub fn new(total: usize) -> Self {
        Progress::with_writer(io::stderr(), total, stderr_wants_color())
    }
}

impl<W: Write> Progress<W> {
    /// Progress on any writer, for `total` scenarios.
    pub fn with_writer(out: W, total: usize, color: bool) -> Self {
        Self {
            state: Mutex::new(ProgressState {
                out,
                started: 0,
                current: None,
            }),
            total,
            color,
        }
    }

    fn state(&self) -> MutexGuard<'_, ProgressState<W>> {
        // A panic elsewhere while printing leaves the writer usable; keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a scenario's line; it is finished by [`Progress::scenario_finished`] or
    /// [`Progress::scenario_errored`].
    pub fn scenario_started(&self, name: &str) {
        let mut state = self.state();
        state.started += 1;
        state.current = Some(Instant::now());
        let line = format!("[{}/{}] {} ... ", state.started, self.total, sanitize(name));
        let _ = state.out.write_all(line.as_bytes());
        let _ = state.out.flush();
    }

    /// Ends the current line with the scenario's result and time.
    pub fn scenario_finished(&self, result: &ScenarioResult) {
        let mut state = self.state();
        state.current = None;
        let (text, colour) = scenario_result_text(result);
        let _ = writeln!(
            state.out,
            "{} ({})",
            paint(&text, colour, self.color),
            seconds(result.duration)
        );
        let _ = state.out.flush();
    }

    /// Ends the current line with an error that stopped the scenario from running.
    pub fn scenario_errored(&self, error: &dyn std::fmt::Display) {
        let mut state = self.state();
        let elapsed = state
            .current
            .take()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let text = format!("ERROR: {}", sanitize(&error.to_string()));
        let _ = writeln!(
            state.out,
            "{} ({})",
            paint(&text, Paint::Red, self.color),
            seconds(elapsed)
        );
        let _ = state.out.flush();
    }

    /// The writer, e.g. to inspect what was written in tests.
    pub fn into_inner(self) -> W {
        self.state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn totals_line_stands_alone_last_in_the_ci_form() {
        let text = render(&fixtures::run(), false);
        let lines: Vec<&str> = text.lines().collect();
        // The fixture holds 5 matched checks, 1 mismatch and 1 warning.
        assert_eq!(lines.last(), Some(&"meshconform: 5 passed, 1 failed"));
        assert_eq!(lines[lines.len() - 2], "meshconform: 1 warning");
    }

    #[test]
    fn totals_line_is_the_same_with_colour_once_codes_are_stripped() {
        let coloured = render(&fixtures::run(), true);
        assert!(coloured.contains("\x1b["), "colour was asked for");
        let stripped = String::from_utf8(strip_ansi(coloured.as_bytes())).unwrap();
        assert_eq!(stripped, render(&fixtures::run(), false));
    }

    fn strip_ansi(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == 0x1b {
                while i < bytes.len() && bytes[i] != b'm' {
                    i += 1;
                }
            } else {
                out.push(bytes[i]);
            }
            i += 1;
        }
        out
    }

    #[test]
    fn no_colour_means_no_escape_codes() {
        assert!(!render(&fixtures::run(), false).contains('\x1b'));
    }

    #[test]
    fn matrix_marks_each_verdict_in_its_column() {
        let text = render(&fixtures::run(), false);
        let header = text.lines().find(|l| l.starts_with("scenario")).unwrap();
        let row = text
            .lines()
            .find(|l| l.starts_with("single-sidecar-strict "))
            .unwrap();
        let column_of = |abbrev: &str| {
            let start = header
                .find(&format!(" {abbrev} "))
                .or_else(|| header.rfind(&format!(" {abbrev}")))
                .unwrap()
                + 1;
            // Column positions are in chars; the header is ASCII so byte = char index.
            row.chars().skip(start).take(2).collect::<String>()
        };
        assert_eq!(column_of("MI"), "✓ ");
        assert_eq!(column_of("MO"), "✗!");
        assert_eq!(column_of("CC"), "· ");
        assert_eq!(column_of("SJE"), "✗~");
        assert!(row.contains("FAIL: 1 mismatched, 1 warning"), "{row}");
        let negative = text
            .lines()
            .find(|l| l.starts_with("multi-no-fencing*"))
            .unwrap();
        assert!(negative.contains("  ok "), "{negative}");
    }

    #[test]
    fn problems_list_expected_vs_got_and_first_evidence() {
        let text = render(&fixtures::run(), false);
        let mismatch = text
            .find("! single-sidecar-strict :: MTLS-OUTBOUND")
            .unwrap();
        let after = &text[mismatch..];
        assert!(
            after.contains("expected pass, got fail: backfill CronJob does not exclude port 443")
        );
        assert!(after.contains("[alpha] CronJob/cz-backfill"));
        assert!(text.contains("~ single-sidecar-strict :: SIDECAR-JOB-EXIT"));
        // Observed failures of a negative control are not problems.
        assert!(!text.contains(":: FENCE-PRESENT"));
    }

    #[test]
    fn control_characters_from_outcomes_do_not_reach_the_terminal() {
        let mut run = fixtures::run();
        run.scenarios[0].checks[1].outcome.summary = "evil \x1b[2J clear".into();
        let text = render(&run, false);
        assert!(!text.contains('\x1b'));
        assert!(text.contains("evil \u{fffd}[2J clear"));
    }

    #[test]
    fn progress_prints_one_line_per_scenario_with_its_time() {
        let run = fixtures::run();
        let progress = Progress::with_writer(Vec::new(), 3, false);
        progress.scenario_started(&run.scenarios[0].scenario);
        progress.scenario_finished(&run.scenarios[0]);
        progress.scenario_started(&run.scenarios[1].scenario);
        progress.scenario_finished(&run.scenarios[1]);
        progress.scenario_started("broken");
        progress.scenario_errored(&"scenarios/broken.yaml:3:1: field `x`: unknown");
        let text = String::from_utf8(progress.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            "[1/3] single-sidecar-strict ... FAIL: 1 mismatched, 1 warning (1.8s)"
        );
        assert_eq!(lines[1], "[2/3] multi-no-fencing ... ok (0.9s)");
        assert!(
            lines[2].starts_with("[3/3] broken ... ERROR: scenarios/broken.yaml:3:1"),
            "{}",
            lines[2]
        );
    }
}
