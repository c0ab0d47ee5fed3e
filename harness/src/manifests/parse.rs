//! Parsing a multi-document YAML stream (helm's output) into typed objects.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Manifest, ManifestSet, Resource};
use crate::error::InputError;

/// One `---`-separated document, with the line it starts on and its `# Source:`.
struct Document<'a> {
    first_line: u64,
    source: Option<&'a str>,
    text: String,
}

fn split(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut current = Document {
        first_line: 1,
        source: None,
        text: String::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line == "---" || line.starts_with("--- ") {
            docs.push(std::mem::replace(
                &mut current,
                Document {
                    first_line: line_no + 1,
                    source: None,
                    text: String::new(),
                },
            ));
            continue;
        }
        if let Some(src) = line.strip_prefix("# Source: ") {
            current.source = Some(src.trim());
        }
        current.text.push_str(line);
        current.text.push('\n');
    }
    docs.push(current);
    docs
}

/// Parses a YAML stream into a manifest set.
///
/// `origin` names the stream in errors (`helm template <chart>` output, a file).
/// Errors name the template (from helm's `# Source:` comment), the line in the stream
/// and the field.
pub fn parse_documents(origin: &Path, text: &str) -> Result<ManifestSet, InputError> {
    let mut set = ManifestSet::default();
    for doc in split(text) {
        let source = doc.source.unwrap_or("(no # Source: comment)");
        let file = || origin.join(source);
        let value: Value = match serde_saphyr::from_str::<Option<Value>>(&doc.text) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 0));
                let msg = e.without_snippet().to_string();
                let msg = msg.lines().next().unwrap_or("invalid YAML").to_string();
                return Err(InputError::at(
                    file(),
                    doc.first_line + line.saturating_sub(1),
                    column,
                    "(document)",
                    msg,
                ));
            }
        };
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if api_version.is_empty() || kind.is_empty() {
            return Err(InputError::at(
                file(),
                doc.first_line,
                1,
                if api_version.is_empty() {
                    "apiVersion"
                } else {
                    "kind"
                },
                "every Kubernetes object needs apiVersion and kind",
            ));
        }
        let group = api_version.split('/').next().unwrap_or("");
        let typed = |v: Value| -> Result<Resource, InputError> {
            fn conv<T: DeserializeOwned>(v: Value) -> Result<T, (String, String)> {
                serde_path_to_error::deserialize(v)
                    .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
            }
            let result = match (group, kind.as_str()) {
                ("apps", "Deployment") => conv(v).map(Resource::Deployment),
                ("apps", "DaemonSet") => conv(v).map(Resource::DaemonSet),
                ("apps", "StatefulSet") => conv(v).map(Resource::StatefulSet),
                ("batch", "CronJob") => conv(v).map(Resource::CronJob),
                ("batch", "Job") => conv(v).map(Resource::Job),
                ("v1", "Service") => conv(v).map(Resource::Service),
                ("v1", "Secret") => conv(v).map(Resource::Secret),
                ("v1", "ConfigMap") => conv(v).map(Resource::ConfigMap),
                ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
                    conv(v).map(Resource::ValidatingWebhookConfiguration)
                }
                ("networking.istio.io", "DestinationRule") => {
                    conv(v).map(Resource::DestinationRule)
                }
                ("networking.istio.io", "VirtualService") => conv(v).map(Resource::VirtualService),
                ("security.istio.io", "PeerAuthentication") => {
                    conv(v).map(Resource::PeerAuthentication)
                }
                ("cert-manager.io", "Certificate") => conv(v).map(Resource::Certificate),
                _ => Ok(Resource::Other {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    object: v,
                }),
            };
            result.map_err(|(field, msg)| {
                InputError::at(
                    file(),
                    doc.first_line,
                    1,
                    field,
                    format!("{kind} does not match the Kubernetes schema: {msg}"),
                )
            })
        };
        set.items.push(Manifest {
            source: source.to_string(),
            resource: typed(value)?,
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_and_other_kinds_and_skips_empty_documents() {
        let text = "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n# only a comment\n---\napiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: i\n";
        let set = parse_documents(Path::new("chart"), text).unwrap();
        assert_eq!(set.items.len(), 2);
        assert_eq!(set.items[0].resource.key(), "Service/s");
        assert_eq!(set.items[0].source, "c/templates/a.yaml");
        assert_eq!(set.others("Issuer").count(), 1);
    }

    #[test]
    fn schema_errors_name_template_line_and_field() {
        let text = "apiVersion: v1\nkind: Service\n---\n# Source: c/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: eighty\n";
        let err = parse_documents(Path::new("chart"), text).unwrap_err();
        assert!(err.file.ends_with("c/templates/svc.yaml"), "{err}");
        assert_eq!(err.line, Some(4));
        assert_eq!(err.field, "spec.ports[0].port");
    }

    #[test]
    fn yaml_errors_give_stream_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: [unclosed\n";
        let err = parse_documents(Path::new("x.yaml"), text).unwrap_err();
        assert!(err.line.unwrap_or(0) >= 4, "{err}");
    }
}
