//! Per-backend propagation: every member change of a vServer group (add, weight change,
//! removal) reaches the data plane after a delay of its own, drawn from a heavy-tailed
//! distribution per kind of change. The real SLB answers a write before its forwarders
//! carry it, and they do not carry one call's members in one step; a controller that
//! trusts the API's answer as the data plane's state meets exactly this.
//!
//! Changes of one member land in the order they were written (a later change never
//! overtakes an earlier one of the same member); changes of different members are
//! independent, so a weight-0 written after an add may land before it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::state::{Backend, BackendKey, State};

/// A log-normal delay given by its median and 99th percentile, capped at `max_ms`
/// (default ten times the p99).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tail {
    pub median_ms: u64,
    pub p99_ms: u64,
    #[serde(default)]
    pub max_ms: Option<u64>,
}

/// The standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874;

impl Tail {
    /// Always `ms`.
    pub const fn fixed(ms: u64) -> Tail {
        Tail {
            median_ms: ms,
            p99_ms: ms,
            max_ms: None,
        }
    }

    /// Draws one delay.
    pub fn sample(&self, rng: &mut StdRng) -> Duration {
        let median = self.median_ms as f64;
        let p99 = (self.p99_ms as f64).max(median);
        if median <= 0.0 || p99 <= median {
            return Duration::from_millis(self.median_ms);
        }
        let sigma = (p99 / median).ln() / Z99;
        // Box–Muller: one standard normal from two uniforms in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let cap = self.max_ms.unwrap_or(self.p99_ms.saturating_mul(10)) as f64;
        Duration::from_secs_f64((median * (sigma * z).exp()).min(cap) / 1000.0)
    }
}

/// Delays per kind of member change (seed file `faults.backend_propagation`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendPropagation {
    pub add: Tail,
    pub weight: Tail,
    pub remove: Tail,
}

/// One member change on its way to the data plane.
#[derive(Debug, Clone)]
pub struct Change {
    pub group: String,
    pub key: BackendKey,
    /// The member as written; `None` for a removal.
    pub to: Option<Backend>,
    pub at: Instant,
    /// Order of the writes: a member's change lands only if no later one landed first.
    seq: u64,
}

/// What the data plane carries: the API's state but for the members of each group,
/// which change one at a time as their delays elapse.
#[derive(Debug, Default)]
pub struct Lagged {
    /// The API's state at the last write (listeners and everything but members).
    base: State,
    /// Members as written at the last write, by group.
    written: BTreeMap<String, Vec<Backend>>,
    /// Members as the data plane carries them, by group.
    applied: BTreeMap<String, Vec<Backend>>,
    /// When the last scheduled change of each member lands (keeps a member's order).
    last: HashMap<(String, BackendKey), Instant>,
    /// The last change of each member that landed. Two changes of a member due within
    /// the same timer tick wake in either order; the older one must not undo the newer.
    landed: HashMap<(String, BackendKey), u64>,
    next_seq: u64,
}

fn members(state: &State) -> BTreeMap<String, Vec<Backend>> {
    state
        .v_server_groups
        .iter()
        .map(|(id, g)| (id.clone(), g.backends.clone()))
        .collect()
}

impl Lagged {
    /// Takes `state` as carried at once (seeding, or propagation without lag).
    pub fn carry(&mut self, state: &State) {
        self.base = state.clone();
        self.written = members(state);
        self.applied = self.written.clone();
        self.last.clear();
        self.landed.clear();
    }

