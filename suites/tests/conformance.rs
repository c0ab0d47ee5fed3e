//! The conformance matrix under `cargo test`: one trial per scenario x check, named
//! `scenario::CHECK-ID`, static checks on the reference install and runtime checks on
//! the twin. A trial fails when its outcome does not match the scenario's expectation.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};
use meshconform::checks::CheckId;
use meshconform::report;
use meshconform::runner::{self, ScenarioResult, Scope, Verdict};
use meshconform::scenario::{self, Scenario};
use meshconform::subject::Subject;
use meshconform::twin::Twin;

type Cached = Arc<OnceLock<Result<ScenarioResult, String>>>;

fn main() {
    let args = Arguments::from_args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let scenarios = match scenario::load_dir(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot load the scenario matrix:\n{e}");
            std::process::exit(101);
        }
    };
    let provider = Arc::new(Twin::new());
    let mut trials = Vec::new();
    for s in scenarios {
        let s = Arc::new(s);
        let cache: Cached = Arc::new(OnceLock::new());
        for check in CheckId::ALL {
            let (s, cache, provider, check) = (s.clone(), cache.clone(), provider.clone(), *check);
            trials.push(Trial::test(format!("{}::{}", s.name, check), move || {
                judge(&s, &cache, &provider, check)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Runs the scenario once (the first of its trials to get here), then judges one check.
fn judge(s: &Scenario, cache: &Cached, provider: &Twin, check: CheckId) -> Result<(), Failed> {
    let result = cache.get_or_init(|| {
        runner::run_scenario(s, &Subject::default(), Some(provider), Scope::All)
            .map_err(|e| e.to_string())
    });
    let result = result
        .as_ref()
        .map_err(|e| Failed::from(format!("scenario did not run: {e}")))?;
    let r = result
        .checks
        .iter()
        .find(|c| c.check == check)
        .ok_or_else(|| Failed::from(format!("{check} was not run")))?;
    match r.verdict {
        Verdict::Matched => Ok(()),
        Verdict::Warned => {
            eprintln!(
                "WARNING {}::{check}: {}",
                s.name,
                report::expected_vs_got(r)
            );
            Ok(())
        }
        Verdict::Mismatched => Err(Failed::from(format!(
            "{}\n{}",
            report::expected_vs_got(r),
            report::evidence_block(&r.outcome.evidence)
        ))),
    }
}
