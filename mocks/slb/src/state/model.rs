//! The control-plane objects the mock keeps: SLB instances, listeners, vServer groups,
//! backends, and the ECS instances and ENIs that backends point at.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Backend server type as the SLB spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    Ecs,
    Eni,
}

impl BackendType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::Eni => "eni",
        }
    }
}

/// Identity of a member of a vServer group: ECS by (ServerId, Port); ENI by
/// (ServerId, ServerIp, Port), because one ENI may carry several IPs in one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BackendKey {
    pub server_id: String,
    pub server_ip: Option<IpAddr>,
    pub port: u16,
}

/// One member of a vServer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub server_id: String,
    pub port: u16,
    pub weight: u8,
    #[serde(rename = "type", default = "default_type")]
    pub kind: BackendType,
    #[serde(default)]
    pub description: String,
    /// Recorded for ENI backends (and for ECS when the caller gave one).
    #[serde(default)]
    pub server_ip: Option<IpAddr>,
}

fn default_type() -> BackendType {
    BackendType::Ecs
}

impl Backend {
    pub fn key(&self) -> BackendKey {
        BackendKey {
            server_id: self.server_id.clone(),
            server_ip: match self.kind {
                BackendType::Eni => self.server_ip,
                BackendType::Ecs => None,
            },
            port: self.port,
        }
    }
}

/// A vServer group of one SLB instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VServerGroup {
    pub id: String,
    pub name: String,
    pub load_balancer_id: String,
    pub backends: Vec<Backend>,
    /// Resource tags (`Tag.N.Key`/`Tag.N.Value` of `CreateVServerGroup`).
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Http,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Optional TCP health check of a listener's backends (data plane only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive successes that make an abnormal backend normal.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that make a backend abnormal.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    /// Whether a backend whose health is not known yet (`unavailable`: added, not yet
    /// checked `healthy_threshold` times) gets new connections. Not a setting of the
    /// vendor's: how CLB treats such a backend is undocumented, so the mock plays both.
    #[serde(default = "default_unchecked_serves")]
    pub unchecked_serves: bool,
}

fn default_unchecked_serves() -> bool {
    true
}

fn default_interval_ms() -> u64 {
    2000
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_threshold() -> u32 {
    3
}

/// A listener of an SLB instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub port: u16,
    pub protocol: Protocol,
    pub v_server_group_id: Option<String>,
    pub connection_drain: bool,
    pub connection_drain_timeout: u32,
    /// `running` or `stopped`.
    pub status: String,
    pub health_check: Option<HealthCheck>,
    /// Where the data plane should listen (TCP listeners; port 0 = ephemeral).
    pub bind: SocketAddr,
}

/// An SLB instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadBalancer {
    pub id: String,
    pub name: String,
    pub address: String,
    /// Most backends (over all its groups) the instance accepts.
    pub backend_quota: usize,
    pub listeners: BTreeMap<u16, Listener>,
}

/// An ENI and its private IPs (the first is the primary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eni {
    pub id: String,
    pub ips: Vec<IpAddr>,
}

/// The whole control-plane state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub v_server_groups: BTreeMap<String, VServerGroup>,
    pub ecs_instances: BTreeMap<String, IpAddr>,
    pub enis: BTreeMap<String, Eni>,
    #[serde(skip)]
    pub next_id: u64,
}

impl State {
    /// A fresh id with the SLB's prefix style (`rsp-…`).
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-mock{:08x}", self.next_id)
    }

    /// Backends of all groups of one instance (the quota counts these).
    pub fn backend_count(&self, lb_id: &str) -> usize {
        self.v_server_groups
            .values()
            .filter(|g| g.load_balancer_id == lb_id)
            .map(|g| g.backends.len())
            .sum()
    }

    /// Where traffic for this backend goes: the ECS instance's IP, or the ENI IP.
    pub fn backend_ip(&self, b: &Backend) -> Option<IpAddr> {
        match b.kind {
            BackendType::Ecs => self.ecs_instances.get(&b.server_id).copied(),
            BackendType::Eni => b.server_ip.or_else(|| {
                self.enis
                    .get(&b.server_id)
                    .and_then(|e| e.ips.first().copied())
            }),
        }
    }
}