    /// Records a write: returns the member changes since the last one, each with the
    /// moment it lands (`now` + its drawn delay, never before the member's previous one).
    pub fn write(
        &mut self,
        state: &State,
        now: Instant,
        p: &BackendPropagation,
        rng: &mut StdRng,
    ) -> Vec<Change> {
        let next = members(state);
        let mut changes = Vec::new();
        let empty = Vec::new();
        let groups: std::collections::BTreeSet<&String> =
            next.keys().chain(self.written.keys()).collect();
        for group in groups {
            let before = self.written.get(group).unwrap_or(&empty);
            let after = next.get(group).unwrap_or(&empty);
            for b in after {
                let key = b.key();
                let tail = match before.iter().find(|o| o.key() == key) {
                    None => p.add,
                    Some(o) if o.weight != b.weight => p.weight,
                    Some(_) => continue,
                };
                changes.push((group.clone(), key, Some(b.clone()), tail));
            }
            for o in before {
                let key = o.key();
                if !after.iter().any(|b| b.key() == key) {
                    changes.push((group.clone(), key, None, p.remove));
                }
            }
        }
        self.last.retain(|_, at| *at > now);
        let scheduled = changes
            .into_iter()
            .map(|(group, key, to, tail)| {
                let mut at = now + tail.sample(rng);
                let slot = self.last.entry((group.clone(), key.clone())).or_insert(at);
                if *slot > at {
                    at = *slot + Duration::from_micros(1);
                }
                *slot = at;
                self.next_seq += 1;
                Change {
                    group,
                    key,
                    to,
                    at,
                    seq: self.next_seq,
                }
            })
            .collect();
        self.base = state.clone();
        self.written = next;
        scheduled
    }

    /// Lands one change, unless a later change of the same member already landed.
    pub fn land(&mut self, c: &Change) {
        let newest = self
            .landed
            .entry((c.group.clone(), c.key.clone()))
            .or_insert(c.seq);
        if *newest > c.seq {
            return;
        }
        *newest = c.seq;
        let members = self.applied.entry(c.group.clone()).or_default();
        let at = members.iter().position(|b| b.key() == c.key);
        match (&c.to, at) {
            (Some(b), Some(i)) => members[i] = b.clone(),
            (Some(b), None) => members.push(b.clone()),
            (None, Some(i)) => {
                members.remove(i);
            }
            (None, None) => {}
        }
    }

    /// The state the data plane carries now.
    pub fn carried(&self) -> State {
        let mut s = self.base.clone();
        for (id, g) in s.v_server_groups.iter_mut() {
            g.backends = self.applied.get(id).cloned().unwrap_or_default();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn a_members_older_change_landing_last_does_not_undo_the_newer_one() {
        use crate::state::{Backend, BackendType, VServerGroup};
        let state_with = |weight: u8| {
            let mut s = State::default();
            s.v_server_groups.insert(
                "rsp-1".into(),
                VServerGroup {
                    id: "rsp-1".into(),
                    name: "g".into(),
                    load_balancer_id: "lb-1".into(),
                    backends: vec![Backend {
                        server_id: "i-1".into(),
                        port: 30080,
                        weight,
                        kind: BackendType::Ecs,
                        description: String::new(),
                        server_ip: None,
                    }],
                    tags: Default::default(),
                },
            );
            s
        };
        let fixed = BackendPropagation {
            add: Tail::fixed(300),
            weight: Tail::fixed(300),
            remove: Tail::fixed(300),
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut lagged = Lagged::default();
        lagged.carry(&State::default());
        let now = Instant::now();
        // Added at weight 0, raised to 100 right after: the raise is due a microsecond
        // after the add, so both wake on the same timer tick, in either order.
        let add = lagged.write(&state_with(0), now, &fixed, &mut rng);
        let raise = lagged.write(&state_with(100), now, &fixed, &mut rng);
        lagged.land(&raise[0]);
        lagged.land(&add[0]);
        let carried = lagged.carried();
        assert_eq!(carried.v_server_groups["rsp-1"].backends[0].weight, 100);
    }

    #[test]
    fn a_tail_has_its_median_and_p99_and_repeats_per_seed() {
        let t = Tail {
            median_ms: 500,
            p99_ms: 5000,
            max_ms: None,
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut v: Vec<Duration> = (0..20_000).map(|_| t.sample(&mut rng)).collect();
            v.sort();
            v
        };
        let v = draw(7);
        assert_eq!(v, draw(7));
        let ms = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_millis() as f64;
        assert!((ms(0.5) - 500.0).abs() < 30.0, "median {}", ms(0.5));
        assert!((ms(0.99) - 5000.0).abs() < 700.0, "p99 {}", ms(0.99));
        assert!(v.iter().all(|d| *d <= Duration::from_secs(50)));
        assert_eq!(
            Tail::fixed(300).sample(&mut StdRng::seed_from_u64(1)),
            Duration::from_millis(300)
        );
    }
}
