//! The live providers without a cluster: plan snapshots for every scenario, the kind
//! provider's whole lifecycle against a recording command runner (create, install,
//! probe, a failing step, artifacts, cleanup, cancel), doctor on a PATH without
//! tools, and `run --provider kind` without Docker.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshconform::Error;
use meshconform::live::cancel::CancelToken;
use meshconform::live::command::{Command, CommandRunner, Output, RecordingRunner, SystemRunner};
use meshconform::live::doctor::{self, DoctorEnv};
use meshconform::live::existing::ExistingProvider;
use meshconform::live::kind::KindProvider;
use meshconform::live::plan::{ClusterTarget, Plan, plan_for_cli, render_plan};
use meshconform::live::probes::ProbeFactory;
use meshconform::live::{
    AgentSource, ContextMap, LiveOptions, ProviderKind, RunId, Versions, matrix,
};
use meshconform::provider::{
    AdmissionObservation, AttributionObservation, CallObservation, Handshake, JobObservation,
    ProbeError, Provider, RunningMesh, ValidatorObservation, ValidatorVerdict,
};
use meshconform::scenario::{self, Scenario};
use meshconform::subject::{self, ChartSubject, Rendered, Subject};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn load(name: &str) -> Scenario {
    scenario::load(&scenarios_dir().join(format!("{name}.yaml"))).unwrap()
}

fn rendered(s: &Scenario) -> Rendered {
    subject::render(&Subject::default(), s).unwrap()
}

// ---------------------------------------------------------------- plan snapshots

/// Options for plans people read: the placeholder run ID, so texts are stable.
fn plan_options() -> LiveOptions {
    LiveOptions {
        run_id: RunId::placeholder(),
        ..LiveOptions::default()
    }
}

/// The existing provider's plan for `s` with `contexts` (`cluster=context` pairs).
fn existing_plan(s: &Scenario, contexts: &[&str]) -> Result<Plan, Error> {
    let contexts = ContextMap::parse(contexts).unwrap();
    render_plan(
        s,
        &rendered(s),
        &ProviderKind::Existing(contexts),
        &plan_options(),
    )
}

#[test]
fn kind_plan_of_every_scenario_matches_its_snapshot() {
    let scenarios = scenario::load_dir(&scenarios_dir()).unwrap();
    assert!(
        scenarios.len() >= 11,
        "the matrix has {} scenarios",
        scenarios.len()
    );
    let options = plan_options();
    for s in &scenarios {
        let plan = render_plan(s, &rendered(s), &ProviderKind::Kind, &options).unwrap();
        insta::assert_snapshot!(format!("kind-{}", s.name), plan.to_text());
    }
}

#[test]
fn plans_are_deterministic() {
    let s = load("multi-ambient-explicit");
    let r = rendered(&s);
    let a = render_plan(&s, &r, &ProviderKind::Kind, &plan_options())
        .unwrap()
        .to_text();
    let b = render_plan(&s, &r, &ProviderKind::Kind, &plan_options())
        .unwrap()
        .to_text();
    assert_eq!(a, b);
    assert!(
        a.contains("runid0") && !a.contains("/tmp"),
        "no real run IDs or temp paths in plans"
    );
}

#[test]
fn published_chart_plan_matches_its_snapshot() {
    let s = load("single-sidecar-strict");
    let options = LiveOptions {
        agent: AgentSource::published(&Versions::default()),
        ..plan_options()
    };
    let plan = render_plan(&s, &rendered(&s), &ProviderKind::Kind, &options).unwrap();
    let text = plan.to_text();
    assert!(
        text.contains("--repo https://cloudzero.github.io/cloudzero-charts"),
        "{text}"
    );
    assert!(
        text.contains(&format!("--version {}", Versions::default().agent_chart)),
        "{text}"
    );
    insta::assert_snapshot!("kind-single-sidecar-strict-published-chart", text);
}

