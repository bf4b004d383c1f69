//! Reconciler figures:
//!
//! 1. SLB write calls of a rolling update of N = 20, 200, 2,000 ENI backends across 10
//!    groups (waves of 25 %), divided by the lower bound Σ over groups and waves of
//!    ⌈adds/20⌉ + ⌈weight changes/20⌉ + ⌈removes/20⌉. Target ≤ 1.05.
//! 2. Median time from a desired-state change (a trigger) to the first SLB call of the
//!    pass that handles it, with 10,000 groups known. Target ≤ 5 ms.
//!
//! Runs against the in-memory SLB (no HTTP), so it measures the agent's own work.
//! `cargo bench --bench reconcile`

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use slb_sync::model::{
    Backend, BackendState, BackendType, DesiredGroup, ObservedGroup, OwnerDescription, Protocol,
    ServiceRef, SlbBackend, Weight,
};
use slb_sync::reconcile::memory::MemorySlb;
use slb_sync::reconcile::{
    spawn, Clock, Executor, ExecutorConfig, GroupRef, GroupTarget, SchedulerConfig, TargetSource,
    TokioClock,
};

const GROUPS: u32 = 10;
const WINDOW: Duration = Duration::from_secs(30);
const WRITES: [&str; 3] = [
    "AddVServerGroupBackendServers",
    "SetVServerGroupAttribute",
    "RemoveVServerGroupBackendServers",
];

fn ip(group: u32, i: u32) -> IpAddr {
    IpAddr::from([10, group as u8, (i / 256) as u8, (i % 256) as u8])
}

fn owner(group: u32) -> OwnerDescription {
    OwnerDescription::new(8000 + group as u16, "web", "default", "bench")
}

fn target(group: u32, backends: Vec<Backend>) -> GroupTarget {
    let mut backends = backends;
    backends.sort_by_key(|b| b.key());
    GroupTarget {
        load_balancer_id: format!("lb-{}", group % 3),
        desired: DesiredGroup {
            service_port: 8000 + group as u16,
            protocol: Protocol::Tcp,
            v_server_group_id: Some(format!("rsp-{group}")),
            name: owner(group),
            backends,
            keep_weights: false,
        },
        drain_window: WINDOW,
        emptying: false,
    }
}

fn fast_config() -> ExecutorConfig {
    let mut config = ExecutorConfig::default();
    config.limits.qps = 1e6;
    config.limits.burst = NonZeroU32::new(1_000_000).unwrap();
    config
}

fn div_ceil20(n: usize) -> usize {
    n.div_ceil(20)
}

/// Write calls and lower bound for a rolling update of `n` backends over 10 groups.
async fn rolling_update(n: u32) -> (usize, usize) {
    let per_group = n / GROUPS;
    let api = Arc::new(MemorySlb::default());
    for g in 0..GROUPS {
        let backends = (0..per_group)
            .map(|i| SlbBackend {
                server_id: format!("eni-{g}-{i}"),
                server_ip: Some(ip(g, i)),
                port: 8080,
                weight: Weight::new(100).unwrap(),
                backend_type: BackendType::Eni,
                description: owner(g).as_str().to_owned(),
            })
            .collect();
        api.put_group(ObservedGroup {
            v_server_group_id: format!("rsp-{g}"),
            v_server_group_name: owner(g).as_str().to_owned(),
            load_balancer_id: format!("lb-{}", g % 3),
            backends,
        });
        for i in per_group..2 * per_group {
            api.add_eni(ip(g, i), &format!("eni-{g}-{i}"));
        }
    }
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(Timestamp::UNIX_EPOCH));
    let exec = Executor::new(api.clone(), clock, fast_config());
    let wave = per_group.div_ceil(4).max(1);
    let pod = |g, i, state| Backend::eni(ip(g, i), 8080, Weight::new(100).unwrap(), state);
    let mut lower_bound = 0;
    let mut start = 0;
    while start < per_group {
        let end = (start + wave).min(per_group);
        let desired = |g: u32, draining: bool| {
            let mut backends = Vec::new();
            for i in 0..per_group {
                if i >= end {
                    backends.push(pod(g, i, BackendState::Active));
                } else if i >= start && draining {
                    backends.push(pod(g, i, BackendState::Draining));
                }
                if i < end {
                    backends.push(pod(g, per_group + i, BackendState::Active));
                }
            }
            target(g, backends)
        };
        for g in 0..GROUPS {
            exec.reconcile(&desired(g, true)).await.expect("surge pass");
        }
        tokio::time::sleep(WINDOW + Duration::from_secs(1)).await;
        for g in 0..GROUPS {
            exec.reconcile(&desired(g, true))
                .await
                .expect("removal pass");
            exec.reconcile(&desired(g, false))
                .await
                .expect("settled pass");
        }
        let changed = (end - start) as usize;
        lower_bound += GROUPS as usize * 3 * div_ceil20(changed);
        start = end;
    }
    let writes = WRITES.iter().map(|a| api.count(a)).sum();
    for g in 0..GROUPS {
        let group = api.group(&format!("rsp-{g}"));
        assert_eq!(
            group.backends.len(),
            per_group as usize,
            "group {g} converged"
        );
    }
    (writes, lower_bound)
}

