//! Accept loop and per-connection proxy of one data-plane listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::{health, Conn, DataPlane, DataPlaneCounters, ListenerRt, Wrr};
use crate::state::{BackendKey, HealthCheck};

/// Binds the listener and starts its accept loop (and health checker).
pub(super) fn start(
    dp: DataPlane,
    key: (String, u16),
    bind: SocketAddr,
    health_check: Option<HealthCheck>,
) -> std::io::Result<ListenerRt> {
    let std_listener = std::net::TcpListener::bind(bind)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let addr = listener.local_addr()?;
    let mut tasks = vec![tokio::spawn(accept_loop(dp.clone(), key.clone(), listener))];
    if let Some(hc) = health_check {
        tasks.push(tokio::spawn(health::run(dp, key, hc)));
    }
    Ok(ListenerRt {
        addr,
        targets: Vec::new(),
        drain: false,
        drain_timeout: Duration::from_secs(300),
        health_check,
        health: HashMap::new(),
        wrr: Wrr::default(),
        conns: HashMap::new(),
        counters: DataPlaneCounters::default(),
        per_backend: HashMap::new(),
        tasks,
    })
}

async fn accept_loop(dp: DataPlane, key: (String, u16), listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => dp.on_accept(&key, sock),
            Err(e) => {
                tracing::warn!(error = %e, lb = %key.0, port = key.1, "data plane accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

impl DataPlane {
    fn on_accept(&self, key: &(String, u16), sock: TcpStream) {
        let mut inner = self.lock();
        let conn_id = inner.next_conn;
        inner.next_conn += 1;
        let Some(rt) = inner.listeners.get_mut(key) else {
            return;
        };
        rt.counters.accepted += 1;
        let health = &rt.health;
        let unchecked_serves = rt.health_check.is_none_or(|hc| hc.unchecked_serves);
        let candidates: Vec<_> = rt
            .targets
            .iter()
            .filter(|t| t.weight > 0)
            .filter(|t| match health.get(&t.key).and_then(|h| h.normal) {
                Some(normal) => normal,
                None => unchecked_serves,
            })
            .map(|t| (&t.key, t.weight))
            .collect();
        let Some(chosen) = rt.wrr.pick(&candidates).cloned() else {
            rt.counters.refused += 1;
            return;
        };
        let Some(addr) = rt.targets.iter().find(|t| t.key == chosen).map(|t| t.addr) else {
            rt.counters.refused += 1;
            return;
        };
        rt.counters.active += 1;
        let dp = self.clone();
        let lkey = key.clone();
        let bkey = chosen.clone();
        let task = tokio::spawn(async move {
            let connected = proxy(&dp, &lkey, &bkey, sock, addr).await;
            dp.on_close(&lkey, conn_id, connected);
        });
        rt.conns.insert(
            conn_id,
            Conn {
                key: chosen,
                abort: task.abort_handle(),
            },
        );
    }

    fn on_connected(&self, key: &(String, u16), backend: &BackendKey, ok: bool) {
        if let Some(rt) = self.lock().listeners.get_mut(key) {
            if ok {
                rt.counters.forwarded += 1;
                *rt.per_backend.entry(backend.clone()).or_default() += 1;
            } else {
                rt.counters.connect_failed += 1;
            }
        }
    }

    fn on_close(&self, key: &(String, u16), conn_id: u64, _connected: bool) {
        if let Some(rt) = self.lock().listeners.get_mut(key) {
            if rt.conns.remove(&conn_id).is_some() {
                rt.counters.active = rt.counters.active.saturating_sub(1);
            }
        }
    }
}

/// Connects to the backend and copies both ways until both sides are done.
async fn proxy(
    dp: &DataPlane,
    key: &(String, u16),
    backend_key: &BackendKey,
    mut client: TcpStream,
    addr: SocketAddr,
) -> bool {
    let mut backend = match TcpStream::connect(addr).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, %addr, "backend connect failed");
            dp.on_connected(key, backend_key, false);
            return false;
        }
    };
    dp.on_connected(key, backend_key, true);
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    true
}
