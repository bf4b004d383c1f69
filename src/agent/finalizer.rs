//! The Service finalizer `slb-sync.io/cleanup`: added to managed Services, and, when a
//! Service is deleted or leaves the agent's management, the groups whose owned backends
//! must be drained and removed before it is released.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::desired::{plan_service, PlannerConfig};
use crate::index::{ClusterIndex, ServiceRef};
use crate::k8s::names::SERVICE_FINALIZER;
use crate::reconcile::GroupTarget;

/// True when the Service carries the agent's cleanup finalizer.
pub fn has_finalizer(svc: &Service) -> bool {
    svc.finalizers().iter().any(|f| f == SERVICE_FINALIZER)
}

/// The JSON patch that appends the cleanup finalizer, guarded by a `test` that the list is
/// still `current` (a concurrent writer makes it fail instead of being overwritten).
pub fn finalizer_add_patch(current: Option<&[String]>) -> Option<json_patch::Patch> {
    let patch = match current {
        None => json!([
            { "op": "add", "path": "/metadata/finalizers", "value": [SERVICE_FINALIZER] },
        ]),
        Some(list) if list.iter().any(|f| f == SERVICE_FINALIZER) => return None,
        Some(list) => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": list },
            { "op": "add", "path": "/metadata/finalizers/-", "value": SERVICE_FINALIZER },
        ]),
    };
    serde_json::from_value(patch).ok()
}

/// Adds the cleanup finalizer to `svc`; a failure is logged and retried at the next
/// event or resync of the Service.
pub async fn add_finalizer(client: kube::Client, svc: &Service) {
    let Some(patch) = finalizer_add_patch(svc.metadata.finalizers.as_deref()) else {
        return;
    };
    let namespace = svc.namespace().unwrap_or_else(|| "default".into());
    let name = svc.name_any();
    let api: Api<Service> = Api::namespaced(client, &namespace);
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => tracing::info!(%namespace, service = %name, "added the cleanup finalizer"),
        Err(err) => tracing::warn!(
            %namespace, service = %name, error = %err,
            "cannot add the cleanup finalizer; retrying at the next change or resync"
        ),
    }
}

/// Removes the cleanup finalizer (re-reading and retrying on concurrent changes).
pub async fn release_finalizer(client: kube::Client, service: &ServiceRef) {
    let api: Api<Service> = Api::namespaced(client, &service.namespace);
    match crate::k8s::release::remove_finalizer(&api, &service.name, SERVICE_FINALIZER, false).await
    {
        Ok(removal) => tracing::info!(
            namespace = %service.namespace, service = %service.name, ?removal,
            "released the cleanup finalizer"
        ),
        Err(err) => tracing::warn!(
            namespace = %service.namespace, service = %service.name, error = %err,
            "cannot release the cleanup finalizer; retrying at the next change or resync"
        ),
    }
}

/// The groups of a Service that is going away, each with an empty desired backend set, so
/// every owned backend is drained (weight 0, window) and then removed.
///
/// Planned from the Service object alone through a one-Service index that manages it
/// whatever its class or type now is, so this works after the agent's own index dropped
/// it and after a restart. Empty when the Service names no usable SLB.
pub fn cleanup_targets(
    svc: &Service,
    config: &PlannerConfig,
    default_drain_secs: u32,
) -> BTreeMap<u16, GroupTarget> {
    let mut svc = svc.clone();
    let Some(spec) = svc.spec.as_mut() else {
        return BTreeMap::new();
    };
    let class = spec.load_balancer_class.clone();
    spec.type_ = Some("LoadBalancer".into());
    for port in spec.ports.iter_mut().flatten() {
        // Backends are emptied anyway; a placeholder keeps the port plannable once the
        // Service left type LoadBalancer and lost its nodePorts.
        port.node_port.get_or_insert(30000);
    }
    let shadow_config = PlannerConfig {
        cluster_id: config.cluster_id.clone(),
        lb_class: class.unwrap_or_else(|| config.lb_class.clone()),
        manage_unclassed: true,
    };
    let mut index = ClusterIndex::new(shadow_config);
    index.apply_service(&svc);
    let service = ServiceRef::new(
        svc.namespace().unwrap_or_else(|| "default".into()),
        svc.name_any(),
    );
    let Some(desired) = plan_service(&index, &service) else {
        return BTreeMap::new();
    };
    let (Some(lb), Some(spec)) = (desired.load_balancer_id, index.lb_spec(&service)) else {
        return BTreeMap::new();
    };
    let window = Duration::from_secs(u64::from(spec.drain_window_secs(default_drain_secs)));
    desired
        .groups
        .into_iter()
        .map(|mut group| {
            group.backends.clear();
            (
                group.service_port,
                GroupTarget {
                    load_balancer_id: lb.clone(),
                    desired: group,
                    drain_window: window,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(class: Option<&str>, type_: &str, node_port: Option<i32>) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "annotations": {
                "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id": "lb-1",
                "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-vgroup-port": "rsp-1:80",
            }},
            "spec": {"type": type_, "loadBalancerClass": class,
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": node_port}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_service_that_left_type_load_balancer_still_gets_empty_cleanup_groups() {
        let config = PlannerConfig::default();
        for s in [
            svc(Some("slb-sync.io/slb"), "LoadBalancer", Some(30080)),
            svc(Some("other.io/lb"), "LoadBalancer", Some(30080)),
            svc(Some("slb-sync.io/slb"), "ClusterIP", None),
        ] {
            let targets = cleanup_targets(&s, &config, 7);
            let t = &targets[&80];
            assert_eq!(t.load_balancer_id, "lb-1");
            assert_eq!(t.desired.v_server_group_id.as_deref(), Some("rsp-1"));
            assert_eq!(t.desired.name.as_str(), "k8s/80/web/shop/kubernetes");
            assert!(t.desired.backends.is_empty());
            assert_eq!(t.drain_window, Duration::from_secs(7));
        }
    }

    #[test]
    fn no_lb_id_means_nothing_to_clean() {
        let mut s = svc(None, "LoadBalancer", Some(30080));
        s.metadata.annotations = None;
        assert!(cleanup_targets(&s, &PlannerConfig::default(), 7).is_empty());
    }

    #[test]
    fn add_patch_appends_once() {
        assert!(finalizer_add_patch(Some(&[SERVICE_FINALIZER.to_owned()])).is_none());
        let mut obj = json!({"metadata": {"finalizers": ["a"]}});
        json_patch::patch(&mut obj, &finalizer_add_patch(Some(&["a".into()])).unwrap()).unwrap();
        assert_eq!(
            obj["metadata"]["finalizers"],
            json!(["a", SERVICE_FINALIZER])
        );
        let mut obj = json!({"metadata": {}});
        json_patch::patch(&mut obj, &finalizer_add_patch(None).unwrap()).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!([SERVICE_FINALIZER]));
    }
}