#[test]
fn plan_for_a_local_chart_installs_it_with_the_scenario_values_and_needs_no_helm() {
    let s = load("single-sidecar-strict");
    let subject = Subject::Chart(ChartSubject {
        path: "charts/agent".into(),
        release: "cz".into(),
        namespace: "cza".into(),
        values_files: vec!["extra.yaml".into()],
        sets: vec!["apiKey=x".into()],
    });
    let options = LiveOptions {
        agent: AgentSource::for_subject(&subject),
        ..plan_options()
    };
    let text = plan_for_cli(&s, &subject, &ProviderKind::Kind, &options)
        .unwrap()
        .to_text();
    assert!(
        text.contains("helm --kube-context kind-mc-single-sidecar-strict-alpha-runid0 upgrade --install cz charts/agent -n cza -f ${WORK}/values/alpha.json -f extra.yaml --set apiKey=x --wait --timeout 10m"),
        "{text}"
    );
    assert!(
        text.contains("\"clusterName\": \"alpha\""),
        "the values file holds the scenario's values: {text}"
    );
    assert!(text.contains("undo: helm --kube-context kind-mc-single-sidecar-strict-alpha-runid0 uninstall cz -n cza --wait"), "{text}");
}

#[test]
fn existing_plan_checks_before_installing_and_creates_no_clusters() {
    let s = load("multi-sidecar-name-matches");
    let plan = existing_plan(&s, &["alpha=ctx-a", "beta=ctx-b"]).unwrap();
    let text = plan.to_text();
    assert!(!text.contains("kind create"), "{text}");
    assert!(
        text.contains("skip if: kubectl --context ctx-a get deployment istiod -n istio-system"),
        "{text}"
    );
    assert!(
        text.contains("undo: istioctl --context ctx-b uninstall --purge -y"),
        "{text}"
    );
    insta::assert_snapshot!("existing-multi-sidecar-name-matches", text);
}

#[test]
fn existing_plan_names_missing_contexts() {
    let s = load("multi-sidecar-name-matches");
    let err = existing_plan(&s, &["alpha=ctx-a"]).unwrap_err();
    assert!(
        err.to_string().contains("--context beta=<kube-context>"),
        "{err}"
    );
    assert!(ContextMap::parse(&["alpha"]).is_err());
}

#[test]
fn k3s_refuses_multi_cluster_scenarios() {
    let s = load("multi-sidecar-name-matches");
    let err = render_plan(&s, &rendered(&s), &ProviderKind::K3s, &plan_options()).unwrap_err();
    assert!(
        err.to_string().contains("single-cluster scenarios only"),
        "{err}"
    );
    let single = load("single-ambient-strict");
    let plan = render_plan(
        &single,
        &rendered(&single),
        &ProviderKind::K3s,
        &plan_options(),
    )
    .unwrap();
    assert!(plan.to_text().contains("platform: k3s"));
}

#[test]
fn istio_is_configured_per_mode_cluster_id_and_network() {
    let s = load("multi-ambient-explicit");
    let text = render_plan(&s, &rendered(&s), &ProviderKind::Kind, &plan_options())
        .unwrap()
        .to_text();
    assert!(text.contains("profile: ambient"));
    assert!(text.contains("AMBIENT_ENABLE_MULTI_NETWORK"));
    assert!(text.contains("topology.istio.io/network: net-alpha"));
    assert!(text.contains("gatewayClassName: istio-east-west"));
    assert!(text.contains("istio.io/dataplane-mode: ambient"));
    assert!(text.contains("create-remote-secret --name alpha --server=https://mc-multi-ambient-explicit-alpha-runid0-control-plane:6443"), "{text}");
    let classic = load("single-sidecar-classic");
    let text = render_plan(
        &classic,
        &rendered(&classic),
        &ProviderKind::Kind,
        &plan_options(),
    )
    .unwrap()
    .to_text();
    assert!(text.contains("ENABLE_NATIVE_SIDECARS: \"false\""), "{text}");
    assert!(text.contains("istio-injection: enabled"));
    let cm = load("single-sidecar-strict-cert-manager");
    let text = render_plan(&cm, &rendered(&cm), &ProviderKind::Kind, &plan_options())
        .unwrap()
        .to_text();
    assert!(
        text.contains("cert-manager-istio-csr") && text.contains("ENABLE_CA_SERVER: \"false\""),
        "{text}"
    );
    assert!(text.contains("mode: STRICT"));
}