struct Targets(Mutex<HashMap<GroupRef, GroupTarget>>);

impl TargetSource for Targets {
    fn target(&self, group: &GroupRef) -> Option<GroupTarget> {
        self.0.lock().unwrap().get(group).cloned()
    }
}

/// Median and 90th percentile trigger → first call latency with `groups` groups known.
async fn change_latency(groups: u32, samples: u32) -> (Duration, Duration) {
    let api = Arc::new(MemorySlb::default());
    let targets = Arc::new(Targets(Mutex::new(HashMap::new())));
    let gref = |g: u32| {
        GroupRef::new(
            ServiceRef::new(format!("ns-{}", g % 100), format!("svc-{g}")),
            80,
        )
    };
    for g in 0..groups {
        let backend = SlbBackend {
            server_id: format!("i-{g}"),
            server_ip: None,
            port: 30080,
            weight: Weight::new(10).unwrap(),
            backend_type: BackendType::Ecs,
            description: owner(g).as_str().to_owned(),
        };
        api.put_group(ObservedGroup {
            v_server_group_id: format!("rsp-{g}"),
            v_server_group_name: owner(g).as_str().to_owned(),
            load_balancer_id: format!("lb-{}", g % 50),
            backends: vec![backend],
        });
        let desired = Backend::ecs(
            format!("i-{g}"),
            30080,
            Weight::new(10).unwrap(),
            BackendState::Active,
        );
        let mut t = target(g, vec![desired]);
        t.load_balancer_id = format!("lb-{}", g % 50);
        targets.0.lock().unwrap().insert(gref(g), t);
    }
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let exec = Arc::new(Executor::new(api.clone(), clock, fast_config()));
    let (handle, _task) = spawn(exec, targets.clone(), SchedulerConfig::default());
    // Every group known and reconciled once.
    for g in 0..groups {
        handle.trigger(gref(g));
    }
    while handle.stats().passes() < u64::from(groups)
        || api.count("DescribeVServerGroupAttribute") < groups as usize
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut latencies = Vec::new();
    for s in 0..samples {
        let g = (s * 7919) % groups;
        {
            let mut map = targets.0.lock().unwrap();
            let t = map.get_mut(&gref(g)).unwrap();
            t.desired.backends[0].weight = Weight::new(10 + (s % 50) + 1).unwrap();
        }
        let before = api.call_count();
        let seen = tokio::time::Instant::now();
        handle.trigger(gref(g));
        let first = loop {
            tokio::task::yield_now().await;
            if let Some(call) = api.call(before) {
                break call.at;
            }
        };
        latencies.push(first - seen);
        // Let the pass finish before the next sample.
        while api.call_count() < before + 2 {
            tokio::task::yield_now().await;
        }
    }
    latencies.sort();
    (
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
    )
}

fn main() {
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    println!("rolling update, 10 groups, waves of 25 %, drain window 30 s (virtual time)");
    for n in [20, 200, 2000] {
        let (writes, bound) = paused.block_on(rolling_update(n));
        println!(
            "  N = {n:>5}: {writes:>4} write calls, lower bound {bound:>4}, ratio {:.3}",
            writes as f64 / bound as f64
        );
    }
    let real = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (median, p90) = real.block_on(change_latency(10_000, 200));
    println!(
        "change → first SLB call, 10,000 groups known, 200 samples: median {:.3} ms, p90 {:.3} ms",
        median.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3
    );
}
