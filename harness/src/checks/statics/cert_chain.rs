//! CERT-CHAIN: the webhook's serving certificate is trusted by the API server, by one
//! certificate mode and never both (seed: How the Webhook Server Works; cert-manager
//! Integration).

use std::time::SystemTime;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingWebhook, ValidatingWebhookConfiguration,
};

use super::{ClusterContext, Outcome, all_hold, missing_role, object_name};
use crate::certs::{summarize_pem, verify_server_cert};
use crate::checks::Evidence;
use crate::manifests::{Certificate, ManifestSet};
use crate::roles::WebhookRole;

/// cert-manager's CA injector reads this annotation (cert-manager docs, "CA Injector").
pub const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";

/// CERT-CHAIN on one cluster.
pub(super) fn check(ctx: &ClusterContext<'_>) -> Outcome {
    let Some(webhook) = &ctx.roles().webhook else {
        return missing_role(ctx, "webhook");
    };
    let set = ctx.manifests();
    let Some(config) = set
        .webhook_configurations()
        .find(|c| c.metadata.name.as_deref() == Some(webhook.configuration.as_str()))
    else {
        return missing_role(ctx, "webhook");
    };
    let Some(entry) = webhook_entry(config, webhook) else {
        return missing_role(ctx, "webhook");
    };
    if ctx.cluster.agent.use_cert_manager {
        cert_manager(ctx, set, config, entry, webhook)
    } else {
        init_cert(ctx, set, config, entry, webhook)
    }
}

/// The webhook entry of the configuration that calls the webhook's Service.
fn webhook_entry<'a>(
    config: &'a ValidatingWebhookConfiguration,
    webhook: &WebhookRole,
) -> Option<&'a ValidatingWebhook> {
    config.webhooks.iter().flatten().find(|w| {
        w.client_config
            .service
            .as_ref()
            .is_some_and(|s| s.name == webhook.service && s.namespace == webhook.namespace)
    })
}

fn ca_bundle(entry: &ValidatingWebhook) -> Option<String> {
    entry
        .client_config
        .ca_bundle
        .as_ref()
        .filter(|b| !b.0.is_empty())
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

fn inject_ca_from(config: &ValidatingWebhookConfiguration) -> Option<&str> {
    config
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INJECT_CA_FROM))
        .map(String::as_str)
}

/// Certificates that issue for the webhook: they name its Service DNS name or write
/// the Secret it mounts.
fn webhook_certificates<'a>(set: &'a ManifestSet, webhook: &WebhookRole) -> Vec<&'a Certificate> {
    let dns = webhook.service_dns_name();
    set.certificates()
        .filter(|c| {
            c.spec.dns_names.contains(&dns)
                || webhook.tls_secret.as_deref() == Some(c.spec.secret_name.as_str())
        })
        .collect()
}

/// `tls.crt` of a Secret, from `data` or `stringData`.
fn secret_cert(set: &ManifestSet, name: &str) -> Option<String> {
    let secret = set.secret(name)?;
    // The API server merges stringData over data, so stringData wins when both are set.
    let from_string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .cloned();
    let from_data = || {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get("tls.crt"))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    from_string
        .filter(|c| !c.trim().is_empty())
        .or_else(|| from_data().filter(|c| !c.trim().is_empty()))
}

fn init_cert(
    ctx: &ClusterContext<'_>,
    set: &ManifestSet,
    config: &ValidatingWebhookConfiguration,
    entry: &ValidatingWebhook,
    webhook: &WebhookRole,
) -> Outcome {
    let vwc = format!("ValidatingWebhookConfiguration/{}", webhook.configuration);
    let dns = webhook.service_dns_name();
    let mut failures = Vec::new();
    let bundle = ca_bundle(entry);
    if bundle.is_none() {
        failures.push(ctx.evidence(
            &vwc,
            "clientConfig.caBundle set by the init-cert job",
            "no caBundle",
        ));
    }
    let served = match &webhook.tls_secret {
        None => {
            failures.push(ctx.evidence(
                webhook.workload.to_string(),
                format!(
                    "container {} mounts the webhook's TLS Secret",
                    webhook.container
                ),
                "no Secret is mounted",
            ));
            None
        }
        Some(secret) => {
            let cert = secret_cert(set, secret);
            if cert.is_none() {
                failures.push(ctx.evidence(
                    format!("Secret/{secret}"),
                    "a tls.crt the webhook serves",
                    if set.secret(secret).is_some() {
                        "no tls.crt"
                    } else {
                        "the Secret is not in the manifests"
                    },
                ));
            }
            cert
        }
    };
    if let (Some(bundle), Some(served)) = (&bundle, &served)
        && let Err(error) = verify_server_cert(bundle, served, &dns, SystemTime::now())
    {
        failures.push(chain_evidence(ctx, &vwc, bundle, served, &dns, &error));
    }
    failures.extend(cert_manager_artifacts(ctx, set, config, webhook));
    all_hold(
        failures,
        format!("init-cert: the served certificate verifies against the caBundle for {dns}"),
        "the API server would not trust the webhook's certificate",
    )
}

