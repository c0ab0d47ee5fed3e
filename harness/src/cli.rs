//! The `meshconform` command line: argument parsing and the subcommands.
//!
//! Exit codes: 0 when every outcome matches its expectation, 1 when any required
//! check does not, 2 on bad input or a missing tool, 130 when interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use crate::checks::{CheckId, Status};
use crate::error::Error;
use crate::live::{AgentSource, LiveOptions};
use crate::provider::Provider;
use crate::report::{self, RunMeta};
use crate::runner::{self, RunResult, Scope};
use crate::scenario::{self, Scenario};
use crate::subject::{ChartSubject, DEFAULT_NAMESPACE, DEFAULT_RELEASE, Subject};

/// Exit code: every outcome matched.
pub const EXIT_OK: i32 = 0;
/// Exit code: a required check's outcome did not match its expectation.
pub const EXIT_MISMATCH: i32 = 1;
/// Exit code: bad input or a missing tool.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Holds a Kubernetes cost agent to the behaviour it must have inside an Istio mesh.
#[derive(Debug, Parser)]
#[command(name = "meshconform", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios (static and runtime checks) and write reports.
    Run(RunArgs),
    /// List the scenarios and the checks.
    List(ScenarioDir),
    /// Explain one check: its claim, source, and what each scenario expects of it.
    Explain {
        /// The check ID, e.g. MTLS-INBOUND.
        check: String,
        /// Where the scenarios are.
        #[command(flatten)]
        dir: ScenarioDir,
    },
    /// Print the exact steps a live provider would run for a scenario, without running them.
    Plan(PlanArgs),
    /// Check the tools and host limits the live providers need.
    Doctor {
        /// The live provider to check for.
        #[arg(long, value_enum, default_value_t = ProviderKind::Kind)]
        provider: ProviderKind,
    },
    /// Print the scenarios as a CI matrix.
    Matrix {
        /// Output format.
        #[arg(long, value_enum, default_value_t = MatrixFormat::Github)]
        format: MatrixFormat,
        /// Where the scenarios are.
        #[command(flatten)]
        dir: ScenarioDir,
    },
}

/// `--scenarios DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScenarioDir {
    /// Directory of scenario YAML files.
    #[arg(long = "scenarios", default_value = "scenarios")]
    pub scenarios: PathBuf,
}

/// Where runtime checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// The embedded mesh on loopback (default; no cluster needed).
    Twin,
    /// Real kind clusters with real Istio (needs Docker).
    Kind,
    /// Clusters you already have (`--context cluster=kubecontext`).
    Existing,
    /// One k3s container through testcontainers (single-cluster scenarios; needs
    /// Docker; built with `--features k3s`).
    #[cfg(feature = "k3s")]
    K3s,
    /// Static checks only.
    None,
}

/// Matrix output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    /// `{"include": [...]}` for a GitHub Actions matrix.
    Github,
}

/// Arguments of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Only scenarios whose name matches this glob (repeatable).
    #[arg(long = "scenario", value_name = "GLOB")]
    pub scenario: Vec<String>,
    /// Where the scenarios are.
    #[command(flatten)]
    pub dir: ScenarioDir,
    /// Check this Helm chart instead of the reference install.
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,
    /// Helm release name.
    #[arg(long, default_value = DEFAULT_RELEASE)]
    pub release: String,
    /// Namespace the agent is installed in.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Extra values file for the chart (repeatable), applied after the scenario's values.
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Extra `--set` for the chart (repeatable), applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where runtime checks run.
    #[arg(long, value_enum, default_value_t = ProviderKind::Twin)]
    pub provider: ProviderKind,
    /// Kube context per cluster for `--provider existing` (`alpha=kind-alpha`).
    #[arg(long = "context", value_name = "CLUSTER=CONTEXT")]
    pub context: Vec<String>,
    /// Keep clusters after the run (kind).
    #[arg(long)]
    pub keep: bool,
    /// Where reports are written.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
}