// ---------------------------------------------------------------- matrix

#[test]
fn github_matrix_lists_every_scenario_with_its_topology() {
    let scenarios = scenario::load_dir(&scenarios_dir()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&matrix::github(&scenarios)).unwrap();
    let include = json["include"].as_array().unwrap();
    assert_eq!(include.len(), scenarios.len());
    let multi = include
        .iter()
        .find(|e| e["scenario"] == "multi-ambient-explicit")
        .unwrap();
    assert_eq!(multi["topology"], "multi-2");
    let single = include
        .iter()
        .find(|e| e["scenario"] == "single-no-istio")
        .unwrap();
    assert_eq!(single["topology"], "single");
}

// ---------------------------------------------------------------- doctor

#[test]
fn doctor_on_an_empty_path_names_each_missing_tool() {
    let empty = tempfile::tempdir().unwrap();
    let env = DoctorEnv {
        path: Some(empty.path().as_os_str().to_owned()),
        pinned_istio: None,
        proc_root: Some(empty.path().to_path_buf()),
    };
    let report = doctor::run(Some(&ProviderKind::Kind), &SystemRunner::default(), &env);
    let text = report.to_text();
    for tool in ["docker", "kind", "kubectl", "helm", "istioctl"] {
        assert!(
            text.contains(&format!("PROBLEM {tool}: not found on PATH")),
            "{tool} missing from:\n{text}"
        );
    }
    assert_ne!(report.exit_code(), 0);
    let existing = doctor::run(
        Some(&ProviderKind::Existing(ContextMap::default())),
        &SystemRunner::default(),
        &env,
    );
    assert!(
        !existing.to_text().contains("docker"),
        "the existing provider does not need Docker"
    );
}

#[test]
fn run_with_kind_and_no_docker_fails_at_once_and_leaves_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let work_root = tempfile::tempdir().unwrap();
    let runner = Arc::new(SystemRunner {
        path: Some(empty.path().as_os_str().to_owned()),
    });
    let options = LiveOptions {
        work_root: Some(work_root.path().to_path_buf()),
        artifacts_dir: work_root.path().join("artifacts"),
        ..plan_options()
    };
    let provider = KindProvider::with_parts(runner, Arc::new(FakeProbes::default()), options)
        .with_doctor_env(DoctorEnv {
            path: Some(empty.path().as_os_str().to_owned()),
            pinned_istio: None,
            proc_root: Some(empty.path().to_path_buf()),
        });
    let all = scenario::load_dir(&scenarios_dir()).unwrap();
    let started = Instant::now();
    let err = provider.preflight_run(&all).unwrap_err().to_string();
    assert!(err.contains("docker: not found on PATH"), "{err}");
    let s = load("single-sidecar-strict");
    let err = provider
        .up(&s, &rendered(&s))
        .err()
        .expect("no docker: up must fail");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(msg.contains("docker: not found on PATH"), "{msg}");
    assert!(msg.contains("meshconform doctor"), "{msg}");
    assert_eq!(
        std::fs::read_dir(work_root.path()).unwrap().count(),
        0,
        "nothing may be left behind"
    );
}

// ---------------------------------------------------------------- kind lifecycle

/// A PATH with executables for every tool doctor looks for, and a /proc with
/// generous inotify limits.
struct FakeHost {
    dir: tempfile::TempDir,
}

impl FakeHost {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for tool in ["docker", "kind", "kubectl", "helm", "istioctl"] {
            let p = dir.path().join(tool);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let inotify = dir.path().join("sys/fs/inotify");
        std::fs::create_dir_all(&inotify).unwrap();
        std::fs::write(inotify.join("max_user_watches"), "524288\n").unwrap();
        std::fs::write(inotify.join("max_user_instances"), "512\n").unwrap();
        Self { dir }
    }

