//! Mesh steps: trust (a shared root, one intermediate per cluster), Istio per
//! cluster and mode, cert-manager and istio-csr, east-west gateways, endpoint
//! discovery (remote secrets).

use super::super::command::Command;
use super::super::plan::{ClusterTarget, FileContent, Phase, PkiPart, Retry, Step, WORK};
use super::super::{LiveOptions, ProviderKind};
use super::MESH_ID;
use super::clusters::multi_network;
use crate::scenario::{CertificateMode, Cluster, IstioMode, Scenario, SidecarKind};

pub(super) fn steps(
    scenario: &Scenario,
    targets: &[ClusterTarget],
    provider: &ProviderKind,
    options: &LiveOptions,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let istio: Vec<(&Cluster, &ClusterTarget)> = scenario
        .clusters
        .iter()
        .zip(targets)
        .filter(|(c, _)| c.has_istio())
        .collect();
    let multi = istio.len() > 1;
    let cert_manager = scenario.certificates == CertificateMode::CertManager;
    for (cluster, target) in &istio {
        steps.push(namespace_istio_system(cluster, target));
        if multi && !cert_manager {
            steps.push(plug_in_ca(target));
        }
        if cert_manager {
            steps.extend(cert_manager_steps(target, options));
        }
        if cluster.istio.mode == IstioMode::Ambient {
            steps.push(gateway_api_crds(target, options));
        }
        let platform = (*provider == ProviderKind::K3s).then_some("k3s");
        steps.push(install_istio(scenario, cluster, target, options, platform));
        if multi_network(scenario) {
            steps.push(east_west_gateway(cluster, target));
        }
    }
    if multi {
        for (from_cluster, from) in &istio {
            for (_, to) in istio.iter().filter(|(c, _)| c.name != from_cluster.name) {
                steps.push(remote_secret(from, to, provider));
            }
        }
    }
    steps
}

fn namespace_istio_system(cluster: &Cluster, target: &ClusterTarget) -> Step {
    let mut labels = String::new();
    if let Some(net) = &cluster.istio.network {
        // Istio's docs: "set the cluster's network" on istio-system before install.
        labels = format!("  labels:\n    topology.istio.io/network: {net}\n");
    }
    let ns = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n{labels}");
    Step::new(Phase::Mesh, "Create namespace istio-system")
        .cluster(&target.cluster)
        .command(target.kubectl().args(["apply", "-f", "-"]).stdin_text(ns))
}

/// Istio docs, "Plug in CA Certificates": a `cacerts` secret per cluster with that
/// cluster's intermediate, under one root shared by the whole mesh, so workloads in
/// different clusters trust each other.
fn plug_in_ca(target: &ClusterTarget) -> Step {
    let dir = format!("{WORK}/pki/{}", target.cluster);
    let mut step =
        Step::new(Phase::Mesh, "Plug in the mesh CA (secret cacerts)").cluster(&target.cluster);
    let mut create = target.kubectl().args([
        "create",
        "secret",
        "generic",
        "cacerts",
        "-n",
        "istio-system",
    ]);
    for part in PkiPart::ALL {
        let path = format!("{dir}/{}", part.file_name());
        step = step.file(
            path.clone(),
            "the mesh PKI",
            FileContent::Pki {
                cluster: target.cluster.clone(),
                part,
            },
        );
        create = create.arg(format!("--from-file={}={path}", part.file_name()));
    }
    step.command(create)
}