/// Evidence for a chain that does not verify: webpki's error, the SANs found and
/// wanted, the issuer and the caBundle's subjects.
fn chain_evidence(
    ctx: &ClusterContext<'_>,
    vwc: &str,
    bundle: &str,
    served: &str,
    dns: &str,
    error: &str,
) -> Evidence {
    let leaf = summarize_pem(served)
        .ok()
        .and_then(|s| s.into_iter().next());
    let roots = summarize_pem(bundle).unwrap_or_default();
    let sans = leaf.as_ref().map(|l| l.sans.join(", ")).unwrap_or_default();
    let issuer = leaf.as_ref().map(|l| l.issuer.clone()).unwrap_or_default();
    let subjects: Vec<String> = roots.iter().map(|r| r.subject.clone()).collect();
    let expected = format!("SANs include {dns}\nissuer is one of the caBundle's subjects\n");
    let found = format!(
        "SANs: [{sans}]\nissuer: {issuer}\ncaBundle subjects: [{}]\nwebpki: {error}\n",
        subjects.join(", ")
    );
    ctx.evidence(
        format!("{vwc} caBundle and the webhook's tls.crt"),
        format!("tls.crt verifies against the caBundle for {dns}"),
        format!(
            "webpki: {error}; SANs [{sans}]; issuer {issuer}; caBundle subjects [{}]",
            subjects.join(", ")
        ),
    )
    .with_diff(&expected, &found)
}

/// Evidence of cert-manager wiring in an init-cert install ("never both").
fn cert_manager_artifacts(
    ctx: &ClusterContext<'_>,
    set: &ManifestSet,
    config: &ValidatingWebhookConfiguration,
    webhook: &WebhookRole,
) -> Vec<Evidence> {
    let mut found: Vec<Evidence> = webhook_certificates(set, webhook)
        .into_iter()
        .map(|cert| {
            ctx.evidence(
                format!("Certificate/{}", object_name(&cert.metadata)),
                "init-cert mode: no cert-manager Certificate for the webhook (never both)",
                format!(
                    "a Certificate for {:?} writing Secret {}",
                    cert.spec.dns_names, cert.spec.secret_name
                ),
            )
        })
        .collect();
    if let Some(from) = inject_ca_from(config) {
        found.push(ctx.evidence(
            format!("ValidatingWebhookConfiguration/{}", webhook.configuration),
            format!("init-cert mode: no {INJECT_CA_FROM} annotation (never both)"),
            format!("{INJECT_CA_FROM}: {from}"),
        ));
    }
    found
}

