//! The scenario loader: the matrix loads, and every malformed file in
//! `tests/malformed/` fails with an error that names the file, the line and the field.
//!
//! Each malformed file starts with `# expect-error: line=N field=F message=M`, where
//! `line=0` means "some line, not pinned" and `line=none` means "the whole file".

use std::path::{Path, PathBuf};

use meshconform::checks::CheckId;
use meshconform::scenario;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Expected {
    line: Option<u64>,
    line_pinned: bool,
    field: String,
    message: String,
}

fn expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).unwrap();
    let header = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect-error: "))
        .unwrap_or_else(|| panic!("{} has no # expect-error header", path.display()));
    let (line, rest) = header.split_once(" field=").unwrap();
    let (field, message) = rest.split_once(" message=").unwrap();
    let line = line.strip_prefix("line=").unwrap();
    Expected {
        line: line.parse().ok().filter(|l| *l > 0),
        line_pinned: line != "0" && line != "none",
        field: field.to_string(),
        message: message.to_string(),
    }
}

#[test]
fn every_malformed_scenario_is_rejected_with_file_line_and_field() {
    let dir = repo().join("suites/tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "only {} malformed files", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let want = expected(path);
        let err = match scenario::load(path) {
            Ok(_) => {
                problems.push(format!("{}: loaded without error", path.display()));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let mut wrong = Vec::new();
        if err.file != *path || !shown.starts_with(&path.display().to_string()) {
            wrong.push("file not named");
        }
        if want.line_pinned && err.line != want.line {
            wrong.push("wrong line");
        }
        if !want.line_pinned && want.line.is_none() && path.ends_with("empty.yaml") {
            if err.line.is_some() {
                wrong.push("whole-file error carries a line");
            }
        } else if err.line.is_none() {
            wrong.push("no line");
        }
        if err.field != want.field {
            wrong.push("wrong field");
        }
        if !err.message.contains(&want.message) {
            wrong.push("message lacks the expected words");
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "{}: {} (want line {:?} field {:?} message ~{:?}; got: {shown})",
                path.display(),
                wrong.join(", "),
                want.line,
                want.field,
                want.message
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_matrix_loads_and_covers_the_design_minimum() {
    let scenarios = scenario::load_dir(&repo().join("scenarios")).unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    for required in [
        "single-no-istio",
        "single-sidecar-strict",
        "single-sidecar-strict-cert-manager",
        "single-ambient-strict",
        "multi-sidecar-name-matches",
        "multi-sidecar-name-differs",
        "multi-sidecar-name-differs-unset",
        "multi-ambient-explicit",
        "multi-ambient-unset",
        "multi-no-fencing",
        "istio-disabled-in-mesh",
    ] {
        assert!(names.contains(&required), "missing scenario {required}");
    }
    for s in &scenarios {
        assert_eq!(s.expect.len(), CheckId::ALL.len(), "{}", s.name);
    }
    let negatives = scenarios.iter().filter(|s| s.negative_control).count();
    assert!(negatives >= 4, "only {negatives} negative controls");
}

#[test]
fn a_directory_with_broken_files_reports_every_one() {
    let err = scenario::load_dir(&repo().join("suites/tests/malformed")).unwrap_err();
    match err {
        meshconform::Error::Inputs(errors) => assert!(errors.len() >= 12, "{}", errors.len()),
        other => panic!("expected every file's error, got {other}"),
    }
}
