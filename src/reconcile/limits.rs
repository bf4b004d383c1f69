//! API hygiene around every SLB call: a client-side token bucket, a timeout, one mutation
//! in flight per SLB instance, and retries with jittered exponential backoff.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

use super::metrics::{ReconcileMetrics, CHANGE_SEEN};
use crate::slb::budget::{current_lane, Budget};
use crate::slb::{ErrorClass, SlbError};

/// Limits for calls to the SLB API (flags `--slb-qps`, `--slb-burst`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiLimits {
    /// Sustained calls per second, all instances together (default 5: Alibaba Cloud's
    /// per-account API quotas are shared with every other tool of the account).
    pub qps: f64,
    /// Calls that may go at once after a quiet period (default 10).
    pub burst: NonZeroU32,
    /// Deadline of each single call (default 10 s).
    pub call_timeout: Duration,
    /// First retry delay (default 500 ms); doubles per attempt, with full jitter.
    pub retry_min_delay: Duration,
    /// Largest retry delay (default 30 s).
    pub retry_max_delay: Duration,
    /// Retries of one call before the executor re-reads and re-plans (default 4).
    pub retry_max_times: usize,
    /// `Throttling*` errors wait this many times longer (default 4).
    pub throttle_factor: u32,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            qps: 5.0,
            burst: NonZeroU32::new(10).expect("10 is not zero"),
            call_timeout: Duration::from_secs(10),
            retry_min_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            retry_max_times: 4,
            throttle_factor: 4,
        }
    }
}

/// Shared by every group the executor reconciles.
pub(crate) struct Gate {
    limits: ApiLimits,
    pub(crate) budget: Arc<Budget>,
    /// The API client takes a token of `budget` per HTTP request (and applies its own
    /// per-request timeout, so waiting for the budget never counts against it).
    paced_by_api: bool,
    instances: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    seed: AtomicU64,
    pub(crate) metrics: Option<ReconcileMetrics>,
}

impl Gate {
    /// A gate over `api_budget`, the budget the API client paces its requests with, or
    /// over a budget of its own made from `limits`.
    pub(crate) fn new(limits: ApiLimits, api_budget: Option<Arc<Budget>>) -> Self {
        let seed = RandomState::new().build_hasher().finish();
        let paced_by_api = api_budget.is_some();
        Gate {
            budget: api_budget.unwrap_or_else(|| Arc::new(Budget::new(limits.qps, limits.burst))),
            paced_by_api,
            limits,
            instances: Mutex::new(HashMap::new()),
            seed: AtomicU64::new(seed),
            metrics: None,
        }
    }

    pub(crate) fn limits(&self) -> &ApiLimits {
        &self.limits
    }

    /// Waits for a token of the budget in the lane and turn of the running pass, unless
    /// the API client takes one per HTTP request itself.
    async fn take_token(&self) {
        if !self.paced_by_api {
            self.budget.acquire_for_current().await;
        }
    }

    /// The lock that keeps one mutation in flight on `load_balancer_id`.
    pub(crate) fn instance_lock(&self, load_balancer_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(load_balancer_id.to_owned()).or_default().clone()
    }

    /// One call under the rate limit and timeout, no retries.
    pub(crate) async fn once<T, F>(&self, action: &'static str, call: F) -> Result<T, SlbError>
    where
        F: Future<Output = Result<T, SlbError>>,
    {
        self.take_token().await;
        if let Ok(Some(seen)) = CHANGE_SEEN.try_with(|cell| cell.take()) {
            if let Some(metrics) = &self.metrics {
                metrics
                    .change_to_first_call
                    .observe(seen.elapsed().as_secs_f64());
            }
        }
        if self.paced_by_api {
            return call.await;
        }
        match tokio::time::timeout(self.limits.call_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(SlbError {
                action,
                class: ErrorClass::Unavailable,
                code: "Timeout".to_owned(),
                message: format!(
                    "no answer within {:?}; the call may or may not have been applied",
                    self.limits.call_timeout
                ),
                request_id: None,
                source: None,
            }),
        }
    }

    /// An idempotent call, retried with jittered exponential backoff while its error is
    /// retryable; permanent errors return at once. `Throttling` waits `throttle_factor`
    /// times longer, except for a pass a pod waits on (drain and pod lanes): its retries
    /// are spaced by the agent's own budget like every call, and bulk work backing off
    /// harder is what leaves the account's quota to it. (One throttled read of a drain
    /// pass otherwise held a removal ~4 s past its window in `scale-lab`'s rollout-400.)
    pub(crate) async fn retried<T, F, Fut>(
        &self,
        action: &'static str,
        mut call: F,
    ) -> Result<T, SlbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SlbError>>,
    {
        let factor = self.limits.throttle_factor.max(1);
        (|| self.once(action, call()))
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &SlbError| e.class.is_retryable())
            .adjust(move |e: &SlbError, delay| match e.class {
                ErrorClass::Throttling if !current_lane().pod_facing() => {
                    delay.map(|d| d.saturating_mul(factor))
                }
                _ => delay,
            })
            .notify(|e: &SlbError, delay| {
                tracing::debug!(action, class = %e.class, code = %e.code, ?delay, "retrying SLB call");
            })
            .await
    }

    /// The backoff policy, with a fresh jitter seed per use so that retries of
    /// different calls (and agents) do not march in step.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        let seed = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        ExponentialBuilder::new()
            .with_jitter()
            .with_jitter_seed(seed)
            .with_min_delay(self.limits.retry_min_delay)
            .with_max_delay(self.limits.retry_max_delay)
            .with_max_times(self.limits.retry_max_times)
    }

    /// Delays between re-plans after failures, same policy without a retry cap.
    pub(crate) fn replan_delays(&self) -> impl Iterator<Item = Duration> {
        self.backoff().without_max_times().build()
    }
}
