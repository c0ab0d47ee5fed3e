//! Executes a plan's steps through a [`CommandRunner`]: writes each step's files,
//! substitutes `${WORK}` and captured variables, runs the commands (in parallel where
//! the step says so), retries with backoff, honours cancellation, and keeps a ledger
//! of what was created so cleanup removes exactly that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cancel::CancelToken;
use super::command::{Command, CommandRunner, Output, last_lines, run_pipeline};
use super::plan::{FileContent, PkiPart, Step, WORK, backoff};
use crate::certs::MeshPki;
use crate::error::Error;

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    /// Its commands ran and succeeded.
    Ran,
    /// Its `skip_if` check succeeded: what it installs is already there.
    Skipped,
}

/// One executed step, for the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The step's title.
    pub title: String,
    /// Its cluster.
    pub cluster: Option<String>,
    /// Ran or skipped.
    pub status: StepStatus,
}

/// Runs steps. One executor per provider run: it owns the work directory's
/// variables, the mesh PKI (generated on first use), and the undo ledger.
pub struct Executor<'a> {
    runner: &'a dyn CommandRunner,
    provider: String,
    vars: Vec<(String, String)>,
    pki_clusters: Vec<String>,
    pki: Option<MeshPki>,
    cancel: CancelToken,
    backoff: Duration,
    /// Steps done so far.
    pub log: Vec<StepRecord>,
    /// Undo commands of the steps that ran, in the order they ran.
    pub ledger: Vec<Command>,
}

impl<'a> Executor<'a> {
    /// An executor writing files under `work`; `pki_clusters` are the clusters the
    /// mesh PKI has intermediates for.
    pub fn new(
        runner: &'a dyn CommandRunner,
        provider: &str,
        work: &Path,
        pki_clusters: Vec<String>,
        cancel: CancelToken,
        backoff: Duration,
    ) -> Self {
        Self {
            runner,
            provider: provider.to_string(),
            vars: vec![("WORK".into(), work.display().to_string())],
            pki_clusters,
            pki: None,
            cancel,
            backoff,
            log: Vec::new(),
            ledger: Vec::new(),
        }
    }

