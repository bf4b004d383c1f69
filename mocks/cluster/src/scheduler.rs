//! The scheduler: binds pending pods of one workload to nodes with the layouts the race
//! lab compares (docs/architecture.md, "Workload advice": Local mode wants an in-place layout).
//!
//! Binding is a patch of `spec.nodeName` (mock-kube has no `binding` subresource).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::AbortOnDrop;

/// Where pods go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The node with the fewest live pods of the workload (ties: node order).
    Spread,
    /// Preferred affinity to a labelled pool: always one of `pool`, the emptiest; with more
    /// replicas than pool nodes every pool node keeps a pod through a surge rollout.
    InPlace { pool: Vec<String> },
    /// Required anti-affinity: a node hosting a pod of the workload (terminating ones
    /// included, as upstream) takes no other; a pod waits pending for a free node.
    OnePerNode,
}

/// A pod's placement as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub node: String,
    pub terminating: bool,
}

/// Picks a node for one pending pod (pure).
pub fn choose(layout: &Layout, nodes: &[String], placed: &[Placed]) -> Option<String> {
    let live_on = |n: &String| {
        placed
            .iter()
            .filter(|p| &p.node == n && !p.terminating)
            .count()
    };
    let emptiest =
        |cands: &mut dyn Iterator<Item = &String>| cands.min_by_key(|n| live_on(n)).cloned();
    match layout {
        Layout::Spread => emptiest(&mut nodes.iter()),
        Layout::InPlace { pool } => emptiest(&mut nodes.iter().filter(|n| pool.contains(n))),
        Layout::OnePerNode => nodes
            .iter()
            .find(|n| !placed.iter().any(|p| &p.node == *n))
            .cloned(),
    }
}

/// Runs the scheduler for pods matching `selector` until dropped.
pub fn spawn_scheduler(
    client: kube::Client,
    namespace: &str,
    selector: &str,
    nodes: Vec<String>,
    layout: Layout,
) -> AbortOnDrop {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let cfg = watcher::Config::default().labels(selector);
    AbortOnDrop(tokio::spawn(async move {
        let (reader, writer) = reflector::store::<Pod>();
        let changed = Arc::new(Notify::new());
        let n = changed.clone();
        let _watch = AbortOnDrop(tokio::spawn(
            reflector::reflector(writer, watcher(api.clone(), cfg).default_backoff()).for_each(
                move |_| {
                    n.notify_one();
                    futures::future::ready(())
                },
            ),
        ));
        loop {
            // A retry tick too: a failed bind or a full OnePerNode layout is re-tried.
            let _ = tokio::time::timeout(Duration::from_millis(200), changed.notified()).await;
            let mut pods = reader.state();
            pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let mut placed: Vec<Placed> = pods
                .iter()
                .filter_map(|p| {
                    let node = p.spec.as_ref()?.node_name.clone()?;
                    Some(Placed {
                        node,
                        terminating: p.metadata.deletion_timestamp.is_some(),
                    })
                })
                .collect();
            for p in pods.iter().filter(|p| {
                p.spec.as_ref().is_some_and(|s| s.node_name.is_none())
                    && p.metadata.deletion_timestamp.is_none()
            }) {
                let Some(node) = choose(&layout, &nodes, &placed) else {
                    continue;
                };
                let name = p.metadata.name.clone().unwrap_or_default();
                let patch = json!({"spec": {"nodeName": node}});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => placed.push(Placed {
                        node,
                        terminating: false,
                    }),
                    Err(e) => tracing::debug!(error = %e, pod = %name, "bind failed; retrying"),
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: &str, terminating: bool) -> Placed {
        Placed {
            node: node.into(),
            terminating,
        }
    }

    #[test]
    fn layouts_choose_as_documented() {
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let placed = vec![
            at("n1", false),
            at("n2", false),
            at("n2", false),
            at("n3", true),
        ];
        assert_eq!(
            choose(&Layout::Spread, &nodes, &placed).as_deref(),
            Some("n3"),
            "terminating pods do not count"
        );
        let pool = Layout::InPlace {
            pool: vec!["n1".into(), "n2".into()],
        };
        assert_eq!(choose(&pool, &nodes, &placed).as_deref(), Some("n1"));
        assert_eq!(
            choose(&Layout::OnePerNode, &nodes, &placed),
            None,
            "terminating pods still occupy"
        );
        assert_eq!(
            choose(&Layout::OnePerNode, &nodes, &placed[..2]).as_deref(),
            Some("n3")
        );
    }
}
