//! Fault injection: error rates per action and code, latency, a QPS limit, the
//! `VServerGroupProcessing` write gap and the data-plane propagation delay.
//!
//! All timing uses `tokio::time`, so tests under a paused clock control it. Every draw
//! (error dice, latency, per-backend propagation) comes from one RNG, seeded by the
//! settings' `seed` when given, so a run is repeatable from it.

pub mod propagation;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::api::error::ApiError;

/// The fault settings (seed file `faults:` section, `PUT /admin/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Injected errors, checked in order after authentication.
    pub errors: Vec<ErrorFault>,
    /// Extra latency before answering.
    pub latency: Vec<LatencyFault>,
    /// Calls per second over all actions (token bucket, burst = `qps_burst`).
    pub qps_limit: Option<f64>,
    /// Calls the account-wide bucket lets through at once after a quiet period; default
    /// one second's worth (`max(qps_limit, 1)`). A client whose own bucket allows a
    /// burst of N against a limit of the same rate needs N here, or its burst is throttled.
    pub qps_burst: Option<f64>,
    /// Calls per second per action (the real SLB throttles each API separately).
    pub action_qps_limits: BTreeMap<String, f64>,
    /// Code answered when over the QPS limit (HTTP 400).
    pub throttling_code: Option<String>,
    /// Minimum time between two writes to the same vServer group; closer writes get
    /// `VServerGroupProcessing`.
    pub group_write_gap_ms: Option<u64>,
    /// Time between a successful write and the data plane applying it (the whole
    /// configuration at once).
    pub propagation_delay_ms: u64,
    /// Instead of `propagation_delay_ms`: each member change of a group lands on its
    /// own drawn delay ([`propagation`]).
    pub backend_propagation: Option<propagation::BackendPropagation>,
    /// Seed of every draw; absent: drawn from the OS.
    pub seed: Option<u64>,
}

/// An error answered for a share of calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorFault {
    /// Action name, or absent for every action.
    #[serde(default)]
    pub action: Option<String>,
    pub code: String,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub message: Option<String>,
    /// Share of calls that fail, 0.0–1.0.
    pub rate: f64,
}

fn default_status() -> u16 {
    400
}

/// Latency uniformly drawn from `min_ms..=max_ms` for an action (or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyFault {
    #[serde(default)]
    pub action: Option<String>,
    pub min_ms: u64,
    pub max_ms: u64,
}

