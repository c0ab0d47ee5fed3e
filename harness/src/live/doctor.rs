//! `meshconform doctor`: are the tools a live provider needs here, in supported
//! versions, and is the host ready for several kind clusters? One line per problem,
//! with how to fix it. `run --provider kind` runs the same checks first and stops at
//! once, with the same lines, when something required is missing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::ProviderKind;
use super::command::{Command, CommandRunner, last_lines, tool_env_var};
use super::versions::{SUPPORTED, parse_version};
use crate::error::Error;

/// fs.inotify.max_user_watches kind's docs ask for with several clusters.
pub const MIN_INOTIFY_WATCHES: u64 = 524_288;
/// fs.inotify.max_user_instances kind's docs ask for with several clusters.
pub const MIN_INOTIFY_INSTANCES: u64 = 512;

/// Where doctor looks: PATH and the /proc it reads limits from (tests fake both).
#[derive(Debug, Clone, Default)]
pub struct DoctorEnv {
    /// PATH to search; `None` for the process's PATH, env vars and `.tools/bin`.
    pub path: Option<OsString>,
    /// The directory holding `sys/fs/inotify`; `None` for `/proc`.
    pub proc_root: Option<PathBuf>,
    /// The Istio version the run installs: istioctl installs its own version, so it
    /// must be exactly this one. `None` accepts any supported istioctl.
    pub pinned_istio: Option<String>,
}

impl DoctorEnv {
    /// `self`, keeping `current`'s pinned Istio version when `self` pins none (a
    /// provider's pin must survive a test swapping PATH or /proc).
    pub fn keeping_pin_of(self, current: &DoctorEnv) -> DoctorEnv {
        DoctorEnv {
            pinned_istio: self.pinned_istio.or_else(|| current.pinned_istio.clone()),
            ..self
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked (`docker`, `kind`, `fs.inotify.max_user_watches`).
    pub subject: String,
    /// Whether a live run cannot work without it.
    pub required: bool,
    /// True when all is well.
    pub ok: bool,
    /// What was found (a version, a value), or what is wrong and how to fix it.
    pub message: String,
}

/// Everything doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DoctorReport {
    /// Findings, in check order.
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    /// Required findings that are not ok.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.required && !f.ok)
    }

    /// 0 when nothing required is missing, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.blocking().next().is_some() {
            1
        } else {
            0
        }
    }

    /// One line per finding: `ok`, `PROBLEM` (required) or `warning`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let tag = match (f.ok, f.required) {
                (true, _) => "ok     ",
                (false, true) => "PROBLEM",
                (false, false) => "warning",
            };
            out.push_str(&format!("{tag} {}: {}\n", f.subject, f.message));
        }
        if self.exit_code() == 0 {
            out.push_str("ready for live runs\n");
        } else {
            out.push_str("not ready: fix the PROBLEM lines above\n");
        }
        out
    }

    /// The blocking problems as one error (what `run --provider kind` stops with).
    pub fn into_error(self, provider: &str) -> Option<Error> {
        let lines: Vec<String> = self
            .blocking()
            .map(|f| format!("{}: {}", f.subject, f.message))
            .collect();
        (!lines.is_empty()).then(|| Error::Tool {
            tool: provider.to_string(),
            message: format!(
                "this machine cannot run the {provider} provider:\n{}\n(`meshconform doctor --provider {provider}` checks again)",
                lines.join("\n")
            ),
        })
    }
}

/// A tool doctor checks: how to ask its version, how to install it.
struct ToolSpec {
    name: &'static str,
    version_args: &'static [&'static str],
    install: &'static str,
}