    fn env(&self) -> DoctorEnv {
        DoctorEnv {
            path: Some(self.dir.path().as_os_str().to_owned()),
            pinned_istio: None,
            proc_root: Some(self.dir.path().to_path_buf()),
        }
    }
}

fn healthy_runner() -> RecordingRunner {
    let r = RecordingRunner::new();
    r.on("docker version", Output::ok("27.5.1\n"));
    r.on("docker info", Output::ok("27.5.1\n"));
    r.on(
        "kind version",
        Output::ok("kind v0.29.0 go1.24.2 linux/amd64\n"),
    );
    r.on(
        "kubectl version --client",
        Output::ok("Client Version: v1.33.1\n"),
    );
    r.on("helm version", Output::ok("v3.17.3+ge4da497\n"));
    r.on("istioctl version", Output::ok("1.27.3\n"));
    r.on("docker inspect", Output::ok("172.18.0.3\n"));
    r.on(
        "docker network inspect",
        Output::ok("172.18.0.0/16 fc00:f853:ccd:e793::/64 \n"),
    );
    r.on(
        "create-remote-secret",
        Output::ok("apiVersion: v1\nkind: Secret\nmetadata:\n  name: istio-remote-secret-alpha\n"),
    );
    r
}

/// Probes that answer from a script, counting how often they were asked.
#[derive(Default)]
struct FakeProbes {
    connected: Mutex<Vec<Vec<String>>>,
}

impl ProbeFactory for FakeProbes {
    fn connect(
        &self,
        _scenario: &Scenario,
        _rendered: &Rendered,
        targets: &[ClusterTarget],
        _options: &LiveOptions,
    ) -> Result<Box<dyn RunningMesh>, Error> {
        self.connected
            .lock()
            .unwrap()
            .push(targets.iter().map(|t| t.context.clone()).collect());
        Ok(Box::new(FakeMesh))
    }
}

struct FakeMesh;

impl RunningMesh for FakeMesh {
    fn admit(&mut self, cluster: &str) -> Result<AdmissionObservation, ProbeError> {
        Ok(AdmissionObservation {
            object: format!("probe-{cluster}"),
            call: call(),
            failure_policy: "Ignore".into(),
            timeout_ms: 1000,
            timed_out: false,
            admitted: true,
        })
    }
    fn backfill(&mut self, _cluster: &str) -> Result<CallObservation, ProbeError> {
        Ok(call())
    }
    fn attribution(&mut self, _n: u32) -> Result<AttributionObservation, ProbeError> {
        Ok(AttributionObservation::default())
    }
    fn validator(&mut self, _cluster: &str) -> Result<ValidatorObservation, ProbeError> {
        Ok(ValidatorObservation {
            ran: true,
            verdict: ValidatorVerdict::Ok,
            log: vec![],
        })
    }
    fn job_completion(&mut self, cluster: &str) -> Result<JobObservation, ProbeError> {
        Ok(JobObservation {
            job: format!("Job/{cluster}"),
            completed: true,
            containers: vec![],
        })
    }
    fn down(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
}

fn call() -> CallObservation {
    CallObservation {
        hops: vec![],
        handshake: Handshake::NoConnection {
            error: "fake".into(),
        },
        http_status: None,
        recorded: false,
        elapsed_ms: 0,
    }
}

fn options(root: &Path) -> LiveOptions {
    LiveOptions {
        backoff: Duration::from_millis(1),
        work_root: Some(root.join("work")),
        artifacts_dir: root.join("artifacts"),
        ..plan_options()
    }
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| {
            panic!(
                "no command contains {needle:?}; commands:\n{}",
                lines.join("\n")
            )
        })
}

fn plan_lines(lines: &[String]) -> Vec<String> {
    // Drop doctor's version checks (run by absolute path from the fake PATH).
    lines
        .iter()
        .filter(|l| !l.starts_with('/'))
        .cloned()
        .collect()
}

