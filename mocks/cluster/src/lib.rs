//! A simulated Kubernetes cluster for slb-sync's race lab: real sockets on loopback.
#![forbid(unsafe_code)]

pub mod apps;
pub mod delay;
pub mod endpoints;
pub mod http;
pub mod kubeproxy;

/// Aborts a background task when the owner goes away, so nothing outlives a lab run.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
pub mod agent_policy;
pub mod baseline;
pub mod kubelet;
pub mod load;
pub mod rollout;
pub mod scale;
pub mod scenario;
pub mod scheduler;
pub mod sim;
pub mod subnet;
pub mod world;
