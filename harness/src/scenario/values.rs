//! The agent's Helm values that the seed's rules read, extracted and type-checked.

use serde_json::Value;

/// `integrations.istio.enabled`: null, true or false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstioEnabled {
    /// null: on when the Istio CRDs are present.
    Auto,
    /// true: on, whatever the cluster has.
    On,
    /// false: off; no Istio annotations or resources at all.
    Off,
}

impl IstioEnabled {
    /// Whether Istio integration is active in a cluster that does or does not have
    /// the Istio CRDs (seed: Settings).
    pub fn resolve(self, crds_present: bool) -> bool {
        match self {
            IstioEnabled::Auto => crds_present,
            IstioEnabled::On => true,
            IstioEnabled::Off => false,
        }
    }
}

/// The values the seed talks about, with the chart's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentValues {
    /// `clusterName`.
    pub cluster_name: Option<String>,
    /// `integrations.istio.enabled`.
    pub istio_enabled: IstioEnabled,
    /// `integrations.istio.clusterID` (an empty string counts as unset, as in Helm).
    pub istio_cluster_id: Option<String>,
    /// `insightsController.tls.useCertManager`.
    pub use_cert_manager: bool,
    /// `insightsController.server.port`: the webhook container port.
    pub server_port: u16,
    /// `insightsController.service.port`: the webhook Service port.
    pub service_port: u16,
}

impl AgentValues {
    /// Extracts the values, or returns `(field, message)` for the first wrong type.
    pub fn from_values(values: &Value) -> Result<Self, (String, String)> {
        let cluster_name = opt_string(values, "clusterName")?;
        let istio_enabled = match lookup(values, "integrations.istio.enabled") {
            None | Some(Value::Null) => IstioEnabled::Auto,
            Some(Value::Bool(true)) => IstioEnabled::On,
            Some(Value::Bool(false)) => IstioEnabled::Off,
            Some(other) => {
                return Err((
                    "integrations.istio.enabled".into(),
                    format!("expected null, true or false, found {other}"),
                ));
            }
        };
        let istio_cluster_id =
            opt_string(values, "integrations.istio.clusterID")?.filter(|s| !s.is_empty());
        let use_cert_manager = match lookup(values, "insightsController.tls.useCertManager") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err((
                    "insightsController.tls.useCertManager".into(),
                    format!("expected true or false, found {other}"),
                ));
            }
        };
        Ok(Self {
            cluster_name: cluster_name.filter(|s| !s.is_empty()),
            istio_enabled,
            istio_cluster_id,
            use_cert_manager,
            server_port: port(values, "insightsController.server.port", 8443)?,
            service_port: port(values, "insightsController.service.port", 443)?,
        })
    }

    /// The seed's effective cluster ID: `integrations.istio.clusterID || clusterName`.
    pub fn effective_cluster_id(&self) -> Option<&str> {
        self.istio_cluster_id
            .as_deref()
            .or(self.cluster_name.as_deref())
    }
}

/// Looks up a dotted path in a JSON object.
pub fn lookup<'a>(values: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(values, |v, key| v.as_object()?.get(key))
}

fn opt_string(values: &Value, field: &str) -> Result<Option<String>, (String, String)> {
    match lookup(values, field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err((field.into(), format!("expected a string, found {other}"))),
    }
}

fn port(values: &Value, field: &str, default: u16) -> Result<u16, (String, String)> {
    match lookup(values, field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| (field.into(), format!("{n} is not a port (1-65535)"))),
        Some(other) => Err((
            field.into(),
            format!("expected a port number, found {other}"),
        )),
    }
}

/// Merges `overlay` into `base` the way Helm merges values files: maps recursively,
/// everything else replaced.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn effective_cluster_id_prefers_explicit_and_ignores_empty() {
        let v = AgentValues::from_values(
            &json!({"clusterName": "a", "integrations": {"istio": {"clusterID": "b"}}}),
        )
        .unwrap();
        assert_eq!(v.effective_cluster_id(), Some("b"));
        let v = AgentValues::from_values(
            &json!({"clusterName": "a", "integrations": {"istio": {"clusterID": ""}}}),
        )
        .unwrap();
        assert_eq!(v.effective_cluster_id(), Some("a"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = AgentValues::from_values(&json!({"integrations": {"istio": {"enabled": "yes"}}}))
            .unwrap_err();
        assert_eq!(e.0, "integrations.istio.enabled");
        let e =
            AgentValues::from_values(&json!({"insightsController": {"server": {"port": 70000}}}))
                .unwrap_err();
        assert_eq!(e.0, "insightsController.server.port");
    }

    #[test]
    fn deep_merge_merges_maps_and_replaces_scalars() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": 3});
        deep_merge(&mut base, &json!({"a": {"b": 9}, "d": null}));
        assert_eq!(base, json!({"a": {"b": 9, "c": 2}, "d": null}));
    }
}
