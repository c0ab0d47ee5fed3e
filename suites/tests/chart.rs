//! The chart subject against a real helm: the fixture chart `suites/fixtures/cz-agent`
//! rendered with `helm template` for the matrix scenarios and for edge cases, then
//! held to the static checks.
//!
//! A libtest-mimic harness (`harness = false`) so that a trial needing helm can decide
//! at run time: without helm it is IGNORED with the reason and the install command,
//! or FAILS when `MESHCONFORM_REQUIRE_HELM=1` (CI sets it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use meshconform::Error;
use meshconform::checks::{CheckId, CheckKind, Status};
use meshconform::manifests::{ManifestSet, Resource};
use meshconform::runner::{self, ScenarioResult, Scope};
use meshconform::scenario::{self, CertificateMode, Cluster, IstioMode, Scenario};
use meshconform::subject::{self, ChartSubject, Refusal, Subject, chart};
use meshconform::tools;

/// Release and namespace of every render here; not the reference install's `cz`/`cza`,
/// so that nothing can pass by knowing names.
const RELEASE: &str = "fx";
const NAMESPACE: &str = "cost";

/// Set in a child process of this test binary to run one render under a chosen
/// environment (an unsafe `set_var` in the parent would race the other trials).
const CHILD_ENV: &str = "MESHCONFORM_CHART_SUITE_CHILD";
const REQUIRE_HELM_ENV: &str = "MESHCONFORM_REQUIRE_HELM";

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child(&mode);
    }
    let args = Arguments::from_args();
    let helm = Helm::detect();
    if let Helm::Missing {
        error,
        required: false,
    } = &helm
    {
        eprintln!(
            "chart suite: trials that need helm are IGNORED: {error}\n\
             (set {REQUIRE_HELM_ENV}=1 to make them fail instead)"
        );
    }
    let helm = Arc::new(helm);
    let mut trials = Vec::new();

    let matrix = scenario::load_dir(&workspace().join("scenarios"))
        .unwrap_or_else(|e| panic!("the scenario matrix does not load:\n{e}"));
    for s in &matrix {
        let s = Arc::new(s.clone());
        trials.push(needs_helm(&helm, format!("render::{}", s.name), {
            let s = s.clone();
            move || check_every_cluster(&s)
        }));
        trials.extend(static_trials(&helm, s));
    }
    for (name, s) in inline_scenarios() {
        let s = Arc::new(s);
        trials.push(needs_helm(
            &helm,
            format!("render::inline::{name}"),
            move || check_every_cluster(&s),
        ));
    }
    trials.push(needs_helm(
        &helm,
        "refusal::fail-in-the-chart-is-a-refusal-with-helms-message",
        refusal_carries_helms_message,
    ));
    trials.push(Trial::test(
        "errors::missing-chart-path-names-the-path",
        missing_chart_path,
    ));
    trials.push(Trial::test(
        "errors::directory-without-chart-yaml-names-the-path",
        not_a_chart,
    ));
    trials.push(Trial::test(
        "errors::helm-env-pointing-nowhere",
        helm_env_pointing_nowhere,
    ));
    trials.push(Trial::test(
        "errors::helm-not-found-says-how-to-install",
        helm_not_found,
    ));

    libtest_mimic::run(&args, trials).exit();
}

// ---------------------------------------------------------------------------------
// helm availability

enum Helm {
    Found,
    /// `error` is find_tool's message, which says how to install helm.
    Missing {
        error: String,
        required: bool,
    },
}

impl Helm {
    fn detect() -> Self {
        match tools::find_tool("helm", chart::HELM_ENV) {
            Ok(_) => Helm::Found,
            Err(e) => Helm::Missing {
                error: e.to_string(),
                required: std::env::var(REQUIRE_HELM_ENV).is_ok_and(|v| v == "1"),
            },
        }
    }
}

