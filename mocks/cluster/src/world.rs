//! The world a lab run meets, as data: cluster delays, the SLB's propagation, health
//! check and API faults, the load, and the timings of the policies. A world is a YAML
//! file (`race-lab --scenario FILE`) or one of the built-in presets in
//! `mocks/cluster/scenarios/` (`race-lab --list-scenarios`). Every delay is a range or a
//! distribution drawn from the run's seeded RNG, so a run is repeatable from
//! (world, seed).

use std::path::Path;
use std::time::Duration;

use mock_slb::faults::propagation::{BackendPropagation, Tail};
use mock_slb::state::HealthCheck;
use mock_slb::ErrorFault;
use serde::{Deserialize, Serialize};

use crate::delay::Delay;

/// A `[min, max]` range in milliseconds, drawn uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ms(pub u64, pub u64);

impl Ms {
    pub fn delay(self) -> Delay {
        Delay::between(Duration::from_millis(self.0), Duration::from_millis(self.1))
    }
}

/// The whole description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    pub name: String,
    /// One line for `--list-scenarios`.
    pub description: String,
    #[serde(default)]
    pub cluster: ClusterWorld,
    #[serde(default)]
    pub slb: SlbWorld,
    #[serde(default)]
    pub load: LoadWorld,
    #[serde(default)]
    pub timings: Timings,
}

/// The simulated cluster's delays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterWorld {
    /// Pod change → EndpointSlice updated.
    pub endpoint_lag_ms: Ms,
    /// EndpointSlice → a node's kube-proxy rules.
    pub proxy_lag_ms: Ms,
    /// Process start → serving.
    pub startup_ms: Ms,
    /// Time the app spends on every request.
    pub response_ms: Ms,
    /// The baseline controller's reaction to an endpoint change.
    pub baseline_lag_ms: Ms,
}

impl Default for ClusterWorld {
    fn default() -> Self {
        ClusterWorld {
            endpoint_lag_ms: Ms(20, 100),
            proxy_lag_ms: Ms(20, 300),
            startup_ms: Ms(200, 800),
            response_ms: Ms(1, 5),
            baseline_lag_ms: Ms(100, 400),
        }
    }
}

/// How a written change reaches the SLB's forwarders.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Propagation {
    /// The whole configuration after one fixed delay.
    Fixed { ms: u64 },
    /// Every member change on its own delay, per kind of change.
    PerBackend {
        add: Tail,
        weight: Tail,
        remove: Tail,
    },
}

/// Failures and limits of the SLB API.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiWorld {
    /// Latency of every call.
    pub latency_ms: Option<Ms>,
    /// Account-wide calls per second; above it the API answers `Throttling`.
    pub qps_limit: Option<f64>,
    /// Errors answered for a share of calls (mock-slb's own fault settings).
    pub errors: Vec<ErrorFault>,
    /// A window in which every call fails with `ServiceUnavailable`.
    pub outage: Option<Outage>,
}

/// Every call fails for `for_ms`, starting a drawn time after the rollout began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub after_ms: Ms,
    pub for_ms: u64,
}

/// The SLB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlbWorld {
    pub propagation: Propagation,
    /// The listener's health check; absent: off. `race-lab --health-check` overrides it.
    pub health_check: Option<HealthCheck>,
    pub api: ApiWorld,
}

impl Default for SlbWorld {
    fn default() -> Self {
        SlbWorld {
            propagation: Propagation::Fixed { ms: 300 },
            health_check: None,
            api: ApiWorld::default(),
        }
    }
}

impl Propagation {
    /// The mock SLB's settings: (whole-configuration delay, per-member delays).
    pub fn mock(&self) -> (u64, Option<BackendPropagation>) {
        match *self {
            Propagation::Fixed { ms } => (ms, None),
            Propagation::PerBackend {
                add,
                weight,
                remove,
            } => (
                0,
                Some(BackendPropagation {
                    add,
                    weight,
                    remove,
                }),
            ),
        }
    }

    /// A delay by which most changes (p99 of the slowest kind) have landed.
    pub fn settled(&self) -> Duration {
        Duration::from_millis(match *self {
            Propagation::Fixed { ms } => ms,
            Propagation::PerBackend {
                add,
                weight,
                remove,
            } => add.p99_ms.max(weight.p99_ms).max(remove.p99_ms),
        })
    }
}

