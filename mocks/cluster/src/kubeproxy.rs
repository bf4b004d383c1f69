//! kube-proxy for one node: a NodePort listener on the node's loopback address that
//! forwards TCP to endpoints from its own, lagging view of the Service's endpoints.
//!
//! Rule selection follows kube-proxy: `Cluster` forwards to any ready endpoint; `Local`
//! only to endpoints on this node, falling back to serving+terminating ones when none is
//! ready. With no usable endpoint a real node has no rule and the SYN is dropped or
//! reset; here the proxy answers `503` with `X-Lab-Cause: no-rules` so the client can
//! name the race. When the chosen endpoint refuses (its pod is gone), it answers
//! `X-Lab-Cause: stopped`. Established connections keep flowing after rules change, as
//! conntrack keeps them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex};

use crate::apps::failure_response;
use crate::delay::Delay;

/// `externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

/// One endpoint as an EndpointSlice states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub node: String,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// Endpoints of the Service as the API currently states them (sender side: the
/// EndpointSlice watcher).
pub type EndpointFeed = watch::Receiver<Arc<Vec<Endpoint>>>;

/// Settings of one node's proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub node: String,
    /// NodePort address (node IP and port).
    pub addr: SocketAddr,
    pub policy: TrafficPolicy,
    /// How late this proxy applies each endpoint change.
    pub lag: Delay,
}

/// Counters a test or the lab reads.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub forwarded: AtomicU64,
    pub no_rules: AtomicU64,
    pub refused: AtomicU64,
}

/// A running proxy; dropping it stops accepting.
#[derive(Debug)]
pub struct KubeProxy {
    addr: SocketAddr,
    view: watch::Receiver<Arc<Vec<Endpoint>>>,
    pub counters: Arc<ProxyCounters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The endpoints a node's rules send traffic to.
pub fn targets(view: &[Endpoint], node: &str, policy: TrafficPolicy) -> Vec<SocketAddr> {
    let local = |e: &&Endpoint| policy == TrafficPolicy::Cluster || e.node == node;
    let ready: Vec<_> = view
        .iter()
        .filter(local)
        .filter(|e| e.ready && !e.terminating)
        .map(|e| e.addr)
        .collect();
    if !ready.is_empty() || policy == TrafficPolicy::Cluster {
        return ready;
    }
    view.iter()
        .filter(local)
        .filter(|e| e.serving && e.terminating)
        .map(|e| e.addr)
        .collect()
}

impl KubeProxy {
    /// Binds the NodePort and starts following `feed` with lag drawn from `rng`.
    pub async fn start(
        cfg: ProxyConfig,
        mut feed: EndpointFeed,
        mut rng: StdRng,
    ) -> std::io::Result<KubeProxy> {
        let listener = TcpListener::bind(cfg.addr).await?;
        let addr = listener.local_addr()?;
        let (view_tx, view) = watch::channel(Arc::new(Vec::new()));
        let view_tx = Arc::new(view_tx);
        // Apply each change after its lag, never going back to an older snapshot.
        let applied = Arc::new(Mutex::new(0u64));
        let lag = cfg.lag;
        let follower = tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                let snapshot = feed.borrow_and_update().clone();
                seq += 1;
                let (tx, applied, d, my) =
                    (view_tx.clone(), applied.clone(), lag.sample(&mut rng), seq);
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let mut last = applied.lock().await;
                    if my > *last {
                        *last = my;
                        tx.send_replace(snapshot);
                    }
                });
                if feed.changed().await.is_err() {
                    return;
                }
            }
        });
        let counters = Arc::new(ProxyCounters::default());
        let (c, v, node, policy) = (counters.clone(), view.clone(), cfg.node.clone(), cfg.policy);
        let acceptor = tokio::spawn(async move {
            let rr = Arc::new(AtomicUsize::new(0));
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let candidates = targets(&v.borrow(), &node, policy);
                let pick = (!candidates.is_empty())
                    .then(|| candidates[rr.fetch_add(1, Ordering::Relaxed) % candidates.len()]);
                tokio::spawn(forward(client, pick, c.clone()));
            }
        });
        Ok(KubeProxy {
            addr,
            view,
            counters,
            tasks: vec![follower, acceptor],
        })
    }

    /// The NodePort address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoints this proxy currently forwards by (its lagging view).
    pub fn view(&self) -> Arc<Vec<Endpoint>> {
        self.view.borrow().clone()
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn forward(mut client: TcpStream, pick: Option<SocketAddr>, c: Arc<ProxyCounters>) {
    let _ = client.set_nodelay(true);
    let Some(target) = pick else {
        c.no_rules.fetch_add(1, Ordering::Relaxed);
        let _ = client.write_all(&failure_response("no-rules")).await;
        let _ = client.shutdown().await;
        return;
    };
    match TcpStream::connect(target).await {
        Ok(mut backend) => {
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            let _ = backend.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        }
        Err(_) => {
            c.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.write_all(&failure_response("stopped")).await;
            let _ = client.shutdown().await;
        }
    }
}

#[cfg(test)]
#[path = "kubeproxy_tests.rs"]
mod tests;
