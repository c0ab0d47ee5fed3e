//! Completing an install: what happens between `helm template` and a running agent.
//!
//! - The init-cert job's part (init-cert mode): a chart renders an empty TLS Secret
//!   and an empty caBundle; the job makes a CA and a serving certificate, fills the
//!   Secret and patches `webhooks[i].clientConfig.caBundle`. The harness plays it.
//! - cert-manager's part ([`play_cert_manager`]): issuing the Certificate into its
//!   Secret and cainjector's CA injection. Providers call it at install time; static
//!   checks see the cert-manager objects as rendered.
//! - Certificate faults from the scenario (a rotated CA, an expired certificate).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::InstalledSet;
use super::reference::{keys, names};
use crate::certs::{self, Validity, WebhookPki};
use crate::error::Error;
use crate::manifests::{ManifestSet, Resource};
use crate::roles::{self, Roles};
use crate::scenario::{Cluster, Fault, RoleOverrides, Scenario};

/// Common name of the CA the harness makes when it plays cert-manager.
pub const CERT_MANAGER_CA_NAME: &str = "meshconform cert-manager CA";

/// Finds roles and plays the init-cert job's part where the manifests leave the TLS
/// Secret and caBundle empty, then applies the scenario's certificate faults for
/// this cluster.
pub fn complete(
    scenario: &Scenario,
    cluster: &Cluster,
    release: &str,
    namespace: &str,
    mut manifests: ManifestSet,
) -> Result<InstalledSet, Error> {
    let found = roles::discover(&manifests, &scenario.roles);
    let target = WebhookTarget::find(&manifests, &found, &scenario.roles, release, namespace);
    let mut notes = Vec::new();
    let mut ca_in_hand = None;
    if !cluster.agent.use_cert_manager {
        match &target {
            Some(target) => {
                ca_in_hand = play_init_cert(&mut manifests, target, &mut notes)?;
            }
            None => notes.push(
                "init-cert: no ValidatingWebhookConfiguration calls a Service \
                 (clientConfig.service), so there was no certificate to make"
                    .into(),
            ),
        }
    }
    let faults: Vec<&Fault> = scenario
        .faults
        .iter()
        .filter(|f| f.cluster() == cluster.name)
        .collect();
    notes.extend(cert_faults(
        &mut manifests,
        target.as_ref(),
        &cluster.name,
        &faults,
        ca_in_hand.as_ref(),
    )?);
    // Discovery again: the init-cert step may have created the Secret.
    let roles = roles::discover(&manifests, &scenario.roles);
    Ok(InstalledSet {
        manifests,
        roles,
        notes,
    })
}

/// Applies the certificate faults of `cluster` (rotated CA, expired certificate) to
/// an installed set; for providers that complete cert-manager's part first.
pub fn apply_cert_faults(
    set: &mut ManifestSet,
    roles: &Roles,
    cluster: &str,
    faults: &[Fault],
    release: &str,
    namespace: &str,
) -> Result<Vec<String>, Error> {
    let target = WebhookTarget::find(set, roles, &RoleOverrides::default(), release, namespace);
    let faults: Vec<&Fault> = faults.iter().filter(|f| f.cluster() == cluster).collect();
    cert_faults(set, target.as_ref(), cluster, &faults, None)
}

/// The webhook as far as certificates go: which configuration entry, which Service,
/// which Secret.
#[derive(Debug, Clone)]
struct WebhookTarget {
    configuration: String,
    entry: usize,
    service: String,
    namespace: String,
    secret: String,
}