fn cert_manager_steps(target: &ClusterTarget, options: &LiveOptions) -> Vec<Step> {
    let v = &options.versions;
    let dir = format!("{WORK}/pki/{}", target.cluster);
    let mut ca = Step::new(
        Phase::Mesh,
        "Give cert-manager the mesh CA (Issuer istio-ca, secret istio-root-ca)",
    )
    .cluster(&target.cluster);
    for part in PkiPart::ALL {
        ca = ca.file(
            format!("{dir}/{}", part.file_name()),
            "the mesh PKI",
            FileContent::Pki {
                cluster: target.cluster.clone(),
                part,
            },
        );
    }
    let issuer = "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: istio-ca\n  namespace: istio-system\nspec:\n  ca:\n    secretName: istio-ca\n";
    ca = ca
        .command(target.kubectl().args([
            "create",
            "secret",
            "tls",
            "istio-ca",
            "-n",
            "istio-system",
            &format!("--cert={dir}/cert-chain.pem"),
            &format!("--key={dir}/ca-key.pem"),
        ]))
        .command(target.kubectl().args([
            "create",
            "secret",
            "generic",
            "istio-root-ca",
            "-n",
            "cert-manager",
            &format!("--from-file=ca.pem={dir}/root-cert.pem"),
        ]))
        .command(
            target
                .kubectl()
                .args(["apply", "-f", "-"])
                .stdin_text(issuer),
        );
    vec![
        Step::new(Phase::Mesh, "Install cert-manager")
            .cluster(&target.cluster)
            .command(target.helm().args([
                "upgrade",
                "--install",
                "cert-manager",
                "cert-manager",
                "--repo",
                "https://charts.jetstack.io",
                "--version",
                v.cert_manager.as_str(),
                "-n",
                "cert-manager",
                "--create-namespace",
                "--set",
                "crds.enabled=true",
                "--wait",
                "--timeout",
                "10m",
            ])),
        ca,
        // istio-csr signs workload certificates through cert-manager; istiod's own CA
        // is switched off (ENABLE_CA_SERVER=false) in the Istio install.
        Step::new(Phase::Mesh, "Install istio-csr")
            .cluster(&target.cluster)
            .command(target.helm().args([
                "upgrade",
                "--install",
                "cert-manager-istio-csr",
                "cert-manager-istio-csr",
                "--repo",
                "https://charts.jetstack.io",
                "--version",
                v.istio_csr.as_str(),
                "-n",
                "cert-manager",
                "--set",
                "app.certmanager.issuer.name=istio-ca",
                "--set",
                "app.certmanager.issuer.kind=Issuer",
                "--set",
                "app.tls.rootCAFile=/var/run/secrets/istio-csr/ca.pem",
                "--set",
                &format!("app.server.clusterID={}", target.istio_cluster_id),
                "--set",
                "volumeMounts[0].name=root-ca",
                "--set",
                "volumeMounts[0].mountPath=/var/run/secrets/istio-csr",
                "--set",
                "volumes[0].name=root-ca",
                "--set",
                "volumes[0].secret.secretName=istio-root-ca",
                "--wait",
                "--timeout",
                "10m",
            ])),
    ]
}

fn gateway_api_crds(target: &ClusterTarget, options: &LiveOptions) -> Step {
    let url = format!(
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/{}/standard-install.yaml",
        options.versions.gateway_api
    );
    Step::new(Phase::Mesh, "Install the Gateway API CRDs (ambient)")
        .cluster(&target.cluster)
        .command(
            target
                .kubectl()
                .args(["apply", "--server-side", "-f", url.as_str()]),
        )
}

/// The IstioOperator for one cluster: profile per mode, mesh ID, cluster ID,
/// network, native or classic sidecars, access logs on (the attribution probe reads
/// them), istio-csr as CA in cert-manager scenarios.
///
/// `platform` is Istio's `values.global.platform` (`k3s` moves istio-cni's
/// directories to where k3s keeps them).
pub fn istio_operator(scenario: &Scenario, cluster: &Cluster, platform: Option<&str>) -> String {
    let ambient = cluster.istio.mode == IstioMode::Ambient;
    let profile = if ambient { "ambient" } else { "default" };
    let cert_manager = scenario.certificates == CertificateMode::CertManager;
    let mut env: Vec<(&str, &str)> = Vec::new();
    if !ambient {
        // Istio 1.27 makes native sidecars the default where Kubernetes supports them;
        // set it explicitly either way so the scenario decides.
        let native = cluster.istio.sidecar == SidecarKind::Native;
        env.push((
            "ENABLE_NATIVE_SIDECARS",
            if native { "\"true\"" } else { "\"false\"" },
        ));
    }
    if ambient && multi_network(scenario) {
        // Istio docs, "Install ambient multi-primary on different networks".
        env.push(("AMBIENT_ENABLE_MULTI_NETWORK", "\"true\""));
    }
    if cert_manager {
        env.push(("ENABLE_CA_SERVER", "\"false\""));
    }
    let mut y = String::new();
    y.push_str("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n");
    y.push_str(&format!("  profile: {profile}\n"));
    y.push_str("  meshConfig:\n    accessLogFile: /dev/stdout\n");
    y.push_str("  values:\n    global:\n");
    y.push_str(&format!("      meshID: {MESH_ID}\n"));
    y.push_str(&format!(
        "      multiCluster:\n        clusterName: {}\n",
        cluster.istio_cluster_id
    ));
    y.push_str(&format!(
        "      network: {:?}\n",
        cluster.istio.network.as_deref().unwrap_or("")
    ));
    if let Some(platform) = platform {
        y.push_str(&format!("      platform: {platform}\n"));
    }
    if cert_manager {
        y.push_str("      caAddress: cert-manager-istio-csr.cert-manager.svc:443\n");
    }
    if !env.is_empty() {
        y.push_str("    pilot:\n      env:\n");
        for (k, v) in env {
            y.push_str(&format!("        {k}: {v}\n"));
        }
    }
    if cert_manager {
        y.push_str(ISTIOD_CERT_MANAGER_OVERLAY);
    }
    y
}