fn cert_manager(
    ctx: &ClusterContext<'_>,
    set: &ManifestSet,
    config: &ValidatingWebhookConfiguration,
    entry: &ValidatingWebhook,
    webhook: &WebhookRole,
) -> Outcome {
    let vwc = format!("ValidatingWebhookConfiguration/{}", webhook.configuration);
    let dns = webhook.service_dns_name();
    let mut failures = Vec::new();
    let certificates: Vec<&Certificate> = set
        .certificates()
        .filter(|c| c.spec.dns_names.contains(&dns))
        .collect();
    let certificate = certificates.first().copied();
    match certificate {
        None => {
            let seen: Vec<String> = set
                .certificates()
                .map(|c| format!("{} {:?}", object_name(&c.metadata), c.spec.dns_names))
                .collect();
            failures.push(
                ctx.evidence(
                    "cert-manager Certificate",
                    format!("a Certificate whose dnsNames contain {dns}"),
                    if seen.is_empty() {
                        "no Certificate".to_string()
                    } else {
                        seen.join("; ")
                    },
                )
                .with_diff(
                    &format!("{dns}\n"),
                    &set.certificates()
                        .flat_map(|c| c.spec.dns_names.iter().map(|n| format!("{n}\n")))
                        .collect::<String>(),
                ),
            );
        }
        Some(cert) => {
            let name = object_name(&cert.metadata);
            if webhook.tls_secret.as_deref() != Some(cert.spec.secret_name.as_str()) {
                failures.push(ctx.evidence(
                    format!("Certificate/{name}"),
                    format!(
                        "secretName is the Secret the webhook mounts ({})",
                        webhook.tls_secret.as_deref().unwrap_or("none mounted")
                    ),
                    format!("secretName: {}", cert.spec.secret_name),
                ));
            }
            let namespace = cert
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| webhook.namespace.clone());
            let wanted = format!("{namespace}/{name}");
            let annotation = inject_ca_from(config);
            if annotation != Some(wanted.as_str()) {
                failures.push(
                    ctx.evidence(
                        &vwc,
                        format!("{INJECT_CA_FROM}: {wanted}"),
                        annotation.map_or_else(
                            || format!("no {INJECT_CA_FROM} annotation"),
                            |a| format!("{INJECT_CA_FROM}: {a}"),
                        ),
                    )
                    .with_diff(
                        &format!("{wanted}\n"),
                        &format!("{}\n", annotation.unwrap_or("")),
                    ),
                );
            }
        }
    }
    if ca_bundle(entry).is_some() {
        failures.push(ctx.evidence(
            &vwc,
            "cert-manager mode: no static caBundle; cert-manager injects it (never both)",
            "clientConfig.caBundle is set in the manifests",
        ));
    }
    let certificate_name = certificate
        .map(|c| object_name(&c.metadata))
        .unwrap_or_default();
    all_hold(
        failures,
        format!("cert-manager: Certificate/{certificate_name} for {dns}, CA injected into {vwc}"),
        "cert-manager mode is not wired to the webhook",
    )
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::super::fixture::Fixture;
    use crate::certs::{Validity, WebhookPki};
    use crate::checks::{CheckId, Status};

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// Replaces the YAML value after `key: ` on the line that holds it.
    fn replace_value(yaml: &str, key: &str, value: &str) -> String {
        yaml.lines()
            .map(|l| match l.find(&format!("{key}: ")) {
                Some(at) => format!("{}{key}: {value}", &l[..at]),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn init_cert_chain_verifies() {
        let outcome = Fixture::sidecar().run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Pass, "{outcome:?}");
    }

    #[test]
    fn ca_bundle_from_another_ca_fails_with_webpki_error_and_subjects() {
        let other = WebhookPki::generate("cz-cz-webhook", "cza", Validity::default()).unwrap();
        let f = Fixture::sidecar().edit(|y| replace_value(y, "caBundle", &b64(other.ca_pem())));
        let outcome = f.run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Fail);
        let found = &outcome.evidence[0].found;
        assert!(found.contains("UnknownIssuer"), "{found}");
        assert!(found.contains("caBundle subjects"), "{found}");
        assert!(outcome.evidence[0].diff.is_some());
    }

    #[test]
    fn serving_cert_without_the_service_name_fails_and_lists_sans() {
        let pki = WebhookPki::for_dns_names(
            "ca",
            &["cz-cz-webhook".to_string(), "cz-cz-webhook.cza".to_string()],
            Validity::default(),
        )
        .unwrap();
        let f = Fixture::sidecar().edit(|y| {
            let y = replace_value(y, "caBundle", &b64(pki.ca_pem()));
            replace_value(&y, "tls.crt", &b64(pki.cert_pem()))
        });
        let outcome = f.run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Fail);
        let found = &outcome.evidence[0].found;
        assert!(found.contains("CertNotValidForName"), "{found}");
        assert!(
            found.contains("SANs [cz-cz-webhook, cz-cz-webhook.cza]"),
            "{found}"
        );
    }

    #[test]
    fn missing_ca_bundle_fails() {
        let f = Fixture::sidecar().edit(|y| {
            y.lines()
                .filter(|l| !l.contains("caBundle"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        let outcome = f.run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(outcome.evidence[0].found, "no caBundle");
    }

    #[test]
    fn cert_manager_mode_passes_and_needs_the_injection_annotation() {
        let f = Fixture::cert_manager();
        assert_eq!(
            f.run(CheckId::CertChain).status,
            Status::Pass,
            "{:?}",
            f.run(CheckId::CertChain)
        );
        let wrong = f.edit(|y| y.replace("cza/cz-cz-webhook-certificate", "cza/other"));
        let outcome = wrong.run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.evidence[0]
                .diff
                .as_deref()
                .unwrap_or("")
                .contains("+cza/other"),
            "{outcome:?}"
        );
        let other_secret = f.edit(|y| {
            y.replace(
                "secretName: cz-cz-webhook-tls\n  issuerRef",
                "secretName: elsewhere\n  issuerRef",
            )
        });
        assert_eq!(other_secret.run(CheckId::CertChain).status, Status::Fail);
    }

    #[test]
    fn both_modes_at_once_fail_in_either_mode() {
        let cm = Fixture::cert_manager();
        let with_bundle =
            cm.edit(|y| y.replace("port: 443}\n", "port: 443}\n      caBundle: Zm9v\n"));
        let outcome = with_bundle.run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Fail, "{outcome:?}");
        assert!(
            outcome.summary.contains("never both")
                || outcome
                    .evidence
                    .iter()
                    .any(|e| e.expected.contains("never both"))
        );

        let init = Fixture::sidecar();
        let with_injection = init.edit(|y| {
            y.replace(
                "  name: cz-cz-webhook\nwebhooks:",
                "  name: cz-cz-webhook\n  annotations: {cert-manager.io/inject-ca-from: cza/c}\nwebhooks:",
            )
        });
        let outcome = with_injection.run(CheckId::CertChain);
        assert_eq!(outcome.status, Status::Fail, "{outcome:?}");
        assert!(
            outcome
                .evidence
                .iter()
                .all(|e| e.expected.contains("never both"))
        );
    }
}
