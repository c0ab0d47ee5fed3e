//! External commands (kind, kubectl, helm, istioctl, docker) behind a trait, so the
//! live providers can be driven by a fake in tests and by real processes in CI.

use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Default timeout of one command: long enough for `istioctl install`, short enough
/// that a hung tool does not hold a CI job until GitHub kills it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One external command: program, arguments, optional stdin, extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program (`kind`, `kubectl`, ...), looked up on PATH.
    pub program: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
    /// What is written to its stdin.
    pub stdin: Option<Stdin>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// How long it may run before it is killed.
    pub timeout: Duration,
}

/// Where a command's stdin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdin {
    /// Literal text (a manifest for `kubectl apply -f -`).
    Text(String),
    /// The stdout of another command (`istioctl create-remote-secret | kubectl apply -f -`).
    Pipe(Box<Command>),
}

impl Command {
    /// A command with no arguments yet.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds text to stdin.
    pub fn stdin_text(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(Stdin::Text(text.into()));
        self
    }

    /// Feeds another command's stdout to stdin.
    pub fn stdin_from(mut self, producer: Command) -> Self {
        self.stdin = Some(Stdin::Pipe(Box::new(producer)));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line as a shell would take it, without stdin
    /// (`kind create cluster --name 'a b'`).
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        parts.push(shell_quote(&self.program));
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    /// Replaces `${NAME}` in every argument, environment value and stdin text with
    /// its value (plan variables captured at run time).
    pub fn substitute(&self, vars: &[(String, String)]) -> Command {
        let sub = |s: &str| {
            vars.iter().fold(s.to_string(), |acc, (k, v)| {
                acc.replace(&format!("${{{k}}}"), v)
            })
        };
        Command {
            program: self.program.clone(),
            args: self.args.iter().map(|a| sub(a)).collect(),
            stdin: self.stdin.as_ref().map(|s| match s {
                Stdin::Text(t) => Stdin::Text(sub(t)),
                Stdin::Pipe(c) => Stdin::Pipe(Box::new(c.substitute(vars))),
            }),
            env: self.env.iter().map(|(k, v)| (k.clone(), sub(v))).collect(),
            timeout: self.timeout,
        }
    }
}

impl fmt::Display for Command {
    /// The full pipeline: `producer | consumer`, or `consumer <<EOF` when stdin is text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stdin {
            Some(Stdin::Pipe(producer)) => write!(f, "{producer} | {}", self.line()),
            Some(Stdin::Text(_)) => write!(f, "{} < (stdin)", self.line()),
            None => write!(f, "{}", self.line()),
        }
    }
}

