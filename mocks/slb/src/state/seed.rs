//! The seed file (JSON or YAML) that sets the mock up at start-up, and that
//! `POST /admin/seed` merges in later.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::backends::valid_description;
use super::model::{
    Backend, Eni, HealthCheck, Listener, LoadBalancer, Protocol, State, VServerGroup,
};
use super::ops::DRAIN_TIMEOUT_RANGE;
use crate::faults::FaultConfig;

/// Everything a seed may create. Every section is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Seed {
    pub access_keys: Vec<AccessKey>,
    pub ecs_instances: Vec<EcsSeed>,
    pub enis: Vec<EniSeed>,
    pub load_balancers: Vec<LoadBalancerSeed>,
    pub faults: Option<FaultConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsSeed {
    pub id: String,
    pub ip: IpAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EniSeed {
    pub id: String,
    /// Primary private IP first, then secondary ones.
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSeed {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_quota")]
    pub backend_quota: usize,
    #[serde(default)]
    pub listeners: Vec<ListenerSeed>,
    #[serde(default)]
    pub vserver_groups: Vec<GroupSeed>,
}

fn default_quota() -> usize {
    200
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSeed {
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(default)]
    pub vserver_group_id: Option<String>,
    #[serde(default)]
    pub connection_drain: bool,
    #[serde(default = "default_drain_timeout")]
    pub connection_drain_timeout: u32,
    /// Data-plane address; default `127.0.0.1:0` (ephemeral port).
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}
fn default_drain_timeout() -> u32 {
    300
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSeed {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub backends: Vec<Backend>,
}

/// A seed that does not make sense (names the object and what is wrong).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seed file {path} is neither valid JSON nor YAML: {message}")]
    Parse { path: String, message: String },
    #[error("seed: {0}")]
    Invalid(String),
}

impl Seed {
    /// Parses JSON (when the text starts with `{`) or YAML.
    pub fn parse(text: &str, path: &str) -> Result<Self, SeedError> {
        let parsed = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| SeedError::Parse {
            path: path.to_string(),
            message,
        })
    }

    /// Reads and parses a seed file.
    pub fn load(path: &str) -> Result<Self, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Merges the seed's objects into `state` (existing ids are replaced).
    pub fn apply(&self, state: &mut State) -> Result<(), SeedError> {
        for e in &self.ecs_instances {
            state.ecs_instances.insert(e.id.clone(), e.ip);
        }
        for e in &self.enis {
            if e.ips.is_empty() {
                return Err(SeedError::Invalid(format!("ENI {} has no ips", e.id)));
            }
            state.enis.insert(
                e.id.clone(),
                Eni {
                    id: e.id.clone(),
                    ips: e.ips.clone(),
                },
            );
        }
        for lb in &self.load_balancers {
            let mut listeners = BTreeMap::new();
            for l in &lb.listeners {
                if !DRAIN_TIMEOUT_RANGE.contains(&l.connection_drain_timeout) {
                    return Err(SeedError::Invalid(format!(
                        "listener {}:{} connection_drain_timeout {} is outside 10..=900",
                        lb.id, l.port, l.connection_drain_timeout
                    )));
                }
                listeners.insert(
                    l.port,
                    Listener {
                        port: l.port,
                        protocol: l.protocol,
                        v_server_group_id: l.vserver_group_id.clone(),
                        connection_drain: l.connection_drain,
                        connection_drain_timeout: l.connection_drain_timeout,
                        status: "running".to_string(),
                        health_check: l.health_check,
                        bind: l
                            .bind
                            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
                    },
                );
            }
            state.load_balancers.insert(
                lb.id.clone(),
                LoadBalancer {
                    id: lb.id.clone(),
                    name: lb.name.clone(),
                    address: "127.0.0.1".to_string(),
                    backend_quota: lb.backend_quota,
                    listeners,
                },
            );
            for g in &lb.vserver_groups {
                for b in &g.backends {
                    if b.weight > 100 || b.port == 0 {
                        return Err(SeedError::Invalid(format!(
                            "group {} backend {}: weight must be 0..=100 and port 1..=65535",
                            g.id, b.server_id
                        )));
                    }
                    if !b.description.is_empty() && !valid_description(&b.description) {
                        return Err(SeedError::Invalid(format!(
                            "group {} backend {}: bad description {:?}",
                            g.id, b.server_id, b.description
                        )));
                    }
                }
                state.v_server_groups.insert(
                    g.id.clone(),
                    VServerGroup {
                        id: g.id.clone(),
                        name: g.name.clone(),
                        load_balancer_id: lb.id.clone(),
                        backends: g.backends.clone(),
                    },
                );
            }
        }
        for lb in state.load_balancers.values() {
            for l in lb.listeners.values() {
                if let Some(g) = &l.v_server_group_id {
                    if !state.v_server_groups.contains_key(g) {
                        return Err(SeedError::Invalid(format!(
                            "listener {}:{} names unknown vServer group {g}",
                            lb.id, l.port
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