const DOCKER: ToolSpec = ToolSpec {
    name: "docker",
    version_args: &["version", "--format", "{{.Client.Version}}"],
    install: "install Docker Engine (https://docs.docker.com/engine/install/) and start it",
};
const KIND: ToolSpec = ToolSpec {
    name: "kind",
    version_args: &["version"],
    install: "install kind v0.29.0: `go install sigs.k8s.io/kind@v0.29.0`, or download it from https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
};
const KUBECTL: ToolSpec = ToolSpec {
    name: "kubectl",
    version_args: &["version", "--client"],
    install: "run `scripts/install-helm.sh` (installs kubectl and helm into .tools/bin), or see https://kubernetes.io/docs/tasks/tools/",
};
const HELM: ToolSpec = ToolSpec {
    name: "helm",
    version_args: &["version", "--short"],
    install: "run `scripts/install-helm.sh` (installs helm into .tools/bin), or see https://helm.sh/docs/intro/install/",
};
const ISTIOCTL: ToolSpec = ToolSpec {
    name: "istioctl",
    version_args: &["version", "--remote=false"],
    install: "`curl -L https://istio.io/downloadIstio | ISTIO_VERSION=1.27.3 sh -` and put istio-1.27.3/bin on PATH",
};

/// Runs every check for `provider` (`None`: every tool any provider uses).
pub fn run(
    provider: Option<&ProviderKind>,
    runner: &dyn CommandRunner,
    env: &DoctorEnv,
) -> DoctorReport {
    let (tools, need_docker_daemon, several_clusters): (Vec<&ToolSpec>, bool, bool) = match provider
    {
        Some(ProviderKind::Kind) | None => {
            (vec![&DOCKER, &KIND, &KUBECTL, &HELM, &ISTIOCTL], true, true)
        }
        Some(ProviderKind::Existing(_)) => (vec![&KUBECTL, &HELM, &ISTIOCTL], false, false),
        Some(ProviderKind::K3s) => (vec![&DOCKER, &KUBECTL, &HELM, &ISTIOCTL], true, false),
    };
    let mut report = DoctorReport::default();
    for tool in tools {
        let found = locate(tool.name, env);
        let Some(program) = found else {
            report.findings.push(Finding {
                subject: tool.name.into(),
                required: true,
                ok: false,
                message: format!(
                    "not found on PATH (nor ${}); {}",
                    tool_env_var(tool.name),
                    tool.install
                ),
            });
            continue;
        };
        let mut finding = version_finding(tool, &program, runner);
        if tool.name == "istioctl"
            && finding.ok
            && let Some(pinned) = &env.pinned_istio
        {
            let found = finding
                .message
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            if parse_version(&found) != parse_version(pinned) {
                finding.ok = false;
                finding.message = format!(
                    "istioctl {found} installs Istio {found}, but this run pins Istio {pinned}; put istioctl {pinned} first on PATH (`curl -L https://istio.io/downloadIstio | ISTIO_VERSION={pinned} sh -`) or set ISTIOCTL=/path/to/istioctl"
                );
            }
        }
        report.findings.push(finding);
        if tool.name == "docker" && need_docker_daemon {
            report.findings.push(docker_daemon(&program, runner));
        }
    }
    if several_clusters {
        report.findings.extend(inotify(env));
    }
    report
}

/// `meshconform doctor` on this machine: real tools, the real /proc.
pub fn check_this_host(provider: Option<&ProviderKind>) -> DoctorReport {
    let env = DoctorEnv {
        pinned_istio: Some(super::Versions::default().istio),
        ..DoctorEnv::default()
    };
    run(provider, &super::command::SystemRunner::default(), &env)
}

fn locate(name: &str, env: &DoctorEnv) -> Option<String> {
    let var = tool_env_var(name);
    let found = match &env.path {
        Some(path) => crate::tools::find_tool_in(name, &var, None, Some(path.clone()), None),
        None => crate::tools::find_tool(name, &var),
    };
    found.ok().map(|p| p.display().to_string())
}