/// The load through the SLB listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadWorld {
    /// A short request on a new connection this often; absent: none.
    pub short_every_ms: Option<u64>,
    pub keepalive_conns: usize,
    pub keepalive_every_ms: u64,
    /// Long polls: keep-alive clients whose requests the app holds a drawn time.
    pub long_polls: usize,
    pub long_poll_ms: Ms,
    /// Streams: connections whose one response the app holds a drawn time (tens of
    /// seconds, longer than the drain window) and ends early, politely, on SIGTERM.
    pub streams: usize,
    pub stream_ms: Ms,
}

impl Default for LoadWorld {
    fn default() -> Self {
        LoadWorld {
            short_every_ms: Some(10),
            keepalive_conns: 4,
            keepalive_every_ms: 20,
            long_polls: 2,
            long_poll_ms: Ms(500, 3000),
            streams: 0,
            stream_ms: Ms(20_000, 40_000),
        }
    }
}

/// The policies' timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    /// slb-sync's drain window (`--default-drain-seconds`).
    pub drain_window_s: u32,
    /// slb-sync's kube-proxy allowance.
    pub kube_proxy_allowance_ms: u64,
    /// slb-sync's `--slb-propagation-seconds`, in milliseconds: at least the slowest
    /// change the SLB world carries (the agent cannot see the forwarders).
    pub slb_propagation_ms: u64,
    /// slb-sync's leader lease.
    pub lease_s: u32,
    /// `wait-drained --timeout` (grace = this + 30 s).
    pub wait_drained_s: u32,
    /// The `sleep` policy's preStop sleep (grace = this + 30 s).
    pub sleep_s: i64,
    /// The listener's ConnectionDrainTimeout where drain is on.
    pub connection_drain_s: u32,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            drain_window_s: 1,
            kube_proxy_allowance_ms: 1000,
            slb_propagation_ms: 1000,
            lease_s: 5,
            wait_drained_s: 20,
            sleep_s: 2,
            connection_drain_s: 10,
        }
    }
}

/// The built-in presets, in `--list-scenarios` order.
pub const PRESETS: &[(&str, &str)] = &[
    ("kind", include_str!("../scenarios/kind.yaml")),
    ("slb-tail", include_str!("../scenarios/slb-tail.yaml")),
    (
        "health-check",
        include_str!("../scenarios/health-check.yaml"),
    ),
    ("api-faults", include_str!("../scenarios/api-faults.yaml")),
    ("long-lived", include_str!("../scenarios/long-lived.yaml")),
    ("harsh", include_str!("../scenarios/harsh.yaml")),
    (
        "production-timings",
        include_str!("../scenarios/production-timings.yaml"),
    ),
];

/// Why a world could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario {what} is not valid: {message} (see `race-lab --list-scenarios` and mocks/cluster/scenarios/ for examples)")]
    Parse { what: String, message: String },
    #[error("no built-in scenario named `{0}` and no such file; `race-lab --list-scenarios` names the presets")]
    Unknown(String),
}

impl World {
    /// Parses a world from YAML; `what` names it in errors.
    pub fn parse(yaml: &str, what: &str) -> Result<World, WorldError> {
        serde_saphyr::from_str(yaml).map_err(|e| WorldError::Parse {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// A built-in preset by name, else a file by path.
    pub fn load(name_or_path: &str) -> Result<World, WorldError> {
        if let Some((_, yaml)) = PRESETS.iter().find(|(n, _)| *n == name_or_path) {
            return World::parse(yaml, name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(WorldError::Unknown(name_or_path.to_string()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: name_or_path.to_string(),
            source,
        })?;
        World::parse(&text, name_or_path)
    }
}

/// The `kind` preset: the lab's original world (the README's demo), every section at its
/// default; `scenarios/kind.yaml` spells it out and a test keeps the two equal.
impl Default for World {
    fn default() -> Self {
        World {
            name: "kind".into(),
            description: KIND_DESCRIPTION.into(),
            cluster: ClusterWorld::default(),
            slb: SlbWorld::default(),
            load: LoadWorld::default(),
            timings: Timings::default(),
        }
    }
}

const KIND_DESCRIPTION: &str = "a kind world: fixed 300 ms SLB propagation, no health \
     check, no API faults, short requests, keep-alives and long polls; shortened timings";

#[cfg(test)]
#[path = "world_tests.rs"]
mod tests;
