//! The chart subject: `helm template` per cluster.
//!
//! The scenario's values for the cluster go to helm as a values file, then the user's
//! own values files and `--set`s. Where the cluster runs Istio, the Istio API groups
//! are passed with `--api-versions`: that is the only way `helm template` (which never
//! talks to a cluster) lets a chart's `.Capabilities.APIVersions.Has` see the CRDs.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::{ChartSubject, Refusal};
use crate::error::{Error, InputError};
use crate::manifests::{ManifestSet, parse_documents};
use crate::scenario::{CertificateMode, Cluster, Scenario};
use crate::tools;

/// The environment variable that names the helm binary.
pub const HELM_ENV: &str = "HELM";

/// What a cluster with the Istio CRDs serves, as charts test for it: group/version
/// for `.Capabilities.APIVersions.Has "networking.istio.io/v1"`, and
/// group/version/kind for charts that ask about one resource.
pub const ISTIO_API_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
    "security.istio.io/v1",
    "security.istio.io/v1beta1",
    "networking.istio.io/v1/DestinationRule",
    "networking.istio.io/v1/VirtualService",
    "security.istio.io/v1/PeerAuthentication",
];

/// What a cluster with cert-manager serves; a cert-manager scenario has it installed.
pub const CERT_MANAGER_API_VERSIONS: &[&str] = &[
    "cert-manager.io/v1",
    "cert-manager.io/v1/Certificate",
    "cert-manager.io/v1/Issuer",
];

/// The substring helm prints when a template's `fail` or `required` stopped rendering
/// (Go's text/template `ExecError`, wrapped by helm as `execution error at (file:l:c)`).
const TEMPLATE_EXECUTION_ERROR: &str = "execution error at (";

/// The `--api-versions` this cluster advertises to the chart.
pub fn api_versions(scenario: &Scenario, cluster: &Cluster) -> Vec<&'static str> {
    let mut versions = Vec::new();
    if cluster.has_istio() {
        versions.extend_from_slice(ISTIO_API_VERSIONS);
    }
    if scenario.certificates == CertificateMode::CertManager {
        versions.extend_from_slice(CERT_MANAGER_API_VERSIONS);
    }
    versions
}

/// `--values <scenario values> [--values <file>]... [--set <expr>]...`: the values part
/// of the command line, the same for `helm template` and `helm install`.
pub fn values_args(chart: &ChartSubject, scenario_values_file: &Path) -> Vec<String> {
    let mut args = vec![
        "--values".to_string(),
        scenario_values_file.display().to_string(),
    ];
    for file in &chart.values_files {
        args.push("--values".into());
        args.push(file.display().to_string());
    }
    for set in &chart.sets {
        args.push("--set".into());
        args.push(set.clone());
    }
    args
}

/// The arguments of `helm template` for one cluster (without the helm binary), with
/// the scenario's values in `scenario_values_file`.
pub fn helm_args(
    chart: &ChartSubject,
    scenario: &Scenario,
    cluster: &Cluster,
    scenario_values_file: &Path,
) -> Vec<String> {
    let mut args = vec![
        "template".to_string(),
        chart.release.clone(),
        chart.path.display().to_string(),
        "--namespace".into(),
        chart.namespace.clone(),
    ];
    args.extend(values_args(chart, scenario_values_file));
    for version in api_versions(scenario, cluster) {
        args.push("--api-versions".into());
        args.push(version.into());
    }
    args
}