fn version_finding(tool: &ToolSpec, program: &str, runner: &dyn CommandRunner) -> Finding {
    let cmd = Command::new(program)
        .args(tool.version_args.iter().copied())
        .timeout(Duration::from_secs(30));
    let supported = SUPPORTED.iter().find(|s| s.tool == tool.name);
    let out = runner.run(&cmd);
    let text = match &out {
        Ok(o) if o.success() => format!("{}{}", o.stdout, o.stderr),
        Ok(o) => {
            return Finding {
                subject: tool.name.into(),
                required: true,
                ok: false,
                message: format!(
                    "`{}` failed: {}; reinstall it: {}",
                    cmd.line(),
                    last_lines(&o.stderr, 2),
                    tool.install
                ),
            };
        }
        Err(e) => {
            return Finding {
                subject: tool.name.into(),
                required: true,
                ok: false,
                message: format!("cannot run it ({e}); {}", tool.install),
            };
        }
    };
    match (parse_version(&text), supported) {
        (Some(v), Some(range)) if range.accepts(v) => Finding {
            subject: tool.name.into(),
            required: true,
            ok: true,
            message: format!("{}.{}.{} (supported: {})", v.0, v.1, v.2, range.describe()),
        },
        (Some(v), Some(range)) => Finding {
            subject: tool.name.into(),
            required: true,
            ok: false,
            message: format!(
                "version {}.{}.{} is outside the supported range {}; {}",
                v.0,
                v.1,
                v.2,
                range.describe(),
                tool.install
            ),
        },
        (None, _) | (_, None) => Finding {
            subject: tool.name.into(),
            required: false,
            ok: false,
            message: format!("cannot tell its version from {:?}", last_lines(&text, 1)),
        },
    }
}

fn docker_daemon(program: &str, runner: &dyn CommandRunner) -> Finding {
    let cmd = Command::new(program)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .timeout(Duration::from_secs(30));
    let problem = match runner.run(&cmd) {
        Ok(o) if o.success() && !o.stdout.trim().is_empty() => {
            return Finding {
                subject: "docker daemon".into(),
                required: true,
                ok: true,
                message: format!("reachable, server {}", o.stdout.trim()),
            };
        }
        Ok(o) => last_lines(&format!("{}{}", o.stderr, o.stdout), 2),
        Err(e) => e.to_string(),
    };
    Finding {
        subject: "docker daemon".into(),
        required: true,
        ok: false,
        message: format!(
            "not reachable (`docker info` said: {}); start Docker (or set DOCKER_HOST), or run live scenarios where Docker runs (the nightly GitHub workflow), or use --provider twin",
            problem.trim()
        ),
    }
}

fn inotify(env: &DoctorEnv) -> Vec<Finding> {
    let root = env
        .proc_root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/proc"));
    [("max_user_watches", MIN_INOTIFY_WATCHES), ("max_user_instances", MIN_INOTIFY_INSTANCES)]
        .into_iter()
        .map(|(name, min)| {
            let path = root.join("sys/fs/inotify").join(name);
            let subject = format!("fs.inotify.{name}");
            match std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<u64>().ok()) {
                Some(v) if v >= min => Finding {
                    subject,
                    required: false,
                    ok: true,
                    message: format!("{v} (>= {min})"),
                },
                Some(v) => Finding {
                    subject: subject.clone(),
                    required: false,
                    ok: false,
                    message: format!(
                        "{v} is below {min}: multi-cluster kind runs fail with \"too many open files\"; `sudo sysctl -w {subject}={min}` (see kind-configs/README.md)"
                    ),
                },
                None => Finding {
                    subject,
                    required: false,
                    ok: false,
                    message: format!("cannot read {}; on Linux hosts check it is >= {min}", path.display()),
                },
            }
        })
        .collect()
}

