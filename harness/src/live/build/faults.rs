//! Faults of the scenario, injected into the live clusters once the agent is up.
//!
//! - `aggregator-down`: the aggregator's workload is scaled to zero.
//! - `slow-webhook`: every packet to the webhook pod is delayed with `tc netem` on
//!   its kind node (kind only: it needs the node). The API server's TLS handshake
//!   and request take several round trips, so the call is slower than `delayMs`;
//!   what matters, a call that outlives `timeoutSeconds`, holds.
//! - `rotated-ca-bundle`, `expired-webhook-cert`: carried by the reference install's
//!   manifests (the harness plays the init-cert job), so applying them injects the
//!   fault; a chart makes its certificates in the cluster, where the harness cannot
//!   reach them, and such scenarios are refused for charts.

use std::collections::BTreeMap;

use super::super::command::Command;
use super::super::plan::{Capture, ClusterTarget, Phase, Step};
use super::super::{AgentSource, LiveOptions, ProviderKind};
use crate::error::Error;
use crate::manifests::WorkloadRef;
use crate::scenario::{Fault, Scenario};
use crate::subject::Rendered;

/// The pod selector of a Service in the rendered manifests.
fn service_selector(rendered: &Rendered, cluster: &str, service: &str) -> Option<String> {
    let installed = rendered.install(cluster)?.result.as_ref().ok()?;
    let selector: BTreeMap<String, String> = installed
        .manifests
        .service(service)?
        .spec
        .as_ref()?
        .selector
        .clone()?;
    Some(
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn aggregator_workload(rendered: &Rendered, cluster: &str) -> WorkloadRef {
    // The chart contract's name (DESIGN.md section 4) when nothing was rendered.
    let role = rendered
        .install(cluster)
        .and_then(|i| i.result.as_ref().ok())
        .and_then(|i| i.roles.aggregator.clone());
    role.and_then(|a| a.workload).unwrap_or(WorkloadRef {
        kind: "Deployment".into(),
        name: format!("{}-cz-aggregator", rendered.release),
    })
}

fn webhook_selector(rendered: &Rendered, cluster: &str) -> String {
    let service = rendered
        .install(cluster)
        .and_then(|i| i.result.as_ref().ok())
        .and_then(|i| i.roles.webhook.as_ref().map(|w| w.service.clone()))
        .unwrap_or_else(|| format!("{}-cz-webhook", rendered.release));
    service_selector(rendered, cluster, &service)
        .unwrap_or_else(|| format!("app.kubernetes.io/instance={}", rendered.release))
}

fn var_suffix(cluster: &str) -> String {
    cluster.to_ascii_uppercase().replace('-', "_")
}

pub(super) fn steps(
    scenario: &Scenario,
    rendered: &Rendered,
    targets: &[ClusterTarget],
    provider: &ProviderKind,
    options: &LiveOptions,
) -> Result<Vec<Step>, Error> {
    let mut steps = Vec::new();
    for fault in &scenario.faults {
        let Some(target) = targets.iter().find(|t| t.cluster == fault.cluster()) else {
            continue;
        };
        let ns = rendered.namespace.as_str();
        match fault {
            Fault::AggregatorDown { cluster } => {
                let workload = aggregator_workload(rendered, cluster);
                let mut step = Step::new(
                    Phase::Agent,
                    format!("Fault: take the aggregator down ({workload})"),
                )
                .cluster(cluster)
                .command(target.kubectl().args([
                    "scale",
                    "-n",
                    ns,
                    &format!("{}/{}", workload.kind.to_ascii_lowercase(), workload.name),
                    "--replicas=0",
                ]));
                // Rollout status waits until the status agrees with spec.replicas: 0.
                // (`kubectl wait --for=delete -l` fails when the pods are already gone.)
                step = step.command(target.kubectl().args([
                    "rollout",
                    "status",
                    "-n",
                    ns,
                    &format!("{}/{}", workload.kind.to_ascii_lowercase(), workload.name),
                    "--timeout=120s",
                ]));
                steps.push(step);
            }
            Fault::SlowWebhook { cluster, delay_ms } => {
                if *provider != ProviderKind::Kind {
                    return Err(Error::Provider {
                        provider: provider.name().into(),
                        message: format!(
                            "scenario {} injects slow-webhook, which needs access to the webhook pod's node (tc netem); run it with --provider kind or on the twin",
                            scenario.name
                        ),
                    });
                }
                let selector = webhook_selector(rendered, cluster);
                let suffix = var_suffix(cluster);
                // One field of the (first) webhook pod, captured into a plan variable.
                let webhook_pod_field = |jsonpath: &str| {
                    target.kubectl().args([
                        "get",
                        "pod",
                        "-n",
                        ns,
                        "-l",
                        selector.as_str(),
                        "-o",
                        jsonpath,
                    ])
                };
                let mut ip = Step::new(Phase::Agent, "Fault: find the webhook pod's IP")
                    .cluster(cluster)
                    .command(webhook_pod_field("jsonpath={.items[0].status.podIP}"));
                ip.capture = Some(Capture::Trimmed(format!("WEBHOOK_IP_{suffix}")));
                let mut node = Step::new(Phase::Agent, "Fault: find the webhook pod's node")
                    .cluster(cluster)
                    .command(webhook_pod_field("jsonpath={.items[0].spec.nodeName}"));
                node.capture = Some(Capture::Trimmed(format!("WEBHOOK_NODE_{suffix}")));
                // kind names node containers after the nodes; the pod's veth is the
                // device of its route on that node.
                let script = format!(
                    "dev=$(ip -o route get ${{WEBHOOK_IP_{suffix}}} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p') && tc qdisc replace dev \"$dev\" root netem delay {delay_ms}ms"
                );
                let delay = Step::new(
                    Phase::Agent,
                    format!("Fault: delay every packet to the webhook by {delay_ms} ms"),
                )
                .cluster(cluster)
                .command(Command::new("docker").args([
                    "exec".to_string(),
                    format!("${{WEBHOOK_NODE_{suffix}}}"),
                    "sh".into(),
                    "-c".into(),
                    script,
                ]));
                steps.extend([ip, node, delay]);
            }
            Fault::RotatedCaBundle { cluster } | Fault::ExpiredWebhookCert { cluster } => {
                if matches!(options.agent, AgentSource::Chart { .. }) {
                    return Err(Error::Provider {
                        provider: provider.name().into(),
                        message: format!(
                            "scenario {} injects a certificate fault in cluster {cluster}; live providers inject it through the reference install's manifests, and a chart makes its certificates in the cluster: run it with the reference install or on the twin",
                            scenario.name
                        ),
                    });
                }
                steps.push(
                    Step::new(Phase::Agent, "Fault: a certificate fault")
                        .cluster(cluster)
                        .note("carried by the reference install's TLS Secret and caBundle, applied with the agent"),
                );
            }
        }
    }
    Ok(steps)
}