/// Arguments of `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The live provider to plan for.
    #[arg(long, value_enum, default_value_t = ProviderKind::Kind)]
    pub provider: ProviderKind,
    /// The scenario to plan.
    #[arg(long)]
    pub scenario: String,
    /// Where the scenarios are.
    #[command(flatten)]
    pub dir: ScenarioDir,
    /// Plan with this chart instead of the reference install.
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,
    /// Print every file and manifest in full.
    #[arg(long)]
    pub verbose: bool,
}

/// Parses the process arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_bad_input() {
                EXIT_BAD_INPUT
            } else {
                EXIT_MISMATCH
            }
        }
    }
}

/// Runs a parsed command line; returns the exit code.
pub fn execute(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Run(args) => run(&args),
        Command::List(dir) => {
            let scenarios = scenario::load_dir(&dir.scenarios)?;
            print!("{}", list_text(&scenarios));
            Ok(EXIT_OK)
        }
        Command::Explain { check, dir } => {
            let check: CheckId = check
                .parse()
                .map_err(|e: crate::checks::UnknownCheck| Error::Usage(e.to_string()))?;
            let scenarios = scenario::load_dir(&dir.scenarios)?;
            print!("{}", explain_text(check, &scenarios));
            Ok(EXIT_OK)
        }
        Command::Plan(args) => plan(&args),
        Command::Doctor { provider } => {
            let live = match provider {
                ProviderKind::Kind => Some(crate::live::ProviderKind::Kind),
                ProviderKind::Existing => Some(crate::live::ProviderKind::Existing(
                    crate::live::ContextMap::default(),
                )),
                #[cfg(feature = "k3s")]
                ProviderKind::K3s => Some(crate::live::ProviderKind::K3s),
                ProviderKind::Twin | ProviderKind::None => None,
            };
            let report = crate::live::doctor::check_this_host(live.as_ref());
            print!("{}", report.to_text());
            Ok(report.exit_code())
        }
        Command::Matrix { format, dir } => {
            let scenarios = scenario::load_dir(&dir.scenarios)?;
            match format {
                MatrixFormat::Github => println!("{}", crate::live::matrix::github(&scenarios)),
            }
            Ok(EXIT_OK)
        }
    }
}

/// Loads the scenarios and keeps those matching any of the globs (all when none).
///
/// A glob that matches nothing is an error: a typo must not silently run nothing.
pub fn select(dir: &Path, globs: &[String]) -> Result<Vec<Scenario>, Error> {
    let scenarios = scenario::load_dir(dir)?;
    if globs.is_empty() {
        return Ok(scenarios);
    }
    let mut matchers = Vec::new();
    for g in globs {
        let glob = globset::Glob::new(g)
            .map_err(|e| Error::Usage(format!("--scenario {g:?} is not a valid glob: {e}")))?;
        matchers.push((g, glob.compile_matcher()));
    }
    for (g, m) in &matchers {
        if !scenarios.iter().any(|s| m.is_match(&s.name)) {
            return Err(Error::Usage(format!(
                "--scenario {g:?} matches no scenario in {}; `meshconform list` shows them",
                dir.display()
            )));
        }
    }
    Ok(scenarios
        .into_iter()
        .filter(|s| matchers.iter().any(|(_, m)| m.is_match(&s.name)))
        .collect())
}

fn subject_of(args: &RunArgs) -> Result<Subject, Error> {
    Ok(match &args.chart {
        None => {
            if !args.values.is_empty() || !args.set.is_empty() {
                return Err(Error::Usage(
                    "--values and --set apply to a chart; add --chart PATH".into(),
                ));
            }
            Subject::Reference {
                release: args.release.clone(),
                namespace: args.namespace.clone(),
            }
        }
        Some(path) => Subject::Chart(ChartSubject {
            path: path.clone(),
            release: args.release.clone(),
            namespace: args.namespace.clone(),
            values_files: args.values.clone(),
            sets: args.set.clone(),
        }),
    })
}

