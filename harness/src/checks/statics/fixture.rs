//! Hand-written installs for the static checks' unit tests: what the reference install
//! renders (DESIGN.md section 4), written out as YAML so that each test can break one
//! line of it and see which check notices.

use std::path::Path;

use base64::Engine;

use crate::certs::{Validity, WebhookPki};
use crate::checks::{CheckId, ClusterContext, Outcome};
use crate::manifests::parse_documents;
use crate::roles;
use crate::scenario::{Scenario, load_str};
use crate::subject::InstalledSet;

/// A scenario of one cluster `alpha` with the given Istio mode, mTLS mode,
/// certificate mode and values (a YAML flow map), expecting nothing in particular.
pub fn scenario(mode: &str, mtls: &str, certificates: &str, values: &str) -> Scenario {
    scenario_with(mode, mtls, "native", certificates, values)
}

fn scenario_with(
    mode: &str,
    mtls: &str,
    sidecar: &str,
    certificates: &str,
    values: &str,
) -> Scenario {
    let expect: String = CheckId::ALL
        .iter()
        .map(|c| format!("  {c}: skip\n"))
        .collect();
    let text = format!(
        "name: fixture\ndescription: d\ncertificates: {certificates}\nclusters:\n  - name: alpha\n    \
         istio: {{mode: {mode}, mtls: {mtls}, sidecar: {sidecar}}}\n    values: {values}\nexpect:\n{expect}"
    );
    load_str(Path::new("fixture.yaml"), &text).unwrap()
}

/// A scenario and the YAML of one cluster's install.
#[derive(Clone)]
pub struct Fixture {
    pub scenario: Scenario,
    pub yaml: String,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// What differs between the install variants.
struct Variant {
    cert_manager: bool,
    ambient: bool,
    classic: bool,
    cluster_id: &'static str,
}

fn install_yaml(v: &Variant) -> String {
    let pki = WebhookPki::generate("cz-cz-webhook", "cza", Validity::default()).unwrap();
    let ca_bundle = if v.cert_manager {
        String::new()
    } else {
        format!("      caBundle: {}\n", b64(pki.ca_pem()))
    };
    let vwc_annotations = if v.cert_manager {
        "  annotations: {cert-manager.io/inject-ca-from: cza/cz-cz-webhook-certificate}\n"
    } else {
        ""
    };
    let tls = if v.cert_manager {
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: cz-cz-webhook-certificate, namespace: cza}\n\
         spec:\n  dnsNames: [cz-cz-webhook.cza.svc]\n  secretName: cz-cz-webhook-tls\n  issuerRef: {name: cz-cz-webhook-issuer}\n"
            .to_string()
    } else {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: cz-cz-webhook-tls, namespace: cza}}\ntype: kubernetes.io/tls\n\
             data:\n  ca.crt: {}\n  tls.crt: {}\n  tls.key: {}\n",
            b64(pki.ca_pem()),
            b64(pki.cert_pem()),
            b64(pki.key_pem())
        )
    };
    let quit = if v.classic {
        "; curl -fsS -X POST http://localhost:15020/quitquitquit"
    } else {
        ""
    };
    let backfill = |kind: &str, name: &str| {
        let job_spec = format!(
            "template:\n  metadata:\n    annotations:\n      traffic.sidecar.istio.io/excludeOutboundPorts: \"443\"\n  \
             spec:\n    restartPolicy: Never\n    containers:\n      - name: backfill\n        image: x\n        \
             command: [sh, -c]\n        args: [\"curl -X POST https://cz-cz-webhook.cza.svc.cluster.local/validate{quit}\"]\n"
        );
        let spec = if kind == "CronJob" {
            let indented: String = job_spec.lines().map(|l| format!("      {l}\n")).collect();
            format!("  schedule: \"0 */3 * * *\"\n  jobTemplate:\n    spec:\n{indented}")
        } else {
            job_spec.lines().map(|l| format!("  {l}\n")).collect()
        };
        format!(
            "apiVersion: batch/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: cza}}\nspec:\n{spec}"
        )
    };
    let validator_kind = if v.classic {
        "containers"
    } else {
        "initContainers"
    };
    let explicit = if v.cluster_id == "alpha" && !v.ambient {
        "false"
    } else {
        "true"
    };
    let validator = format!(
        "      {validator_kind}:\n        - name: validator\n          image: x\n          env:\n            \
         - {{name: EXPECTED_CLUSTER_ID, value: {id}}}\n            - {{name: CLUSTER_ID_EXPLICIT, value: \"{explicit}\"}}\n            \
         - name: ISTIO_AMBIENT_REDIRECTION\n              valueFrom: {{fieldRef: {{fieldPath: \"metadata.annotations['ambient.istio.io/redirection']\"}}}}\n",
        id = v.cluster_id
    );
    let (aggregator_containers, aggregator_init) = if v.classic {
        (validator.replace("      containers:\n", ""), String::new())
    } else {
        (String::new(), validator)
    };
    let peer_auth = if v.ambient {
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: cz-cz-webhook, namespace: cza}\n\
         spec:\n  selector:\n    matchLabels: {app: cz-cz-webhook}\n  portLevelMtls:\n    \"8443\": {mode: PERMISSIVE}\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: cz-cz-webhook
{vwc_annotations}webhooks:
  - name: cz-cz-webhook.cza.svc
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Ignore
    timeoutSeconds: 1
    clientConfig:
      service: {{name: cz-cz-webhook, namespace: cza, path: /validate, port: 443}}
{ca_bundle}---
apiVersion: v1
kind: Service
metadata: {{name: cz-cz-webhook, namespace: cza}}
spec:
  selector: {{app: cz-cz-webhook}}
  ports: [{{name: https, port: 443, targetPort: 8443, appProtocol: https}}]
