//! Every static check can go red: each mutation of the reference install turns
//! exactly the checks it names from not failing to failing, and every static check is
//! turned red by some mutation or by a named direct test below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshconform::checks::{self, CheckId, CheckKind, Outcome, Status};
use meshconform::mutations::{self, Mutation};
use meshconform::scenario::{self, Scenario};
use meshconform::subject::{self, Rendered, Subject};

/// Checks that the named direct tests in this file turn red (the input values matter
/// to them, so no manifest mutation can).
const DIRECT: &[CheckId] = &[CheckId::AmbientExplicit];

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.yaml"))
}

fn load(name: &str) -> Scenario {
    scenario::load(&scenario_path(name)).unwrap_or_else(|e| panic!("scenario {name}: {e}"))
}

fn render(scenario: &Scenario) -> Rendered {
    subject::render(&Subject::default(), scenario)
        .unwrap_or_else(|e| panic!("rendering {}: {e}", scenario.name))
}

fn static_checks() -> impl Iterator<Item = CheckId> {
    CheckId::ALL
        .iter()
        .copied()
        .filter(|c| c.kind() == CheckKind::Static)
}

fn run_statics(scenario: &Scenario, rendered: &Rendered) -> BTreeMap<CheckId, Outcome> {
    static_checks()
        .map(|c| (c, checks::run_static(c, scenario, rendered)))
        .collect()
}

fn failing(outcomes: &BTreeMap<CheckId, Outcome>) -> BTreeSet<CheckId> {
    outcomes
        .iter()
        .filter(|(_, o)| o.status == Status::Fail)
        .map(|(c, _)| *c)
        .collect()
}

fn ids(checks: &BTreeSet<CheckId>) -> String {
    let names: Vec<&str> = checks.iter().map(|c| c.as_str()).collect();
    format!("[{}]", names.join(", "))
}

/// What went wrong with one mutation, or `None` when it turned exactly its checks red.
fn mismatch(mutation: &Mutation) -> Option<String> {
    let scenario = load(mutation.base_scenario);
    let rendered = render(&scenario);
    let before = run_statics(&scenario, &rendered);
    let mutated = match mutations::mutate(mutation, &scenario, &rendered) {
        Ok(m) => m,
        Err(e) => return Some(format!("{}: cannot be applied: {e}", mutation.name)),
    };
    let after = run_statics(&scenario, &mutated);
    let newly: BTreeSet<CheckId> = failing(&after)
        .difference(&failing(&before))
        .copied()
        .collect();
    let expected: BTreeSet<CheckId> = mutation.turns_red.iter().copied().collect();
    if newly == expected {
        // A red check must say why: every newly failing outcome carries evidence.
        let bare: Vec<&str> = newly
            .iter()
            .filter(|c| after[*c].evidence.is_empty())
            .map(|c| c.as_str())
            .collect();
        return (!bare.is_empty()).then(|| {
            format!(
                "{}: failing without evidence: {}",
                mutation.name,
                bare.join(", ")
            )
        });
    }
    let summaries: Vec<String> = newly
        .symmetric_difference(&expected)
        .map(|c| {
            format!(
                "    {c}: before {} / after {}: {}",
                before[c].status, after[c].status, after[c].summary
            )
        })
        .collect();
    Some(format!(
        "{} (base {}): expected newly failing {}, got {}\n{}",
        mutation.name,
        mutation.base_scenario,
        ids(&expected),
        ids(&newly),
        summaries.join("\n")
    ))
}

#[test]
fn every_mutation_turns_exactly_its_checks_red() {
    let problems: Vec<String> = mutations::catalogue().iter().filter_map(mismatch).collect();
    assert!(
        problems.is_empty(),
        "{} mutation(s) wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_static_check_can_go_red() {
    let covered: BTreeSet<CheckId> = mutations::catalogue()
        .iter()
        .flat_map(|m| m.turns_red.iter().copied())
        .chain(DIRECT.iter().copied())
        .collect();
    let uncovered: BTreeSet<CheckId> = static_checks().filter(|c| !covered.contains(c)).collect();
    assert!(
        uncovered.is_empty(),
        "no mutation or direct test turns {} red",
        ids(&uncovered)
    );
}

#[test]
fn every_base_scenario_exists() {
    for m in mutations::catalogue() {
        assert!(
            scenario_path(m.base_scenario).is_file(),
            "{}: no scenarios/{}.yaml",
            m.name,
            m.base_scenario
        );
    }
}

/// AMBIENT-EXPLICIT: an ambient cluster without an explicit clusterID whose subject
/// installed anyway (here: the reference install rendered for explicit values, then
/// judged against values that lack the clusterID) fails, and the evidence shows the
/// fallback found in the subset.
#[test]
fn ambient_install_without_explicit_cluster_id_fails_ambient_explicit() {
    let explicit = load("multi-ambient-explicit");
    let rendered = render(&explicit);
    assert_eq!(
        checks::run_static(CheckId::AmbientExplicit, &explicit, &rendered).status,
        Status::Pass
    );

    let mut unset = explicit.clone();
    for cluster in &mut unset.clusters {
        cluster.agent.istio_cluster_id = None;
    }
    let outcome = checks::run_static(CheckId::AmbientExplicit, &unset, &rendered);
    assert_eq!(outcome.status, Status::Fail, "{outcome:?}");
    assert_eq!(
        outcome.evidence.len(),
        2,
        "one piece of evidence per cluster: {outcome:?}"
    );
    assert!(
        outcome
            .evidence
            .iter()
            .any(|e| e.cluster == "beta" && e.found.contains("topology.istio.io/cluster: beta")),
        "{outcome:?}"
    );
}

/// AMBIENT-EXPLICIT passes when the subject refuses an ambient cluster without an
/// explicit clusterID, and every other static check skips there.
#[test]
fn refusal_in_ambient_without_cluster_id_passes_ambient_explicit_only() {
    let scenario = load("multi-ambient-unset");
    let rendered = render(&scenario);
    for check in static_checks() {
        let outcome = checks::run_static(check, &scenario, &rendered);
        let expected = if check == CheckId::AmbientExplicit {
            Status::Pass
        } else {
            Status::Skip
        };
        assert_eq!(outcome.status, expected, "{check}: {outcome:?}");
    }
}
