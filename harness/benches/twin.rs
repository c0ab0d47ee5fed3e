//! Wall time of the twin: the full scenario matrix, and an ATTRIBUTION run on
//! generated sidecar meshes of 2, 4, 8 and 16 clusters (growth should be linear).
//!
//! `cargo bench -p meshconform --bench twin`. A plain main timed with `Instant`: the
//! figures are for people, no assertion is made on them.

use std::path::Path;
use std::time::{Duration, Instant};

use meshconform::checks::{self, CheckId};
use meshconform::provider::Provider;
use meshconform::runner::{self, Scope};
use meshconform::scenario::{self, Scenario};
use meshconform::subject::{self, Subject};
use meshconform::twin::Twin;

/// A STRICT sidecar mesh of `n` clusters, each with the reference install.
fn generated(n: usize) -> Scenario {
    let mut yaml =
        format!("name: bench-{n}\ndescription: generated\ncertificates: init-cert\nclusters:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: c{i}\n    istio:\n      mode: sidecar\n      mtls: strict\n    values:\n      clusterName: c{i}\n"
        ));
    }
    yaml.push_str("expect:\n");
    for id in CheckId::ALL {
        yaml.push_str(&format!("  {id}: pass\n"));
    }
    scenario::load_str(Path::new(&format!("bench-{n}.yaml")), &yaml)
        .expect("generated scenario is valid")
}

fn best_of<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let scenarios = scenario::load_dir(&dir).expect("the scenario matrix loads");
    let twin = Twin::new();
    let matrix = best_of(3, || {
        for s in &scenarios {
            runner::run_scenario(s, &Subject::default(), Some(&twin), Scope::All)
                .expect("scenario runs");
        }
    });
    println!(
        "full matrix ({} scenarios, static + runtime checks, twin): {:.0} ms",
        scenarios.len(),
        matrix.as_secs_f64() * 1000.0
    );
    for n in [2, 4, 8, 16] {
        let s = generated(n);
        let rendered = subject::render(&Subject::default(), &s).expect("reference install renders");
        let mut up_ms = 0.0;
        let total = best_of(3, || {
            let t = Instant::now();
            let mut mesh = twin.up(&s, &rendered).expect("twin up");
            up_ms = t.elapsed().as_secs_f64() * 1000.0;
            let outcome = checks::run_runtime(CheckId::Attribution, &s, &rendered, mesh.as_mut());
            assert_eq!(outcome.status, checks::Status::Pass, "{}", outcome.summary);
            mesh.down().expect("twin down");
        });
        println!(
            "{n:>2}-cluster sidecar mesh, ATTRIBUTION (20 samples x {} senders): {:.0} ms (render excluded; up {:.0} ms in the last run)",
            2 * n,
            total.as_secs_f64() * 1000.0,
            up_ms
        );
    }
}
