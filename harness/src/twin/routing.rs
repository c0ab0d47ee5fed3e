//! HTTP routing in a client sidecar: the VirtualService and DestinationRule of the
//! client's own cluster (each primary's istiod reads its own cluster's config) applied
//! to the endpoints of every cluster of the mesh.

use super::model::{Endpoint, Reach, split_host};
use super::state::Shared;
use crate::manifests::{DestinationRule, RouteDestination, VirtualService};

/// The endpoints one request may go to, and how they were chosen (for the hop).
///
/// Istio semantics modelled (networking.istio.io/v1 VirtualService and DestinationRule
/// reference): the first VirtualService whose `hosts` names the host applies; its
/// first HTTP route is taken (match conditions are not modelled); a destination is
/// picked by `weight` (a lone destination without weight gets 100); its `subset`
/// selects endpoints whose workload instance labels include every subset label; a
/// subset the DestinationRule does not define has no endpoints (Envoy answers 503).
pub fn route(
    shared: &Shared,
    pod: usize,
    host: &str,
    port: u16,
) -> Result<(Vec<Endpoint>, String), String> {
    let p = &shared.model.pods[pod];
    let cluster = &shared.model.clusters[p.cluster];
    let target = split_host(host, &p.namespace);
    let vs = cluster
        .manifests
        .virtual_services()
        .find(|vs| names_host(vs_namespace(vs, &p.namespace), &vs.spec.hosts, &target));
    // Without a route to follow, Istio sends to the Service's endpoints in every
    // cluster (namespace sameness).
    let default_endpoints = || {
        shared
            .model
            .endpoints(&target.0, &target.1, port, Reach::Mesh)
    };
    let Some(vs) = vs else {
        return Ok((
            default_endpoints(),
            format!(
                "{}.{}:{port}: no VirtualService; endpoints of every cluster (namespace sameness)",
                target.0, target.1
            ),
        ));
    };
    let vs_name = vs.metadata.name.clone().unwrap_or_default();
    let Some(http) = vs.spec.http.first().filter(|h| !h.route.is_empty()) else {
        return Ok((
            default_endpoints(),
            format!("VirtualService/{vs_name} has no HTTP route; default routing across clusters"),
        ));
    };
    let (weights, total) = route_weights(&http.route)
        .ok_or_else(|| format!("VirtualService/{vs_name}: route weights overflow"))?;
    if total == 0 {
        return Err(format!(
            "VirtualService/{vs_name}: every route has weight 0"
        ));
    }
    let mut draw = shared.pods[pod]
        .rng
        .lock()
        .map_err(|_| "rng poisoned".to_string())?
        .u64(..total);
    let mut chosen = &http.route[0];
    for (r, w) in http.route.iter().zip(&weights) {
        if draw < *w {
            chosen = r;
            break;
        }
        draw -= w;
    }
    let dest_host = if chosen.destination.host.is_empty() {
        host.to_string()
    } else {
        chosen.destination.host.clone()
    };
    let dest = split_host(&dest_host, vs_namespace(vs, &p.namespace));
    let mut eps = shared.model.endpoints(&dest.0, &dest.1, port, Reach::Mesh);
    let Some(subset) = &chosen.destination.subset else {
        return Ok((
            eps,
            format!(
                "VirtualService/{vs_name} -> {}.{} (no subset)",
                dest.0, dest.1
            ),
        ));
    };
    let dr = cluster.manifests.destination_rules().find(|dr| {
        names_host(
            dr_namespace(dr, &p.namespace),
            std::slice::from_ref(&dr.spec.host),
            &dest,
        )
    });
    let Some(labels) = dr
        .and_then(|dr| dr.spec.subsets.iter().find(|s| &s.name == subset))
        .map(|s| &s.labels)
    else {
        return Err(format!(
            "VirtualService/{vs_name} routes to subset `{subset}`, which no DestinationRule for {}.{} defines",
            dest.0, dest.1
        ));
    };
    eps.retain(|ep| labels.iter().all(|(k, v)| ep.labels.get(k) == Some(v)));
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok((
        eps,
        format!(
            "VirtualService/{vs_name} -> subset `{subset}` ({selector}) of {}.{}",
            dest.0, dest.1
        ),
    ))
}

/// Each destination's weight (a lone destination without weight gets 100, negative
/// weights count as 0) and their sum; `None` when the sum overflows, since the
/// weights come from the chart's VirtualService and three of i64::MAX would.
fn route_weights(routes: &[RouteDestination]) -> Option<(Vec<u64>, u64)> {
    let weights: Vec<u64> = if let [only] = routes {
        vec![only.weight.map_or(100, |w| w.max(0) as u64)]
    } else {
        routes
            .iter()
            .map(|r| r.weight.unwrap_or(0).max(0) as u64)
            .collect()
    };
    let total = weights
        .iter()
        .try_fold(0u64, |sum, w| sum.checked_add(*w))?;
    Some((weights, total))
}

fn vs_namespace<'a>(vs: &'a VirtualService, default: &'a str) -> &'a str {
    vs.metadata.namespace.as_deref().unwrap_or(default)
}

fn dr_namespace<'a>(dr: &'a DestinationRule, default: &'a str) -> &'a str {
    dr.metadata.namespace.as_deref().unwrap_or(default)
}

/// True when one of `hosts` (short names resolve in the object's namespace, Istio's
/// rule for VirtualService and DestinationRule hosts) is the target Service.
fn names_host(object_namespace: &str, hosts: &[String], target: &(String, String)) -> bool {
    hosts
        .iter()
        .any(|h| &split_host(h, object_namespace) == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(weight: Option<i64>) -> RouteDestination {
        RouteDestination {
            weight,
            ..RouteDestination::default()
        }
    }

    #[test]
    fn a_lone_destination_without_weight_gets_100() {
        assert_eq!(route_weights(&[weighted(None)]), Some((vec![100], 100)));
    }

    #[test]
    fn several_destinations_count_missing_and_negative_weights_as_zero() {
        let routes = [weighted(Some(80)), weighted(None), weighted(Some(-5))];
        assert_eq!(route_weights(&routes), Some((vec![80, 0, 0], 80)));
    }

    #[test]
    fn weights_whose_sum_overflows_are_refused_not_wrapped() {
        let routes = [
            weighted(Some(i64::MAX)),
            weighted(Some(i64::MAX)),
            weighted(Some(i64::MAX)),
        ];
        assert_eq!(route_weights(&routes), None);
    }
}