/// The provider a run uses, and the switch that cancels it on Ctrl-C.
struct ChosenProvider {
    provider: Option<Box<dyn Provider>>,
    cancel: Box<dyn Fn() + Send + Sync>,
}

impl ChosenProvider {
    /// A live provider, cancelled through its token.
    fn live(provider: impl Provider + 'static, token: crate::live::cancel::CancelToken) -> Self {
        Self {
            provider: Some(Box::new(provider)),
            cancel: Box::new(move || token.cancel()),
        }
    }
}

fn live_options(args: &RunArgs, subject: &Subject) -> LiveOptions {
    LiveOptions {
        // The live providers install exactly the subject the static checks judged.
        agent: AgentSource::for_subject(subject),
        keep: args.keep,
        artifacts_dir: args.reports.join("artifacts"),
        ..LiveOptions::default()
    }
}

fn provider_of(
    args: &RunArgs,
    subject: &Subject,
    scenarios: &[Scenario],
) -> Result<ChosenProvider, Error> {
    Ok(match args.provider {
        ProviderKind::Twin => {
            let cancel = crate::twin::Cancel::new();
            let twin = crate::twin::Twin::with_cancel(cancel.clone());
            ChosenProvider {
                provider: Some(Box::new(twin)),
                cancel: Box::new(move || cancel.cancel()),
            }
        }
        ProviderKind::Kind => {
            let kind = crate::live::kind::KindProvider::new(live_options(args, subject));
            // Without Docker (or kind, kubectl, helm, istioctl) stop before anything
            // is created, with doctor's message.
            kind.preflight_run(scenarios)?;
            let token = kind.cancel_token();
            ChosenProvider::live(kind, token)
        }
        ProviderKind::Existing => {
            let contexts = crate::live::ContextMap::parse(&args.context)?;
            let existing =
                crate::live::existing::ExistingProvider::new(contexts, live_options(args, subject));
            let token = existing.cancel_token();
            ChosenProvider::live(existing, token)
        }
        #[cfg(feature = "k3s")]
        ProviderKind::K3s => {
            let k3s = crate::live::k3s::K3sProvider::new(live_options(args, subject));
            let token = k3s.cancel_token();
            ChosenProvider::live(k3s, token)
        }
        ProviderKind::None => ChosenProvider {
            provider: None,
            cancel: Box::new(|| {}),
        },
    })
}

fn run(args: &RunArgs) -> Result<i32, Error> {
    let scenarios = select(&args.dir.scenarios, &args.scenario)?;
    let subject = subject_of(args)?;
    let ChosenProvider { provider, cancel } = provider_of(args, &subject, &scenarios)?;
    let scope = if provider.is_some() {
        Scope::All
    } else {
        Scope::StaticOnly
    };
    let interrupted = interrupt_flag(cancel);
    let color = report::terminal::stdout_wants_color();
    let mut meta = RunMeta::new(
        provider.as_ref().map_or("none", |p| p.name()),
        subject.label(),
    );
    if let Subject::Chart(_) = subject
        && let Ok(helm) = crate::tools::find_tool("helm", "HELM")
        && let Ok(version) = crate::tools::tool_version(&helm, &["version", "--short"])
    {
        meta = meta.with_helm_version(version);
    }
    let progress = report::terminal::Progress::new(scenarios.len());
    let mut results = Vec::new();
    for s in &scenarios {
        if interrupted.load(Ordering::SeqCst) {
            // Report what ran; the scenarios not run are named, not silently dropped.
            eprintln!("interrupted: not run from scenario {} on", s.name);
            break;
        }
        meta = meta.with_scenario_file(s.name.clone(), s.file.clone());
        progress.scenario_started(&s.name);
        let result = runner::run_scenario(s, &subject, provider.as_deref(), scope)?;
        progress.scenario_finished(&result);
        results.push(result);
    }
    // Clusters kept for reuse between scenarios go now; a failure here means something
    // may be left behind, which people must see.
    let finished = provider.as_deref().map(|p| p.finish()).transpose();
    let run = RunResult {
        version: env!("CARGO_PKG_VERSION").to_string(),
        scenarios: results,
    };
    // The summary first: it must reach the person even if writing a report fails.
    print!("{}", report::terminal::render(&run, color));
    for path in report::write_all(&run, &args.reports, &meta)? {
        println!("wrote {}", path.display());
    }
    match finished {
        Ok(lines) => lines.into_iter().flatten().for_each(|l| println!("{l}")),
        Err(e) => {
            eprintln!("error: cleaning up after the run failed: {e}");
            return Ok(EXIT_MISMATCH);
        }
    }
    if interrupted.load(Ordering::SeqCst) {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if run.ok() { EXIT_OK } else { EXIT_MISMATCH })
}