/// istio-csr's install guide for istiod: serve with the certificate istio-csr issues
/// (Secret `istiod-tls`) and trust the root it distributes (ConfigMap
/// `istio-ca-root-cert`), since istiod's own CA is off.
const ISTIOD_CERT_MANAGER_OVERLAY: &str = "  components:
    pilot:
      k8s:
        overlays:
          - apiVersion: apps/v1
            kind: Deployment
            name: istiod
            patches:
              - path: spec.template.spec.containers.[name:discovery].args[-1]
                value: \"--tlsCertFile=/etc/cert-manager/tls/tls.crt\"
              - path: spec.template.spec.containers.[name:discovery].args[-1]
                value: \"--tlsKeyFile=/etc/cert-manager/tls/tls.key\"
              - path: spec.template.spec.containers.[name:discovery].args[-1]
                value: \"--caCertFile=/etc/cert-manager/ca/root-cert.pem\"
              - path: spec.template.spec.containers.[name:discovery].volumeMounts[-1]
                value:
                  name: cert-manager
                  mountPath: /etc/cert-manager/tls
                  readOnly: true
              - path: spec.template.spec.containers.[name:discovery].volumeMounts[-1]
                value:
                  name: ca-root-cert
                  mountPath: /etc/cert-manager/ca
                  readOnly: true
              - path: spec.template.spec.volumes[-1]
                value:
                  name: cert-manager
                  secret:
                    secretName: istiod-tls
              - path: spec.template.spec.volumes[-1]
                value:
                  name: ca-root-cert
                  configMap:
                    defaultMode: 420
                    name: istio-ca-root-cert
";

fn install_istio(
    scenario: &Scenario,
    cluster: &Cluster,
    target: &ClusterTarget,
    options: &LiveOptions,
    platform: Option<&str>,
) -> Step {
    let path = format!("{WORK}/istio/{}.yaml", target.cluster);
    let mut step = Step::new(
        Phase::Mesh,
        format!(
            "Install Istio {} ({} mode, cluster ID {})",
            options.versions.istio,
            match cluster.istio.mode {
                IstioMode::Ambient => "ambient",
                _ => "sidecar",
            },
            cluster.istio_cluster_id
        ),
    )
    .cluster(&target.cluster)
    .file(
        path.clone(),
        "generated IstioOperator",
        FileContent::Text(istio_operator(scenario, cluster, platform)),
    )
    .command(
        target
            .istioctl()
            .args(["install", "-y", "-f", path.as_str()]),
    )
    .command(istio_rollout(target, "deployment/istiod"));
    if cluster.istio.mode == IstioMode::Ambient {
        for ds in ["daemonset/istio-cni-node", "daemonset/ztunnel"] {
            step = step.command(istio_rollout(target, ds));
        }
    }
    step.retry = Retry { attempts: 2 };
    step
}

/// Waits for an Istio component (`deployment/istiod`, `daemonset/ztunnel`) to roll
/// out in `istio-system`.
fn istio_rollout(target: &ClusterTarget, component: &str) -> Command {
    target.kubectl().args([
        "rollout",
        "status",
        "-n",
        "istio-system",
        component,
        "--timeout=300s",
    ])
}

