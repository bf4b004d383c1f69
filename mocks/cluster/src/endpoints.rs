//! The EndpointSlice controller (pods → one EndpointSlice per Service, written through the
//! API after a propagation lag) and the feed that kube-proxies read slices through.
//!
//! Conditions follow the upstream controller: `serving` is the pod's Ready condition,
//! `terminating` is a set `deletionTimestamp`, `ready` is serving and not terminating.
//! Pods without an IP or node are left out, as upstream does.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use rand::rngs::StdRng;
use tokio::sync::{watch, Notify};

use crate::delay::Delay;
use crate::kubeproxy::{Endpoint, EndpointFeed};

/// Label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const FIELD_MANAGER: &str = "lab-endpointslice-controller";

/// The Service whose endpoints the controller maintains.
#[derive(Debug, Clone)]
pub struct ServiceEndpoints {
    pub namespace: String,
    pub service: String,
    /// Pod label selector, `k=v,k2=v2`.
    pub selector: String,
    /// Service port name (slices carry Service port names).
    pub port_name: String,
    /// Container port the endpoints listen on.
    pub target_port: i32,
    /// Time from a pod change to the slice write.
    pub lag: Delay,
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The slice the controller wants for these pods (pure).
pub fn desired_slice(svc: &ServiceEndpoints, pods: &[Arc<Pod>]) -> EndpointSlice {
    let mut eps: Vec<SliceEndpoint> = pods
        .iter()
        .filter_map(|p| {
            let ip = p
                .status
                .as_ref()?
                .pod_ip
                .clone()
                .filter(|ip| !ip.is_empty())?;
            let node = p.spec.as_ref()?.node_name.clone()?;
            let serving = pod_ready(p);
            let terminating = p.metadata.deletion_timestamp.is_some();
            Some(SliceEndpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(serving && !terminating),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                node_name: Some(node),
                target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                    kind: Some("Pod".into()),
                    name: p.metadata.name.clone(),
                    namespace: p.metadata.namespace.clone(),
                    uid: p.metadata.uid.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect();
    eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{}-lab", svc.service)),
            namespace: Some(svc.namespace.clone()),
            labels: Some(BTreeMap::from([(
                SERVICE_NAME_LABEL.to_string(),
                svc.service.clone(),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(eps),
        ports: Some(vec![EndpointPort {
            name: Some(svc.port_name.clone()),
            port: Some(svc.target_port),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

/// Runs the controller until the task is aborted. Changes within one lag are written
/// together, as the upstream controller batches them.
pub fn spawn_controller(
    client: kube::Client,
    svc: ServiceEndpoints,
    mut rng: StdRng,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &svc.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client, &svc.namespace);
        let (reader, writer) = reflector::store::<Pod>();
        let changed = Arc::new(Notify::new());
        let n = changed.clone();
        let cfg = watcher::Config::default().labels(&svc.selector);
        let _watch = crate::AbortOnDrop(tokio::spawn(
            reflector::reflector(writer, watcher(pods, cfg).default_backoff()).for_each(
                move |_| {
                    n.notify_one();
                    futures::future::ready(())
                },
            ),
        ));
        let mut last: Option<EndpointSlice> = None;
        loop {
            changed.notified().await;
            tokio::time::sleep(svc.lag.sample(&mut rng)).await;
            let slice = desired_slice(&svc, &reader.state());
            if last.as_ref() == Some(&slice) {
                continue;
            }
            let name = slice.metadata.name.clone().unwrap_or_default();
            let pp = PatchParams::apply(FIELD_MANAGER).force();
            match slices.patch(&name, &pp, &Patch::Apply(&slice)).await {
                Ok(_) => last = Some(slice),
                Err(e) => {
                    tracing::warn!(error = %e, service = %svc.service, "EndpointSlice write failed; retrying");
                    changed.notify_one();
                }
            }
        }
    })
}

/// Flattens slices into endpoints (pure).
pub fn flatten(slices: &[Arc<EndpointSlice>]) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for s in slices {
        let Some(port) = s
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port)
        else {
            continue;
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        for e in s.endpoints.iter().flatten() {
            let c = e.conditions.clone().unwrap_or_default();
            for a in &e.addresses {
                let Ok(ip) = a.parse::<IpAddr>() else {
                    continue;
                };
                out.push(Endpoint {
                    addr: SocketAddr::new(ip, port),
                    node: e.node_name.clone().unwrap_or_default(),
                    ready: c.ready.unwrap_or(false),
                    serving: c.serving.unwrap_or(false),
                    terminating: c.terminating.unwrap_or(false),
                });
            }
        }
    }
    out.sort_by_key(|e| e.addr);
    out
}

/// Watches the Service's slices and publishes their endpoints; drop the handle to stop.
pub fn endpoint_feed(
    client: kube::Client,
    namespace: &str,
    service: &str,
) -> (EndpointFeed, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(Vec::new()));
    let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
    let cfg = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
    let (reader, writer) = reflector::store::<EndpointSlice>();
    let task = tokio::spawn(
        reflector::reflector(writer, watcher(api, cfg).default_backoff()).for_each(move |ev| {
            if matches!(
                ev,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            ) {
                let eps = flatten(&reader.state());
                tx.send_if_modified(|cur| {
                    let differs = **cur != eps;
                    if differs {
                        *cur = Arc::new(eps);
                    }
                    differs
                });
            }
            futures::future::ready(())
        }),
    );
    (rx, task)
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
