//! Metrics of the drain API.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use crate::k8s::drain_state::DrainState;

/// `result` label values besides the drain states.
const NOT_SYNCED: &str = "not_synced";
const BAD_REQUEST: &str = "bad_request";

/// `slb_sync_drain_api_requests_total{result}` (`result`: a drain state, `not_synced` or
/// `bad_request`) and `slb_sync_drain_api_waiting` (long-polls waiting now).
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    waiting: IntGauge,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "slb_sync_drain_api_requests_total",
                "Drain API answers by result: the state answered, not_synced or bad_request",
            ),
            &["result"],
        )?;
        let waiting = IntGauge::new(
            "slb_sync_drain_api_waiting",
            "Drain API long-polls waiting for a pod's state to change",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(waiting.clone()))?;
        for state in DrainState::ALL {
            requests.with_label_values(&[state.as_str()]);
        }
        requests.with_label_values(&[NOT_SYNCED]);
        requests.with_label_values(&[BAD_REQUEST]);
        Ok(HttpMetrics { requests, waiting })
    }

    pub(crate) fn answered(&self, state: Option<DrainState>) {
        let result = state.map_or(NOT_SYNCED, DrainState::as_str);
        self.requests.with_label_values(&[result]).inc();
    }

    pub(crate) fn bad_request(&self) {
        self.requests.with_label_values(&[BAD_REQUEST]).inc();
    }

    /// Counts a waiting long-poll until the guard drops (also when the client goes away
    /// and the handler future is dropped).
    pub(crate) fn waiting(&self) -> WaitingGuard {
        self.waiting.inc();
        WaitingGuard(self.waiting.clone())
    }
}

pub(crate) struct WaitingGuard(IntGauge);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
