//! `meshconform matrix --format github`: the scenarios as a GitHub Actions matrix.

use serde::Serialize;

use crate::scenario::Scenario;

#[derive(Serialize)]
struct Entry<'a> {
    scenario: &'a str,
    topology: String,
    istio: String,
    negative_control: bool,
}

#[derive(Serialize)]
struct Matrix<'a> {
    include: Vec<Entry<'a>>,
}

/// `{"include":[{"scenario":"...","topology":"...","istio":"...","negative_control":false}]}`
/// on one line, for `echo "matrix=$(...)" >> "$GITHUB_OUTPUT"` and `fromJSON`.
pub fn github(scenarios: &[Scenario]) -> String {
    let matrix = Matrix {
        include: scenarios
            .iter()
            .map(|s| Entry {
                scenario: &s.name,
                topology: s.topology(),
                istio: s.istio_modes(),
                negative_control: s.negative_control,
            })
            .collect(),
    };
    serde_json::to_string(&matrix).unwrap_or_else(|_| "{\"include\":[]}".into())
}
