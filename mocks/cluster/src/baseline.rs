//! The baseline controller of the `naive` and `sleep` policies: a plain backend sync as a
//! stock cloud controller does it. It registers ready endpoints (ENI) or the nodes that
//! carry them (Local; every node in Cluster) and removes anything else at once: no
//! weight 0, no drain wait, no finalizer, no readiness gate. The races it leaves open are
//! what the lab measures against slb-sync.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use rand::rngs::StdRng;
use slb_sync::model::{BackendKey, BackendType, SlbBackend, Weight};
use slb_sync::slb::SlbApi;

use crate::delay::Delay;
use crate::kubeproxy::{Endpoint, EndpointFeed};
use crate::AbortOnDrop;

/// How the Service maps to SLB backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMode {
    Cluster,
    Local,
    Eni,
}

/// What the baseline syncs.
#[derive(Debug, Clone)]
pub struct BaselineConfig {
    pub v_server_group_id: String,
    pub mode: BackendMode,
    /// Node name → ECS instance id.
    pub nodes: BTreeMap<String, String>,
    pub node_port: u16,
    pub container_port: u16,
    /// Pod IP → ENI id (the lab knows them; a real controller asks ECS).
    pub enis: BTreeMap<IpAddr, String>,
    /// Owner Description written on every backend.
    pub description: String,
    /// Time from an endpoint change to the sync.
    pub lag: Delay,
}

/// Backends the baseline wants for these endpoints (pure); keyed by (server id, ip, port).
pub fn desired(cfg: &BaselineConfig, eps: &[Endpoint]) -> Vec<SlbBackend> {
    let ready = eps.iter().filter(|e| e.ready && !e.terminating);
    let ecs = |id: &String, w: u32| SlbBackend {
        server_id: id.clone(),
        server_ip: None,
        port: cfg.node_port,
        weight: Weight::new(w.min(100)).unwrap_or(Weight::MAX),
        backend_type: BackendType::Ecs,
        description: cfg.description.clone(),
    };
    match cfg.mode {
        BackendMode::Cluster => cfg.nodes.values().map(|id| ecs(id, 100)).collect(),
        BackendMode::Local => {
            let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
            for e in ready {
                *per_node.entry(e.node.as_str()).or_default() += 1;
            }
            per_node
                .into_iter()
                .filter_map(|(n, c)| cfg.nodes.get(n).map(|id| ecs(id, c)))
                .collect()
        }
        BackendMode::Eni => ready
            .filter_map(|e| {
                let eni = cfg.enis.get(&e.addr.ip())?;
                Some(SlbBackend {
                    server_id: eni.clone(),
                    server_ip: Some(e.addr.ip()),
                    port: cfg.container_port,
                    weight: Weight::MAX,
                    backend_type: BackendType::Eni,
                    description: cfg.description.clone(),
                })
            })
            .collect(),
    }
}

/// The model's identity: ECS by (server id, port), ENI by (IP, port). The SLB reports an
/// ECS backend's IP too, so a raw field comparison would re-add every node on each sync.
fn key(b: &SlbBackend) -> Option<BackendKey> {
    b.key()
}

/// The writes that take `observed` to `want`: (remove, add, set weight).
pub fn diff(
    observed: &[SlbBackend],
    want: &[SlbBackend],
) -> (Vec<SlbBackend>, Vec<SlbBackend>, Vec<SlbBackend>) {
    let have: BTreeMap<_, _> = observed.iter().map(|b| (key(b), b)).collect();
    let wanted: BTreeMap<_, _> = want.iter().map(|b| (key(b), b)).collect();
    let remove = observed
        .iter()
        .filter(|b| !wanted.contains_key(&key(b)))
        .cloned()
        .collect();
    let add = want
        .iter()
        .filter(|b| !have.contains_key(&key(b)))
        .cloned()
        .collect();
    let set = want
        .iter()
        .filter(|b| have.get(&key(b)).is_some_and(|h| h.weight != b.weight))
        .cloned()
        .collect();
    (remove, add, set)
}

/// Runs the baseline until dropped: after each endpoint change (and its lag) it reads the
/// group and writes the difference: additions, weights, then removals (so the group is
/// never empty only because of the order of the calls).
pub fn spawn_baseline(
    api: Arc<dyn SlbApi>,
    cfg: BaselineConfig,
    mut feed: EndpointFeed,
    mut rng: StdRng,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(cfg.lag.sample(&mut rng)).await;
            let eps = feed.borrow_and_update().clone();
            let want = desired(&cfg, &eps);
            let synced = async {
                let group = api.describe_vserver_group(&cfg.v_server_group_id).await?;
                let (remove, add, set) = diff(&group.backends, &want);
                if !add.is_empty() {
                    api.add_backends(&cfg.v_server_group_id, &add).await?;
                }
                if !set.is_empty() {
                    api.set_backends(&cfg.v_server_group_id, &set).await?;
                }
                if !remove.is_empty() {
                    api.remove_backends(&cfg.v_server_group_id, &remove).await?;
                }
                Ok::<(), slb_sync::slb::SlbError>(())
            };
            if let Err(e) = synced.await {
                tracing::debug!(error = %e, "baseline sync failed; retrying");
                continue;
            }
            if feed.changed().await.is_err() {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, node: &str, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            addr: format!("{ip}:8080").parse().unwrap(),
            node: node.into(),
            ready,
            serving: true,
            terminating,
        }
    }

    fn cfg(mode: BackendMode) -> BaselineConfig {
        BaselineConfig {
            v_server_group_id: "rsp-web".into(),
            mode,
            nodes: BTreeMap::from([("n1".into(), "i-1".into()), ("n2".into(), "i-2".into())]),
            node_port: 30080,
            container_port: 8080,
            enis: BTreeMap::from([
                ("127.3.1.2".parse().unwrap(), "eni-1".into()),
                ("127.3.2.2".parse().unwrap(), "eni-2".into()),
            ]),
            description: "k8s/80/web/default/lab".into(),
            lag: Delay::default(),
        }
    }

    #[test]
    fn registers_only_ready_endpoints_and_drops_the_rest_at_once() {
        let eps = vec![
            ep("127.3.1.2", "n1", true, false),
            ep("127.3.2.2", "n2", false, true),
        ];
        let ids = |v: Vec<SlbBackend>| v.into_iter().map(|b| b.server_id).collect::<Vec<_>>();
        assert_eq!(
            ids(desired(&cfg(BackendMode::Cluster), &eps)),
            ["i-1", "i-2"]
        );
        assert_eq!(
            ids(desired(&cfg(BackendMode::Local), &eps)),
            ["i-1"],
            "terminating-only node removed"
        );
        assert_eq!(ids(desired(&cfg(BackendMode::Eni), &eps)), ["eni-1"]);

        let observed = desired(
            &cfg(BackendMode::Eni),
            &[
                ep("127.3.1.2", "n1", true, false),
                ep("127.3.2.2", "n2", true, false),
            ],
        );
        let (remove, add, set) = diff(&observed, &desired(&cfg(BackendMode::Eni), &eps));
        assert_eq!(
            (ids(remove), add.len(), set.len()),
            (vec!["eni-2".to_string()], 0, 0)
        );
    }
}