impl WebhookTarget {
    /// From the discovered roles when there are some; otherwise by following the
    /// first webhook configuration that calls a Service to that Service's pods and
    /// their Secret volume (the contract's Secret name as a last resort).
    fn find(
        set: &ManifestSet,
        roles: &Roles,
        overrides: &RoleOverrides,
        release: &str,
        namespace: &str,
    ) -> Option<Self> {
        let wanted = roles
            .webhook
            .as_ref()
            .map(|w| w.configuration.as_str())
            .or(overrides.webhook_configuration.as_deref());
        let (configuration, entry, service, service_ns) =
            set.webhook_configurations().find_map(|vwc| {
                let name = vwc.metadata.name.clone().unwrap_or_default();
                if wanted.is_some_and(|w| w != name) {
                    return None;
                }
                vwc.webhooks
                    .iter()
                    .flatten()
                    .enumerate()
                    .find_map(|(i, hook)| {
                        let svc = hook.client_config.service.as_ref()?;
                        let ns = if svc.namespace.is_empty() {
                            namespace.to_string()
                        } else {
                            svc.namespace.clone()
                        };
                        Some((name.clone(), i, svc.name.clone(), ns))
                    })
            })?;
        let secret = roles
            .webhook
            .as_ref()
            .and_then(|w| w.tls_secret.clone())
            .or_else(|| tls_secret_of_service_pods(set, &service))
            .unwrap_or_else(|| names::webhook_tls_secret(release));
        Some(Self {
            configuration,
            entry,
            service,
            namespace: service_ns,
            secret,
        })
    }
}

/// The Secret volume of the pods a Service selects (the one named like a TLS Secret
/// when there are several): the fallback when role discovery found no webhook
/// container to read the mount from.
fn tls_secret_of_service_pods(set: &ManifestSet, service: &str) -> Option<String> {
    let selector = set.service(service)?.spec.as_ref()?.selector.clone()?;
    if selector.is_empty() {
        return None;
    }
    let (_, template) = set
        .pod_templates()
        .into_iter()
        .find(|(_, t)| roles::labels_match(&selector, roles::template_labels(t)))?;
    let secrets: Vec<String> = template
        .spec
        .as_ref()?
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect();
    secrets
        .iter()
        .find(|s| s.contains("tls") || s.contains("cert"))
        .or(secrets.first())
        .cloned()
}

/// Plays the init-cert job when the Secret or the caBundle is empty; returns the PKI
/// it made.
fn play_init_cert(
    set: &mut ManifestSet,
    target: &WebhookTarget,
    notes: &mut Vec<String>,
) -> Result<Option<WebhookPki>, Error> {
    let has_cert = secret_in(set, &target.secret, &target.namespace).is_some_and(|s| {
        !secret_value(s, "tls.crt").is_empty() && !secret_value(s, "tls.key").is_empty()
    });
    let has_bundle = ca_bundle(set, target).is_some_and(|b| !b.is_empty());
    if has_cert && has_bundle {
        return Ok(None);
    }
    let pki = WebhookPki::generate(&target.service, &target.namespace, Validity::default())?;
    let created = write_pki(set, &target.secret, &target.namespace, &pki);
    set_ca_bundle(set, target, pki.ca_pem());
    let summary = certs::summarize(pki.cert_der());
    notes.push(format!(
        "init-cert (played by the harness; the {missing} empty): made CA `{ca}` and a \
         serving certificate for {sans} valid until {until}; {verb} Secret {ns}/{secret} \
         (ca.crt, tls.crt, tls.key) and wrote the CA to ValidatingWebhookConfiguration \
         {config} webhooks[{entry}].clientConfig.caBundle",
        missing = match (has_cert, has_bundle) {
            (false, false) => "TLS Secret and the caBundle were",
            (false, true) => "TLS Secret was",
            _ => "caBundle was",
        },
        ca = summary.issuer,
        sans = summary.sans.join(", "),
        until = summary.not_after,
        verb = if created { "created" } else { "filled" },
        ns = target.namespace,
        secret = target.secret,
        config = target.configuration,
        entry = target.entry,
    ));
    Ok(Some(pki))
}

