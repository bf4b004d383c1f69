//! Watches drain lengths for `slb_sync_drains_over_window_total`: a drain whose end came
//! later than its window plus a slack means removals are lagging (rate limits, errors).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use super::metrics::AgentMetrics;
use crate::model::BackendKey;
use crate::reconcile::{Clock, DrainJournal};

/// How much later than its window a drain may end before it counts as over.
pub const OVER_WINDOW_SLACK: Duration = Duration::from_secs(10);

/// A [`DrainJournal`] that times drains against their group's window.
pub struct DrainTimer {
    clock: Arc<dyn Clock>,
    metrics: AgentMetrics,
    started: Mutex<HashMap<(String, BackendKey), Timestamp>>,
    /// Drain window per vServer group id, as the last pass over the group used.
    windows: Mutex<HashMap<String, Duration>>,
}

impl DrainTimer {
    pub fn new(clock: Arc<dyn Clock>, metrics: AgentMetrics) -> Self {
        DrainTimer {
            clock,
            metrics,
            started: Mutex::default(),
            windows: Mutex::default(),
        }
    }

    /// Notes the drain window a pass over `v_server_group_id` used.
    pub fn set_window(&self, v_server_group_id: &str, window: Duration) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.get(v_server_group_id) != Some(&window) {
            windows.insert(v_server_group_id.to_owned(), window);
        }
    }
}

impl DrainJournal for DrainTimer {
    fn drain_started(&self, v_server_group_id: &str, key: &BackendKey, at: Timestamp) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((v_server_group_id.to_owned(), key.clone()), at);
    }

    fn drain_ended(&self, v_server_group_id: &str, key: &BackendKey) {
        let Some(started) = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(v_server_group_id.to_owned(), key.clone()))
        else {
            return;
        };
        let Some(window) = self
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(v_server_group_id)
            .copied()
        else {
            return;
        };
        let took = self.clock.now().duration_since(started);
        let took = Duration::try_from(took).unwrap_or(Duration::ZERO);
        if took > window + OVER_WINDOW_SLACK {
            self.metrics.drains_over_window_total.inc();
            tracing::warn!(
                v_server_group_id,
                took_secs = took.as_secs(),
                window_secs = window.as_secs(),
                "a drain ended later than its window plus 10 s"
            );
        }
    }
}

/// Tells every journal of a list about every drain (the timer and the pod side's
/// annotations both need each call).
pub struct FanOut(pub Vec<Arc<dyn DrainJournal>>);

impl DrainJournal for FanOut {
    fn drain_started(&self, v_server_group_id: &str, key: &BackendKey, at: Timestamp) {
        for journal in &self.0 {
            journal.drain_started(v_server_group_id, key, at);
        }
    }

    fn drain_ended(&self, v_server_group_id: &str, key: &BackendKey) {
        for journal in &self.0 {
            journal.drain_ended(v_server_group_id, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn only_drains_longer_than_window_plus_slack_count() {
        let metrics = AgentMetrics::register(&prometheus::Registry::new()).unwrap();
        let clock = Arc::new(TokioClock::starting_at(Timestamp::UNIX_EPOCH));
        let timer = DrainTimer::new(clock.clone(), metrics.clone());
        timer.set_window("rsp-1", Duration::from_secs(30));
        let key = |p| BackendKey::Ecs {
            server_id: "i-1".into(),
            port: p,
        };
        timer.drain_started("rsp-1", &key(1), clock.now());
        timer.drain_started("rsp-1", &key(2), clock.now());
        tokio::time::advance(Duration::from_secs(40)).await;
        timer.drain_ended("rsp-1", &key(1));
        assert_eq!(metrics.drains_over_window_total.get(), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        timer.drain_ended("rsp-1", &key(2));
        assert_eq!(metrics.drains_over_window_total.get(), 1);
        // Unknown drains (started before this process) are not guessed at.
        timer.drain_ended("rsp-1", &key(3));
        assert_eq!(metrics.drains_over_window_total.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fan_out_tells_every_journal() {
        let clock = Arc::new(TokioClock::starting_at(Timestamp::UNIX_EPOCH));
        let timers: Vec<(AgentMetrics, Arc<DrainTimer>)> = (0..2)
            .map(|_| {
                let metrics = AgentMetrics::register(&prometheus::Registry::new()).unwrap();
                let timer = Arc::new(DrainTimer::new(clock.clone(), metrics.clone()));
                timer.set_window("rsp-1", Duration::from_secs(1));
                (metrics, timer)
            })
            .collect();
        let fan = FanOut(
            timers
                .iter()
                .map(|(_, t)| t.clone() as Arc<dyn DrainJournal>)
                .collect(),
        );
        let key = BackendKey::Ecs {
            server_id: "i-1".into(),
            port: 1,
        };
        fan.drain_started("rsp-1", &key, clock.now());
        tokio::time::advance(Duration::from_secs(20)).await;
        fan.drain_ended("rsp-1", &key);
        for (metrics, _) in &timers {
            assert_eq!(metrics.drains_over_window_total.get(), 1);
        }
    }
}
