//! Scenarios: the matrix, one YAML file each, loaded and validated into [`Scenario`].
//!
//! Loading is strict: unknown fields, wrong types, names that cannot become Kubernetes
//! names, duplicate clusters and missing expectations are all errors that name the
//! file, the line, the column and the field.

mod model;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use model::{
    CertificateMode, ClusterSpec, Fault, IstioMode, IstioSpec, MtlsMode, RoleOverrides,
    ScenarioFile, SidecarKind,
};
pub use values::{AgentValues, IstioEnabled, deep_merge};

use crate::checks::{CheckId, Severity, Status};
use crate::error::{Error, InputError};

/// A validated scenario, ready to render and check.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// DNS-1123 label, equal to the file's stem.
    pub name: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// What the scenario shows.
    pub description: String,
    /// A broken setup whose failures must be observed.
    pub negative_control: bool,
    /// init-cert or cert-manager.
    pub certificates: CertificateMode,
    /// The clusters, in file order.
    pub clusters: Vec<Cluster>,
    /// Role discovery overrides.
    pub roles: RoleOverrides,
    /// Faults for the runtime checks.
    pub faults: Vec<Fault>,
    /// Seed for every random choice.
    pub seed: u64,
    /// Expected status per check (every check present).
    pub expect: BTreeMap<CheckId, Status>,
    /// Severity per check (defaults filled in).
    pub severity: BTreeMap<CheckId, Severity>,
}

/// One cluster of a validated scenario.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// DNS-1123 label.
    pub name: String,
    /// Istio in this cluster.
    pub istio: IstioSpec,
    /// istiod's CLUSTER_ID (the scenario's, or the cluster's name).
    pub istio_cluster_id: String,
    /// The agent's Helm values: scenario values, then cluster values, then the
    /// certificate mode (`insightsController.tls.useCertManager`).
    pub values: serde_json::Value,
    /// The values the seed's rules read, extracted and type-checked.
    pub agent: AgentValues,
}

impl Cluster {
    /// True when Istio runs in this cluster (its CRDs are installed).
    pub fn has_istio(&self) -> bool {
        self.istio.mode != IstioMode::None
    }
}

impl Scenario {
    /// The cluster with this name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The topology in one word, for reports (`single`, `multi-2`).
    pub fn topology(&self) -> String {
        match self.clusters.len() {
            1 => "single".to_string(),
            n => format!("multi-{n}"),
        }
    }

    /// The Istio modes of the clusters, deduplicated (`sidecar`, `ambient`, `none`).
    pub fn istio_modes(&self) -> String {
        let mut modes: Vec<&str> = Vec::new();
        for c in &self.clusters {
            let m = match c.istio.mode {
                IstioMode::None => "none",
                IstioMode::Sidecar => "sidecar",
                IstioMode::Ambient => "ambient",
            };
            if !modes.contains(&m) {
                modes.push(m);
            }
        }
        modes.join("+")
    }

    /// The severity of a check in this scenario.
    pub fn severity_of(&self, check: CheckId) -> Severity {
        self.severity
            .get(&check)
            .copied()
            .unwrap_or(check.default_severity())
    }
}

/// Loads and validates one scenario file.
pub fn load(path: &Path) -> Result<Scenario, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::file(path, format!("cannot read scenario: {e}")))?;
    load_str(path, &text)
}

/// Loads every `*.yaml` scenario in a directory, sorted by name.
///
/// All files are read; every broken one is reported, not just the first.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match load(&path) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(Error::Inputs(errors))
    }
}

/// Parses and validates scenario text; `path` is used for error messages and the
/// name check.
pub fn load_str(path: &Path, text: &str) -> Result<Scenario, InputError> {
    let only_comments = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if only_comments {
        return Err(InputError::file(path, "the scenario file is empty"));
    }
    // serde_path_to_error knows the field; serde-saphyr knows the line. The path is
    // kept aside because serde-saphyr reports the error from its own frame.
    let mut failed_path = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, ScenarioFile>(de).map_err(|e| {
            failed_path = Some(e.path().to_string());
            e.into_inner()
        })
    });
    let file = match parsed {
        Ok(file) => file,
        Err(e) => {
            let field = failed_path.unwrap_or_default();
            return Err(saphyr_error(path, &field, &e));
        }
    };
    validate(path, file)
}