/// A command line a person can paste into a POSIX shell.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| {
            let w = w.as_ref();
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
            if plain {
                w.to_string()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cluster's values as a YAML document for `--values`.
pub fn values_yaml(scenario: &Scenario, cluster: &Cluster) -> Result<String, Error> {
    serde_saphyr::to_string(&cluster.values).map_err(|e| {
        Error::Input(InputError::file(
            &scenario.file,
            format!(
                "the values of cluster {:?} cannot be written as YAML: {e}",
                cluster.name
            ),
        ))
    })
}

/// Checks that `path` looks like a chart before helm is asked (helm would otherwise
/// try to fetch a missing local path from a repository).
pub fn check_chart_path(path: &Path) -> Result<(), Error> {
    let problem = if !path.exists() {
        Some("chart not found: no such file or directory")
    } else if path.is_dir() {
        (!path.join("Chart.yaml").is_file())
            .then_some("not a Helm chart: the directory has no Chart.yaml")
    } else {
        let name = path.to_string_lossy();
        (!(name.ends_with(".tgz") || name.ends_with(".tar.gz")))
            .then_some("not a Helm chart: expected a chart directory or a packaged chart (.tgz)")
    };
    match problem {
        None => Ok(()),
        Some(message) => Err(Error::Input(InputError::file(path, message))),
    }
}

/// Helm's own message when a template refused to render (`fail`, `required`), or
/// `None` for any other failure.
pub fn template_refusal(stderr: &str) -> Option<String> {
    if !stderr.contains(TEMPLATE_EXECUTION_ERROR) {
        return None;
    }
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Use --debug flag"))
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect();
    Some(lines.join("\n"))
}

/// Renders the chart for one cluster. `Ok(Err(refusal))` when the chart itself
/// declined (a `fail` or `required` in its templates).
///
/// helm is found with [`tools::find_tool`] (`$HELM`, PATH, `.tools/bin`).
pub fn render(
    chart: &ChartSubject,
    scenario: &Scenario,
    cluster: &Cluster,
) -> Result<Result<ManifestSet, Refusal>, Error> {
    // The path first: a wrong path is worth reporting even where helm is missing.
    check_chart_path(&chart.path)?;
    let helm = tools::find_tool("helm", HELM_ENV)?;
    render_with(&helm, chart, scenario, cluster)
}

/// [`render`] with a given helm binary.
pub fn render_with(
    helm: &Path,
    chart: &ChartSubject,
    scenario: &Scenario,
    cluster: &Cluster,
) -> Result<Result<ManifestSet, Refusal>, Error> {
    check_chart_path(&chart.path)?;
    // Dropped (and so deleted) when this function returns, on every path.
    let mut values_file = tempfile::Builder::new()
        .prefix("meshconform-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    values_file
        .write_all(values_yaml(scenario, cluster)?.as_bytes())
        .and_then(|()| values_file.flush())
        .map_err(|e| Error::io(values_file.path(), e))?;
    let args = helm_args(chart, scenario, cluster, values_file.path());
    let command_line = || {
        let mut words = vec![helm.display().to_string()];
        words.extend(args.iter().cloned());
        shell_join(&words)
    };
    let output = Command::new(helm)
        .args(&args)
        .output()
        .map_err(|e| Error::Tool {
            tool: "helm".into(),
            message: format!(
                "cannot run {}: {e}; {}",
                helm.display(),
                tools::install_hint("helm", HELM_ENV)
            ),
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if let Some(message) = template_refusal(&stderr) {
            return Ok(Err(Refusal { message }));
        }
        return Err(Error::Tool {
            tool: "helm".into(),
            message: format!(
                "`{}` failed for cluster {:?} ({}): {}",
                command_line(),
                cluster.name,
                output.status,
                stderr.trim()
            ),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_documents(&chart.path, &stdout)
        .map(Ok)
        .map_err(Error::Input)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::checks::CheckId;

    fn scenario(certificates: &str, cluster_yaml: &str) -> Scenario {
        let expect: String = CheckId::ALL
            .iter()
            .map(|c| format!("  {c}: skip\n"))
            .collect();
        let text = format!(
            "name: t\ndescription: d\ncertificates: {certificates}\nvalues:\n  clusterName: alpha\n\
             clusters:\n{cluster_yaml}expect:\n{expect}"
        );
        crate::scenario::load_str(Path::new("t.yaml"), &text).unwrap()
    }

    fn sidecar() -> Scenario {
        scenario(
            "init-cert",
            "  - name: alpha\n    istio:\n      mode: sidecar\n    values:\n      integrations:\n        istio:\n          clusterID: mesh-a\n",
        )
    }

    fn chart(path: PathBuf) -> ChartSubject {
        ChartSubject {
            path,
            release: "rel".into(),
            namespace: "ns".into(),
            values_files: vec!["extra.yaml".into()],
            sets: vec!["a.b=c".into()],
        }
    }

    fn chart_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: x\nversion: 0.1.0\n",
        )
        .unwrap();
        dir
    }

    /// A stand-in for helm: records its arguments and the values file, then runs `body`.
    fn fake_helm(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("helm");
        let log = dir.join("args.log");
        let script = format!(
            "printf '%s\\n' \"$@\" > '{log}'\n\
             while [ $# -gt 0 ]; do if [ \"$1\" = --values ]; then cat \"$2\" > '{log}.values'; break; fi; shift; done\n{body}",
            log = log.display()
        );
        crate::tools::tests::write_script(&path, &script);
        path
    }

    #[test]
    fn args_carry_release_namespace_values_sets_and_istio_api_versions() {
        let s = sidecar();
        let args = helm_args(
            &chart("c".into()),
            &s,
            &s.clusters[0],
            Path::new("/tmp/v.yaml"),
        );
        assert_eq!(&args[..5], ["template", "rel", "c", "--namespace", "ns"]);
        assert_eq!(
            &args[5..11],
            [
                "--values",
                "/tmp/v.yaml",
                "--values",
                "extra.yaml",
                "--set",
                "a.b=c"
            ]
        );
        let advertised: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--api-versions")
            .map(|w| w[1].as_str())
            .collect();
        assert!(advertised.contains(&"networking.istio.io/v1"));
        assert!(advertised.contains(&"security.istio.io/v1"));
        assert!(!advertised.iter().any(|v| v.starts_with("cert-manager")));
    }

    #[test]
    fn no_istio_no_istio_api_versions_and_cert_manager_advertised_in_its_mode() {
        let s = scenario("cert-manager", "  - name: alpha\n");
        let args = helm_args(&chart("c".into()), &s, &s.clusters[0], Path::new("v.yaml"));
        assert!(!args.iter().any(|a| a.contains("istio.io")), "{args:?}");
        assert!(args.iter().any(|a| a == "cert-manager.io/v1"), "{args:?}");
    }

    #[test]
    fn shell_join_quotes_what_a_shell_would_split() {
        assert_eq!(
            shell_join(&["helm", "--set", "a=b c", "it's", ""]),
            r"helm --set 'a=b c' 'it'\''s' ''"
        );
    }

    #[test]
    fn chart_path_problems_name_the_path() {
        let err = check_chart_path(Path::new("/no/such/chart"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/no/such/chart") && err.contains("chart not found"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = check_chart_path(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no Chart.yaml"), "{err}");
        let file = empty.path().join("values.yaml");
        std::fs::write(&file, "").unwrap();
        let err = check_chart_path(&file).unwrap_err().to_string();
        assert!(err.contains("packaged chart"), "{err}");
        assert!(check_chart_path(chart_dir().path()).is_ok());
    }

    #[test]
    fn template_refusal_keeps_helms_message_and_drops_the_debug_hint() {
        let stderr = "Error: execution error at (c/templates/v.yaml:7:4): set clusterID\n\nUse --debug flag to render out invalid YAML\n";
        assert_eq!(
            template_refusal(stderr).as_deref(),
            Some("execution error at (c/templates/v.yaml:7:4): set clusterID")
        );
        assert_eq!(template_refusal("Error: Chart.yaml file is missing"), None);
    }

    #[test]
    fn renders_parses_and_removes_the_values_file() {
        let bin = tempfile::tempdir().unwrap();
        let helm = fake_helm(
            bin.path(),
            "printf -- '---\\n# Source: x/templates/s.yaml\\napiVersion: v1\\nkind: Service\\nmetadata:\\n  name: s\\n'",
        );
        let dir = chart_dir();
        let s = sidecar();
        let set = render_with(&helm, &chart(dir.path().into()), &s, &s.clusters[0])
            .unwrap()
            .unwrap();
        assert_eq!(set.items.len(), 1);
        assert_eq!(set.items[0].source, "x/templates/s.yaml");
        let logged = std::fs::read_to_string(bin.path().join("args.log")).unwrap();
        let values_path = logged.lines().nth(6).unwrap();
        assert!(values_path.contains("meshconform-values-"), "{logged}");
        assert!(
            !Path::new(values_path).exists(),
            "temp values file left behind"
        );
        let values = std::fs::read_to_string(bin.path().join("args.log.values")).unwrap();
        assert!(
            values.contains("clusterID: mesh-a") && values.contains("clusterName: alpha"),
            "{values}"
        );
    }

    #[test]
    fn template_execution_error_is_a_refusal_other_failures_are_tool_errors() {
        let bin = tempfile::tempdir().unwrap();
        let dir = chart_dir();
        let s = sidecar();
        let helm = fake_helm(
            bin.path(),
            "echo 'Error: execution error at (x/templates/a.yaml:1:2): no cluster id' >&2; exit 1",
        );
        let refusal = render_with(&helm, &chart(dir.path().into()), &s, &s.clusters[0])
            .unwrap()
            .unwrap_err();
        assert_eq!(
            refusal.message,
            "execution error at (x/templates/a.yaml:1:2): no cluster id"
        );

        let helm = fake_helm(
            bin.path(),
            "echo 'Error: parse error in Chart.yaml' >&2; exit 1",
        );
        let err = render_with(&helm, &chart(dir.path().into()), &s, &s.clusters[0]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Tool { .. }));
        assert!(
            text.contains("parse error in Chart.yaml") && text.contains("template rel"),
            "{text}"
        );
    }

    #[test]
    fn unparsable_output_names_the_chart() {
        let bin = tempfile::tempdir().unwrap();
        let dir = chart_dir();
        let s = sidecar();
        let helm = fake_helm(bin.path(), "printf 'kind: [oops\\n'");
        let err = render_with(&helm, &chart(dir.path().into()), &s, &s.clusters[0]).unwrap_err();
        assert!(
            matches!(&err, Error::Input(e) if e.file.starts_with(dir.path())),
            "{err}"
        );
    }
}