---
{tls}---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cz-cz-webhook, namespace: cza}}
spec:
  selector: {{matchLabels: {{app: cz-cz-webhook}}}}
  template:
    metadata:
      labels: {{app: cz-cz-webhook}}
      annotations:
        traffic.sidecar.istio.io/excludeInboundPorts: "15020, 8443"
    spec:
      containers:
        - name: webhook
          image: x
          ports: [{{name: https, containerPort: 8443}}]
          env: [{{name: AGGREGATOR_URL, value: "http://cz-cz-aggregator.cza.svc.cluster.local/collector"}}]
          volumeMounts: [{{name: tls, mountPath: /etc/tls}}]
      volumes: [{{name: tls, secret: {{secretName: cz-cz-webhook-tls}}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: cz-cz-aggregator
  namespace: cza
  labels: {{app.kubernetes.io/component: aggregator}}
spec:
  selector: {{app: cz-cz-aggregator}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cz-cz-aggregator, namespace: cza}}
spec:
  selector: {{matchLabels: {{app: cz-cz-aggregator}}}}
  template:
    metadata:
      labels: {{app: cz-cz-aggregator, app.kubernetes.io/component: aggregator}}
    spec:
{aggregator_init}      containers:
        - name: aggregator
          image: x
          ports: [{{containerPort: 8080}}]
{aggregator_containers}---
{cronjob}---
{job}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: cz-cz-aggregator-cluster-local, namespace: cza}}
spec:
  host: cz-cz-aggregator.cza.svc.cluster.local
  subsets:
    - name: local-cluster
      labels:
        topology.istio.io/cluster: {cluster_id}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: cz-cz-aggregator-cluster-local, namespace: cza}}
spec:
  hosts: [cz-cz-aggregator.cza.svc.cluster.local]
  http:
    - route:
        - destination:
            host: cz-cz-aggregator.cza.svc.cluster.local
            subset: local-cluster
          weight: 100
{peer_auth}"#,
        cronjob = backfill("CronJob", "cz-cz-backfill"),
        job = backfill("Job", "cz-cz-backfill-once"),
        cluster_id = v.cluster_id,
    )
}

impl Fixture {
    /// single-sidecar-strict: native sidecars, init-cert.
    pub fn sidecar() -> Self {
        Self {
            scenario: scenario("sidecar", "strict", "init-cert", "{clusterName: alpha}"),
            yaml: install_yaml(&Variant {
                cert_manager: false,
                ambient: false,
                classic: false,
                cluster_id: "alpha",
            }),
        }
    }

    /// Classic sidecars: the backfill quits the proxy, the validator is a regular container.
    pub fn classic() -> Self {
        Self {
            scenario: scenario_with(
                "sidecar",
                "strict",
                "classic",
                "init-cert",
                "{clusterName: alpha}",
            ),
            yaml: install_yaml(&Variant {
                cert_manager: false,
                ambient: false,
                classic: true,
                cluster_id: "alpha",
            }),
        }
    }

    /// single-sidecar-strict-cert-manager.
    pub fn cert_manager() -> Self {
        Self {
            scenario: scenario("sidecar", "strict", "cert-manager", "{clusterName: alpha}"),
            yaml: install_yaml(&Variant {
                cert_manager: true,
                ambient: false,
                classic: false,
                cluster_id: "alpha",
            }),
        }
    }

    /// single-ambient-strict with an explicit clusterID `amb-1`.
    pub fn ambient() -> Self {
        Self {
            scenario: scenario(
                "ambient",
                "strict",
                "init-cert",
                "{clusterName: alpha, integrations: {istio: {clusterID: amb-1}}}",
            ),
            yaml: install_yaml(&Variant {
                cert_manager: false,
                ambient: true,
                classic: false,
                cluster_id: "amb-1",
            }),
        }
    }

    /// The same manifests in a cluster without Istio.
    pub fn no_istio() -> Self {
        Self {
            scenario: scenario("none", "permissive", "init-cert", "{clusterName: alpha}"),
            ..Self::sidecar()
        }
    }

    /// The same scenario with the YAML changed.
    pub fn edit(&self, change: impl FnOnce(&str) -> String) -> Self {
        let yaml = change(&self.yaml);
        assert_ne!(yaml, self.yaml, "the edit changed nothing");
        Self {
            scenario: self.scenario.clone(),
            yaml,
        }
    }

    /// The same manifests under another scenario.
    pub fn with_scenario(&self, scenario: Scenario) -> Self {
        Self {
            scenario,
            yaml: self.yaml.clone(),
        }
    }

    /// Runs one static check on the fixture's only cluster.
    pub fn run(&self, check: CheckId) -> Outcome {
        let manifests = parse_documents(Path::new("fixture"), &self.yaml).unwrap();
        let roles = roles::discover(&manifests, &self.scenario.roles);
        let installed = InstalledSet {
            manifests,
            roles,
            notes: Vec::new(),
        };
        let ctx = ClusterContext {
            scenario: &self.scenario,
            cluster: &self.scenario.clusters[0],
            installed: &installed,
            namespace: "cza",
            release: "cz",
        };
        super::check(check, &ctx)
    }
}

/// Adds `line` after every line containing `marker`, at the same indentation.
pub fn add_line_after(yaml: &str, marker: &str, line: &str) -> String {
    let mut out = String::new();
    for l in yaml.lines() {
        out.push_str(l);
        out.push('\n');
        if l.contains(marker) {
            let indent = l.len() - l.trim_start().len();
            out.push_str(&" ".repeat(indent));
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