#[test]
fn kind_lifecycle_creates_installs_probes_reuses_and_cleans_up() {
    let host = FakeHost::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("work")).unwrap();
    let runner = healthy_runner();
    let probes = Arc::new(FakeProbes::default());
    let provider = KindProvider::with_parts(
        Arc::new(runner.clone()),
        probes.clone(),
        options(root.path()),
    )
    .with_doctor_env(host.env());
    let s = load("multi-sidecar-name-matches");
    let r = rendered(&s);

    let mut mesh = provider.up(&s, &r).unwrap();
    let lines = plan_lines(&runner.lines());
    let alpha = "mc-multi-sidecar-name-matches-alpha-runid0";
    let beta = "mc-multi-sidecar-name-matches-beta-runid0";
    let create_a = position(&lines, &format!("kind create cluster --name {alpha}"));
    let create_b = position(&lines, &format!("kind create cluster --name {beta}"));
    let route = position(
        &lines,
        &format!("docker exec {alpha}-control-plane ip route replace 10.20.0.0/16 via 172.18.0.3"),
    );
    let cacerts = position(
        &lines,
        &format!("kubectl --context kind-{alpha} create secret generic cacerts -n istio-system"),
    );
    let istio_a = position(
        &lines,
        &format!("istioctl --context kind-{alpha} install -y -f"),
    );
    let istio_b = position(
        &lines,
        &format!("istioctl --context kind-{beta} install -y -f"),
    );
    let remote = position(
        &lines,
        &format!(
            "istioctl --context kind-{alpha} create-remote-secret --name alpha --server=https://{alpha}-control-plane:6443"
        ),
    );
    let agent = position(
        &lines,
        &format!("kubectl --context kind-{alpha} apply --server-side -n cza -f -"),
    );
    assert!(
        create_a.max(create_b) < route && route < cacerts && cacerts < istio_a,
        "{lines:#?}"
    );
    assert!(
        istio_a.max(istio_b) < remote && remote < agent,
        "{lines:#?}"
    );
    // The remote secret of alpha is piped into beta.
    let rec = runner.recorded();
    let piped = rec.iter().find(|c| {
        c.line
            .starts_with(&format!("kubectl --context kind-{beta} apply -f -"))
            && c.stdin
                .as_deref()
                .is_some_and(|s| s.contains("istio-remote-secret-alpha"))
    });
    assert!(
        piped.is_some(),
        "the remote secret must be applied in the other cluster"
    );
    // The cacerts files were written with the PKI, and are gone with the work dir later.
    assert_eq!(probes.connected.lock().unwrap().len(), 1);

    // Probes go to the probe backend.
    assert!(mesh.admit("alpha").unwrap().admitted);
    let before_down = runner.lines().len();
    mesh.down().unwrap();
    let down_lines = plan_lines(&runner.lines()[before_down..]);
    assert!(
        down_lines.iter().any(|l| l.contains(&format!(
            "kubectl --context kind-{alpha} delete -n cza --ignore-not-found --wait -f -"
        ))),
        "{down_lines:#?}"
    );
    assert!(
        !down_lines.iter().any(|l| l.contains("kind delete")),
        "clusters are pooled, not deleted: {down_lines:#?}"
    );
    assert_eq!(provider.pooled().len(), 1);
    assert_eq!(
        std::fs::read_dir(root.path().join("work")).unwrap().count(),
        0,
        "the work dir goes with the mesh"
    );

    // A second scenario of the same topology reuses the clusters: no create, no Istio.
    let before = runner.lines().len();
    let mesh = provider.up(&s, &r).unwrap();
    let again = plan_lines(&runner.lines()[before..]);
    assert!(
        !again
            .iter()
            .any(|l| l.contains("kind create") || l.contains("istioctl")),
        "{again:#?}"
    );
    assert!(
        again.iter().any(|l| l.contains("apply --server-side")),
        "{again:#?}"
    );
    mesh.down().unwrap();

    // The end of the run deletes what the run created, and only that. The CLI calls
    // it through the trait, as for any provider.
    let before = runner.lines().len();
    let deleted = Provider::finish(&provider).unwrap();
    assert_eq!(deleted.len(), 2);
    let end = runner.lines()[before..].to_vec();
    assert_eq!(
        end,
        vec![
            format!("kind delete cluster --name {alpha}"),
            format!("kind delete cluster --name {beta}")
        ]
    );
}

