//! The plan: every step a live provider takes, in order, with the exact command lines
//! and the files and manifests it writes. `meshconform plan` prints it; the providers
//! execute it (see [`super::execute`]).
//!
//! Plans are deterministic: the run ID is [`super::RunId::placeholder`] unless a
//! real run asks otherwise, the work directory is the literal `${WORK}`, and values
//! only known at run time (the kind network's prefix, a node's IP) are `${NAME}`
//! variables captured by an earlier step.

use std::fmt::Write as _;
use std::time::Duration;

use super::build;
use super::command::Command;
use super::{LiveOptions, ProviderKind};
use crate::error::Error;
use crate::scenario::Scenario;
use crate::subject::Rendered;

/// The work directory placeholder in plan paths; replaced by a real temp dir at run
/// time.
pub const WORK: &str = "${WORK}";

/// When a step runs, and whether it can be shared between scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Clusters and their network (reused across scenarios of one topology).
    Clusters,
    /// Istio, trust, discovery, gateways, cert-manager (reused too).
    Mesh,
    /// The agent's namespace, policy and install (per scenario).
    Agent,
}

impl Phase {
    /// `clusters`, `mesh`, `agent`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Clusters => "clusters",
            Phase::Mesh => "mesh",
            Phase::Agent => "agent",
        }
    }
}

/// What a planned file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// Literal text, shown in the plan.
    Text(String),
    /// A part of the mesh PKI generated at run time (keys never appear in plans).
    Pki {
        /// The scenario cluster whose intermediate CA it is.
        cluster: String,
        /// Which part.
        part: PkiPart,
    },
}

/// A file of Istio's `cacerts` layout ("Plug in CA certificates").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiPart {
    /// `ca-cert.pem`: the cluster's intermediate CA certificate.
    CaCert,
    /// `ca-key.pem`: its private key.
    CaKey,
    /// `root-cert.pem`: the shared root.
    RootCert,
    /// `cert-chain.pem`: intermediate then root.
    CertChain,
}

impl PkiPart {
    /// The file name Istio expects in the `cacerts` secret.
    pub fn file_name(&self) -> &'static str {
        match self {
            PkiPart::CaCert => "ca-cert.pem",
            PkiPart::CaKey => "ca-key.pem",
            PkiPart::RootCert => "root-cert.pem",
            PkiPart::CertChain => "cert-chain.pem",
        }
    }

    /// Every part, in the order Istio's docs list them.
    pub const ALL: [PkiPart; 4] = [
        PkiPart::CaCert,
        PkiPart::CaKey,
        PkiPart::RootCert,
        PkiPart::CertChain,
    ];
}

/// A file a step writes before it runs its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Path, usually under [`WORK`].
    pub path: String,
    /// Where it comes from, in words (`kind-configs/multi-a.yaml`).
    pub origin: String,
    /// Its content.
    pub content: FileContent,
}

/// A value a step's stdout provides to later steps as `${var}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// The trimmed stdout.
    Trimmed(String),
    /// The first two octets of the first IPv4 CIDR in stdout (`172.18`).
    Ipv4Prefix16(String),
}

impl Capture {
    /// The variable's name.
    pub fn var(&self) -> &str {
        match self {
            Capture::Trimmed(v) | Capture::Ipv4Prefix16(v) => v,
        }
    }

    /// The value from a command's stdout, or `None` when it does not hold one.
    pub fn extract(&self, stdout: &str) -> Option<String> {
        match self {
            Capture::Trimmed(_) => {
                let t = stdout.trim();
                (!t.is_empty()).then(|| t.to_string())
            }
            Capture::Ipv4Prefix16(_) => stdout.split_whitespace().find_map(|word| {
                let (addr, _) = word.split_once('/')?;
                let octets: Vec<u8> = addr.split('.').map_while(|o| o.parse().ok()).collect();
                (octets.len() == 4).then(|| format!("{}.{}", octets[0], octets[1]))
            }),
        }
    }
}

/// How often a step is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Total attempts (1 = no retry).
    pub attempts: u32,
}

