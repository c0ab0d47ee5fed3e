//! The chart subject: `helm template` per cluster.

use super::{ChartSubject, Refusal};
use crate::error::Error;
use crate::manifests::ManifestSet;
use crate::scenario::{Cluster, Scenario};

/// Renders the chart for one cluster. `Ok(Err(refusal))` when the chart itself
/// declined (a `fail` or `required` in its templates).
pub fn render(
    chart: &ChartSubject,
    scenario: &Scenario,
    cluster: &Cluster,
) -> Result<Result<ManifestSet, Refusal>, Error> {
    let _ = (chart, scenario, cluster);
    Err(Error::Tool {
        tool: "helm".into(),
        message: "chart rendering is not implemented yet".into(),
    })
}