#[test]
fn kind_create_is_retried_after_deleting_the_failed_attempt() {
    let host = FakeHost::new();
    let root = tempfile::tempdir().unwrap();
    let runner = healthy_runner();
    let name = "mc-single-sidecar-strict-alpha-runid0";
    runner.once(
        &format!("kind create cluster --name {name}"),
        Output::failed(1, "ERROR: failed to create cluster: node(s) already exist"),
    );
    let provider = KindProvider::with_parts(
        Arc::new(runner.clone()),
        Arc::new(FakeProbes::default()),
        options(root.path()),
    )
    .with_doctor_env(host.env());
    let s = load("single-sidecar-strict");
    let mesh = provider.up(&s, &rendered(&s)).unwrap();
    let lines = plan_lines(&runner.lines());
    let creates: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("kind create"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(creates.len(), 2, "{lines:#?}");
    let delete = position(&lines, &format!("kind delete cluster --name {name}"));
    assert!(creates[0] < delete && delete < creates[1], "{lines:#?}");
    mesh.down().unwrap();
}

#[test]
fn a_failing_step_collects_artifacts_and_deletes_the_clusters() {
    let host = FakeHost::new();
    let root = tempfile::tempdir().unwrap();
    let runner = healthy_runner();
    runner.on(
        "install -y -f",
        Output::failed(
            1,
            "Error: failed to install manifests: context deadline exceeded",
        ),
    );
    runner.on(
        "get pods -n cza -o 'jsonpath",
        Output::ok("cz-webhook-1 server istio-proxy\n"),
    );
    let probes = Arc::new(FakeProbes::default());
    let provider = KindProvider::with_parts(
        Arc::new(runner.clone()),
        probes.clone(),
        options(root.path()),
    )
    .with_doctor_env(host.env());
    let s = load("single-sidecar-strict");
    let err = provider
        .up(&s, &rendered(&s))
        .err()
        .expect("istioctl fails");
    let msg = err.to_string();
    assert!(
        msg.contains("Install Istio") && msg.contains("context deadline exceeded"),
        "{msg}"
    );
    assert!(msg.contains("(after 2 attempts)"), "{msg}");
    let dir = root.path().join("artifacts/single-sidecar-strict");
    assert!(
        msg.contains(&format!("artifacts: {}", dir.display())),
        "{msg}"
    );
    assert!(dir.join("REASON.txt").is_file());
    assert!(dir.join("alpha/events.txt").is_file());
    assert!(
        dir.join("alpha/cza/logs/cz-webhook-1.server.previous.log")
            .is_file()
    );
    assert!(
        dir.join("alpha/cza/envoy/cz-webhook-1.config_dump.json")
            .is_file()
    );
    let lines = plan_lines(&runner.lines());
    let last = lines.last().unwrap();
    assert_eq!(
        last,
        "kind delete cluster --name mc-single-sidecar-strict-alpha-runid0"
    );
    assert!(
        !lines.iter().any(|l| l.contains("apply --server-side")),
        "no agent after a failed mesh step"
    );
    assert!(probes.connected.lock().unwrap().is_empty());
    assert!(provider.pooled().is_empty());
}

/// Cancels the token the first time it sees a command containing `trigger`.
struct CancellingRunner {
    inner: RecordingRunner,
    token: CancelToken,
    trigger: &'static str,
}

impl CommandRunner for CancellingRunner {
    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        let out = self.inner.run(cmd);
        if cmd.line().contains(self.trigger) {
            self.token.cancel();
        }
        out
    }
}

