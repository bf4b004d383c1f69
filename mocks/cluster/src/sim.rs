//! The assembled cluster: mock-kube plus, per node, a kubelet and a kube-proxy, one
//! EndpointSlice controller and one scheduler for the lab's workload. The SLB and the
//! controller that syncs it (baseline or slb-sync) are outside: they see the nodes
//! through [`node_ip`]/[`instance_id`] and the pods through [`crate::kubelet::pod_ip`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mock_kube::{MockKube, MockKubeHandle};
use serde_json::json;

use crate::delay::{rng_for, Delay};
use crate::endpoints::{endpoint_feed, spawn_controller, ServiceEndpoints};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::kubeproxy::{KubeProxy, ProxyConfig, TrafficPolicy};
use crate::scheduler::{spawn_scheduler, Layout};
use crate::AbortOnDrop;

/// Everything about the simulated cluster; delays are drawn from `seed`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Second octet of every address of this cluster (`127.<subnet>.<node>.<host>`), so
    /// clusters can run side by side.
    pub subnet: u8,
    pub namespace: String,
    /// Workload and Service name (pods carry `app=<name>`).
    pub app: String,
    pub nodes: u8,
    pub node_port: u16,
    pub container_port: u16,
    pub port_name: String,
    pub policy: TrafficPolicy,
    pub layout: Layout,
    pub endpoint_lag: Delay,
    pub proxy_lag: Delay,
    pub startup: Delay,
    pub response: Delay,
    pub probe_period: Duration,
    pub idle_close: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            subnet: 10,
            namespace: "default".into(),
            app: "web".into(),
            nodes: 2,
            node_port: 30080,
            container_port: 8080,
            port_name: "http".into(),
            policy: TrafficPolicy::Cluster,
            layout: Layout::Spread,
            endpoint_lag: Delay::between(Duration::from_millis(20), Duration::from_millis(100)),
            proxy_lag: Delay::between(Duration::from_millis(100), Duration::from_millis(500)),
            startup: Delay::between(Duration::from_millis(200), Duration::from_millis(800)),
            response: Delay::between(Duration::from_millis(1), Duration::from_millis(5)),
            probe_period: Duration::from_millis(100),
            idle_close: Duration::from_millis(500),
        }
    }
}

/// Node `i` (1-based): name.
pub fn node_name(i: u8) -> String {
    format!("node-{i}")
}

/// Node `i`: the loopback address its kube-proxy listens on (the ECS instance IP).
pub fn node_ip(subnet: u8, i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, subnet, i, 1))
}

/// Node `i`: its ECS instance id.
pub fn instance_id(i: u8) -> String {
    format!("i-node{i}")
}

/// A running simulated cluster; dropping it stops everything but mock-kube, which
/// [`Sim::shutdown`] stops.
pub struct Sim {
    pub kube: MockKubeHandle,
    pub client: kube::Client,
    pub proxies: Vec<KubeProxy>,
    pub config: SimConfig,
    /// Every pod's start-to-Ready and delete-to-stopped times.
    pub times: crate::kubelet::PodTimes,
    _kubelets: Vec<Kubelet>,
    _tasks: Vec<AbortOnDrop>,
}

/// Why the cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("mock-kube failed: {0}")]
    Kube(#[from] mock_kube::MockKubeError),
    #[error(
        "cannot bind kube-proxy of {node} on {addr}: {source} (is the loopback address free?)"
    )]
    Bind {
        node: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Sim {
    /// Starts mock-kube (graceful pod deletion on), the Node objects and every component.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let kube = MockKube::builder()
            .graceful_pod_deletion(true)
            .serve()
            .await?;
        let client = kube.client()?;
        let c = &config;
        for i in 1..=c.nodes {
            kube.put(&json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node_name(i), "labels": {"kubernetes.io/hostname": node_name(i)}},
                "spec": {"providerID": format!("cn-hangzhou.{}", instance_id(i))},
                "status": {"addresses": [{"type": "InternalIP", "address": node_ip(c.subnet, i).to_string()}],
                           "conditions": [{"type": "Ready", "status": "True"}]}}))?;
        }
        let mut tasks = Vec::new();
        let svc = ServiceEndpoints {
            namespace: c.namespace.clone(),
            service: c.app.clone(),
            selector: format!("app={}", c.app),
            port_name: c.port_name.clone(),
            target_port: i32::from(c.container_port),
            lag: c.endpoint_lag,
        };
        tasks.push(AbortOnDrop(spawn_controller(
            client.clone(),
            svc,
            rng_for(c.seed, "endpoints"),
        )));
        let (feed, feed_task) = endpoint_feed(client.clone(), &c.namespace, &c.app);
        tasks.push(AbortOnDrop(feed_task));
        let nodes: Vec<String> = (1..=c.nodes).map(node_name).collect();
        tasks.push(spawn_scheduler(
            client.clone(),
            &c.namespace,
            &format!("app={}", c.app),
            nodes,
            c.layout.clone(),
        ));
        let mut proxies = Vec::new();
        let mut kubelets = Vec::new();
        let times = crate::kubelet::PodTimes::default();
        for i in 1..=c.nodes {
            let node = node_name(i);
            let addr = SocketAddr::new(node_ip(c.subnet, i), c.node_port);
            let pc = ProxyConfig {
                node: node.clone(),
                addr,
                policy: c.policy,
                lag: c.proxy_lag,
            };
            let proxy =
                KubeProxy::start(pc, feed.clone(), rng_for(c.seed, &format!("proxy/{node}")))
                    .await
                    .map_err(|source| SimError::Bind {
                        node: node.clone(),
                        addr,
                        source,
                    })?;
            proxies.push(proxy);
            let kc = KubeletConfig {
                node: node.clone(),
                subnet: c.subnet,
                node_index: i,
                namespace: c.namespace.clone(),
                container_port: c.container_port,
                startup: c.startup,
                response: c.response,
                idle_close: c.idle_close,
                probe_period: c.probe_period,
                times: times.clone(),
            };
            kubelets.push(Kubelet::start(
                client.clone(),
                kc,
                rng_for(c.seed, &format!("kubelet/{node}")),
            ));
        }
        Ok(Sim {
            kube,
            client,
            proxies,
            config,
            times,
            _kubelets: kubelets,
            _tasks: tasks,
        })
    }

    /// Stops every component and mock-kube.
    pub async fn shutdown(self) {
        let Sim {
            kube,
            proxies,
            _kubelets,
            _tasks,
            ..
        } = self;
        drop((proxies, _kubelets, _tasks));
        kube.shutdown().await;
    }
}