/// Quotes a word for a POSIX shell only when it needs it, so plans stay readable.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@' | '+' | '%' | '$' | '{' | '}'
                )
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Output {
    /// A successful output with this stdout.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Self {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A failed output with this exit code and stderr.
    pub fn failed(code: i32, stderr: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// True when the exit code is 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs one command and waits for it.
///
/// `Err` means the command could not be run at all (not found, timed out); a command
/// that ran and exited non-zero is `Ok` with that code. Implementations hand a
/// command whose stdin is a [`Stdin::Pipe`] to [`run_pipeline`].
pub trait CommandRunner: Send + Sync {
    /// Runs the command and waits for it.
    fn run(&self, cmd: &Command) -> Result<Output, Error>;
}

/// Runs a command, first running the command its stdin is piped from; the
/// consumer then sees the producer's stdout as [`Stdin::Text`]. A failed producer
/// stops the pipeline (like `set -o pipefail`).
pub fn run_pipeline(runner: &dyn CommandRunner, cmd: &Command) -> Result<Output, Error> {
    match &cmd.stdin {
        Some(Stdin::Pipe(producer)) => {
            let out = run_pipeline(runner, producer)?;
            if !out.success() {
                return Ok(out);
            }
            let mut resolved = cmd.clone();
            resolved.stdin = Some(Stdin::Text(out.stdout));
            runner.run(&resolved)
        }
        _ => runner.run(cmd),
    }
}

/// Runs a command and turns a non-zero exit into an error that quotes the command
/// and the tool's own message.
pub fn run_checked(runner: &dyn CommandRunner, cmd: &Command) -> Result<Output, Error> {
    let out = run_pipeline(runner, cmd)?;
    if out.success() {
        Ok(out)
    } else {
        Err(Error::Tool {
            tool: cmd.program.clone(),
            message: format!(
                "`{cmd}` exited with {}: {}",
                out.code
                    .map_or("a signal".to_string(), |c| format!("code {c}")),
                last_lines(&out.stderr, 20)
            ),
        })
    }
}

/// The last `n` lines of a tool's output: the part that says what went wrong.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs real processes with std::process, killing them at their timeout.
#[derive(Debug, Clone, Default)]
pub struct SystemRunner {
    /// Replaces PATH for every command (tests point it at a directory of fakes).
    pub path: Option<std::ffi::OsString>,
}

impl SystemRunner {
    /// The executable for a command: through [`crate::tools::find_tool_in`] (the
    /// tool's environment variable, PATH, then the project's `.tools/bin`) so the
    /// helm that `scripts/install-helm.sh` installed is found as everywhere else.
    fn resolve(&self, cmd: &Command) -> Result<std::path::PathBuf, Error> {
        if cmd.program.contains('/') {
            return Ok(std::path::PathBuf::from(&cmd.program));
        }
        let env_var = tool_env_var(&cmd.program);
        let path = self.path.clone().or_else(|| std::env::var_os("PATH"));
        // With an explicit PATH (tests), the environment and the project dir are not
        // consulted: the test decides what exists.
        let (env_value, cwd) = match self.path {
            Some(_) => (None, None),
            None => (std::env::var_os(&env_var), std::env::current_dir().ok()),
        };
        crate::tools::find_tool_in(&cmd.program, &env_var, env_value, path, cwd.as_deref())
            .map_err(|_| not_found(cmd))
    }
}

/// The environment variable that may point at a tool (`HELM`, `KUBECTL`, `ISTIOCTL`).
pub fn tool_env_var(program: &str) -> String {
    program.to_ascii_uppercase().replace('-', "_")
}

impl CommandRunner for SystemRunner {
    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        let stdin = match &cmd.stdin {
            Some(Stdin::Pipe(_)) => return run_pipeline(self, cmd),
            Some(Stdin::Text(t)) => Some(t.as_str()),
            None => None,
        };
        let program = self.resolve(cmd)?;
        let mut child = std::process::Command::new(&program);
        child
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.path {
            child.env("PATH", path);
        }
        let mut child = child.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(cmd),
            _ => Error::Tool {
                tool: cmd.program.clone(),
                message: format!("cannot start `{}`: {e}", cmd.line()),
            },
        })?;
        // Writer and readers on their own threads: a tool that fills its stdout pipe
        // before reading all of stdin would otherwise deadlock with us.
        let writer = match (stdin, child.stdin.take()) {
            (Some(text), Some(mut pipe)) => {
                let text = text.to_string();
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(text.as_bytes());
                }))
            }
            _ => None,
        };
        let stdout = child.stdout.take().map(reader_thread);
        let stderr = child.stderr.take().map(reader_thread);
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= cmd.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    // Never leave the process behind, even when we lost track of it.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Tool {
                        tool: cmd.program.clone(),
                        message: format!("waiting for `{}` failed: {e}", cmd.line()),
                    });
                }
            }
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
        let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
        match status {
            Some(status) => Ok(Output {
                code: status.code(),
                stdout,
                stderr,
            }),
            None => Err(Error::Tool {
                tool: cmd.program.clone(),
                message: format!(
                    "`{}` did not finish within {}s and was killed; last output: {}",
                    cmd.line(),
                    cmd.timeout.as_secs(),
                    last_lines(&stderr, 5)
                ),
            }),
        }
    }
}

fn reader_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn not_found(cmd: &Command) -> Error {
    Error::Tool {
        tool: cmd.program.clone(),
        message: format!(
            "`{}` is not installed or not on PATH; run `meshconform doctor` for how to install it",
            cmd.program
        ),
    }
}

/// Finds an executable named `program` in a PATH-style list of directories.
pub fn which_in(program: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

/// Finds an executable on the process's PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    which_in(program, &path)
}

fn is_executable(path: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// One command the fake saw, with the stdin it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The command line (see [`Command::line`]).
    pub line: String,
    /// What it read on stdin.
    pub stdin: Option<String>,
}

/// A scripted reply: commands whose line contains `pattern` get `reply`.
#[derive(Debug, Clone)]
struct Script {
    pattern: String,
    reply: Result<Output, String>,
    /// How many more times it applies; `None` for always.
    remaining: Option<usize>,
}

/// A fake runner for tests: records every command and replies from a script.
///
/// Replies are matched by substring of the command line: one-shot scripts
/// ([`RecordingRunner::once`]) first, then standing ones, each in the order added; a
/// command no script matches succeeds with empty output.
#[derive(Debug, Clone, Default)]
pub struct RecordingRunner {
    inner: Arc<Mutex<RecordingState>>,
}

#[derive(Debug, Default)]
struct RecordingState {
    recorded: Vec<Recorded>,
    scripts: VecDeque<Script>,
}

impl RecordingRunner {
    /// A runner where every command succeeds with empty output.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, pattern: &str, reply: Result<Output, String>, remaining: Option<usize>) {
        if let Ok(mut state) = self.inner.lock() {
            state.scripts.push_back(Script {
                pattern: pattern.to_string(),
                reply,
                remaining,
            });
        }
    }

    /// Every command containing `pattern` gets `output`.
    pub fn on(&self, pattern: &str, output: Output) -> &Self {
        self.push(pattern, Ok(output), None);
        self
    }

    /// The next command containing `pattern` gets `output`; later ones fall through.
    pub fn once(&self, pattern: &str, output: Output) -> &Self {
        self.push(pattern, Ok(output), Some(1));
        self
    }

    /// Every command containing `pattern` cannot be run (the runner returns `Err`).
    pub fn unrunnable(&self, pattern: &str, message: &str) -> &Self {
        self.push(pattern, Err(message.to_string()), None);
        self
    }

    /// Every command seen so far, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner
            .lock()
            .map(|s| s.recorded.clone())
            .unwrap_or_default()
    }

    /// Every command line seen so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.recorded().into_iter().map(|r| r.line).collect()
    }
}

