//! Reads `DescribeHealthStatus` for the load balancers pods wait on, and nothing else.
//!
//! One call per load balancer per poll (every listener at once), at the shortest check
//! interval of its checked listeners, so a backend's turn to `normal` reaches its gate
//! within one check interval. The listeners' settings (which listener checks health, how
//! often) are read before the first poll of a load balancer and every ten minutes after.
//! Calls go through the API budget in the pod lane: behind every drain, ahead of
//! changes and resync.

use std::sync::Arc;
use std::time::Duration;

use super::board::{HealthBoard, PodKey};
use crate::reconcile::Clock;
use crate::slb::budget::{Caller, Lane, CALLER};
use crate::slb::SlbApi;

/// Polls until the board is dropped by everyone else; `after_poll` gets the pods still
/// waiting on a load balancer after each poll of it, read or failed, for the pod side to
/// look at again (so a gate's timeout is seen even while the SLB does not answer).
pub async fn run(
    board: Arc<HealthBoard>,
    slb: Arc<dyn SlbApi>,
    clock: Arc<dyn Clock>,
    after_poll: impl Fn(&[PodKey]) + Send + Sync,
) {
    loop {
        // The pod side holds the board; once it is gone, so is every waiter.
        if Arc::strong_count(&board) == 1 {
            return;
        }
        let now = clock.now();
        let (due, next) = board.due(now);
        if due.is_empty() {
            let wait = next.map(|at| {
                Duration::try_from(now.duration_until(at))
                    .unwrap_or_default()
                    .max(Duration::from_millis(1))
            });
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = board.wake.notified() => {}
                    }
                }
                // Wakes at the first waiter; checks now and then whether the agent went.
                None => {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(60)) => {}
                        () = board.wake.notified() => {}
                    }
                }
            }
            continue;
        }
        for lb in due {
            poll(&board, slb.as_ref(), clock.as_ref(), &lb).await;
            after_poll(&board.polled(&lb, clock.now()));
        }
    }
}

async fn poll(board: &HealthBoard, slb: &dyn SlbApi, clock: &dyn Clock, lb: &str) {
    // The reading a held drain waits for goes with drains; a gate's with gates.
    let lane = if board.drain_waits(lb) {
        Lane::Drain
    } else {
        Lane::Pod
    };
    let caller = Caller::new(lane, Arc::from(format!("health/{lb}")));
    CALLER
        .scope(caller, async {
            if board.listeners_stale(lb, clock.now()) {
                match slb.describe_listeners(lb).await {
                    Ok(listeners) => board.set_listeners(lb, listeners, clock.now()),
                    Err(error) => {
                        tracing::warn!(load_balancer_id = %lb, %error,
                            "cannot read the listeners' health-check settings; gates keep waiting");
                        return;
                    }
                }
            }
            if !board.checks_health(lb) {
                // No listener checks: every gate there keeps the registration rule.
                return;
            }
            // The reading counts from when it was asked for: a backend it reports normal
            // was normal no earlier than this.
            let asked = clock.now();
            match slb.describe_health(lb, None).await {
                Ok(reading) => board.set_reading(lb, reading, asked),
                Err(error) => tracing::warn!(load_balancer_id = %lb, %error,
                    "cannot read backend health; gates keep waiting"),
            }
        })
        .await;
}