    /// The value of a captured variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn fail(&self, step: &Step, message: String) -> Error {
        let at = step
            .cluster
            .as_deref()
            .map(|c| format!(" @{c}"))
            .unwrap_or_default();
        Error::Provider {
            provider: self.provider.clone(),
            message: format!("step `{}`{at} failed: {message}", step.title),
        }
    }

    fn cancelled(&self, step: &Step) -> Error {
        Error::Provider {
            provider: self.provider.clone(),
            message: format!("cancelled before step `{}` finished", step.title),
        }
    }

    /// Runs every step in order; stops at the first failure.
    pub fn run_all(&mut self, steps: &[Step]) -> Result<(), Error> {
        for step in steps {
            self.run_step(step)?;
        }
        Ok(())
    }

    /// Runs one step.
    pub fn run_step(&mut self, step: &Step) -> Result<StepStatus, Error> {
        if self.cancel.is_cancelled() {
            return Err(self.cancelled(step));
        }
        if let Some((check, why)) = &step.refuse_if {
            let check = check.substitute(&self.vars);
            let out =
                run_pipeline(self.runner, &check).map_err(|e| self.fail(step, e.to_string()))?;
            if out.success() {
                return Err(self.fail(step, why.clone()));
            }
        }
        if let Some(check) = &step.skip_if {
            let check = check.substitute(&self.vars);
            // A check that cannot run at all (kubectl missing) is a real error; one
            // that exits non-zero means "not there yet".
            let out =
                run_pipeline(self.runner, &check).map_err(|e| self.fail(step, e.to_string()))?;
            if out.success() {
                self.log.push(StepRecord {
                    title: step.title.clone(),
                    cluster: step.cluster.clone(),
                    status: StepStatus::Skipped,
                });
                return Ok(StepStatus::Skipped);
            }
        }
        self.write_files(step)?;
        let commands: Vec<Command> = step
            .commands
            .iter()
            .map(|c| c.substitute(&self.vars))
            .collect();
        let before: Vec<Command> = step
            .before_retry
            .iter()
            .map(|c| c.substitute(&self.vars))
            .collect();
        let last = if step.concurrent && commands.len() > 1 {
            self.run_concurrent(step, &commands, &before)?
        } else {
            self.run_sequential(step, &commands, &before)?
        };
        if let Some(capture) = &step.capture {
            let stdout = last.map(|o| o.stdout).unwrap_or_default();
            let value = capture.extract(&stdout).ok_or_else(|| {
                self.fail(
                    step,
                    format!(
                        "expected a value for ${{{}}} in the output, got {:?}",
                        capture.var(),
                        last_lines(&stdout, 3)
                    ),
                )
            })?;
            self.vars.push((capture.var().to_string(), value));
        }
        self.ledger
            .extend(step.undo.iter().map(|c| c.substitute(&self.vars)));
        self.log.push(StepRecord {
            title: step.title.clone(),
            cluster: step.cluster.clone(),
            status: StepStatus::Ran,
        });
        Ok(StepStatus::Ran)
    }

    fn run_sequential(
        &self,
        step: &Step,
        commands: &[Command],
        before: &[Command],
    ) -> Result<Option<Output>, Error> {
        let attempts = step.retry.attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.pause(step, attempt - 1)?;
                for cmd in before {
                    // Clearing a half-done attempt is best effort: it may find nothing.
                    let _ = run_pipeline(self.runner, cmd);
                }
            }
            match run_commands(self.runner, commands) {
                Ok(out) => return Ok(out),
                Err(e) => last_error = e,
            }
        }
        Err(self.fail(step, format!("{last_error}{}", after_attempts(attempts))))
    }

    fn run_concurrent(
        &self,
        step: &Step,
        commands: &[Command],
        before: &[Command],
    ) -> Result<Option<Output>, Error> {
        let attempts = step.retry.attempts.max(1);
        let results: Vec<Result<Output, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = commands
                .iter()
                .enumerate()
                .map(|(i, cmd)| {
                    let undo = before.get(i);
                    scope.spawn(move || {
                        let mut last = String::new();
                        for attempt in 1..=attempts {
                            if attempt > 1 {
                                if self.cancel.is_cancelled() {
                                    return Err(format!("{last} (cancelled before retrying)"));
                                }
                                std::thread::sleep(backoff(self.backoff, attempt - 1));
                                if let Some(undo) = undo {
                                    let _ = run_pipeline(self.runner, undo);
                                }
                            }
                            match run_commands(self.runner, std::slice::from_ref(cmd)) {
                                Ok(out) => return Ok(out.unwrap_or_default()),
                                Err(e) => last = e,
                            }
                        }
                        Err(last)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a worker thread panicked".into()))
                })
                .collect()
        });
        let errors: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        if !errors.is_empty() {
            return Err(self.fail(
                step,
                format!("{}{}", errors.join("; "), after_attempts(attempts)),
            ));
        }
        Ok(results.into_iter().rev().find_map(Result::ok))
    }

    fn pause(&self, step: &Step, attempt: u32) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            return Err(self.cancelled(step));
        }
        std::thread::sleep(backoff(self.backoff, attempt));
        if self.cancel.is_cancelled() {
            return Err(self.cancelled(step));
        }
        Ok(())
    }

    fn write_files(&mut self, step: &Step) -> Result<(), Error> {
        for file in &step.files {
            let path = PathBuf::from(file.path.replace(WORK, self.var("WORK").unwrap_or(".")));
            let text = match &file.content {
                FileContent::Text(t) => t.clone(),
                FileContent::Pki { cluster, part } => self
                    .pki_part(cluster, *part)
                    .map_err(|e| self.fail(step, e))?,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
            if matches!(
                file.content,
                FileContent::Pki {
                    part: PkiPart::CaKey,
                    ..
                }
            ) {
                restrict(&path)?;
            }
        }
        Ok(())
    }

    fn pki_part(&mut self, cluster: &str, part: PkiPart) -> Result<String, String> {
        if self.pki.is_none() {
            self.pki = Some(
                MeshPki::new(&self.pki_clusters)
                    .map_err(|e| format!("cannot generate the mesh PKI: {e}"))?,
            );
        }
        let pki = self.pki.as_ref().ok_or("mesh PKI missing")?;
        let ca = pki
            .intermediate(cluster)
            .ok_or_else(|| format!("the mesh PKI has no intermediate for cluster {cluster}"))?;
        Ok(match part {
            PkiPart::CaCert => ca.pem().to_string(),
            PkiPart::CaKey => ca.key_pem(),
            PkiPart::RootCert => pki.root_pem().to_string(),
            PkiPart::CertChain => format!("{}{}", ca.pem(), pki.root_pem()),
        })
    }

    /// Runs the undo ledger in reverse (last created, first removed); every command is
    /// tried, and the failures are returned together.
    pub fn undo_all(&mut self) -> Result<(), Error> {
        let mut errors = Vec::new();
        while let Some(cmd) = self.ledger.pop() {
            match run_pipeline(self.runner, &cmd) {
                Ok(out) if out.success() => {}
                Ok(out) => errors.push(format!("`{cmd}`: {}", last_lines(&out.stderr, 3))),
                Err(e) => errors.push(format!("`{cmd}`: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Provider {
                provider: self.provider.clone(),
                message: format!("cleanup left things behind: {}", errors.join("; ")),
            })
        }
    }
}

/// Runs commands in order; the first failure ends the run with the tool's message.
/// What a failure message adds when a step was retried: ` (after N attempts)`.
fn after_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

fn run_commands(
    runner: &dyn CommandRunner,
    commands: &[Command],
) -> Result<Option<Output>, String> {
    let mut last = None;
    for cmd in commands {
        match run_pipeline(runner, cmd) {
            Ok(out) if out.success() => last = Some(out),
            Ok(out) => {
                return Err(format!(
                    "`{cmd}` exited with {}: {}",
                    out.code
                        .map_or("a signal".to_string(), |c| format!("code {c}")),
                    last_lines(&out.stderr, 10)
                ));
            }
            Err(e) => return Err(format!("`{cmd}`: {e}")),
        }
    }
    Ok(last)
}

fn restrict(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::command::RecordingRunner;
    use crate::live::plan::{Capture, Phase};

    fn exec<'a>(runner: &'a RecordingRunner, work: &Path) -> Executor<'a> {
        Executor::new(
            runner,
            "kind",
            work,
            vec!["alpha".into()],
            CancelToken::new(),
            Duration::ZERO,
        )
    }

    #[test]
    fn a_missing_capture_is_an_error_that_names_the_variable() {
        let runner = RecordingRunner::new();
        runner.on("docker network inspect", Output::ok("fc00::/64\n"));
        let work = tempfile::tempdir().unwrap();
        let mut step = Step::new(Phase::Clusters, "Find the prefix")
            .command(Command::new("docker").args(["network", "inspect", "kind"]));
        step.capture = Some(Capture::Ipv4Prefix16("KIND_NET".into()));
        let err = exec(&runner, work.path())
            .run_step(&step)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("${KIND_NET}") && err.contains("Find the prefix"),
            "{err}"
        );
    }

    #[test]
    fn refuse_skip_and_undo_follow_their_checks() {
        let runner = RecordingRunner::new();
        runner.on("get present", Output::ok("x"));
        runner.on("get absent", Output::failed(1, "NotFound"));
        let work = tempfile::tempdir().unwrap();
        let mut e = exec(&runner, work.path());
        let mut skipped =
            Step::new(Phase::Mesh, "skipped").command(Command::new("kubectl").arg("install-a"));
        skipped.skip_if = Some(Command::new("kubectl").args(["get", "present"]));
        skipped.undo = vec![Command::new("kubectl").arg("uninstall-a")];
        assert_eq!(e.run_step(&skipped).unwrap(), StepStatus::Skipped);
        let mut ran =
            Step::new(Phase::Mesh, "ran").command(Command::new("kubectl").arg("install-b"));
        ran.skip_if = Some(Command::new("kubectl").args(["get", "absent"]));
        ran.undo = vec![Command::new("kubectl").arg("uninstall-b")];
        assert_eq!(e.run_step(&ran).unwrap(), StepStatus::Ran);
        let mut refused =
            Step::new(Phase::Agent, "refused").command(Command::new("kubectl").arg("install-c"));
        refused.refuse_if = Some((
            Command::new("kubectl").args(["get", "present"]),
            "already there".into(),
        ));
        assert!(
            e.run_step(&refused)
                .unwrap_err()
                .to_string()
                .contains("already there")
        );
        assert_eq!(
            e.ledger,
            vec![Command::new("kubectl").arg("uninstall-b")],
            "only what ran is undone"
        );
        e.undo_all().unwrap();
        let lines = runner.lines();
        assert!(
            !lines.contains(&"kubectl install-a".to_string())
                && !lines.contains(&"kubectl install-c".to_string())
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("kubectl uninstall-b")
        );
    }

    #[test]
    fn pki_files_are_written_with_the_key_private() {
        let runner = RecordingRunner::new();
        let work = tempfile::tempdir().unwrap();
        let step = Step::new(Phase::Mesh, "ca")
            .file(
                format!("{WORK}/pki/alpha/ca-key.pem"),
                "the mesh PKI",
                FileContent::Pki {
                    cluster: "alpha".into(),
                    part: PkiPart::CaKey,
                },
            )
            .file(
                format!("{WORK}/pki/alpha/cert-chain.pem"),
                "the mesh PKI",
                FileContent::Pki {
                    cluster: "alpha".into(),
                    part: PkiPart::CertChain,
                },
            );
        exec(&runner, work.path()).run_step(&step).unwrap();
        let key = work.path().join("pki/alpha/ca-key.pem");
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        let chain = std::fs::read_to_string(work.path().join("pki/alpha/cert-chain.pem")).unwrap();
        assert_eq!(
            chain.matches("BEGIN CERTIFICATE").count(),
            2,
            "intermediate then root"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