fn east_west_gateway(cluster: &Cluster, target: &ClusterTarget) -> Step {
    let net = cluster.istio.network.clone().unwrap_or_default();
    let step = Step::new(
        Phase::Mesh,
        format!("Install the east-west gateway (network {net})"),
    )
    .cluster(&target.cluster);
    if cluster.istio.mode == IstioMode::Ambient {
        // What samples/multicluster/gen-eastwest-gateway.sh --ambient produces: a
        // Gateway API gateway of class istio-east-west terminating HBONE.
        let gw = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: istio-eastwestgateway\n  namespace: istio-system\n  labels:\n    topology.istio.io/network: {net}\nspec:\n  gatewayClassName: istio-east-west\n  listeners:\n    - name: mesh\n      port: 15008\n      protocol: HBONE\n      tls:\n        mode: Terminate\n        options:\n          gateway.istio.io/tls-terminate-mode: ISTIO_MUTUAL\n"
        );
        return step
            .command(target.kubectl().args(["apply", "-f", "-"]).stdin_text(gw))
            .command(target.kubectl().args([
                "wait",
                "-n",
                "istio-system",
                "--for=condition=Programmed",
                "gateway/istio-eastwestgateway",
                "--timeout=300s",
            ]));
    }
    let path = format!("{WORK}/istio/{}-eastwest.yaml", target.cluster);
    // What samples/multicluster/gen-eastwest-gateway.sh --network <net> produces.
    let op = format!(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata:\n  name: eastwest\nspec:\n  profile: empty\n  components:\n    ingressGateways:\n      - name: istio-eastwestgateway\n        label:\n          istio: eastwestgateway\n          app: istio-eastwestgateway\n          topology.istio.io/network: {net}\n        enabled: true\n        k8s:\n          env:\n            - name: ISTIO_META_REQUESTED_NETWORK_VIEW\n              value: {net}\n          service:\n            ports:\n              - name: status-port\n                port: 15021\n                targetPort: 15021\n              - name: tls\n                port: 15443\n                targetPort: 15443\n              - name: tls-istiod\n                port: 15012\n                targetPort: 15012\n              - name: tls-webhook\n                port: 15017\n                targetPort: 15017\n  values:\n    gateways:\n      istio-ingressgateway:\n        injectionTemplate: gateway\n    global:\n      network: {net}\n"
    );
    // samples/multicluster/expose-services.yaml: pass mTLS through to services.
    let expose = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: cross-network-gateway\n  namespace: istio-system\nspec:\n  selector:\n    istio: eastwestgateway\n  servers:\n    - port:\n        number: 15443\n        name: tls\n        protocol: TLS\n      tls:\n        mode: AUTO_PASSTHROUGH\n      hosts:\n        - \"*.local\"\n";
    step.file(
        path.clone(),
        "generated IstioOperator (east-west gateway)",
        FileContent::Text(op),
    )
    .command(
        target
            .istioctl()
            .args(["install", "-y", "-f", path.as_str()]),
    )
    .command(istio_rollout(target, "deployment/istio-eastwestgateway"))
    .command(
        target
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin_text(expose),
    )
}

/// Endpoint discovery: `from`'s API server credentials, applied in `to`, so `to`'s
/// istiod watches `from`'s endpoints (multi-primary).
fn remote_secret(from: &ClusterTarget, to: &ClusterTarget, provider: &ProviderKind) -> Step {
    let mut create = from.istioctl().args([
        "create-remote-secret",
        "--name",
        from.istio_cluster_id.as_str(),
    ]);
    if let (ProviderKind::Kind, Some(name)) = (provider, &from.kind_name) {
        // The kubeconfig says 127.0.0.1:<port>; the other cluster's istiod reaches the
        // API server by its container name on the shared Docker network.
        create = create.arg(format!("--server=https://{name}-control-plane:6443"));
    }
    Step::new(
        Phase::Mesh,
        format!(
            "Let {}'s istiod discover {}'s endpoints (remote secret)",
            to.cluster, from.cluster
        ),
    )
    .cluster(&to.cluster)
    .command(to.kubectl().args(["apply", "-f", "-"]).stdin_from(create))
}