/// Applies certificate faults; `ca_in_hand` is the caBundle's CA when the harness made it.
fn cert_faults(
    set: &mut ManifestSet,
    target: Option<&WebhookTarget>,
    cluster: &str,
    faults: &[&Fault],
    ca_in_hand: Option<&WebhookPki>,
) -> Result<Vec<String>, Error> {
    let mut notes = Vec::new();
    for fault in faults {
        let kind = match fault {
            Fault::RotatedCaBundle { .. } => "rotated-ca-bundle",
            Fault::ExpiredWebhookCert { .. } => "expired-webhook-cert",
            _ => continue,
        };
        let Some(target) = target else {
            notes.push(format!(
                "fault {kind} not applied in cluster {cluster}: no webhook configuration calls a Service"
            ));
            continue;
        };
        let has_cert = secret_in(set, &target.secret, &target.namespace)
            .is_some_and(|s| !secret_value(s, "tls.crt").is_empty());
        if !has_cert {
            notes.push(format!(
                "fault {kind} not applied in cluster {cluster}: Secret {}/{} holds no \
                 certificate yet (in cert-manager mode it is issued at install time)",
                target.namespace, target.secret
            ));
            continue;
        }
        let note = match fault {
            Fault::RotatedCaBundle { .. } => rotate_ca(set, target)?,
            _ => expire_cert(set, target, ca_in_hand)?,
        };
        notes.push(format!("fault {kind} in cluster {cluster}: {note}"));
    }
    Ok(notes)
}

/// The webhook's certificate moves to a new CA; the caBundle keeps the old one.
fn rotate_ca(set: &mut ManifestSet, target: &WebhookTarget) -> Result<String, Error> {
    let pki = WebhookPki::generate(&target.service, &target.namespace, Validity::default())?;
    write_pki(set, &target.secret, &target.namespace, &pki);
    Ok(format!(
        "Secret {}/{} now holds a certificate from a new CA `{}`; the caBundle of {} still \
         holds the old CA",
        target.namespace,
        target.secret,
        certs::summarize(pki.cert_der()).issuer,
        target.configuration
    ))
}

/// The webhook serves a certificate signed by the caBundle's CA whose validity ended.
fn expire_cert(
    set: &mut ManifestSet,
    target: &WebhookTarget,
    ca_in_hand: Option<&WebhookPki>,
) -> Result<String, Error> {
    let expired = Validity::expired();
    if let Some(pki) = ca_in_hand {
        let leaf = pki.reissue(expired)?;
        write_tls(
            set,
            &target.secret,
            &target.namespace,
            &[("tls.crt", leaf.cert_pem()), ("tls.key", leaf.key_pem())],
        );
        return Ok(format!(
            "Secret {}/{} now holds a certificate from the caBundle's CA that expired at {}",
            target.namespace,
            target.secret,
            certs::summarize(leaf.cert_der()).not_after
        ));
    }
    // The caBundle's CA key is not in the manifests (the init-cert job keeps it
    // nowhere), so a new CA signs the expired certificate and replaces the caBundle:
    // the chain still verifies, only the validity fails.
    let pki = WebhookPki::generate(&target.service, &target.namespace, expired)?;
    write_pki(set, &target.secret, &target.namespace, &pki);
    set_ca_bundle(set, target, pki.ca_pem());
    Ok(format!(
        "Secret {}/{} and the caBundle of {} now hold a new CA and a certificate it signed \
         that expired at {}",
        target.namespace,
        target.secret,
        target.configuration,
        certs::summarize(pki.cert_der()).not_after
    ))
}

