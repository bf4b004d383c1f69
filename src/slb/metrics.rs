//! Per-action call metrics of the SLB/ECS client.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::ErrorClass;

/// Every action the client calls: the only values the `action` label takes.
pub const ACTIONS: [&str; 17] = [
    "DescribeVServerGroups",
    "DescribeVServerGroupAttribute",
    "CreateVServerGroup",
    "DeleteVServerGroup",
    "AddVServerGroupBackendServers",
    "RemoveVServerGroupBackendServers",
    "SetVServerGroupAttribute",
    "DescribeHealthStatus",
    "DescribeLoadBalancerListeners",
    "DescribeLoadBalancerAttribute",
    "DescribeLoadBalancerTCPListenerAttribute",
    "DescribeLoadBalancerUDPListenerAttribute",
    "DescribeLoadBalancerHTTPListenerAttribute",
    "DescribeLoadBalancerHTTPSListenerAttribute",
    "SetLoadBalancerTCPListenerAttribute",
    "SetLoadBalancerUDPListenerAttribute",
    "DescribeNetworkInterfaces",
];

/// `slb_sync_slb_calls_total{action,result}` and
/// `slb_sync_slb_call_duration_seconds{action}`; `result` is `ok` or an [`ErrorClass`].
#[derive(Clone, Debug)]
pub struct SlbMetrics {
    calls: IntCounterVec,
    duration: HistogramVec,
}

impl SlbMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let calls = IntCounterVec::new(
            Opts::new(
                "slb_sync_slb_calls_total",
                "SLB/ECS API calls by action and result (ok or error class)",
            ),
            &["action", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "slb_sync_slb_call_duration_seconds",
                "SLB/ECS API call latency by action, including failures and timeouts",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["action"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        // Series exist from the start, so rates and alerts see zeros rather than gaps.
        for action in ACTIONS {
            calls.with_label_values(&[action, "ok"]);
            for class in ErrorClass::ALL {
                calls.with_label_values(&[action, class.as_str()]);
            }
            duration.with_label_values(&[action]);
        }
        Ok(SlbMetrics { calls, duration })
    }

    /// Records one call; `action` must be one of [`ACTIONS`] (bounded labels).
    pub fn observe(&self, action: &'static str, result: Result<(), ErrorClass>, took: Duration) {
        let result = match result {
            Ok(()) => "ok",
            Err(class) => class.as_str(),
        };
        self.calls.with_label_values(&[action, result]).inc();
        self.duration
            .with_label_values(&[action])
            .observe(took.as_secs_f64());
    }
}
