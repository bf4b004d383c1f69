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

/// A key pair the API accepts. With `security_token`, calls must carry that
/// `SecurityToken` (temporary STS credentials).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    #[serde(default)]
    pub security_token: Option<String>,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
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
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
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
                if let Some(bind) = l.bind.filter(|b| !b.ip().is_loopback()) {
                    return Err(SeedError::Invalid(format!(
                        "listener {}:{} bind {bind} is not a loopback address",
                        lb.id, l.port
                    )));
                }
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
                        tags: g.tags.clone(),
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

/// A complete seed in YAML, shown by `mock-slb --help` (and parsed by a test, so the
/// help never documents a format the mock rejects).
pub const SEED_EXAMPLE: &str = r#"access_keys:   [{id: testid, secret: testsecret},
                {id: STS.tmp, secret: tmpsecret, security_token: tok}]  # token: STS keys
ecs_instances: [{id: i-node1, ip: 127.0.1.1}]
enis:          [{id: eni-pod1, ips: [127.0.2.1, 127.0.2.2]}]   # first ip is primary
load_balancers:
  - id: lb-demo
    name: demo
    backend_quota: 200               # backends over all groups (default 200)
    listeners:
      - port: 80
        protocol: tcp                # tcp | udp | http | https
        vserver_group_id: rsp-web
        connection_drain: true
        connection_drain_timeout: 30 # 10..=900 seconds (default 300)
        bind: 127.0.0.1:0            # data-plane address (default 127.0.0.1:0)
        health_check: {interval_ms: 2000, timeout_ms: 1000,
                       healthy_threshold: 3, unhealthy_threshold: 3}
    vserver_groups:
      - id: rsp-web
        name: web
        backends:
          - {server_id: i-node1, port: 30080, weight: 100, type: ecs,
             description: k8s/80/web/default/c1}
          - {server_id: eni-pod1, server_ip: 127.0.2.1, port: 8080,
             weight: 50, type: eni}
faults:
  errors: [{action: AddVServerGroupBackendServers, code: SystemBusy, status: 400, rate: 0.1}]
  latency: [{min_ms: 5, max_ms: 50}]
  qps_limit: 20
  group_write_gap_ms: 200
  propagation_delay_ms: 1000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses_and_applies() {
        let seed = Seed::parse(SEED_EXAMPLE, "example").expect("example parses");
        let mut state = State::default();
        seed.apply(&mut state).expect("example applies");
        let g = &state.v_server_groups["rsp-web"];
        assert_eq!(g.backends.len(), 2);
        assert_eq!(g.backends[1].server_ip, Some("127.0.2.1".parse().unwrap()));
        assert_eq!(seed.faults.unwrap().propagation_delay_ms, 1000);
        assert!(state.load_balancers["lb-demo"].listeners[&80].connection_drain);
    }

    #[test]
    fn bad_seeds_are_named() {
        let err = Seed::parse(
            "load_balancers: [{id: x, listeners: [{port: 80, connection_drain_timeout: 5}]}]",
            "s",
        )
        .unwrap()
        .apply(&mut State::default())
        .unwrap_err()
        .to_string();
        assert!(err.contains("outside 10..=900"), "{err}");
        let err = Seed::parse("{\"nope\": 1}", "s.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.json"), "{err}");
    }
}