/// Plays cert-manager at install time: issues each Certificate's `dnsNames` into its
/// `secretName` from a CA it makes, and injects that CA into every webhook
/// configuration annotated `cert-manager.io/inject-ca-from: <ns>/<certificate>`
/// (cainjector fills every webhook entry of such a configuration).
pub fn play_cert_manager(
    set: &mut ManifestSet,
    roles: &Roles,
    namespace: &str,
) -> Result<Vec<String>, Error> {
    let mut notes = Vec::new();
    let certificates: Vec<(String, String, Vec<String>, String)> = set
        .certificates()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                c.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| namespace.to_string()),
                c.spec.dns_names.clone(),
                c.spec.secret_name.clone(),
            )
        })
        .collect();
    let mut issued = BTreeMap::new();
    for (name, ns, dns_names, secret) in certificates {
        if dns_names.is_empty() || secret.is_empty() {
            notes.push(format!(
                "cert-manager: Certificate {ns}/{name} has no dnsNames or no secretName; nothing issued"
            ));
            continue;
        }
        let pki = WebhookPki::for_dns_names(CERT_MANAGER_CA_NAME, &dns_names, Validity::default())?;
        let created = write_pki(set, &secret, &ns, &pki);
        notes.push(format!(
            "cert-manager (played by the harness): issued Certificate {ns}/{name} for {} into \
             Secret {ns}/{secret} ({})",
            dns_names.join(", "),
            if created { "created" } else { "filled" }
        ));
        issued.insert(format!("{ns}/{name}"), (secret, pki));
    }
    for resource in set.items.iter_mut().map(|m| &mut m.resource) {
        let Resource::ValidatingWebhookConfiguration(vwc) = resource else {
            continue;
        };
        let Some(from) = injection_source(vwc) else {
            continue;
        };
        let config = vwc.metadata.name.clone().unwrap_or_default();
        match issued.get(&from) {
            Some((_, pki)) => {
                for hook in vwc.webhooks.iter_mut().flatten() {
                    hook.client_config.ca_bundle =
                        Some(ByteString(pki.ca_pem().as_bytes().to_vec()));
                }
                notes.push(format!(
                    "cainjector (played by the harness): injected the CA of Certificate {from} \
                     into ValidatingWebhookConfiguration {config}"
                ));
            }
            None => notes.push(format!(
                "cainjector: ValidatingWebhookConfiguration {config} asks for the CA of \
                 Certificate {from}, which is not installed; its caBundle stays empty"
            )),
        }
    }
    if let Some(secret) = roles.webhook.as_ref().and_then(|w| w.tls_secret.as_ref())
        && !issued.values().any(|(s, _)| s == secret)
    {
        notes.push(format!(
            "cert-manager: the webhook mounts Secret {secret}, which no Certificate writes"
        ));
    }
    Ok(notes)
}

/// `ns/certificate` from a configuration's `cert-manager.io/inject-ca-from`.
fn injection_source(vwc: &ValidatingWebhookConfiguration) -> Option<String> {
    vwc.metadata
        .annotations
        .as_ref()?
        .get(keys::INJECT_CA_FROM)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// True when `secret` is the Secret `name` in `namespace`; a Secret without a
/// namespace is in the release namespace, as `helm template` output leaves it.
fn is_secret(secret: &Secret, name: &str, namespace: &str) -> bool {
    secret.metadata.name.as_deref() == Some(name)
        && secret
            .metadata
            .namespace
            .as_deref()
            .is_none_or(|ns| ns == namespace)
}

/// The Secret `name` in `namespace`, if the set has it.
fn secret_in<'a>(set: &'a ManifestSet, name: &str, namespace: &str) -> Option<&'a Secret> {
    set.secrets().find(|s| is_secret(s, name, namespace))
}

/// A Secret key's value, whether it is in `data` or `stringData`.
fn secret_value<'a>(secret: &'a Secret, key: &str) -> &'a [u8] {
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(String::as_bytes)
        .filter(|v| !v.is_empty())
        .or_else(|| secret.data.as_ref()?.get(key).map(|v| v.0.as_slice()))
        .unwrap_or_default()
}

/// Writes a PKI's `ca.crt`, `tls.crt` and `tls.key` into a TLS Secret, creating it
/// when it does not exist; returns true when it was created.
fn write_pki(set: &mut ManifestSet, name: &str, namespace: &str, pki: &WebhookPki) -> bool {
    write_tls(
        set,
        name,
        namespace,
        &[
            ("ca.crt", pki.ca_pem()),
            ("tls.crt", pki.cert_pem()),
            ("tls.key", pki.key_pem()),
        ],
    )
}