/// A trial that runs `body` when helm is there, and is otherwise ignored with the
/// reason (or fails, when helm is required).
fn needs_helm(
    helm: &Arc<Helm>,
    name: impl Into<String>,
    body: impl FnOnce() -> Result<(), Failed> + Send + 'static,
) -> Trial {
    let helm = helm.clone();
    Trial::ignorable_test(name, move || match &*helm {
        Helm::Found => body().map(|()| Completion::Completed),
        Helm::Missing {
            error,
            required: false,
        } => Ok(Completion::ignored_with(format!("needs helm: {error}"))),
        Helm::Missing {
            error,
            required: true,
        } => Err(format!("{REQUIRE_HELM_ENV}=1 and helm is missing: {error}").into()),
    })
}

// ---------------------------------------------------------------------------------
// fixtures

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("suites/ has a parent")
        .to_path_buf()
}

fn fixture_chart() -> ChartSubject {
    ChartSubject {
        path: Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cz-agent"),
        release: RELEASE.into(),
        namespace: NAMESPACE.into(),
        values_files: Vec::new(),
        sets: Vec::new(),
    }
}

/// A one-cluster scenario from YAML snippets; every check expects `skip` (these
/// scenarios are only rendered, never checked).
fn inline_scenario(name: &str, certificates: &str, cluster: &str) -> Scenario {
    let expect: String = CheckId::ALL
        .iter()
        .map(|c| format!("  {c}: skip\n"))
        .collect();
    let text = format!(
        "name: {name}\ndescription: inline\ncertificates: {certificates}\nclusters:\n{cluster}expect:\n{expect}"
    );
    scenario::load_str(Path::new(&format!("{name}.yaml")), &text)
        .unwrap_or_else(|e| panic!("inline scenario {name}: {e}"))
}

