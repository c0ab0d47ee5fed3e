//! The reference install: the seed's system implemented as policy-as-code.
//!
//! It generates, for release `R` in namespace `NS`, every object the agent's contract
//! names (DESIGN.md section 4) and applies the seed's Istio rules to them, plus the
//! fixes the seed does not cover (each marked "beyond the seed" with its source).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PodSpec, PodTemplateSpec, Probe, Secret, SecretVolumeSource, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::Refusal;
use crate::certs::{Validity, WebhookPki};
use crate::manifests::{
    Certificate, CertificateSpec, Destination, DestinationRule, DestinationRuleSpec, HttpRoute,
    ManifestSet, MutualTls, PeerAuthentication, PeerAuthenticationSpec, Resource, RouteDestination,
    Subset, VirtualService, VirtualServiceSpec, WorkloadSelector,
};
use crate::scenario::{Cluster, IstioMode, Scenario, SidecarKind};

/// The `source` of every object the reference install generates.
pub const SOURCE: &str = "reference-install";

/// The full quit call a classic-sidecar Job makes when its work is done.
pub const PROXY_QUIT_COMMAND: &str = "curl -fsS -X POST http://localhost:15020/quitquitquit";

/// Env var that carries the aggregator's remote_write URL in every sender.
pub const AGGREGATOR_URL_ENV: &str = "AGGREGATOR_URL";

/// Env var that carries the webhook URL in the backfill.
pub const WEBHOOK_URL_ENV: &str = "WEBHOOK_URL";

/// The image every reference container runs (the harness never pulls it; the twin
/// reads the manifests, and kind runs the real chart).
pub const IMAGE: &str = "ghcr.io/cloudzero/cloudzero-agent/cloudzero-agent:reference";

// The fencing's subset name, Istio's cluster label and the sidecar's quit endpoint: one
// definition, shared with the checks that hold the install to them.
pub use crate::checks::statics::{CLUSTER_LABEL, LOCAL_SUBSET, PROXY_QUIT_PATH};

/// Annotation and label keys the reference install writes.
pub mod keys {
    // Keys the static checks read too: one definition, shared with them.
    pub use crate::checks::statics::{EXCLUDE_INBOUND, EXCLUDE_OUTBOUND, INJECT_CA_FROM};

    /// Per-pod proxy config (Istio annotation reference: `proxy.istio.io/config`).
    pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
    /// Set by the Istio CNI on pods enrolled in ambient mode.
    pub const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";
    /// `app.kubernetes.io/name`.
    pub const APP_NAME: &str = "app.kubernetes.io/name";
    /// `app.kubernetes.io/instance`: the release.
    pub const APP_INSTANCE: &str = "app.kubernetes.io/instance";
    /// `app.kubernetes.io/component`: webhook, aggregator, server, backfill.
    pub const APP_COMPONENT: &str = "app.kubernetes.io/component";
    /// The scenario that generated an object (lets a provider clean up by label).
    pub const SCENARIO: &str = "meshconform.dev/scenario";
}

/// Object names for release `R`, so no one repeats the format strings.
pub mod names {
    /// `R-cz-webhook`: Deployment, Service and ValidatingWebhookConfiguration.
    pub fn webhook(release: &str) -> String {
        format!("{release}-cz-webhook")
    }

    /// `R-cz-webhook-tls`: the serving certificate Secret.
    pub fn webhook_tls_secret(release: &str) -> String {
        format!("{release}-cz-webhook-tls")
    }

    /// `R-cz-webhook-issuer`: the cert-manager Issuer.
    pub fn webhook_issuer(release: &str) -> String {
        format!("{release}-cz-webhook-issuer")
    }

    /// `R-cz-webhook-certificate`: the cert-manager Certificate.
    pub fn webhook_certificate(release: &str) -> String {
        format!("{release}-cz-webhook-certificate")
    }

    /// `R-cz-webhook-permissive`: the ambient port-level PeerAuthentication.
    pub fn webhook_permissive(release: &str) -> String {
        format!("{release}-cz-webhook-permissive")
    }

    /// `R-cz-aggregator`: Deployment and Service.
    pub fn aggregator(release: &str) -> String {
        format!("{release}-cz-aggregator")
    }

    /// `R-cz-aggregator-cluster-local`: the fencing DestinationRule and VirtualService.
    pub fn fencing(release: &str) -> String {
        format!("{release}-cz-aggregator-cluster-local")
    }

    /// `R-cz-server`: the metrics agent.
    pub fn server(release: &str) -> String {
        format!("{release}-cz-server")
    }

    /// `R-cz-backfill`: the backfill CronJob.
    pub fn backfill_cronjob(release: &str) -> String {
        format!("{release}-cz-backfill")
    }

    /// `R-cz-backfill-once`: the backfill Job run at install.
    pub fn backfill_job(release: &str) -> String {
        format!("{release}-cz-backfill-once")
    }

    /// `svc.ns.svc.cluster.local`.
    pub fn fqdn(service: &str, namespace: &str) -> String {
        format!("{service}.{namespace}.svc.cluster.local")
    }

    /// `http://R-cz-aggregator.NS.svc.cluster.local/collector` (Service port 80).
    pub fn aggregator_url(release: &str, namespace: &str) -> String {
        format!("http://{}/collector", fqdn(&aggregator(release), namespace))
    }

    /// `https://R-cz-webhook.NS.svc.cluster.local/validate`, with the port when it
    /// is not 443.
    pub fn webhook_url(release: &str, namespace: &str, service_port: u16) -> String {
        let host = fqdn(&webhook(release), namespace);
        match service_port {
            443 => format!("https://{host}/validate"),
            port => format!("https://{host}:{port}/validate"),
        }
    }
}