/// Writes PEM values into a TLS Secret, creating it when it does not exist; returns
/// true when it was created.
fn write_tls(set: &mut ManifestSet, name: &str, namespace: &str, values: &[(&str, &str)]) -> bool {
    let existing = set.items.iter_mut().find_map(|m| match &mut m.resource {
        Resource::Secret(s) if is_secret(s, name, namespace) => Some(s),
        _ => None,
    });
    let created = existing.is_none();
    let secret = match existing {
        Some(s) => s,
        None => {
            set.push(
                "meshconform (init-cert)",
                Resource::Secret(Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some(namespace.to_string()),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    ..Secret::default()
                }),
            );
            match set.items.last_mut().map(|m| &mut m.resource) {
                Some(Resource::Secret(s)) => s,
                _ => return created,
            }
        }
    };
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    for (key, pem) in values {
        data.insert((*key).to_string(), ByteString(pem.as_bytes().to_vec()));
    }
    // stringData wins over data on the API server; drop stale values.
    if let Some(string_data) = secret.string_data.as_mut() {
        for (key, _) in values {
            string_data.remove(*key);
        }
        if string_data.is_empty() {
            secret.string_data = None;
        }
    }
    created
}

/// The caBundle of the target's webhook entry (empty when unset), or None when the
/// configuration or the entry is gone.
fn ca_bundle<'a>(set: &'a ManifestSet, target: &WebhookTarget) -> Option<&'a [u8]> {
    let vwc = set
        .webhook_configurations()
        .find(|v| v.metadata.name.as_deref() == Some(target.configuration.as_str()))?;
    let hook = vwc.webhooks.as_ref()?.get(target.entry)?;
    Some(
        hook.client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            .unwrap_or_default(),
    )
}