#[test]
fn cancel_stops_between_steps_and_still_cleans_up() {
    let host = FakeHost::new();
    let root = tempfile::tempdir().unwrap();
    let recording = healthy_runner();
    let token_slot: Arc<Mutex<Option<CancelToken>>> = Arc::default();
    // The provider's token is only known once it exists: build it, then wrap.
    let placeholder = CancelToken::new();
    let runner = Arc::new(CancellingRunner {
        inner: recording.clone(),
        token: placeholder.clone(),
        trigger: "kind create cluster",
    });
    let provider = KindProvider::with_parts(
        runner,
        Arc::new(FakeProbes::default()),
        options(root.path()),
    )
    .with_doctor_env(host.env())
    .with_cancel_token(placeholder.clone());
    *token_slot.lock().unwrap() = Some(provider.cancel_token());
    let s = load("single-sidecar-strict");
    let err = provider.up(&s, &rendered(&s)).err().expect("cancelled");
    assert!(err.to_string().contains("cancelled"), "{err}");
    let lines = plan_lines(&recording.lines());
    assert!(
        !lines.iter().any(|l| l.contains("istioctl")),
        "nothing after the cancel: {lines:#?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        "kind delete cluster --name mc-single-sidecar-strict-alpha-runid0"
    );
    assert!(token_slot.lock().unwrap().as_ref().unwrap().is_cancelled());
}

// ---------------------------------------------------------------- existing provider

fn existing_runner() -> RecordingRunner {
    let r = healthy_runner();
    // Istio is already there; the agent's namespaces and the agent are not.
    r.on(
        "get deployment istiod -n istio-system",
        Output::ok("deployment.apps/istiod\n"),
    );
    r.on(
        "get namespace istio-system",
        Output::ok("namespace/istio-system\n"),
    );
    r.on(
        "get namespace",
        Output::failed(1, "Error from server (NotFound): namespaces not found"),
    );
    r.on(
        "get peerauthentication",
        Output::failed(1, "Error from server (NotFound)"),
    );
    r.on(
        "get validatingwebhookconfiguration",
        Output::failed(1, "Error from server (NotFound)"),
    );
    r
}

#[test]
fn existing_installs_only_what_is_missing_and_removes_only_that() {
    let host = FakeHost::new();
    let root = tempfile::tempdir().unwrap();
    let runner = existing_runner();
    let contexts = ContextMap::parse(&["alpha=ctx-a"]).unwrap();
    let provider = ExistingProvider::with_parts(
        contexts,
        Arc::new(runner.clone()),
        Arc::new(FakeProbes::default()),
        options(root.path()),
    )
    .with_doctor_env(host.env());
    let s = load("single-sidecar-strict");
    let mesh = provider.up(&s, &rendered(&s)).unwrap();
    let lines = plan_lines(&runner.lines());
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("istioctl --context ctx-a install")),
        "istiod exists: {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("kind ")), "{lines:#?}");
    let check = position(
        &lines,
        "kubectl --context ctx-a get validatingwebhookconfiguration",
    );
    let apply = position(
        &lines,
        "kubectl --context ctx-a apply --server-side -n cza -f -",
    );
    assert!(check < apply);
    let before = runner.lines().len();
    mesh.down().unwrap();
    let undo = runner.lines()[before..].to_vec();
    assert_eq!(
        undo,
        vec![
            "kubectl --context ctx-a delete -n cza --ignore-not-found --wait -f -".to_string(),
            "kubectl --context ctx-a delete peerauthentication.security.istio.io default -n cza --ignore-not-found".to_string(),
            "kubectl --context ctx-a delete namespace meshconform-probe --ignore-not-found --wait".to_string(),
            "kubectl --context ctx-a delete namespace cza --ignore-not-found --wait".to_string(),
        ],
        "last created, first removed; nothing of Istio"
    );
}