/// The port the aggregator container listens on (the contract's 8080).
const AGGREGATOR_CONTAINER_PORT: u16 = 8080;
/// The aggregator Service port senders dial (the contract's 80).
const AGGREGATOR_SERVICE_PORT: u16 = 80;
/// Where the webhook TLS Secret is mounted.
const TLS_MOUNT: &str = "/etc/cz-tls";

/// How Istio integration applies in this cluster, once the seed's rules are resolved.
#[derive(Debug, Clone)]
struct IstioPlan {
    /// The effective cluster ID (`integrations.istio.clusterID || clusterName`).
    cluster_id: String,
    /// Whether `integrations.istio.clusterID` was set.
    explicit: bool,
    /// Ambient data plane.
    ambient: bool,
    /// Classic (non-native) sidecars.
    classic_sidecar: bool,
}

/// Everything the generators need for one cluster.
struct Plan<'a> {
    scenario: &'a str,
    cluster: &'a Cluster,
    release: &'a str,
    namespace: &'a str,
    cert_manager: bool,
    server_port: u16,
    service_port: u16,
    istio: Option<IstioPlan>,
}

impl<'a> Plan<'a> {
    fn new(
        scenario: &'a Scenario,
        cluster: &'a Cluster,
        release: &'a str,
        namespace: &'a str,
    ) -> Result<Self, Refusal> {
        let agent = &cluster.agent;
        let istio = if crate::subject::istio_active(cluster) {
            Some(istio_plan(cluster)?)
        } else {
            None
        };
        Ok(Self {
            scenario: &scenario.name,
            cluster,
            release,
            namespace,
            cert_manager: agent.use_cert_manager,
            server_port: agent.server_port,
            service_port: agent.service_port,
            istio,
        })
    }