impl CommandRunner for RecordingRunner {
    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        let stdin = match &cmd.stdin {
            Some(Stdin::Pipe(_)) => return run_pipeline(self, cmd),
            Some(Stdin::Text(t)) => Some(t.as_str()),
            None => None,
        };
        let line = cmd.line();
        let mut state = self.inner.lock().map_err(|_| Error::Tool {
            tool: cmd.program.clone(),
            message: "recording runner poisoned".into(),
        })?;
        state.recorded.push(Recorded {
            line: line.clone(),
            stdin: stdin.map(str::to_string),
        });
        // One-shot scripts first, so "fail once, then as usual" needs no reordering.
        let matches = |s: &Script| line.contains(&s.pattern) && s.remaining != Some(0);
        let hit = state
            .scripts
            .iter()
            .position(|s| s.remaining.is_some() && matches(s))
            .or_else(|| state.scripts.iter().position(matches));
        let reply = match hit {
            Some(i) => {
                let script = &mut state.scripts[i];
                if let Some(n) = script.remaining.as_mut() {
                    *n -= 1;
                }
                script.reply.clone()
            }
            None => Ok(Output::ok("")),
        };
        reply.map_err(|message| Error::Tool {
            tool: cmd.program.clone(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        let cmd = Command::new("kubectl").args(["get", "pods", "-o", "jsonpath={.items[*]}"]);
        assert_eq!(cmd.line(), "kubectl get pods -o 'jsonpath={.items[*]}'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn pipeline_feeds_producer_stdout_to_consumer() {
        let runner = RecordingRunner::new();
        runner.on("create-remote-secret", Output::ok("kind: Secret\n"));
        let cmd = Command::new("kubectl")
            .args(["apply", "-f", "-"])
            .stdin_from(Command::new("istioctl").arg("create-remote-secret"));
        let out = run_pipeline(&runner, &cmd).unwrap();
        assert!(out.success());
        let rec = runner.recorded();
        assert_eq!(rec.len(), 2);
        assert_eq!(rec[0].line, "istioctl create-remote-secret");
        assert_eq!(rec[1].stdin.as_deref(), Some("kind: Secret\n"));
        assert_eq!(
            cmd.to_string(),
            "istioctl create-remote-secret | kubectl apply -f -"
        );
    }

    #[test]
    fn failed_producer_stops_the_pipeline() {
        let runner = RecordingRunner::new();
        runner.on("create-remote-secret", Output::failed(1, "no context"));
        let cmd = Command::new("kubectl")
            .arg("apply")
            .stdin_from(Command::new("istioctl").arg("create-remote-secret"));
        let err = run_checked(&runner, &cmd).unwrap_err().to_string();
        assert!(err.contains("no context"), "{err}");
        assert_eq!(runner.lines().len(), 1);
    }

    #[test]
    fn once_scripts_apply_once() {
        let runner = RecordingRunner::new();
        runner.on("kind create", Output::ok("standing"));
        runner.once("kind create", Output::failed(1, "boom"));
        let cmd = Command::new("kind").args(["create", "cluster"]);
        assert!(
            !runner.run(&cmd).unwrap().success(),
            "the one-shot script wins first"
        );
        assert_eq!(runner.run(&cmd).unwrap().stdout, "standing");
    }

    #[test]
    fn substitute_replaces_variables_everywhere() {
        let cmd = Command::new("kubectl")
            .arg("${NET}.255.200")
            .stdin_text("range: ${NET}.1");
        let out = cmd.substitute(&[("NET".into(), "172.18".into())]);
        assert_eq!(out.args, vec!["172.18.255.200"]);
        assert_eq!(out.stdin, Some(Stdin::Text("range: 172.18.1".into())));
    }

    #[cfg(unix)]
    #[test]
    fn system_runner_runs_reads_stdin_and_times_out() {
        let runner = SystemRunner::default();
        let out = runner
            .run(&Command::new("cat").stdin_text("hello"))
            .unwrap();
        assert_eq!(out.stdout, "hello");
        let out = runner
            .run(&Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stderr.trim(), "oops");
        let slow = Command::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(200));
        let started = Instant::now();
        let err = runner.run(&slow).unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn system_runner_reports_a_missing_tool() {
        let runner = SystemRunner {
            path: Some(std::ffi::OsString::from("/nonexistent-dir")),
        };
        let err = runner.run(&Command::new("kind")).unwrap_err().to_string();
        assert!(err.contains("not installed or not on PATH"), "{err}");
    }
}