impl Retry {
    /// Tried once.
    pub const ONCE: Retry = Retry { attempts: 1 };
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it does, in words.
    pub title: String,
    /// The scenario cluster it concerns, if one.
    pub cluster: Option<String>,
    /// When it runs.
    pub phase: Phase,
    /// Files written first.
    pub files: Vec<PlannedFile>,
    /// The commands, in order.
    pub commands: Vec<Command>,
    /// Commands run at the same time (kind clusters are created in parallel).
    pub concurrent: bool,
    /// The step is skipped when this command succeeds (the existing provider:
    /// "already installed").
    pub skip_if: Option<Command>,
    /// The run stops when this command succeeds, with the message (the existing
    /// provider: the agent is already installed, and a run must neither overwrite
    /// nor delete what it did not install).
    pub refuse_if: Option<(Command, String)>,
    /// Commands that remove what the step created, run at cleanup by providers that
    /// must not delete what they did not create (the existing provider).
    pub undo: Vec<Command>,
    /// Commands run before each retry, to clear a half-done attempt.
    pub before_retry: Vec<Command>,
    /// How often it is tried.
    pub retry: Retry,
    /// A value its (last command's) stdout provides to later steps.
    pub capture: Option<Capture>,
    /// A note shown in the plan (why the step is there, or why nothing is done).
    pub note: Option<String>,
}

impl Step {
    /// A step with a title, in a phase, with no commands yet.
    pub fn new(phase: Phase, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            cluster: None,
            phase,
            files: Vec::new(),
            commands: Vec::new(),
            concurrent: false,
            skip_if: None,
            refuse_if: None,
            undo: Vec::new(),
            before_retry: Vec::new(),
            retry: Retry::ONCE,
            capture: None,
            note: None,
        }
    }

    /// Sets the cluster.
    pub fn cluster(mut self, cluster: &str) -> Self {
        self.cluster = Some(cluster.to_string());
        self
    }

    /// Adds a command.
    pub fn command(mut self, cmd: Command) -> Self {
        self.commands.push(cmd);
        self
    }

    /// Adds a file written before the commands run.
    pub fn file(mut self, path: String, origin: impl Into<String>, content: FileContent) -> Self {
        self.files.push(PlannedFile {
            path,
            origin: origin.into(),
            content,
        });
        self
    }

    /// Sets a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// One cluster as the plan addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// The scenario's cluster name.
    pub cluster: String,
    /// istiod's CLUSTER_ID.
    pub istio_cluster_id: String,
    /// The kubeconfig context.
    pub context: String,
    /// A kubeconfig file, when not the default one (k3s).
    pub kubeconfig: Option<String>,
    /// The kind cluster name, for the kind provider.
    pub kind_name: Option<String>,
}

impl ClusterTarget {
    fn with_config(&self, mut cmd: Command, context_flag: &str) -> Command {
        if let Some(kc) = &self.kubeconfig {
            cmd = cmd.args(["--kubeconfig", kc.as_str()]);
        }
        cmd.args([context_flag, self.context.as_str()])
    }

    /// `kubectl --context <ctx>`.
    pub fn kubectl(&self) -> Command {
        self.with_config(Command::new("kubectl"), "--context")
    }

    /// `helm --kube-context <ctx>`.
    pub fn helm(&self) -> Command {
        self.with_config(Command::new("helm"), "--kube-context")
    }

    /// `istioctl --context <ctx>`.
    pub fn istioctl(&self) -> Command {
        self.with_config(Command::new("istioctl"), "--context")
    }
}

/// The whole plan for one scenario on one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The scenario.
    pub scenario: String,
    /// `kind`, `existing`, `k3s`.
    pub provider: String,
    /// The run ID used in names.
    pub run_id: String,
    /// The topology key clusters are reused by.
    pub topology_key: String,
    /// The clusters, in scenario order.
    pub clusters: Vec<ClusterTarget>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Run between scenarios sharing clusters: removes the agent.
    pub teardown: Vec<Step>,
    /// Run at the end (kind: delete the clusters this run created).
    pub cleanup: Vec<Step>,
}

impl Plan {
    /// The plan as a person reads it: numbered steps, command lines, files and
    /// manifests (manifests as their objects; `--verbose` text adds their YAML).
    pub fn to_text(&self) -> String {
        self.render(false)
    }

    /// Like [`Plan::to_text`], with every file and manifest in full.
    pub fn to_text_verbose(&self) -> String {
        self.render(true)
    }

    fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# plan: scenario {} on provider {}",
            self.scenario, self.provider
        );
        let _ = writeln!(
            out,
            "# run id: {} (a real run uses a fresh one)",
            self.run_id
        );
        let _ = writeln!(out, "# topology key: {}", self.topology_key);
        let _ = writeln!(
            out,
            "# work dir: {WORK} (a temporary directory at run time)"
        );
        for c in &self.clusters {
            let _ = writeln!(
                out,
                "# cluster {}: context {}, istio cluster ID {}{}",
                c.cluster,
                c.context,
                c.istio_cluster_id,
                c.kind_name
                    .as_deref()
                    .map(|k| format!(", kind cluster {k}"))
                    .unwrap_or_default()
            );
        }
        let mut n = 0;
        for (section, steps) in [
            ("steps", &self.steps),
            ("teardown between scenarios", &self.teardown),
            ("cleanup", &self.cleanup),
        ] {
            if steps.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n## {section}");
            for step in steps {
                n += 1;
                render_step(&mut out, n, step, verbose);
            }
        }
        out
    }
}

fn render_step(out: &mut String, n: usize, step: &Step, verbose: bool) {
    let cluster = step
        .cluster
        .as_deref()
        .map(|c| format!(" @{c}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\n{n}. [{}]{cluster} {}",
        step.phase.as_str(),
        step.title
    );
    if let Some(note) = &step.note {
        let _ = writeln!(out, "   note: {note}");
    }
    for f in &step.files {
        match &f.content {
            FileContent::Text(text) => {
                let _ = writeln!(
                    out,
                    "   write {} (from {}, {} lines)",
                    f.path,
                    f.origin,
                    text.lines().count()
                );
                if verbose || text.lines().count() <= 80 {
                    for line in text.lines() {
                        let _ = writeln!(out, "   | {line}");
                    }
                }
            }
            FileContent::Pki { cluster, part } => {
                let _ = writeln!(
                    out,
                    "   write {} ({} of cluster {cluster}, generated at run time)",
                    f.path,
                    part.file_name()
                );
            }
        }
    }
    if let Some((refuse, why)) = &step.refuse_if {
        let _ = writeln!(out, "   refuse if: {refuse} ({why})");
    }
    if let Some(skip) = &step.skip_if {
        let _ = writeln!(out, "   skip if: {skip}");
    }
    if step.retry.attempts > 1 {
        let _ = writeln!(
            out,
            "   retry: {} attempts with backoff",
            step.retry.attempts
        );
    }
    for cmd in &step.before_retry {
        let _ = writeln!(out, "   before retry: {cmd}");
    }
    if step.concurrent && step.commands.len() > 1 {
        let _ = writeln!(out, "   in parallel:");
    }
    for cmd in &step.commands {
        let _ = writeln!(out, "   $ {cmd}");
        if let Some(super::command::Stdin::Text(text)) = &cmd.stdin {
            let objects = manifest_objects(text);
            if !objects.is_empty() {
                let _ = writeln!(
                    out,
                    "     stdin: {} object(s): {}",
                    objects.len(),
                    objects.join(", ")
                );
            }
            // Short manifests (namespaces, policies, gateways) are shown whole; the
            // agent's install is summarised unless verbose.
            if verbose || objects.is_empty() || text.lines().count() <= 40 {
                for line in text.lines() {
                    let _ = writeln!(out, "     | {line}");
                }
            }
        }
    }
    if let Some(capture) = &step.capture {
        let _ = writeln!(out, "   captures ${{{}}}", capture.var());
    }
    for cmd in &step.undo {
        let _ = writeln!(out, "   undo: {cmd}");
    }
}

/// `Kind/name` of each document in a YAML stream, for the plan's one-line summary.
pub fn manifest_objects(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    for doc in yaml.split("\n---").flat_map(|d| d.split("---\n")) {
        let mut kind = None;
        let mut name = None;
        let mut in_metadata = false;
        for line in doc.lines() {
            if let Some(k) = line.strip_prefix("kind: ") {
                kind = Some(k.trim().to_string());
            }
            if line.starts_with("metadata:") {
                in_metadata = true;
                continue;
            }
            if in_metadata {
                if !line.starts_with(' ') {
                    in_metadata = false;
                } else if let Some(n) = line.trim_start().strip_prefix("name: ")
                    && line.len() - line.trim_start().len() == 2
                {
                    name = Some(n.trim().trim_matches('"').to_string());
                }
            }
        }
        if let Some(kind) = kind {
            out.push(format!("{kind}/{}", name.unwrap_or_default()));
        }
    }
    out
}

/// Builds the plan for a scenario on a live provider, without running anything.
///
/// `rendered` is the subject rendered for the scenario (the reference install's
/// manifests are applied as they are; a chart is installed with `helm`).
pub fn render_plan(
    scenario: &Scenario,
    rendered: &Rendered,
    provider: &ProviderKind,
    options: &LiveOptions,
) -> Result<Plan, Error> {
    build::plan(scenario, rendered, provider, options)
}

/// Exponential backoff: `base`, `2*base`, `4*base`, ... capped at 5 minutes.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

impl Plan {
    /// Renames every cluster (kind name and context) in the plan: used when a
    /// scenario reuses clusters another scenario of the same topology created.
    pub fn rename_kind_clusters(&mut self, names: &std::collections::BTreeMap<String, String>) {
        let mut pairs = Vec::new();
        for target in &mut self.clusters {
            if let (Some(old), Some(new)) = (target.kind_name.clone(), names.get(&target.cluster)) {
                pairs.push((old.clone(), new.clone()));
                target.kind_name = Some(new.clone());
                target.context = format!("kind-{new}");
            }
        }
        let rename = |cmd: &mut Command| {
            for (old, new) in &pairs {
                *cmd = rename_in(cmd, old, new);
            }
        };
        for step in self
            .steps
            .iter_mut()
            .chain(self.teardown.iter_mut())
            .chain(self.cleanup.iter_mut())
        {
            for (old, new) in &pairs {
                step.title = step.title.replace(old.as_str(), new);
            }
            step.commands.iter_mut().for_each(rename);
            step.before_retry.iter_mut().for_each(rename);
            step.undo.iter_mut().for_each(rename);
            if let Some(c) = step.skip_if.as_mut() {
                rename(c);
            }
            if let Some((c, _)) = step.refuse_if.as_mut() {
                rename(c);
            }
        }
    }
}

fn rename_in(cmd: &Command, old: &str, new: &str) -> Command {
    let mut out = cmd.clone();
    out.args = cmd.args.iter().map(|a| a.replace(old, new)).collect();
    if let Some(super::command::Stdin::Pipe(p)) = &cmd.stdin {
        out.stdin = Some(super::command::Stdin::Pipe(Box::new(rename_in(
            p, old, new,
        ))));
    }
    out
}

/// What `meshconform plan` prints for one scenario: the subject rendered the way the
/// run would install it (the reference install's manifests; for a chart nothing is
/// rendered, since `helm upgrade --install` renders it in the cluster), and the plan
/// built with the run ID [`super::RunId::placeholder`], so the text is the same from
/// one call to the next.
pub fn plan_for_cli(
    scenario: &Scenario,
    subject: &crate::subject::Subject,
    provider: &ProviderKind,
    options: &LiveOptions,
) -> Result<Plan, Error> {
    let rendered = match options.agent {
        super::AgentSource::Reference => crate::subject::render(subject, scenario)?,
        super::AgentSource::Chart { .. } => Rendered {
            subject: subject.label(),
            release: subject.release().to_string(),
            namespace: subject.namespace().to_string(),
            installs: Vec::new(),
        },
    };
    let options = LiveOptions {
        run_id: super::RunId::placeholder(),
        ..options.clone()
    };
    render_plan(scenario, &rendered, provider, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_extracts_the_ipv4_prefix() {
        let c = Capture::Ipv4Prefix16("NET".into());
        assert_eq!(
            c.extract("fc00:f853::/64 172.18.0.0/16 "),
            Some("172.18".into())
        );
        assert_eq!(c.extract("fc00:f853::/64"), None);
    }

    #[test]
    fn manifest_objects_lists_kind_and_name() {
        let yaml = "---\n# Source: x\napiVersion: v1\nkind: Service\nmetadata:\n  labels:\n    name: nope\n  name: cz-agg\n---\nkind: ConfigMap\nmetadata:\n  name: c\n";
        assert_eq!(
            manifest_objects(yaml),
            vec!["Service/cz-agg", "ConfigMap/c"]
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(10);
        assert_eq!(backoff(b, 1), Duration::from_secs(10));
        assert_eq!(backoff(b, 3), Duration::from_secs(40));
        assert_eq!(backoff(b, 30), Duration::from_secs(300));
    }
}