    /// Metadata for an object of `component` named `name`.
    fn meta(&self, name: String, component: &str) -> ObjectMeta {
        let mut labels = pod_labels(self.release, component);
        labels.insert("app.kubernetes.io/managed-by".into(), "meshconform".into());
        labels.insert(keys::SCENARIO.into(), self.scenario.to_string());
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    fn is_classic_sidecar(&self) -> bool {
        self.istio.as_ref().is_some_and(|i| i.classic_sidecar)
    }
}

/// Resolves the seed's cluster-ID rules, or refuses.
fn istio_plan(cluster: &Cluster) -> Result<IstioPlan, Refusal> {
    let agent = &cluster.agent;
    let ambient = cluster.istio.mode == IstioMode::Ambient;
    // Seed, "The Ambient Mode Wrinkle": nothing in an ambient pod can confirm the
    // cluster ID, so a fallback to clusterName could lose data silently.
    if ambient && agent.istio_cluster_id.is_none() {
        return Err(Refusal {
            message: format!(
                "cluster `{}` runs Istio in ambient mode, which requires an explicit \
                 integrations.istio.clusterID (the reference install does not fall back to \
                 clusterName in ambient mode: a wrong value cannot be detected and would \
                 silently misattribute data). Set integrations.istio.clusterID to istiod's \
                 CLUSTER_ID (kubectl -n istio-system get deploy istiod -o \
                 jsonpath='{{.spec.template.spec.containers[0].env[?(@.name==\"CLUSTER_ID\")].value}}').",
                cluster.name
            ),
        });
    }
    let cluster_id = agent.effective_cluster_id().ok_or_else(|| Refusal {
        message: format!(
            "the Istio integration is on in cluster `{}` but neither \
             integrations.istio.clusterID nor clusterName is set: set clusterName (or \
             integrations.istio.clusterID, to istiod's CLUSTER_ID) so aggregator traffic \
             can be fenced to this cluster.",
            cluster.name
        ),
    })?;
    Ok(IstioPlan {
        cluster_id: cluster_id.to_string(),
        explicit: agent.istio_cluster_id.is_some(),
        ambient,
        classic_sidecar: cluster.istio.mode == IstioMode::Sidecar
            && cluster.istio.sidecar == SidecarKind::Classic,
    })
}

/// Generates the whole manifest set the seed describes for one cluster, or refuses
/// (ambient mode without an explicit clusterID; Istio on without any cluster ID).
pub fn generate(
    scenario: &Scenario,
    cluster: &Cluster,
    release: &str,
    namespace: &str,
) -> Result<ManifestSet, Refusal> {
    let plan = Plan::new(scenario, cluster, release, namespace)?;
    let mut set = ManifestSet::default();
    webhook(&plan, &mut set)?;
    aggregator(&plan, &mut set);
    metrics_agent(&plan, &mut set);
    backfill(&plan, &mut set);
    fencing(&plan, &mut set);
    ambient_webhook_permissive(&plan, &mut set);
    Ok(set)
}

/// The pod labels (and Service selector) of a component.
pub fn pod_labels(release: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (keys::APP_NAME.to_string(), "cloudzero-agent".to_string()),
        (keys::APP_INSTANCE.to_string(), release.to_string()),
        (keys::APP_COMPONENT.to_string(), component.to_string()),
    ])
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn port(name: &str, container_port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(container_port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, port_name: &str, scheme: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port_name.into()),
            scheme: Some(scheme.into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

/// The TLS Secret as a volume; `keys` limits it to some of its keys.
fn tls_volume(release: &str, keys: Option<&[&str]>) -> Volume {
    Volume {
        name: "webhook-tls".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::webhook_tls_secret(release)),
            items: keys.map(|keys| {
                keys.iter()
                    .map(|k| KeyToPath {
                        key: (*k).into(),
                        path: (*k).into(),
                        ..KeyToPath::default()
                    })
                    .collect()
            }),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn tls_mount() -> VolumeMount {
    VolumeMount {
        name: "webhook-tls".into(),
        mount_path: TLS_MOUNT.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn pod_template(
    release: &str,
    component: &str,
    annotations: BTreeMap<String, String>,
    spec: PodSpec,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(release, component)),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    }
}

fn deployment(
    plan: &Plan<'_>,
    name: String,
    component: &str,
    template: PodTemplateSpec,
) -> Resource {
    Resource::Deployment(Deployment {
        metadata: plan.meta(name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(pod_labels(plan.release, component)),
                ..LabelSelector::default()
            },
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

fn service(plan: &Plan<'_>, name: String, component: &str, port: ServicePort) -> Resource {
    Resource::Service(Service {
        metadata: plan.meta(name, component),
        spec: Some(ServiceSpec {
            selector: Some(pod_labels(plan.release, component)),
            ports: Some(vec![port]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The webhook: Deployment, Service, ValidatingWebhookConfiguration and its
/// certificate (init-cert Secret and caBundle, or cert-manager Issuer and Certificate).
fn webhook(plan: &Plan<'_>, set: &mut ManifestSet) -> Result<(), Refusal> {
    let release = plan.release;
    let name = names::webhook(release);
    let mut annotations = BTreeMap::new();
    if plan.istio.is_some() {
        // Seed: with Istio on and no cert-manager, the API server's TLS must bypass
        // Envoy. Beyond the seed: also with cert-manager, because the API server is
        // not in the mesh and cannot speak Istio mTLS (istio/istio#39290).
        annotations.insert(keys::EXCLUDE_INBOUND.into(), plan.server_port.to_string());
    }
    let container = Container {
        name: "webhook".into(),
        image: Some(IMAGE.into()),
        args: Some(vec![
            format!("--listen=:{}", plan.server_port),
            format!("--tls-cert={TLS_MOUNT}/tls.crt"),
            format!("--tls-key={TLS_MOUNT}/tls.key"),
        ]),
        // The webhook server is a sender: it pushes what it records to the aggregator.
        env: Some(vec![
            env(
                "CLUSTER_NAME",
                plan.cluster.agent.cluster_name.clone().unwrap_or_default(),
            ),
            env(
                AGGREGATOR_URL_ENV,
                names::aggregator_url(release, plan.namespace),
            ),
        ]),
        ports: Some(vec![port("https", plan.server_port)]),
        readiness_probe: Some(http_probe("/healthz", "https", "HTTPS")),
        volume_mounts: Some(vec![tls_mount()]),
        ..Container::default()
    };
    let spec = PodSpec {
        containers: vec![container],
        volumes: Some(vec![tls_volume(release, None)]),
        ..PodSpec::default()
    };
    let template = pod_template(release, "webhook", annotations, spec);
    set.push(SOURCE, deployment(plan, name.clone(), "webhook", template));
    set.push(
        SOURCE,
        service(
            plan,
            name.clone(),
            "webhook",
            ServicePort {
                name: Some("https".into()),
                port: i32::from(plan.service_port),
                target_port: Some(IntOrString::Int(i32::from(plan.server_port))),
                app_protocol: Some("https".into()),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            },
        ),
    );
    let ca_bundle = if plan.cert_manager {
        cert_manager_objects(plan, set);
        None
    } else {
        Some(init_cert_secret(plan, set)?)
    };
    set.push(SOURCE, webhook_configuration(plan, ca_bundle));
    Ok(())
}

/// The init-cert job's result: the TLS Secret filled; returns the CA for the caBundle.
fn init_cert_secret(plan: &Plan<'_>, set: &mut ManifestSet) -> Result<String, Refusal> {
    let pki = WebhookPki::generate(
        &names::webhook(plan.release),
        plan.namespace,
        Validity::default(),
    )
    .map_err(|e| Refusal {
        message: format!("the reference install could not make the webhook certificate: {e}"),
    })?;
    let data = BTreeMap::from([
        (
            "ca.crt".to_string(),
            ByteString(pki.ca_pem().as_bytes().to_vec()),
        ),
        (
            "tls.crt".to_string(),
            ByteString(pki.cert_pem().as_bytes().to_vec()),
        ),
        (
            "tls.key".to_string(),
            ByteString(pki.key_pem().as_bytes().to_vec()),
        ),
    ]);
    set.push(
        SOURCE,
        Resource::Secret(Secret {
            metadata: plan.meta(names::webhook_tls_secret(plan.release), "webhook"),
            type_: Some("kubernetes.io/tls".into()),
            data: Some(data),
            ..Secret::default()
        }),
    );
    Ok(pki.ca_pem().to_string())
}

/// cert-manager mode: a self-signed Issuer and a Certificate for the Service names.
fn cert_manager_objects(plan: &Plan<'_>, set: &mut ManifestSet) {
    let release = plan.release;
    let issuer = names::webhook_issuer(release);
    let meta = plan.meta(issuer.clone(), "webhook");
    set.push(
        SOURCE,
        Resource::Other {
            api_version: "cert-manager.io/v1".into(),
            kind: "Issuer".into(),
            object: json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "Issuer",
                "metadata": meta,
                "spec": {"selfSigned": {}},
            }),
        },
    );
    let extra = BTreeMap::from([(
        "issuerRef".to_string(),
        json!({"name": issuer, "kind": "Issuer", "group": "cert-manager.io"}),
    )]);
    set.push(
        SOURCE,
        Resource::Certificate(Certificate {
            metadata: plan.meta(names::webhook_certificate(release), "webhook"),
            spec: CertificateSpec {
                dns_names: crate::certs::service_dns_names(
                    &names::webhook(release),
                    plan.namespace,
                ),
                secret_name: names::webhook_tls_secret(release),
                extra,
            },
        }),
    );
}

fn webhook_configuration(plan: &Plan<'_>, ca_bundle: Option<String>) -> Resource {
    let release = plan.release;
    let name = names::webhook(release);
    let mut metadata = plan.meta(name.clone(), "webhook");
    // Cluster-scoped.
    metadata.namespace = None;
    if plan.cert_manager {
        metadata.annotations = Some(BTreeMap::from([(
            keys::INJECT_CA_FROM.to_string(),
            format!("{}/{}", plan.namespace, names::webhook_certificate(release)),
        )]));
    }
    let hook = ValidatingWebhook {
        name: format!("{name}.{}.svc", plan.namespace),
        admission_review_versions: vec!["v1".into()],
        side_effects: "None".into(),
        failure_policy: Some("Ignore".into()),
        timeout_seconds: Some(1),
        client_config: WebhookClientConfig {
            ca_bundle: ca_bundle.map(|pem| ByteString(pem.into_bytes())),
            service: Some(ServiceReference {
                name,
                namespace: plan.namespace.to_string(),
                path: Some("/validate".into()),
                port: Some(i32::from(plan.service_port)),
            }),
            url: None,
        },
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
            resources: Some(vec!["pods".into()]),
            scope: Some("*".into()),
        }]),
        ..ValidatingWebhook::default()
    };
    Resource::ValidatingWebhookConfiguration(ValidatingWebhookConfiguration {
        metadata,
        webhooks: Some(vec![hook]),
    })
}

/// The aggregator Deployment (with the validator when Istio is on) and its Service.
fn aggregator(plan: &Plan<'_>, set: &mut ManifestSet) {
    let release = plan.release;
    let name = names::aggregator(release);
    let container = Container {
        name: "aggregator".into(),
        image: Some(IMAGE.into()),
        // The aggregator stamps its own cluster's name on every sample it receives.
        env: Some(vec![env(
            "CLUSTER_NAME",
            plan.cluster.agent.cluster_name.clone().unwrap_or_default(),
        )]),
        ports: Some(vec![port("http", AGGREGATOR_CONTAINER_PORT)]),
        readiness_probe: Some(http_probe("/healthz", "http", "HTTP")),
        ..Container::default()
    };
    let mut spec = PodSpec {
        containers: vec![container],
        ..PodSpec::default()
    };
    let mut annotations = BTreeMap::new();
    if let Some(istio) = &plan.istio {
        let validator = validator(istio);
        if istio.classic_sidecar {
            // Beyond the seed: a classic sidecar starts after init containers, so an
            // init-container validator would find nothing on localhost:15000. Run it
            // beside the proxy, and hold it until the proxy is up (Istio
            // ProxyConfig.holdApplicationUntilProxyStarts).
            spec.containers.push(validator);
            annotations.insert(
                keys::PROXY_CONFIG.into(),
                r#"{"holdApplicationUntilProxyStarts": true}"#.into(),
            );
        } else {
            // The contract: pre-start, in an init container (a native sidecar, being
            // an init container with restartPolicy Always, starts before it).
            spec.init_containers = Some(vec![validator]);
        }
    }
    let template = pod_template(release, "aggregator", annotations, spec);
    set.push(
        SOURCE,
        deployment(plan, name.clone(), "aggregator", template),
    );
    set.push(
        SOURCE,
        service(
            plan,
            name,
            "aggregator",
            ServicePort {
                name: Some("http".into()),
                port: i32::from(AGGREGATOR_SERVICE_PORT),
                target_port: Some(IntOrString::Int(i32::from(AGGREGATOR_CONTAINER_PORT))),
                app_protocol: Some("http".into()),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            },
        ),
    );
}

/// The validator container: checks Envoy's CLUSTER_ID against the configured one.
fn validator(istio: &IstioPlan) -> Container {
    let ambient_annotation = EnvVar {
        name: "ISTIO_AMBIENT_REDIRECTION".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{}']", keys::AMBIENT_REDIRECTION),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let mut args = vec!["validate".to_string(), "istio".to_string()];
    if istio.classic_sidecar {
        // A regular container that exits would be restarted forever.
        args.push("--keep-running".into());
    }
    Container {
        name: "validator".into(),
        image: Some(IMAGE.into()),
        args: Some(args),
        env: Some(vec![
            // First: discovery takes the first env var whose name has CLUSTER_ID.
            env("EXPECTED_CLUSTER_ID", istio.cluster_id.clone()),
            env("CLUSTER_ID_EXPLICIT", istio.explicit.to_string()),
            env("ENVOY_ADMIN_URL", "http://localhost:15000"),
            ambient_annotation,
        ]),
        ..Container::default()
    }
}

/// The metrics agent: pushes Prometheus remote_write to the aggregator.
fn metrics_agent(plan: &Plan<'_>, set: &mut ManifestSet) {
    let release = plan.release;
    let url = names::aggregator_url(release, plan.namespace);
    let container = Container {
        name: "server".into(),
        image: Some(IMAGE.into()),
        args: Some(vec![
            "--agent".into(),
            format!("--remote-write-url=$({AGGREGATOR_URL_ENV})"),
        ]),
        env: Some(vec![env(AGGREGATOR_URL_ENV, url)]),
        ..Container::default()
    };
    let spec = PodSpec {
        containers: vec![container],
        ..PodSpec::default()
    };
    let template = pod_template(release, "server", BTreeMap::new(), spec);
    set.push(
        SOURCE,
        deployment(plan, names::server(release), "server", template),
    );
}

/// The backfill pod template, shared by the CronJob and the Job.
fn backfill_template(plan: &Plan<'_>) -> PodTemplateSpec {
    let release = plan.release;
    let mut annotations = BTreeMap::new();
    if plan.istio.is_some() {
        // Seed: the backfill's own TLS to the webhook must bypass Envoy. Auto mTLS
        // would otherwise wrap it in Istio mTLS (istio/istio#30311).
        annotations.insert(keys::EXCLUDE_OUTBOUND.into(), plan.service_port.to_string());
    }
    let mut script = format!("backfill --url \"${WEBHOOK_URL_ENV}\" --ca-file {TLS_MOUNT}/ca.crt");
    if plan.is_classic_sidecar() {
        // Beyond the seed: a classic sidecar keeps the Job's pod running until told
        // to quit (pilot-agent's /quitquitquit on 15020).
        script = format!("{script}; status=$?; {PROXY_QUIT_COMMAND}; exit $status");
    }
    let container = Container {
        name: "backfill".into(),
        image: Some(IMAGE.into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        env: Some(vec![env(
            WEBHOOK_URL_ENV,
            names::webhook_url(release, plan.namespace, plan.service_port),
        )]),
        volume_mounts: Some(vec![tls_mount()]),
        ..Container::default()
    };
    let spec = PodSpec {
        containers: vec![container],
        volumes: Some(vec![tls_volume(release, Some(&["ca.crt"]))]),
        restart_policy: Some("OnFailure".into()),
        ..PodSpec::default()
    };
    pod_template(release, "backfill", annotations, spec)
}

/// The backfill CronJob and the Job that runs once at install.
fn backfill(plan: &Plan<'_>, set: &mut ManifestSet) {
    let release = plan.release;
    let job_spec = JobSpec {
        backoff_limit: Some(2),
        template: backfill_template(plan),
        ..JobSpec::default()
    };
    set.push(
        SOURCE,
        Resource::CronJob(CronJob {
            metadata: plan.meta(names::backfill_cronjob(release), "backfill"),
            spec: Some(CronJobSpec {
                schedule: "0 */3 * * *".into(),
                concurrency_policy: Some("Forbid".into()),
                job_template: JobTemplateSpec {
                    metadata: None,
                    spec: Some(job_spec.clone()),
                },
                ..CronJobSpec::default()
            }),
            status: None,
        }),
    );
    set.push(
        SOURCE,
        Resource::Job(Job {
            metadata: plan.meta(names::backfill_job(release), "backfill"),
            spec: Some(job_spec),
            status: None,
        }),
    );
}

/// Seed, "Preventing Cross-Cluster Requests": keep aggregator traffic in-cluster.
fn fencing(plan: &Plan<'_>, set: &mut ManifestSet) {
    let Some(istio) = &plan.istio else { return };
    let release = plan.release;
    let host = names::fqdn(&names::aggregator(release), plan.namespace);
    set.push(
        SOURCE,
        Resource::DestinationRule(DestinationRule {
            metadata: plan.meta(names::fencing(release), "aggregator"),
            spec: DestinationRuleSpec {
                host: host.clone(),
                subsets: vec![Subset {
                    name: LOCAL_SUBSET.into(),
                    labels: BTreeMap::from([(CLUSTER_LABEL.to_string(), istio.cluster_id.clone())]),
                    ..Subset::default()
                }],
                ..DestinationRuleSpec::default()
            },
        }),
    );
    set.push(
        SOURCE,
        Resource::VirtualService(VirtualService {
            metadata: plan.meta(names::fencing(release), "aggregator"),
            spec: VirtualServiceSpec {
                hosts: vec![host.clone()],
                http: vec![HttpRoute {
                    route: vec![RouteDestination {
                        destination: Destination {
                            host,
                            subset: Some(LOCAL_SUBSET.into()),
                            ..Destination::default()
                        },
                        weight: Some(100),
                        ..RouteDestination::default()
                    }],
                    ..HttpRoute::default()
                }],
                ..VirtualServiceSpec::default()
            },
        }),
    );
}

/// Beyond the seed: under ambient STRICT, ztunnel rejects the API server's plain TLS
/// to the webhook (istio/istio#52874) and `excludeInboundPorts` is sidecar-only; a
/// port-level PERMISSIVE PeerAuthentication lets it through.
fn ambient_webhook_permissive(plan: &Plan<'_>, set: &mut ManifestSet) {
    if !plan.istio.as_ref().is_some_and(|i| i.ambient) {
        return;
    }
    let release = plan.release;
    set.push(
        SOURCE,
        Resource::PeerAuthentication(PeerAuthentication {
            metadata: plan.meta(names::webhook_permissive(release), "webhook"),
            spec: PeerAuthenticationSpec {
                selector: Some(WorkloadSelector {
                    match_labels: pod_labels(release, "webhook"),
                }),
                mtls: None,
                port_level_mtls: BTreeMap::from([(
                    plan.server_port.to_string(),
                    MutualTls {
                        mode: "PERMISSIVE".into(),
                    },
                )]),
            },
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{AgentValues, CertificateMode, IstioSpec, MtlsMode};
    use crate::subject::istio_active;
    use serde_json::{Value, json};
    use std::path::Path;

    const R: &str = "cz";
    const NS: &str = "cza";

    fn cluster(mode: IstioMode, sidecar: SidecarKind, values: Value) -> Cluster {
        Cluster {
            name: "alpha".into(),
            istio: IstioSpec {
                mode,
                sidecar,
                mtls: MtlsMode::Strict,
                ..IstioSpec::default()
            },
            istio_cluster_id: "alpha".into(),
            agent: AgentValues::from_values(&values).unwrap(),
            values,
        }
    }

    fn scenario(cluster: &Cluster) -> Scenario {
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
            roles: Default::default(),
            faults: Vec::new(),
            seed: 0,
            expect: BTreeMap::new(),
            severity: BTreeMap::new(),
        }
    }

    fn render(c: &Cluster) -> Result<ManifestSet, Refusal> {
        generate(&scenario(c), c, R, NS)
    }

    fn sidecar(values: Value) -> ManifestSet {
        render(&cluster(IstioMode::Sidecar, SidecarKind::Native, values)).unwrap()
    }

    fn template<'a>(set: &'a ManifestSet, kind: &str, name: &str) -> &'a PodTemplateSpec {
        set.pod_template(&crate::manifests::WorkloadRef {
            kind: kind.into(),
            name: name.into(),
        })
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
    }

    fn annotation<'a>(t: &'a PodTemplateSpec, key: &str) -> Option<&'a str> {
        t.metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    fn vwc(set: &ManifestSet) -> &ValidatingWebhookConfiguration {
        set.webhook_configurations()
            .next()
            .expect("a webhook configuration")
    }

    fn env_of<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref()?.iter().find(|e| e.name == name)
    }

    #[test]
    fn no_istio_has_no_istio_annotation_or_resource() {
        let set = render(&cluster(
            IstioMode::None,
            SidecarKind::Native,
            json!({"clusterName": "alpha"}),
        ))
        .unwrap();
        assert!(set.resources().all(|r| !r.is_istio()));
        for (w, t) in set.pod_templates() {
            let ann = t
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone())
                .unwrap_or_default();
            assert!(ann.keys().all(|k| !k.contains("istio.io")), "{w}: {ann:?}");
        }
        // No validator without Istio.
        let agg = template(&set, "Deployment", "cz-cz-aggregator")
            .spec
            .as_ref()
            .unwrap();
        assert!(agg.init_containers.is_none());
        assert_eq!(agg.containers.len(), 1);
    }

    #[test]
    fn webhook_service_and_configuration_follow_the_contract() {
        let set = sidecar(json!({"clusterName": "alpha"}));
        let svc = set.service("cz-cz-webhook").unwrap();
        let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, 443);
        assert_eq!(port.target_port, Some(IntOrString::Int(8443)));
        assert_eq!(port.app_protocol.as_deref(), Some("https"));
        let t = template(&set, "Deployment", "cz-cz-webhook");
        assert_eq!(
            svc.spec.as_ref().unwrap().selector.as_ref(),
            t.metadata.as_ref().unwrap().labels.as_ref()
        );
        let c = &t.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.name, "webhook");
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8443);
        assert_eq!(
            env_of(c, AGGREGATOR_URL_ENV).unwrap().value.as_deref(),
            Some("http://cz-cz-aggregator.cza.svc.cluster.local/collector")
        );
        let hook = &vwc(&set).webhooks.as_ref().unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(hook.timeout_seconds, Some(1));
        assert_eq!(hook.side_effects, "None");
        let svc_ref = hook.client_config.service.as_ref().unwrap();
        assert_eq!(
            (
                svc_ref.name.as_str(),
                svc_ref.namespace.as_str(),
                svc_ref.path.as_deref(),
                svc_ref.port
            ),
            ("cz-cz-webhook", "cza", Some("/validate"), Some(443))
        );
        let backfill = template(&set, "Job", "cz-cz-backfill-once");
        let bc = &backfill.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            env_of(bc, WEBHOOK_URL_ENV).unwrap().value.as_deref(),
            Some("https://cz-cz-webhook.cza.svc.cluster.local/validate")
        );
        let server = template(&set, "Deployment", "cz-cz-server");
        assert!(
            env_of(
                &server.spec.as_ref().unwrap().containers[0],
                AGGREGATOR_URL_ENV
            )
            .is_some()
        );
    }

    #[test]
    fn init_cert_secret_verifies_against_the_ca_bundle() {
        let set = sidecar(json!({"clusterName": "alpha"}));
        let secret = set.secret("cz-cz-webhook-tls").unwrap();
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = secret.data.as_ref().unwrap();
        let tls = String::from_utf8(data["tls.crt"].0.clone()).unwrap();
        let ca_bundle = vwc(&set).webhooks.as_ref().unwrap()[0]
            .client_config
            .ca_bundle
            .clone()
            .unwrap();
        let ca_bundle = String::from_utf8(ca_bundle.0).unwrap();
        assert_eq!(ca_bundle.as_bytes(), data["ca.crt"].0.as_slice());
        crate::certs::verify_server_cert(
            &ca_bundle,
            &tls,
            "cz-cz-webhook.cza.svc",
            std::time::SystemTime::now(),
        )
        .unwrap();
        assert_eq!(set.certificates().count(), 0);
        assert_eq!(set.others("Issuer").count(), 0);
    }

    #[test]
    fn sidecar_strict_excludes_ports_and_fences_with_cluster_name() {
        let set = sidecar(json!({"clusterName": "alpha"}));
        let wh = template(&set, "Deployment", "cz-cz-webhook");
        assert_eq!(annotation(wh, keys::EXCLUDE_INBOUND), Some("8443"));
        for (kind, name) in [
            ("CronJob", "cz-cz-backfill"),
            ("Job", "cz-cz-backfill-once"),
        ] {
            let t = template(&set, kind, name);
            assert_eq!(annotation(t, keys::EXCLUDE_OUTBOUND), Some("443"), "{kind}");
            let script = t.spec.as_ref().unwrap().containers[0]
                .command
                .as_ref()
                .unwrap()
                .join(" ");
            assert!(
                !script.contains(PROXY_QUIT_PATH),
                "native sidecars need no quit: {script}"
            );
        }
        let dr = set.destination_rules().next().unwrap();
        assert_eq!(
            dr.metadata.name.as_deref(),
            Some("cz-cz-aggregator-cluster-local")
        );
        assert_eq!(dr.spec.host, "cz-cz-aggregator.cza.svc.cluster.local");
        assert_eq!(dr.spec.subsets[0].name, "local-cluster");
        assert_eq!(dr.spec.subsets[0].labels[CLUSTER_LABEL], "alpha");
        let vs = set.virtual_services().next().unwrap();
        assert_eq!(vs.spec.hosts, vec![dr.spec.host.clone()]);
        let route = &vs.spec.http[0].route[0];
        assert_eq!(route.destination.subset.as_deref(), Some("local-cluster"));
        assert_eq!(route.weight, Some(100));
        assert_eq!(set.peer_authentications().count(), 0);

        // Native sidecars: the validator is an init container.
        let agg = template(&set, "Deployment", "cz-cz-aggregator");
        let spec = agg.spec.as_ref().unwrap();
        let v = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(v.name, "validator");
        assert_eq!(
            env_of(v, "EXPECTED_CLUSTER_ID").unwrap().value.as_deref(),
            Some("alpha")
        );
        assert_eq!(
            env_of(v, "CLUSTER_ID_EXPLICIT").unwrap().value.as_deref(),
            Some("false")
        );
        let field = env_of(v, "ISTIO_AMBIENT_REDIRECTION")
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .unwrap();
        assert_eq!(
            field.field_path,
            "metadata.annotations['ambient.istio.io/redirection']"
        );
        assert!(annotation(agg, keys::PROXY_CONFIG).is_none());
    }

    #[test]
    fn classic_sidecars_quit_the_proxy_and_run_the_validator_beside_it() {
        let set = render(&cluster(
            IstioMode::Sidecar,
            SidecarKind::Classic,
            json!({"clusterName": "alpha"}),
        ))
        .unwrap();
        for (kind, name) in [
            ("CronJob", "cz-cz-backfill"),
            ("Job", "cz-cz-backfill-once"),
        ] {
            let t = template(&set, kind, name);
            let cmd = t.spec.as_ref().unwrap().containers[0]
                .command
                .as_ref()
                .unwrap();
            assert!(
                cmd.last().unwrap().contains(PROXY_QUIT_COMMAND),
                "{kind}: {cmd:?}"
            );
        }
        let agg = template(&set, "Deployment", "cz-cz-aggregator");
        let spec = agg.spec.as_ref().unwrap();
        assert!(spec.init_containers.is_none());
        assert!(spec.containers.iter().any(|c| c.name == "validator"));
        assert_eq!(
            annotation(agg, keys::PROXY_CONFIG),
            Some(r#"{"holdApplicationUntilProxyStarts": true}"#)
        );
        let proxy_config: Value =
            serde_json::from_str(annotation(agg, keys::PROXY_CONFIG).unwrap()).unwrap();
        assert_eq!(proxy_config["holdApplicationUntilProxyStarts"], json!(true));
    }

    #[test]
    fn ambient_without_cluster_id_is_refused() {
        let refusal = render(&cluster(
            IstioMode::Ambient,
            SidecarKind::Native,
            json!({"clusterName": "alpha"}),
        ))
        .unwrap_err();
        assert!(
            refusal.message.contains("integrations.istio.clusterID"),
            "{}",
            refusal.message
        );
        assert!(refusal.message.contains("ambient"), "{}", refusal.message);
    }

    #[test]
    fn ambient_with_cluster_id_fences_and_opens_the_webhook_port() {
        let set = render(&cluster(
            IstioMode::Ambient,
            SidecarKind::Native,
            json!({"clusterName": "alpha", "integrations": {"istio": {"clusterID": "mesh-alpha"}}}),
        ))
        .unwrap();
        assert_eq!(
            set.destination_rules().next().unwrap().spec.subsets[0].labels[CLUSTER_LABEL],
            "mesh-alpha"
        );
        let pa = set.peer_authentications().next().unwrap();
        assert_eq!(
            pa.metadata.name.as_deref(),
            Some("cz-cz-webhook-permissive")
        );
        assert_eq!(pa.spec.port_level_mtls["8443"].mode, "PERMISSIVE");
        let wh = template(&set, "Deployment", "cz-cz-webhook");
        assert_eq!(
            Some(&pa.spec.selector.as_ref().unwrap().match_labels),
            wh.metadata.as_ref().unwrap().labels.as_ref()
        );
        let agg = template(&set, "Deployment", "cz-cz-aggregator");
        let v = &agg.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        assert_eq!(
            env_of(v, "CLUSTER_ID_EXPLICIT").unwrap().value.as_deref(),
            Some("true")
        );
    }

    #[test]
    fn cert_manager_mode_has_certificate_and_injection_but_no_secret_or_bundle() {
        let set = sidecar(json!({
            "clusterName": "alpha",
            "insightsController": {"tls": {"useCertManager": true}}
        }));
        assert!(set.secret("cz-cz-webhook-tls").is_none());
        let cert = set.certificates().next().unwrap();
        assert_eq!(
            cert.metadata.name.as_deref(),
            Some("cz-cz-webhook-certificate")
        );
        assert!(
            cert.spec
                .dns_names
                .contains(&"cz-cz-webhook.cza.svc".to_string())
        );
        assert_eq!(cert.spec.secret_name, "cz-cz-webhook-tls");
        assert_eq!(
            cert.spec.extra["issuerRef"]["name"],
            json!("cz-cz-webhook-issuer")
        );
        let issuer = set.others("Issuer").next().unwrap();
        assert_eq!(issuer["metadata"]["name"], json!("cz-cz-webhook-issuer"));
        let config = vwc(&set);
        assert_eq!(
            config.metadata.annotations.as_ref().unwrap()[keys::INJECT_CA_FROM],
            "cza/cz-cz-webhook-certificate"
        );
        assert!(
            config.webhooks.as_ref().unwrap()[0]
                .client_config
                .ca_bundle
                .is_none()
        );
        // Beyond the seed: the inbound exclusion stays (istio/istio#39290).
        let wh = template(&set, "Deployment", "cz-cz-webhook");
        assert_eq!(annotation(wh, keys::EXCLUDE_INBOUND), Some("8443"));
    }

    #[test]
    fn disabled_in_an_istio_cluster_means_no_istio_at_all() {
        let set =
            sidecar(json!({"clusterName": "alpha", "integrations": {"istio": {"enabled": false}}}));
        assert!(set.resources().all(|r| !r.is_istio()));
        for (w, t) in set.pod_templates() {
            assert!(annotation(t, keys::EXCLUDE_INBOUND).is_none(), "{w}");
            assert!(annotation(t, keys::EXCLUDE_OUTBOUND).is_none(), "{w}");
        }
    }

    #[test]
    fn cluster_id_overrides_cluster_name() {
        let set = sidecar(
            json!({"clusterName": "alpha", "integrations": {"istio": {"clusterID": "east"}}}),
        );
        assert_eq!(
            set.destination_rules().next().unwrap().spec.subsets[0].labels[CLUSTER_LABEL],
            "east"
        );
        let agg = template(&set, "Deployment", "cz-cz-aggregator");
        let v = &agg.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        assert_eq!(
            env_of(v, "EXPECTED_CLUSTER_ID").unwrap().value.as_deref(),
            Some("east")
        );
        assert_eq!(
            env_of(v, "CLUSTER_ID_EXPLICIT").unwrap().value.as_deref(),
            Some("true")
        );
    }

    #[test]
    fn istio_without_any_cluster_id_is_refused() {
        let refusal =
            render(&cluster(IstioMode::Sidecar, SidecarKind::Native, json!({}))).unwrap_err();
        assert!(
            refusal.message.contains("clusterName"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn custom_ports_flow_into_annotations_and_services() {
        let set = sidecar(json!({
            "clusterName": "alpha",
            "insightsController": {"server": {"port": 9443}, "service": {"port": 8444}}
        }));
        let wh = template(&set, "Deployment", "cz-cz-webhook");
        assert_eq!(annotation(wh, keys::EXCLUDE_INBOUND), Some("9443"));
        let job = template(&set, "Job", "cz-cz-backfill-once");
        assert_eq!(annotation(job, keys::EXCLUDE_OUTBOUND), Some("8444"));
        let url = env_of(&job.spec.as_ref().unwrap().containers[0], WEBHOOK_URL_ENV)
            .and_then(|e| e.value.clone())
            .unwrap();
        assert_eq!(
            url,
            "https://cz-cz-webhook.cza.svc.cluster.local:8444/validate"
        );
    }

    #[test]
    fn yaml_round_trips_to_the_same_objects() {
        for values in [
            json!({"clusterName": "alpha"}),
            json!({"clusterName": "alpha", "insightsController": {"tls": {"useCertManager": true}}}),
        ] {
            for (mode, kind) in [
                (IstioMode::None, SidecarKind::Native),
                (IstioMode::Sidecar, SidecarKind::Classic),
            ] {
                let set = render(&cluster(mode, kind, values.clone())).unwrap();
                let parsed =
                    crate::manifests::parse_documents(Path::new("reference"), &set.to_yaml())
                        .unwrap();
                assert_eq!(parsed.items.len(), set.items.len());
                let keys: Vec<String> = set.resources().map(Resource::key).collect();
                let parsed_keys: Vec<String> = parsed.resources().map(Resource::key).collect();
                assert_eq!(parsed_keys, keys);
            }
        }
        let ambient = render(&cluster(
            IstioMode::Ambient,
            SidecarKind::Native,
            json!({"clusterName": "a", "integrations": {"istio": {"clusterID": "a"}}}),
        ))
        .unwrap();
        let parsed =
            crate::manifests::parse_documents(Path::new("reference"), &ambient.to_yaml()).unwrap();
        assert_eq!(parsed.items.len(), ambient.items.len());
        assert_eq!(parsed.peer_authentications().count(), 1);
    }

    #[test]
    fn every_scenario_of_the_matrix_renders_or_refuses_for_the_seeds_reason() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let scenarios = crate::scenario::load_dir(&dir).unwrap();
        assert!(!scenarios.is_empty());
        for s in &scenarios {
            let rendered = crate::subject::render(&crate::subject::Subject::default(), s).unwrap();
            for (install, c) in rendered.installs.iter().zip(&s.clusters) {
                let ambient_unset = istio_active(c)
                    && c.istio.mode == IstioMode::Ambient
                    && c.agent.istio_cluster_id.is_none();
                match &install.result {
                    Ok(set) => {
                        assert!(!ambient_unset, "{}/{} must refuse", s.name, c.name);
                        assert_eq!(
                            set.manifests.resources().any(Resource::is_istio),
                            istio_active(c),
                            "{}/{}",
                            s.name,
                            c.name
                        );
                    }
                    Err(refusal) => assert!(
                        ambient_unset,
                        "{}/{} refused: {}",
                        s.name, c.name, refusal.message
                    ),
                }
            }
        }
    }
}