#[test]
fn existing_refuses_to_touch_an_agent_it_did_not_install() {
    let host = FakeHost::new();
    let root = tempfile::tempdir().unwrap();
    let runner = existing_runner();
    runner.once(
        "get validatingwebhookconfiguration",
        Output::ok("validatingwebhookconfiguration/cz-cz-webhook\n"),
    );
    let contexts = ContextMap::parse(&["alpha=ctx-a"]).unwrap();
    let provider = ExistingProvider::with_parts(
        contexts,
        Arc::new(runner.clone()),
        Arc::new(FakeProbes::default()),
        options(root.path()),
    )
    .with_doctor_env(host.env());
    let s = load("single-sidecar-strict");
    let err = provider.up(&s, &rendered(&s)).err().expect("refused");
    assert!(
        err.to_string()
            .contains("already installed in context ctx-a"),
        "{err}"
    );
    let lines = plan_lines(&runner.lines());
    assert!(
        !lines.iter().any(|l| l.contains("apply --server-side")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("delete -n cza --ignore-not-found --wait -f -")),
        "the user's agent is never deleted: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("delete namespace cza --ignore-not-found --wait")),
        "what the run created goes: {lines:#?}"
    );
}

#[test]
fn faults_that_cannot_be_injected_are_refused_with_the_reason() {
    let slow = load("fault-slow-webhook");
    let err = existing_plan(&slow, &["alpha=ctx-a"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs access to the webhook pod's node"),
        "{err}"
    );
    let kind = render_plan(
        &slow,
        &rendered(&slow),
        &ProviderKind::Kind,
        &plan_options(),
    )
    .unwrap()
    .to_text();
    assert!(kind.contains("netem delay 1200ms"), "{kind}");
    let rotated = load("fault-rotated-ca-bundle");
    let chart = LiveOptions {
        agent: AgentSource::published(&Versions::default()),
        ..plan_options()
    };
    let err = render_plan(&rotated, &rendered(&rotated), &ProviderKind::Kind, &chart).unwrap_err();
    assert!(
        err.to_string()
            .contains("run it with the reference install"),
        "{err}"
    );
}

#[test]
fn dropping_the_provider_deletes_pooled_clusters_unless_kept() {
    for keep in [false, true] {
        let host = FakeHost::new();
        let root = tempfile::tempdir().unwrap();
        let runner = healthy_runner();
        let provider = KindProvider::with_parts(
            Arc::new(runner.clone()),
            Arc::new(FakeProbes::default()),
            LiveOptions {
                keep,
                ..options(root.path())
            },
        )
        .with_doctor_env(host.env());
        let s = load("single-no-istio");
        provider.up(&s, &rendered(&s)).unwrap().down().unwrap();
        drop(provider);
        let deleted = runner
            .lines()
            .iter()
            .any(|l| l == "kind delete cluster --name mc-single-no-istio-alpha-runid0");
        assert_eq!(deleted, !keep, "keep={keep}: {:#?}", runner.lines());
    }
}

#[test]
fn real_runs_get_fresh_run_ids_and_plans_the_placeholder() {
    let a = LiveOptions::default().run_id;
    let b = LiveOptions::default().run_id;
    assert_ne!(a, b, "two runs must not share cluster names");
    assert_ne!(a, RunId::placeholder());
    let s = load("single-no-istio");
    let plan = plan_for_cli(
        &s,
        &Subject::default(),
        &ProviderKind::Kind,
        &LiveOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.run_id, "runid0");
}

#[test]
fn kind_refuses_a_third_cluster_instead_of_overlapping_subnets() {
    let body = "description: three clusters\ncertificates: init-cert\nclusters:\n  - name: a\n    istio: {mode: sidecar}\n    values: {clusterName: a}\n  - name: b\n    istio: {mode: sidecar}\n    values: {clusterName: b}\n  - name: c\n    istio: {mode: sidecar}\n    values: {clusterName: c}\nexpect:\n";
    let mut yaml = format!("name: three\n{body}");
    for id in meshconform::checks::CheckId::ALL {
        yaml.push_str(&format!("  {id}: pass\n"));
    }
    let s = scenario::load_str(Path::new("three.yaml"), &yaml).unwrap();
    let err = render_plan(&s, &rendered(&s), &ProviderKind::Kind, &plan_options()).unwrap_err();
    assert!(err.to_string().contains("supports one or two"), "{err}");
    // Existing clusters have no such limit.
    assert!(existing_plan(&s, &["a=ctx-a", "b=ctx-b", "c=ctx-c"]).is_ok());
}