/// Edge cases the matrix does not hold.
fn inline_scenarios() -> Vec<(&'static str, Scenario)> {
    vec![
        (
            "forced-on-without-istio-crds",
            inline_scenario(
                "forced-on",
                "init-cert",
                "  - name: alpha\n    values: {clusterName: alpha, integrations: {istio: {enabled: true}}}\n",
            ),
        ),
        (
            "cluster-id-only",
            inline_scenario(
                "cluster-id-only",
                "init-cert",
                "  - name: alpha\n    istio: {mode: sidecar}\n    values: {integrations: {istio: {clusterID: mesh-7}}}\n",
            ),
        ),
        (
            "custom-ports",
            inline_scenario(
                "custom-ports",
                "init-cert",
                "  - name: alpha\n    istio: {mode: sidecar}\n    values: {clusterName: alpha, insightsController: {server: {port: 9443}, service: {port: 8444}}}\n",
            ),
        ),
        (
            "cert-manager-without-istio",
            inline_scenario(
                "cert-manager-without-istio",
                "cert-manager",
                "  - name: alpha\n    values: {clusterName: alpha}\n",
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------------
// rendering: what the scenario says must be in the chart's output

fn render(s: &Scenario, cluster: &Cluster) -> Result<Result<ManifestSet, Refusal>, Failed> {
    chart::render(&fixture_chart(), s, cluster)
        .map_err(|e| Failed::from(format!("cluster {}: {e}", cluster.name)))
}

fn check_every_cluster(s: &Scenario) -> Result<(), Failed> {
    for cluster in &s.clusters {
        let active = subject::istio_active(cluster);
        let effective = cluster.agent.effective_cluster_id();
        match render(s, cluster)? {
            Err(refusal) if active && effective.is_none() => {
                assert_contains(&refusal.message, "execution error at (")?;
            }
            Err(refusal) => {
                return Err(format!(
                    "cluster {}: unexpected refusal: {}",
                    cluster.name, refusal.message
                )
                .into());
            }
            Ok(_) if active && effective.is_none() => {
                return Err(format!(
                    "cluster {}: Istio is on and no cluster ID is set, yet the chart rendered",
                    cluster.name
                )
                .into());
            }
            Ok(set) => check_manifests(s, cluster, &set).map_err(|e| {
                Failed::from(format!(
                    "cluster {}: {}",
                    cluster.name,
                    e.message().unwrap_or("")
                ))
            })?,
        }
    }
    Ok(())
}

fn name(component: &str) -> String {
    format!("{RELEASE}-cz-{component}")
}

fn check_manifests(s: &Scenario, cluster: &Cluster, set: &ManifestSet) -> Result<(), Failed> {
    let keys: Vec<String> = set.resources().map(Resource::key).collect();
    for wanted in [
        format!("ValidatingWebhookConfiguration/{}", name("webhook")),
        format!("Service/{}", name("webhook")),
        format!("Deployment/{}", name("webhook")),
        format!("Service/{}", name("aggregator")),
        format!("Deployment/{}", name("aggregator")),
    ] {
        if !keys.contains(&wanted) {
            return Err(format!("{wanted} is missing; rendered: {keys:?}").into());
        }
    }
    if set
        .pod_templates()
        .iter()
        .filter(|(w, _)| w.kind == "CronJob" || w.kind == "Job")
        .count()
        < 2
    {
        return Err(format!("expected the backfill CronJob and Job; rendered: {keys:?}").into());
    }

    let active = subject::istio_active(cluster);
    let istio_objects: Vec<String> = set
        .resources()
        .filter(|r| r.is_istio())
        .map(Resource::key)
        .collect();
    if active == istio_objects.is_empty() {
        return Err(format!(
            "Istio integration is {} (CRDs present: {}), but the Istio objects are {istio_objects:?}",
            if active { "on" } else { "off" },
            cluster.has_istio()
        )
        .into());
    }
    let sidecar_annotations: Vec<String> = set
        .pod_templates()
        .iter()
        .flat_map(|(w, t)| {
            t.metadata
                .iter()
                .flat_map(|m| m.annotations.iter().flatten())
                .filter(|(k, _)| k.starts_with("traffic.sidecar.istio.io/"))
                .map(move |(k, v)| format!("{w}: {k}={v}"))
        })
        .collect();
    if !active && !sidecar_annotations.is_empty() {
        return Err(format!("Istio is off, yet pods carry {sidecar_annotations:?}").into());
    }

    let cert_manager = s.certificates == CertificateMode::CertManager;
    let vwc = set
        .webhook_configurations()
        .next()
        .ok_or("no ValidatingWebhookConfiguration")?;
    let webhook = vwc
        .webhooks
        .as_ref()
        .and_then(|w| w.first())
        .ok_or("no webhook entry")?;
    let ca_bundle_len = webhook
        .client_config
        .ca_bundle
        .as_ref()
        .map_or(0, |b| b.0.len());
    if ca_bundle_len != 0 {
        return Err(format!(
            "the caBundle must be empty as rendered; it has {ca_bundle_len} bytes"
        )
        .into());
    }
    let inject = vwc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("cert-manager.io/inject-ca-from"))
        .cloned();
    let certificates = set.certificates().count();
    if cert_manager {
        let wanted = format!("{NAMESPACE}/{}-certificate", name("webhook"));
        if inject.as_deref() != Some(wanted.as_str()) || certificates != 1 {
            return Err(format!(
                "cert-manager mode: inject-ca-from {inject:?} (want {wanted}), {certificates} Certificate(s)"
            )
            .into());
        }
    } else {
        let tls = format!("{}-tls", name("webhook"));
        let secret = set
            .secret(&tls)
            .ok_or(format!("init-cert mode: no Secret {tls}"))?;
        let filled: Vec<&String> = secret
            .data
            .iter()
            .flatten()
            .filter(|(_, v)| !v.0.is_empty())
            .map(|(k, _)| k)
            .collect();
        if inject.is_some() || certificates != 0 || !filled.is_empty() {
            return Err(format!(
                "init-cert mode: inject-ca-from {inject:?}, {certificates} Certificate(s), filled keys {filled:?}"
            )
            .into());
        }
    }

    if active {
        let expected_id = cluster.agent.effective_cluster_id().unwrap_or_default();
        let dr = set
            .destination_rules()
            .next()
            .ok_or("Istio on: no DestinationRule")?;
        let subset = dr
            .spec
            .subsets
            .iter()
            .find(|s| s.name == "local-cluster")
            .ok_or("no subset local-cluster")?;
        let label = subset.labels.get("topology.istio.io/cluster");
        if label.map(String::as_str) != Some(expected_id) {
            return Err(
                format!("subset local-cluster selects {label:?}, want {expected_id:?}").into(),
            );
        }
        let server_port = cluster.agent.server_port.to_string();
        let service_port = cluster.agent.service_port.to_string();
        let inbound = annotation(set, "Deployment", &name("webhook"), "excludeInboundPorts");
        let wanted_inbound = (!cert_manager).then_some(server_port.as_str());
        if inbound.as_deref() != wanted_inbound {
            return Err(format!(
                "webhook excludeInboundPorts {inbound:?}, want {wanted_inbound:?}"
            )
            .into());
        }
        for (kind, workload) in [
            ("CronJob", name("backfill")),
            ("Job", name("backfill-once")),
        ] {
            let outbound = annotation(set, kind, &workload, "excludeOutboundPorts");
            if outbound.as_deref() != Some(service_port.as_str()) {
                return Err(format!(
                    "{kind}/{workload} excludeOutboundPorts {outbound:?}, want {service_port}"
                )
                .into());
            }
        }
    }
    Ok(())
}

fn annotation(set: &ManifestSet, kind: &str, workload: &str, key: &str) -> Option<String> {
    set.pod_templates()
        .into_iter()
        .find(|(w, _)| w.kind == kind && w.name == workload)
        .and_then(|(_, t)| {
            t.metadata
                .as_ref()?
                .annotations
                .as_ref()?
                .get(&format!("traffic.sidecar.istio.io/{key}"))
                .cloned()
        })
}

fn assert_contains(text: &str, part: &str) -> Result<(), Failed> {
    if text.contains(part) {
        Ok(())
    } else {
        Err(format!("expected {part:?} in:\n{text}").into())
    }
}

fn refusal_carries_helms_message() -> Result<(), Failed> {
    // Istio on (sidecar mode: the CRDs are there) and neither clusterName nor clusterID.
    let s = inline_scenario(
        "no-cluster-id",
        "init-cert",
        "  - name: alpha\n    istio: {mode: sidecar}\n",
    );
    match render(&s, &s.clusters[0])? {
        Ok(set) => Err(format!("rendered {} objects instead of refusing", set.items.len()).into()),
        Err(refusal) => {
            // helm's own wording, pointing at the template that called `fail`.
            assert_contains(
                &refusal.message,
                "execution error at (cz-agent/templates/validate.yaml",
            )?;
            assert_contains(
                &refusal.message,
                "neither integrations.istio.clusterID nor clusterName is set",
            )?;
            if refusal.message.starts_with("Error: ") || refusal.message.contains("--debug") {
                return Err(
                    format!("helm's decoration was not trimmed: {:?}", refusal.message).into(),
                );
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------
// errors that need no helm: they are found before helm runs

fn missing_chart_path() -> Result<(), Failed> {
    let s = inline_scenario("x", "init-cert", "  - name: alpha\n");
    let mut c = fixture_chart();
    c.path = workspace().join("target/no-such-dir/cz-agent");
    match chart::render(&c, &s, &s.clusters[0]) {
        Err(e @ Error::Input(_)) => {
            let text = e.to_string();
            assert_contains(&text, &c.path.display().to_string())?;
            assert_contains(&text, "chart not found")
        }
        other => Err(format!("expected an input error naming the path, got {other:?}").into()),
    }
}

fn not_a_chart() -> Result<(), Failed> {
    let s = inline_scenario("x", "init-cert", "  - name: alpha\n");
    let mut c = fixture_chart();
    c.path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let text = chart::render(&c, &s, &s.clusters[0])
        .err()
        .ok_or("a directory without Chart.yaml was rendered")?
        .to_string();
    assert_contains(&text, &c.path.display().to_string())?;
    assert_contains(&text, "no Chart.yaml")
}

/// Runs this binary again in child mode with `env`, and returns its stdout.
fn run_child(mode: &str, configure: impl FnOnce(&mut Command)) -> Result<String, Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_ENV, mode);
    configure(&mut cmd);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "child {mode} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(stdout)
}

fn helm_env_pointing_nowhere() -> Result<(), Failed> {
    let out = run_child("render", |c| {
        c.env("HELM", "/nonexistent/bin/helm");
    })?;
    assert_contains(&out, "helm: HELM=/nonexistent/bin/helm does not exist")?;
    assert_contains(&out, "scripts/install-helm.sh")
}

fn helm_not_found() -> Result<(), Failed> {
    let out = run_child("render", |c| {
        c.env_remove("HELM").env("PATH", "").current_dir("/");
    })?;
    assert_contains(&out, "helm not found")?;
    assert_contains(&out, "scripts/install-helm.sh")?;
    assert_contains(&out, "HELM=/path/to/helm")
}

/// Child mode: renders the fixture once and prints the error; exits 0 only when
/// rendering failed with a tool error (what the parent's trials look for).
fn child(mode: &str) -> ! {
    assert_eq!(mode, "render", "unknown child mode");
    let s = inline_scenario(
        "child",
        "init-cert",
        "  - name: alpha\n    values: {clusterName: alpha}\n",
    );
    match chart::render(&fixture_chart(), &s, &s.clusters[0]) {
        Err(e @ Error::Tool { .. }) => {
            println!("{e}");
            std::process::exit(0)
        }
        other => {
            println!("expected a tool error, got {other:?}");
            std::process::exit(1)
        }
    }
}

// ---------------------------------------------------------------------------------
// static checks on the fixture chart

/// An ambient cluster with Istio on and no explicit clusterID: the fixture chart
/// cannot see ambient mode at render time, so it falls back to clusterName instead
/// of refusing (see the chart's README). AMBIENT-EXPLICIT must catch it.
fn known_ambient_limitation(s: &Scenario) -> bool {
    s.clusters.iter().any(|c| {
        c.istio.mode == IstioMode::Ambient
            && subject::istio_active(c)
            && c.agent.istio_cluster_id.is_none()
    })
}

type Shared = Arc<OnceLock<Result<ScenarioResult, String>>>;

fn static_result(shared: &Shared, s: &Scenario) -> Result<ScenarioResult, Failed> {
    shared
        .get_or_init(|| {
            runner::run_scenario(s, &Subject::Chart(fixture_chart()), None, Scope::StaticOnly)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Failed::from)
}

fn static_trials(helm: &Arc<Helm>, s: Arc<Scenario>) -> Vec<Trial> {
    let shared: Shared = Arc::new(OnceLock::new());
    let limited = known_ambient_limitation(&s);
    CheckId::ALL
        .iter()
        .copied()
        .filter(|c| c.kind() == CheckKind::Static)
        .map(|check| {
            let (s, shared) = (s.clone(), shared.clone());
            let name = format!("static::{}::{check}", s.name);
            if limited && check != CheckId::AmbientExplicit {
                return Trial::ignorable_test(name, || {
                    Ok(Completion::ignored_with(
                        "the fixture chart cannot refuse ambient without a clusterID (its README's \
                         known limitation); this expectation assumes a refusal",
                    ))
                });
            }
            needs_helm(helm, name, move || {
                let result = static_result(&shared, &s)?;
                let found = result
                    .checks
                    .iter()
                    .find(|r| r.check == check)
                    .ok_or(format!("{check} was not run"))?;
                let wanted = if limited { Status::Fail } else { s.expect[&check] };
                if found.outcome.status == wanted {
                    return Ok(());
                }
                let evidence: BTreeMap<String, String> = found
                    .outcome
                    .evidence
                    .iter()
                    .map(|e| (format!("{} {}", e.cluster, e.subject), format!("expected {}; found {}", e.expected, e.found)))
                    .collect();
                Err(format!(
                    "{check} on the fixture chart: expected {wanted}, got {}: {}\n{evidence:#?}{}",
                    found.outcome.status,
                    found.outcome.summary,
                    if limited {
                        "\n(known limitation: the chart cannot refuse ambient without a clusterID, so the check must fail)"
                    } else {
                        ""
                    }
                )
                .into())
            })
        })
        .collect()
}