fn plan(args: &PlanArgs) -> Result<i32, Error> {
    if args.provider != ProviderKind::Kind {
        return Err(Error::Usage("plan supports --provider kind".into()));
    }
    let scenarios = select(&args.dir.scenarios, std::slice::from_ref(&args.scenario))?;
    let mut options = LiveOptions {
        run_id: crate::live::RunId::placeholder(),
        ..LiveOptions::default()
    };
    let subject = match &args.chart {
        Some(path) => Subject::Chart(ChartSubject {
            path: path.clone(),
            release: DEFAULT_RELEASE.into(),
            namespace: DEFAULT_NAMESPACE.into(),
            values_files: Vec::new(),
            sets: Vec::new(),
        }),
        None => Subject::default(),
    };
    options.agent = AgentSource::for_subject(&subject);
    for s in &scenarios {
        let plan = crate::live::plan::plan_for_cli(
            s,
            &subject,
            &crate::live::ProviderKind::Kind,
            &options,
        )?;
        let text = if args.verbose {
            plan.to_text_verbose()
        } else {
            plan.to_text()
        };
        print!("{text}");
    }
    Ok(EXIT_OK)
}

/// A flag set by Ctrl-C. The first Ctrl-C lets the current scenario finish and clean
/// up; a second one exits at once.
fn interrupt_flag(cancel: Box<dyn Fn() + Send + Sync>) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    // Installing twice (tests calling `run` twice) fails; the first handler stays.
    let _ = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED);
        }
        // Probes in flight return "cancelled"; the provider then tears down as usual.
        cancel();
        eprintln!("interrupted: cleaning up (Ctrl-C again to exit now)");
    });
    flag
}

/// The text of `meshconform list`.
pub fn list_text(scenarios: &[Scenario]) -> String {
    let mut out = String::from("SCENARIOS\n");
    for s in scenarios {
        out.push_str(&format!(
            "  {:<38} {:<8} {:<16} {}{}\n",
            s.name,
            s.topology(),
            s.istio_modes(),
            if s.negative_control {
                "[negative] "
            } else {
                ""
            },
            s.description.split(". ").next().unwrap_or("").trim(),
        ));
    }
    out.push_str("\nCHECKS\n");
    for c in CheckId::ALL {
        out.push_str(&format!(
            "  {:<26} {:<8} {}\n",
            c.as_str(),
            format!("{:?}", c.kind()).to_lowercase(),
            c.claim()
        ));
    }
    out
}

/// The text of `meshconform explain CHECK`.
pub fn explain_text(check: CheckId, scenarios: &[Scenario]) -> String {
    let mut out = format!(
        "{}\n  claim:    {}\n  source:   {}\n  kind:     {}\n  severity: {} (default)\n\nEXPECTED PER SCENARIO\n",
        check.as_str(),
        check.claim(),
        check.source(),
        format!("{:?}", check.kind()).to_lowercase(),
        format!("{:?}", check.default_severity()).to_lowercase(),
    );
    for s in scenarios {
        let expected = s.expect.get(&check).copied().unwrap_or(Status::Pass);
        out.push_str(&format!("  {:<38} {expected}\n", s.name));
    }
    out
}
