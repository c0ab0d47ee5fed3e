//! The `meshconform` binary: exit codes, selection, reports on disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn meshconform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshconform"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn list_names_every_scenario_and_check() {
    let out = meshconform(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    for entry in std::fs::read_dir(repo().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(shown.contains(&name), "{name} missing from list");
    }
    for check in meshconform::checks::CheckId::ALL {
        assert!(shown.contains(check.as_str()), "{check} missing from list");
    }
}

#[test]
fn explain_shows_claim_and_source_and_rejects_unknown_ids() {
    let out = meshconform(&["explain", "MTLS-INBOUND"]);
    assert_eq!(out.status.code(), Some(0));
    let shown = text(&out);
    assert!(
        shown.contains("excludes the webhook container port"),
        "{shown}"
    );
    assert!(shown.contains("Port Exclusion Annotations"), "{shown}");
    let out = meshconform(&["explain", "MTLS-INBOND"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("unknown check `MTLS-INBOND`"));
}

#[test]
fn a_scenario_glob_that_matches_nothing_is_bad_input() {
    let out = meshconform(&["run", "--provider", "none", "--scenario", "no-such-*"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("matches no scenario"));
}

#[test]
fn a_malformed_scenario_directory_is_bad_input_naming_the_file() {
    let out = meshconform(&["list", "--scenarios", "suites/tests/malformed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unknown-field.yaml:9:"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_wrong_expectation_exits_1_and_reports_agree_with_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    // A correct scenario, with one expectation deliberately wrong.
    let original =
        std::fs::read_to_string(repo().join("scenarios/single-sidecar-strict.yaml")).unwrap();
    let wrong = original.replace("  MTLS-INBOUND: pass", "  MTLS-INBOUND: fail");
    assert_ne!(original, wrong);
    std::fs::write(scenarios.join("single-sidecar-strict.yaml"), wrong).unwrap();
    let reports = dir.path().join("reports");
    let out = meshconform(&[
        "run",
        "--provider",
        "none",
        "--scenarios",
        scenarios.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("results.json")).unwrap())
            .unwrap();
    let mismatched: Vec<String> = json["scenarios"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "mismatched")
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mismatched, vec!["MTLS-INBOUND".to_string()]);
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("single-sidecar-strict::MTLS-INBOUND"));
    assert!(text(&out).contains("1 failed"), "{}", text(&out));
}

#[test]
fn kind_without_docker_fails_at_once_with_doctors_message_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("bin");
    std::fs::create_dir(&empty_path).unwrap();
    let reports = dir.path().join("reports");
    let out = Command::new(env!("CARGO_BIN_EXE_meshconform"))
        .args([
            "run",
            "--provider",
            "kind",
            "--scenario",
            "single-sidecar-strict",
        ])
        .arg("--reports")
        .arg(&reports)
        .current_dir(repo())
        // No docker, kind, kubectl, helm or istioctl anywhere.
        .env("PATH", &empty_path)
        .env_remove("HELM")
        .env_remove("KIND")
        .env_remove("ISTIOCTL")
        .env_remove("KUBECTL")
        .env_remove("DOCKER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("docker"), "{shown}");
    assert!(shown.contains("kind"), "{shown}");
    assert!(
        !reports.exists(),
        "a failed preflight must not write reports"
    );
    let doctor = Command::new(env!("CARGO_BIN_EXE_meshconform"))
        .arg("doctor")
        .current_dir(repo())
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    assert_ne!(doctor.status.code(), Some(0));
    let first_problem = text(&doctor)
        .lines()
        .find(|l| l.starts_with("PROBLEM docker"))
        .map(|l| l.trim_start_matches("PROBLEM ").to_string())
        .unwrap();
    assert!(
        shown.contains(&first_problem),
        "run and doctor must say the same thing"
    );
}

#[test]
fn plan_lists_objects_and_verbose_adds_their_yaml() {
    let short = meshconform(&["plan", "--scenario", "single-sidecar-strict"]);
    assert_eq!(short.status.code(), Some(0), "{}", text(&short));
    let short = text(&short);
    assert!(short.contains("kind create cluster"), "{short}");
    assert!(!short.contains("kind: Deployment"), "{short}");
    let verbose = meshconform(&["plan", "--scenario", "single-sidecar-strict", "--verbose"]);
    assert_eq!(verbose.status.code(), Some(0));
    assert!(text(&verbose).contains("kind: Deployment"));
}