/// True when the host limits are below what several kind clusters need.
pub fn inotify_too_low(report: &DoctorReport) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.subject.starts_with("fs.inotify.") && !f.ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::command::{Output, RecordingRunner};

    #[test]
    fn a_new_environment_keeps_the_pin_unless_it_brings_its_own() {
        let pinned = DoctorEnv {
            pinned_istio: Some("1.27.1".into()),
            ..DoctorEnv::default()
        };
        let swapped = DoctorEnv {
            path: Some("/nowhere".into()),
            ..DoctorEnv::default()
        }
        .keeping_pin_of(&pinned);
        assert_eq!(swapped.pinned_istio.as_deref(), Some("1.27.1"));
        assert_eq!(
            swapped.path.as_deref(),
            Some(std::ffi::OsStr::new("/nowhere"))
        );
        let own = DoctorEnv {
            pinned_istio: Some("1.28.0".into()),
            ..DoctorEnv::default()
        }
        .keeping_pin_of(&pinned);
        assert_eq!(own.pinned_istio.as_deref(), Some("1.28.0"));
    }

    #[test]
    fn missing_tools_are_each_named_with_a_fix() {
        let empty = tempfile::tempdir().unwrap();
        let env = DoctorEnv {
            path: Some(empty.path().as_os_str().to_owned()),
            pinned_istio: None,
            proc_root: Some(empty.path().to_path_buf()),
        };
        let report = run(Some(&ProviderKind::Kind), &RecordingRunner::new(), &env);
        for tool in ["docker", "kind", "kubectl", "helm", "istioctl"] {
            let f = report.findings.iter().find(|f| f.subject == tool).unwrap();
            assert!(!f.ok && f.required, "{tool}: {f:?}");
            assert!(f.message.contains("not found on PATH"), "{}", f.message);
        }
        assert_eq!(report.exit_code(), 1);
    }

    #[test]
    fn low_inotify_limits_warn_with_the_sysctl() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("sys/fs/inotify");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("max_user_watches"), "8192\n").unwrap();
        std::fs::write(dir.join("max_user_instances"), "1024\n").unwrap();
        let found = inotify(&DoctorEnv {
            path: None,
            pinned_istio: None,
            proc_root: Some(root.path().to_path_buf()),
        });
        assert!(
            !found[0].ok
                && found[0]
                    .message
                    .contains("sysctl -w fs.inotify.max_user_watches=524288")
        );
        assert!(found[1].ok);
    }

    #[test]
    fn old_versions_and_a_stopped_daemon_are_problems() {
        let runner = RecordingRunner::new();
        runner.on(
            "info --format",
            Output::failed(
                1,
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock",
            ),
        );
        runner.on("version --format", Output::ok("27.5.1\n"));
        let f = docker_daemon("docker", &runner);
        assert!(
            !f.ok && f.message.contains("Cannot connect"),
            "{}",
            f.message
        );
        let runner = RecordingRunner::new();
        runner.on("istioctl version", Output::ok("1.22.0\n"));
        let f = version_finding(&ISTIOCTL, "istioctl", &runner);
        assert!(
            !f.ok && f.message.contains("outside the supported range"),
            "{}",
            f.message
        );
    }

    #[test]
    fn istioctl_must_be_the_pinned_istio() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("istioctl");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let runner = RecordingRunner::new();
        runner.on("istioctl version", Output::ok("1.28.1\n"));
        let env = |pinned: &str| DoctorEnv {
            path: Some(dir.path().as_os_str().to_owned()),
            proc_root: None,
            pinned_istio: Some(pinned.into()),
        };
        let existing = ProviderKind::Existing(Default::default());
        let report = run(Some(&existing), &runner, &env("1.27.3"));
        let f = report
            .findings
            .iter()
            .find(|f| f.subject == "istioctl")
            .unwrap();
        assert!(
            !f.ok && f.message.contains("pins Istio 1.27.3"),
            "{}",
            f.message
        );
        let report = run(Some(&existing), &runner, &env("1.28.1"));
        assert!(
            report
                .findings
                .iter()
                .find(|f| f.subject == "istioctl")
                .unwrap()
                .ok
        );
    }
}