/// For the existing provider: every install step first checks whether what it
/// installs is there, and records how to remove it when it was not.
pub(super) fn guard_for_existing(step: &mut Step) {
    let Some(first) = step.commands.first().cloned() else {
        return;
    };
    let ctx_args: Vec<String> = context_args(&first);
    let kubectl = || Command::new("kubectl").args(ctx_args.clone());
    let helm_ctx: Vec<String> = ctx_args
        .iter()
        .map(|a| {
            if a == "--context" {
                "--kube-context".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let helm = || Command::new("helm").args(helm_ctx.clone());
    // The probe and the removal of one namespaced object, as every guard below words them.
    let get_in = |kind: &str, name: &str, ns: &str| kubectl().args(["get", kind, name, "-n", ns]);
    let delete_in = |kind: &str, name: &str, ns: &str| {
        kubectl().args(["delete", kind, name, "-n", ns, "--ignore-not-found"])
    };
    let title = step.title.as_str();
    let (check, undo): (Option<Command>, Vec<Command>) = if title
        .starts_with("Create namespace istio-system")
    {
        (
            Some(kubectl().args(["get", "namespace", "istio-system"])),
            vec![kubectl().args([
                "delete",
                "namespace",
                "istio-system",
                "--ignore-not-found",
                "--wait",
            ])],
        )
    } else if title.starts_with("Plug in the mesh CA") {
        // A running istiod already has its trust, which is the user's: plugging a CA
        // in under it would change the mesh's identity on its next restart.
        (
            Some(get_in("deployment", "istiod", "istio-system")),
            vec![delete_in("secret", "cacerts", "istio-system")],
        )
    } else if title.starts_with("Install cert-manager") {
        (
            Some(get_in("deployment", "cert-manager", "cert-manager")),
            vec![helm().args(["uninstall", "cert-manager", "-n", "cert-manager"])],
        )
    } else if title.starts_with("Give cert-manager the mesh CA") {
        (
            Some(get_in("issuer", "istio-ca", "istio-system")),
            vec![
                delete_in("issuer", "istio-ca", "istio-system"),
                delete_in("secret", "istio-ca", "istio-system"),
                delete_in("secret", "istio-root-ca", "cert-manager"),
            ],
        )
    } else if title.starts_with("Install istio-csr") {
        (
            Some(get_in(
                "deployment",
                "cert-manager-istio-csr",
                "cert-manager",
            )),
            vec![helm().args(["uninstall", "cert-manager-istio-csr", "-n", "cert-manager"])],
        )
    } else if title.starts_with("Install the Gateway API CRDs") {
        (
            Some(kubectl().args(["get", "crd", "gateways.gateway.networking.k8s.io"])),
            vec![],
        )
    } else if title.starts_with("Install Istio") {
        (
            Some(get_in("deployment", "istiod", "istio-system")),
            vec![Command::new("istioctl").args(ctx_args.clone()).args([
                "uninstall",
                "--purge",
                "-y",
            ])],
        )
    } else if title.starts_with("Install the east-west gateway") {
        (
            Some(get_in("service", "istio-eastwestgateway", "istio-system")),
            vec![],
        )
    } else if let Some(ns) = title.strip_prefix("Create namespace ") {
        (
            Some(kubectl().args(["get", "namespace", ns])),
            step.undo.clone(),
        )
    } else if title.starts_with("Apply PeerAuthentication default in ") {
        let ns = title.rsplit(' ').next().unwrap_or_default().to_string();
        step.note = Some(
                "an existing PeerAuthentication `default` is the user's: it is left as it is, and the scenario's mTLS mode is not applied there".into(),
            );
        (
            Some(get_in(
                "peerauthentication.security.istio.io",
                "default",
                ns.as_str(),
            )),
            step.undo.clone(),
        )
    } else if title.starts_with("Let ") {
        // istioctl create-remote-secret --name N makes Secret istio-remote-secret-N.
        let name = match &first.stdin {
            Some(super::super::command::Stdin::Pipe(producer)) => producer
                .args
                .iter()
                .skip_while(|a| *a != "--name")
                .nth(1)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        let secret = format!("istio-remote-secret-{name}");
        (
            Some(get_in("secret", secret.as_str(), "istio-system")),
            vec![delete_in("secret", secret.as_str(), "istio-system")],
        )
    } else {
        return;
    };
    step.skip_if = check;
    step.undo = undo;
}

fn context_args(cmd: &Command) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = cmd.args.iter();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "--context" | "--kube-context" | "--kubeconfig")
            && let Some(v) = it.next()
        {
            let flag = if a == "--kube-context" {
                "--context"
            } else {
                a.as_str()
            };
            out.push(flag.to_string());
            out.push(v.clone());
        }
    }
    out
}