/// Runtime state behind the fault settings.
#[derive(Debug)]
pub struct Faults {
    pub config: FaultConfig,
    bucket: Option<(f64, Instant)>,
    action_buckets: HashMap<String, (f64, Instant)>,
    group_writes: HashMap<String, Instant>,
    pub rng: StdRng,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

fn rng_of(config: &FaultConfig) -> StdRng {
    config
        .seed
        .map_or_else(|| StdRng::from_rng(&mut rand::rng()), StdRng::seed_from_u64)
}

/// Token bucket step: refills at `limit` per second up to `burst` (default one second's
/// worth, and at least one call), takes one token.
fn take(
    bucket: &mut Option<(f64, Instant)>,
    limit: Option<f64>,
    burst: Option<f64>,
    now: Instant,
) -> bool {
    let Some(limit) = limit.filter(|l| *l > 0.0) else {
        return true;
    };
    let capacity = burst.filter(|b| *b > 0.0).unwrap_or(limit).max(1.0);
    let (tokens, last) = bucket.unwrap_or((capacity, now));
    let tokens = (tokens + now.duration_since(last).as_secs_f64() * limit).min(capacity);
    if tokens >= 1.0 {
        *bucket = Some((tokens - 1.0, now));
        true
    } else {
        *bucket = Some((tokens, now));
        false
    }
}

fn applies(filter: &Option<String>, action: &str) -> bool {
    filter.as_deref().is_none_or(|a| a == action)
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            rng: rng_of(&config),
            config,
            bucket: None,
            action_buckets: HashMap::new(),
            group_writes: HashMap::new(),
        }
    }

    /// Replaces the settings and resets the QPS bucket (and the RNG when seeded).
    pub fn set(&mut self, config: FaultConfig) {
        if config.seed.is_some() && config.seed != self.config.seed {
            self.rng = rng_of(&config);
        }
        self.config = config;
        self.bucket = None;
        self.action_buckets.clear();
    }

    /// Takes a token from the global and the action's QPS bucket, or answers the
    /// throttling error.
    pub fn throttle(&mut self, action: &str, now: Instant) -> Result<(), ApiError> {
        let global = self.config.qps_limit;
        let per_action = self.config.action_qps_limits.get(action).copied();
        let ok_global = take(&mut self.bucket, global, self.config.qps_burst, now);
        let ok_action = match per_action {
            Some(_) => {
                let mut b = self.action_buckets.get(action).copied();
                let ok = take(&mut b, per_action, None, now);
                if let Some(b) = b {
                    self.action_buckets.insert(action.to_string(), b);
                }
                ok
            }
            None => true,
        };
        if ok_global && ok_action {
            return Ok(());
        }
        let mut e = ApiError::throttling();
        if let Some(code) = &self.config.throttling_code {
            e.code = code.clone();
        }
        Err(e)
    }

    /// The latency to add to this call.
    pub fn latency(&mut self, action: &str) -> Duration {
        let rng = &mut self.rng;
        self.config
            .latency
            .iter()
            .find(|l| applies(&l.action, action))
            .map(|l| {
                let (lo, hi) = (l.min_ms.min(l.max_ms), l.max_ms.max(l.min_ms));
                Duration::from_millis(rng.random_range(lo..=hi))
            })
            .unwrap_or_default()
    }

    /// An injected error for this call, if the dice say so.
    pub fn injected_error(&mut self, action: &str) -> Option<ApiError> {
        let rng = &mut self.rng;
        self.config
            .errors
            .iter()
            .filter(|f| applies(&f.action, action))
            .find(|f| f.rate >= 1.0 || rng.random::<f64>() < f.rate)
            .map(|f| {
                ApiError::new(
                    f.status,
                    f.code.clone(),
                    f.message
                        .clone()
                        .unwrap_or_else(|| format!("Injected fault {} for {action}.", f.code)),
                )
            })
    }

    /// Checks the write gap of a group (does not record).
    pub fn check_group_gap(&self, group: &str, now: Instant) -> Result<(), ApiError> {
        let Some(gap) = self.config.group_write_gap_ms else {
            return Ok(());
        };
        match self.group_writes.get(group) {
            Some(last) if now.duration_since(*last) < Duration::from_millis(gap) => {
                Err(ApiError::new(
                    400,
                    "VServerGroupProcessing",
                    "The specified VServerGroup is processing, please try again later.",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Records a successful write to a group.
    pub fn record_group_write(&mut self, group: &str, now: Instant) {
        self.group_writes.insert(group.to_string(), now);
    }

    pub fn propagation_delay(&self) -> Duration {
        Duration::from_millis(self.config.propagation_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_refills_with_time() {
        let mut f = Faults::new(FaultConfig {
            qps_limit: Some(2.0),
            ..FaultConfig::default()
        });
        let t0 = Instant::now();
        assert!(f.throttle("A", t0).is_ok());
        assert!(f.throttle("B", t0).is_ok());
        assert_eq!(f.throttle("A", t0).unwrap_err().code, "Throttling");
        assert!(f.throttle("A", t0 + Duration::from_millis(500)).is_ok());
        assert!(f.throttle("A", t0 + Duration::from_millis(500)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_account_bucket_holds_its_configured_burst() {
        let mut f = Faults::new(FaultConfig {
            qps_limit: Some(5.0),
            qps_burst: Some(10.0),
            ..FaultConfig::default()
        });
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(f.throttle("A", t0).is_ok());
        }
        assert!(f.throttle("A", t0).is_err());
        assert!(f.throttle("A", t0 + Duration::from_millis(200)).is_ok());
        assert!(f.throttle("A", t0 + Duration::from_millis(200)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn per_action_limit_leaves_other_actions_alone() {
        let mut f = Faults::new(FaultConfig {
            action_qps_limits: [("A".to_string(), 1.0)].into(),
            ..FaultConfig::default()
        });
        let t0 = Instant::now();
        assert!(f.throttle("A", t0).is_ok());
        assert!(f.throttle("A", t0).is_err());
        for _ in 0..10 {
            assert!(f.throttle("B", t0).is_ok());
        }
        assert!(f.throttle("A", t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn error_rate_zero_never_one_always() {
        let mut f = Faults::default();
        f.set(FaultConfig {
            errors: vec![ErrorFault {
                action: Some("A".into()),
                code: "SystemBusy".into(),
                status: 503,
                message: None,
                rate: 1.0,
            }],
            ..FaultConfig::default()
        });
        assert_eq!(f.injected_error("A").unwrap().status, 503);
        assert!(f.injected_error("B").is_none());
    }
}
