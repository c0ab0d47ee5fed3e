//! Pinned versions of everything a live run installs, and the tool versions
//! `doctor` accepts. One place, so a bump is one diff and the topology key changes
//! with it (clusters built with other versions are never reused).

use serde::Serialize;

/// Versions of the components a live run installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// kind node image (Kubernetes 1.33: native sidecars are on by default from 1.29).
    pub kind_node_image: String,
    /// Istio (istioctl must match; native sidecars are Istio's default from 1.27).
    pub istio: String,
    /// cert-manager chart version (cert-manager scenarios).
    pub cert_manager: String,
    /// cert-manager-istio-csr chart version (cert-manager scenarios).
    pub istio_csr: String,
    /// MetalLB manifests (LoadBalancer IPs for east-west gateways on kind).
    pub metallb: String,
    /// Kubernetes Gateway API CRDs (ambient east-west gateways).
    pub gateway_api: String,
    /// The CloudZero chart version used when the published chart is installed.
    pub agent_chart: String,
    /// k3s image for the k3s provider.
    pub k3s_image: String,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            kind_node_image: "kindest/node:v1.33.1".into(),
            istio: "1.27.3".into(),
            cert_manager: "v1.18.2".into(),
            istio_csr: "v0.14.2".into(),
            metallb: "v0.14.9".into(),
            gateway_api: "v1.3.0".into(),
            agent_chart: "1.2.12".into(),
            k3s_image: "rancher/k3s:v1.33.1-k3s1".into(),
        }
    }
}

/// A half-open range of supported versions `[min, below)` for a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    /// The tool.
    pub tool: &'static str,
    /// Lowest supported version.
    pub min: (u64, u64, u64),
    /// First unsupported version, when there is an upper bound.
    pub below: Option<(u64, u64, u64)>,
}

/// The tool versions `doctor` accepts.
pub const SUPPORTED: &[Supported] = &[
    // kind 0.27+ creates 1.33 node images and honours KIND_EXPERIMENTAL_DOCKER_NETWORK.
    Supported {
        tool: "kind",
        min: (0, 27, 0),
        below: Some((1, 0, 0)),
    },
    // kubectl within one minor of the 1.33 API server is the documented skew... and a
    // little more: client-side apply of our manifests works from 1.29.
    Supported {
        tool: "kubectl",
        min: (1, 29, 0),
        below: Some((2, 0, 0)),
    },
    Supported {
        tool: "helm",
        min: (3, 14, 0),
        below: Some((5, 0, 0)),
    },
    // istioctl must install the pinned Istio; 1.27 is the first with native sidecars
    // on by default.
    Supported {
        tool: "istioctl",
        min: (1, 27, 0),
        below: Some((1, 29, 0)),
    },
    Supported {
        tool: "docker",
        min: (20, 10, 0),
        below: None,
    },
];

/// Finds the first `x.y.z` (or `x.y`) in a tool's version output.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'v')
        {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let parts: Vec<u64> = rest[..end]
                .split('.')
                .filter(|p| !p.is_empty())
                .map_while(|p| p.parse().ok())
                .collect();
            if parts.len() >= 2 {
                return Some((parts[0], parts[1], parts.get(2).copied().unwrap_or(0)));
            }
            i += end.max(1);
        } else {
            i += 1;
        }
    }
    None
}

impl Supported {
    /// True when `v` is inside the range.
    pub fn accepts(&self, v: (u64, u64, u64)) -> bool {
        v >= self.min && self.below.is_none_or(|b| v < b)
    }

    /// The range in words (`>= 0.27.0, < 1.0.0`).
    pub fn describe(&self) -> String {
        let (a, b, c) = self.min;
        match self.below {
            Some((x, y, z)) => format!(">= {a}.{b}.{c}, < {x}.{y}.{z}"),
            None => format!(">= {a}.{b}.{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_versions_tools_print() {
        assert_eq!(
            parse_version("kind v0.29.0 go1.24.2 linux/amd64"),
            Some((0, 29, 0))
        );
        assert_eq!(
            parse_version("Client Version: v1.35.2\nKustomize Version: v5.7.1"),
            Some((1, 35, 2))
        );
        assert_eq!(parse_version("v3.17.3+ge4da497"), Some((3, 17, 3)));
        assert_eq!(parse_version("1.27.3"), Some((1, 27, 3)));
        assert_eq!(
            parse_version("Docker version 27.5.1, build 9f9e405"),
            Some((27, 5, 1))
        );
        assert_eq!(parse_version("no digits here"), None);
    }

    #[test]
    fn ranges_are_half_open() {
        let istioctl = SUPPORTED.iter().find(|s| s.tool == "istioctl").unwrap();
        assert!(istioctl.accepts((1, 27, 0)));
        assert!(istioctl.accepts((1, 28, 9)));
        assert!(!istioctl.accepts((1, 29, 0)));
        assert!(!istioctl.accepts((1, 26, 5)));
    }
}