fn saphyr_error(path: &Path, field: &str, e: &serde_saphyr::Error) -> InputError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    // `Spanned<T>` adds a `value` segment to serde's path; readers never wrote it.
    let field = field
        .replace(".value[", "[")
        .replace(".value.", ".")
        .trim_end_matches(".value")
        // serde_path_to_error writes `?` for a key it could not read.
        .trim_end_matches(".?")
        .to_string();
    let field = if field.is_empty() || field == "." || field == "value" || field == "?" {
        "(document)".to_string()
    } else {
        field
    };
    // The plain message, without the snippet: our own prefix carries the location.
    let message = e.without_snippet().to_string();
    let message = message.lines().next().unwrap_or("invalid YAML");
    // serde-saphyr appends the location, which our prefix already carries.
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    InputError::at(path, line, column, field, message)
}

fn at<T>(path: &Path, spanned: &serde_saphyr::Spanned<T>, field: &str, msg: String) -> InputError {
    InputError::at(
        path,
        spanned.referenced.line(),
        spanned.referenced.column(),
        field,
        msg,
    )
}

fn at_opt<T>(
    path: &Path,
    spanned: Option<&serde_saphyr::Spanned<T>>,
    field: &str,
    msg: String,
) -> InputError {
    match spanned {
        Some(s) => at(path, s, field, msg),
        None => InputError::at(path, 0, 0, field, msg),
    }
}