/// Patches `/webhooks/<entry>/clientConfig/caBundle`, as the init-cert job does.
fn set_ca_bundle(set: &mut ManifestSet, target: &WebhookTarget, ca_pem: &str) {
    for m in &mut set.items {
        let Resource::ValidatingWebhookConfiguration(vwc) = &mut m.resource else {
            continue;
        };
        if vwc.metadata.name.as_deref() != Some(target.configuration.as_str()) {
            continue;
        }
        if let Some(hook) = vwc.webhooks.as_mut().and_then(|w| w.get_mut(target.entry)) {
            hook.client_config.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use serde_json::{Value, json};

    use super::*;
    use crate::scenario::{AgentValues, CertificateMode, IstioMode, IstioSpec};

    /// A chart's output as `helm template` gives it: empty Secret, empty caBundle, and
    /// names that differ from the contract's, so only following references finds them.
    const CHART: &str = r#"
---
# Source: agent/templates/webhook.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: hook, namespace: ns}
spec:
  selector: {matchLabels: {app: hook}}
  template:
    metadata: {labels: {app: hook, tier: admission}}
    spec:
      containers:
        - name: server
          image: x
          ports: [{name: admission, containerPort: 9443}]
          volumeMounts: [{name: certs, mountPath: /certs}]
      volumes:
        - name: config
          secret: {secretName: hook-config}
        - name: certs
          secret: {secretName: hook-serving-tls}
---
# Source: agent/templates/webhook.yaml
apiVersion: v1
kind: Service
metadata: {name: hook-svc, namespace: ns}
spec:
  selector: {app: hook}
  ports: [{name: https, port: 443, targetPort: admission}]
---
# Source: agent/templates/webhook.yaml
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: hook-config}
webhooks:
  - name: hook.example.dev
    admissionReviewVersions: [v1]
    sideEffects: None
    clientConfig:
      service: {name: hook-svc, namespace: ns, path: /validate, port: 443}
      caBundle: ""
---
# Source: agent/templates/init-cert.yaml
apiVersion: v1
kind: Secret
metadata: {name: hook-serving-tls, namespace: ns}
type: kubernetes.io/tls
data:
  ca.crt: ""
  tls.crt: ""
  tls.key: ""
"#;

    fn cluster(values: Value) -> Cluster {
        Cluster {
            name: "alpha".into(),
            istio: IstioSpec {
                mode: IstioMode::None,
                ..IstioSpec::default()
            },
            istio_cluster_id: "alpha".into(),
            agent: AgentValues::from_values(&values).unwrap(),
            values,
        }
    }

    fn scenario(cluster: &Cluster, faults: Vec<Fault>) -> Scenario {
        Scenario {
            name: "unit".into(),
            file: "unit.yaml".into(),
            description: String::new(),
            negative_control: false,
            certificates: if cluster.agent.use_cert_manager {
                CertificateMode::CertManager
            } else {
                CertificateMode::InitCert
            },
            clusters: vec![cluster.clone()],
            roles: RoleOverrides::default(),
            faults,
            seed: 0,
            expect: BTreeMap::new(),
            severity: BTreeMap::new(),
        }
    }

    fn complete_chart(text: &str, faults: Vec<Fault>) -> InstalledSet {
        let set = crate::manifests::parse_documents(Path::new("chart"), text).unwrap();
        let c = cluster(json!({"clusterName": "alpha"}));
        complete(&scenario(&c, faults), &c, "cz", "ns", set).unwrap()
    }

    /// (caBundle of the first webhook, tls.crt of the Secret).
    fn bundle_and_cert(set: &ManifestSet, secret: &str) -> (String, String) {
        let vwc = set.webhook_configurations().next().unwrap();
        let bundle = vwc.webhooks.as_ref().unwrap()[0]
            .client_config
            .ca_bundle
            .clone()
            .unwrap();
        let secret = set.secret(secret).unwrap();
        let cert = secret_value(secret, "tls.crt").to_vec();
        (
            String::from_utf8(bundle.0).unwrap(),
            String::from_utf8(cert).unwrap(),
        )
    }

    fn verify(set: &ManifestSet, secret: &str) -> Result<(), String> {
        let (bundle, cert) = bundle_and_cert(set, secret);
        certs::verify_server_cert(&bundle, &cert, "hook-svc.ns.svc", SystemTime::now())
    }

    #[test]
    fn completing_a_chart_fills_the_mounted_secret_and_the_ca_bundle() {
        let installed = complete_chart(CHART, Vec::new());
        verify(&installed.manifests, "hook-serving-tls").unwrap();
        let secret = installed.manifests.secret("hook-serving-tls").unwrap();
        assert!(!secret_value(secret, "tls.key").is_empty());
        assert!(!secret_value(secret, "ca.crt").is_empty());
        // Nothing was created beside the chart's own objects.
        assert_eq!(installed.manifests.items.len(), 4);
        assert_eq!(installed.notes.len(), 1, "{:?}", installed.notes);
        assert!(
            installed.notes[0].contains("hook-serving-tls"),
            "{:?}",
            installed.notes
        );
        assert!(
            installed.notes[0].contains("hook-config"),
            "{:?}",
            installed.notes
        );
    }

    #[test]
    fn a_missing_secret_is_created_under_the_mounted_name() {
        let without_secret = CHART
            .split("\n---\n")
            .filter(|doc| !doc.contains("kind: Secret"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        let installed = complete_chart(&without_secret, Vec::new());
        assert_eq!(installed.manifests.items.len(), 4);
        verify(&installed.manifests, "hook-serving-tls").unwrap();
        assert!(
            installed.notes[0].contains("created"),
            "{:?}",
            installed.notes
        );
    }

    #[test]
    fn a_completed_set_is_left_alone() {
        let first = complete_chart(CHART, Vec::new());
        let c = cluster(json!({"clusterName": "alpha"}));
        let again = complete(
            &scenario(&c, Vec::new()),
            &c,
            "cz",
            "ns",
            first.manifests.clone(),
        )
        .unwrap();
        assert_eq!(again.manifests, first.manifests);
        assert!(again.notes.is_empty(), "{:?}", again.notes);
    }

    #[test]
    fn rotated_ca_fault_breaks_the_chain() {
        let installed = complete_chart(
            CHART,
            vec![Fault::RotatedCaBundle {
                cluster: "alpha".into(),
            }],
        );
        let err = verify(&installed.manifests, "hook-serving-tls").unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
        assert!(
            installed
                .notes
                .iter()
                .any(|n| n.contains("rotated-ca-bundle")),
            "{:?}",
            installed.notes
        );
    }

    #[test]
    fn expired_cert_fault_fails_on_validity_only() {
        let installed = complete_chart(
            CHART,
            vec![Fault::ExpiredWebhookCert {
                cluster: "alpha".into(),
            }],
        );
        let err = verify(&installed.manifests, "hook-serving-tls").unwrap_err();
        assert!(err.contains("CertExpired"), "{err}");
    }

    #[test]
    fn faults_for_another_cluster_do_nothing() {
        let installed = complete_chart(
            CHART,
            vec![Fault::RotatedCaBundle {
                cluster: "beta".into(),
            }],
        );
        verify(&installed.manifests, "hook-serving-tls").unwrap();
    }

    #[test]
    fn expired_fault_on_the_reference_install_replaces_the_bundle_too() {
        let c = cluster(json!({"clusterName": "alpha"}));
        let s = scenario(
            &c,
            vec![Fault::ExpiredWebhookCert {
                cluster: "alpha".into(),
            }],
        );
        let set = super::super::reference::generate(&s, &c, "cz", "cza").unwrap();
        let installed = complete(&s, &c, "cz", "cza", set).unwrap();
        let (bundle, cert) = bundle_and_cert(&installed.manifests, "cz-cz-webhook-tls");
        let err =
            certs::verify_server_cert(&bundle, &cert, "cz-cz-webhook.cza.svc", SystemTime::now())
                .unwrap_err();
        assert!(err.contains("CertExpired"), "{err}");
    }

    #[test]
    fn cert_manager_is_not_played_by_complete_but_by_play_cert_manager() {
        let c = cluster(json!({
            "clusterName": "alpha",
            "insightsController": {"tls": {"useCertManager": true}}
        }));
        let s = scenario(&c, Vec::new());
        let set = super::super::reference::generate(&s, &c, "cz", "cza").unwrap();
        let mut installed = complete(&s, &c, "cz", "cza", set).unwrap();
        assert!(installed.manifests.secret("cz-cz-webhook-tls").is_none());

        let notes = play_cert_manager(&mut installed.manifests, &installed.roles, "cza").unwrap();
        assert!(notes.iter().any(|n| n.contains("injected")), "{notes:?}");
        let (bundle, cert) = bundle_and_cert(&installed.manifests, "cz-cz-webhook-tls");
        certs::verify_server_cert(&bundle, &cert, "cz-cz-webhook.cza.svc", SystemTime::now())
            .unwrap();
        let issuer = &certs::summarize_pem(&cert).unwrap()[0].issuer;
        assert!(issuer.contains(CERT_MANAGER_CA_NAME), "{issuer}");

        // Faults apply once cert-manager has issued.
        let roles = installed.roles.clone();
        let notes = apply_cert_faults(
            &mut installed.manifests,
            &roles,
            "alpha",
            &[Fault::RotatedCaBundle {
                cluster: "alpha".into(),
            }],
            "cz",
            "cza",
        )
        .unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let (bundle, cert) = bundle_and_cert(&installed.manifests, "cz-cz-webhook-tls");
        let err =
            certs::verify_server_cert(&bundle, &cert, "cz-cz-webhook.cza.svc", SystemTime::now())
                .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn injection_from_a_missing_certificate_is_reported() {
        let text = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: hook-config
  annotations: {cert-manager.io/inject-ca-from: ns/nowhere}
webhooks:
  - name: hook.example.dev
    admissionReviewVersions: [v1]
    sideEffects: None
    clientConfig:
      service: {name: hook-svc, namespace: ns}
"#;
        let mut set = crate::manifests::parse_documents(Path::new("chart"), text).unwrap();
        let notes = play_cert_manager(&mut set, &Roles::default(), "ns").unwrap();
        assert!(notes.iter().any(|n| n.contains("ns/nowhere")), "{notes:?}");
        let vwc = set.webhook_configurations().next().unwrap();
        assert!(
            vwc.webhooks.as_ref().unwrap()[0]
                .client_config
                .ca_bundle
                .is_none()
        );
    }
}