/// Why a name is not a DNS-1123 label, or `None` when it is one.
pub fn dns_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 63 {
        return Some(format!("is {} characters; at most 63", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {c:?}; only lowercase letters, digits and '-' are allowed"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

fn validate(path: &Path, file: ScenarioFile) -> Result<Scenario, InputError> {
    if let Some(problem) = dns_label_problem(&file.name.value) {
        return Err(at(
            path,
            &file.name,
            "name",
            format!(
                "scenario name {:?} is not a DNS-1123 label: it {problem}",
                file.name.value
            ),
        ));
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if !stem.is_empty() && stem != file.name.value {
        return Err(at(
            path,
            &file.name,
            "name",
            format!(
                "scenario name {:?} differs from the file name {stem:?}; rename one so they match",
                file.name.value
            ),
        ));
    }
    if file.clusters.value.is_empty() {
        return Err(at(
            path,
            &file.clusters,
            "clusters",
            "a scenario needs at least one cluster".into(),
        ));
    }

    let mut names = BTreeSet::new();
    let mut clusters = Vec::new();
    for (i, spec) in file.clusters.value.iter().enumerate() {
        let field = format!("clusters[{i}].name");
        let name = &spec.name.value;
        if let Some(problem) = dns_label_problem(name) {
            return Err(at(
                path,
                &spec.name,
                &field,
                format!("cluster name {name:?} is not a DNS-1123 label: it {problem}"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(at(
                path,
                &spec.name,
                &field,
                format!("duplicate cluster {name:?}; cluster names must be unique"),
            ));
        }
        if let Some(id) = &spec.istio.cluster_id
            && id.trim().is_empty()
        {
            return Err(at(
                path,
                &spec.name,
                &format!("clusters[{i}].istio.clusterId"),
                "Istio cluster ID must not be empty; omit it to use the cluster name".into(),
            ));
        }
        let mut values = serde_json::Value::Object(file.values.clone());
        deep_merge(&mut values, &serde_json::Value::Object(spec.values.clone()));
        if file.certificates == CertificateMode::CertManager {
            deep_merge(
                &mut values,
                &serde_json::json!({"insightsController": {"tls": {"useCertManager": true}}}),
            );
        }
        let agent = AgentValues::from_values(&values).map_err(|(field, msg)| {
            at(
                path,
                &spec.name,
                &format!("clusters[{i}].values.{field}"),
                msg,
            )
        })?;
        if agent.use_cert_manager != (file.certificates == CertificateMode::CertManager) {
            return Err(at(
                path,
                &spec.name,
                &format!("clusters[{i}].values.insightsController.tls.useCertManager"),
                "contradicts `certificates`; set the certificate mode with `certificates` only"
                    .into(),
            ));
        }
        clusters.push(Cluster {
            name: name.clone(),
            istio_cluster_id: spec
                .istio
                .cluster_id
                .clone()
                .unwrap_or_else(|| name.clone()),
            istio: spec.istio.clone(),
            values,
            agent,
        });
    }

    let mut expect = BTreeMap::new();
    for (id, status) in &file.expect.value {
        let check = model::parse_check(id).ok_or_else(|| {
            at(
                path,
                &file.expect,
                &format!("expect.{id}"),
                crate::checks::UnknownCheck(id.clone()).to_string(),
            )
        })?;
        expect.insert(check, *status);
    }
    let missing: Vec<&str> = CheckId::ALL
        .iter()
        .filter(|c| !expect.contains_key(c))
        .map(|c| c.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(at(
            path,
            &file.expect,
            "expect",
            format!(
                "missing expectation for {}: every check needs pass, fail or skip",
                missing.join(", ")
            ),
        ));
    }

    let mut severity = BTreeMap::new();
    for check in CheckId::ALL {
        severity.insert(*check, check.default_severity());
    }
    if let Some(overrides) = &file.severity {
        for (id, sev) in &overrides.value {
            let check = model::parse_check(id).ok_or_else(|| {
                at(
                    path,
                    overrides,
                    &format!("severity.{id}"),
                    crate::checks::UnknownCheck(id.clone()).to_string(),
                )
            })?;
            severity.insert(check, *sev);
        }
    }

    let faults = file.faults.map(|f| (f.value.clone(), f));
    for (i, fault) in faults.iter().flat_map(|(v, _)| v.iter()).enumerate() {
        if !names.contains(fault.cluster()) {
            let spanned = faults.as_ref().map(|(_, s)| s);
            return Err(at_opt(
                path,
                spanned,
                &format!("faults[{i}].cluster"),
                format!(
                    "fault names cluster {:?}, which the scenario does not have",
                    fault.cluster()
                ),
            ));
        }
    }
    let roles = file.roles.map(|r| (r.value.clone(), r));
    if let Some((overrides, spanned)) = &roles
        && let Some(backfill) = &overrides.backfill
    {
        for (i, entry) in backfill.iter().enumerate() {
            let ok = entry
                .split_once('/')
                .is_some_and(|(k, n)| matches!(k, "CronJob" | "Job") && !n.is_empty());
            if !ok {
                return Err(at(
                    path,
                    spanned,
                    &format!("roles.backfill[{i}]"),
                    format!("{entry:?} is not `CronJob/<name>` or `Job/<name>`"),
                ));
            }
        }
    }

    Ok(Scenario {
        name: file.name.value,
        file: path.to_path_buf(),
        description: file.description,
        negative_control: file.negative_control,
        certificates: file.certificates,
        clusters,
        roles: roles.map(|(r, _)| r).unwrap_or_default(),
        faults: faults.map(|(f, _)| f).unwrap_or_default(),
        seed: file.seed.unwrap_or(1),
        expect,
        severity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_matrix_file() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/single-sidecar-strict.yaml");
        let s = load(&path).unwrap();
        assert_eq!(s.clusters[0].istio.mtls, MtlsMode::Strict);
        assert_eq!(s.clusters[0].agent.effective_cluster_id(), Some("alpha"));
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = "name: x\ndescription: d\ncertificates: init-cert\nclusters:\n  - name: a\n    istoi: {}\nexpect: {}\n";
        let e = load_str(Path::new("x.yaml"), text).unwrap_err();
        eprintln!("{e}");
        assert_eq!(e.line, Some(6));
        assert!(e.field.contains("clusters"), "{e}");
    }
}
