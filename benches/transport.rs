//! SLB transport figures, on loopback against mock-slb, for the agent's transport (our
//! signature v1 over the one shared keep-alive client) and the vendor SDK's
//! (`aliyun-openapi-core-rust-sdk`: sign, build a new HTTP client, connect, send) side by
//! side, through the same `RpcSlbClient` (the SDK plugged in as its `Wire`):
//!
//! 1. Sequential `DescribeVServerGroupAttribute` calls of a 20-backend group: calls/s,
//!    CPU per call, p50/p99 latency, and the TCP connections mock-slb accepted over the
//!    whole run (a set-up call, 10 warm-up calls and the measured ones).
//! 2. A rolling update through the reconciler's `Executor` (4 groups of 20 ECS backends
//!    replaced in waves of 5; drain window 0 so only the calls take time): wall time, CPU
//!    and SLB calls.
//!
//! CPU is the client thread's own time (`/proc/thread-self/schedstat`): the client runs on
//! a current-thread runtime, mock-slb on a runtime of its own, so the server's work is not
//! counted. Linux only.
//!
//! `cargo bench --bench transport` (release). `BENCH_CALLS` (default 2,000) and
//! `BENCH_SDK_CALLS` (default 200) set the number of calls of part 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aliyun_openapi_core_rust_sdk::client::error::Error as SdkError;
use aliyun_openapi_core_rust_sdk::client::rpc::RPClient;
use async_trait::async_trait;
use jiff::Timestamp;
use mock_slb::{Config, MockSlb, MockSlbHandle, Seed};
use serde_json::json;
use slb_sync::model::{
    Backend, BackendState, BackendType, DesiredGroup, OwnerDescription, Protocol, SlbBackend,
    Weight,
};
use slb_sync::reconcile::{Clock, Executor, ExecutorConfig, GroupTarget, TokioClock};
use slb_sync::slb::credentials::{Credentials, ExposeSecret, SecretString, StaticProvider};
use slb_sync::slb::http::HttpError;
use slb_sync::slb::rpc::wire::{RpcAnswer, RpcRequest, Wire};
use slb_sync::slb::{RpcConfig, RpcSlbClient, SlbApi};

const KEY_ID: &str = "LTAIbench";
const SECRET: &str = "bench-secret-0123456789";
const LB: &str = "lb-bench";
const GROUPS: usize = 4;
const PER_GROUP: usize = 20;
const WAVE: usize = 5;

/// The vendor SDK as a [`Wire`]: one `RPClient` (and so one new HTTP client and
/// connection) per call, as the agent used it before.
#[derive(Debug)]
struct SdkWire;

#[async_trait]
impl Wire for SdkWire {
    async fn exchange(&self, r: RpcRequest<'_>) -> Result<RpcAnswer, HttpError> {
        let fail = |reason: String| HttpError::Transport {
            endpoint: "mock-slb".into(),
            reason,
        };
        let sent = RPClient::new(
            r.credentials.access_key_id(),
            r.credentials.access_key_secret().expose_secret(),
            r.endpoint_url,
        )
        .version(r.version)
        .request(r.method.as_str(), r.action)
        .query(r.params.to_vec())
        .timeout(r.timeout)
        .send()
        .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await.map_err(|e| fail(e.to_string()))?;
                Ok(RpcAnswer { status, body })
            }
            // The SDK keeps no status; 400 stands in.
            Err(SdkError::InvalidResponse {
                request_id,
                error_code,
                error_message,
            }) => Ok(RpcAnswer {
                status: 400,
                body: json!({"Code": error_code, "Message": error_message,
                    "RequestId": request_id})
                .to_string()
                .into(),
            }),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

fn seed() -> Seed {
    let ecs: Vec<_> = (1..=2 * PER_GROUP)
        .map(|i| json!({"id": format!("i-{i}"), "ip": format!("127.0.99.{i}")}))
        .collect();
    let groups: Vec<_> = (0..GROUPS)
        .map(|g| json!({"id": format!("rsp-{g}"), "name": owner(g).as_str()}))
        .collect();
    serde_json::from_value(json!({
        "access_keys": [{"id": KEY_ID, "secret": SECRET}],
        "ecs_instances": ecs,
        "load_balancers": [{"id": LB, "backend_quota": 1000, "vserver_groups": groups}],
    }))
    .expect("bench seed")
}

fn owner(g: usize) -> OwnerDescription {
    OwnerDescription::new(8000 + g as u16, "web", "default", "bench")
}

fn client(mock: &MockSlbHandle, sdk: bool) -> RpcSlbClient {
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(mock.api_url());
    config.ecs_endpoint = Some(mock.api_url());
    let creds = Credentials::new(KEY_ID, SecretString::from(SECRET), None, "bench").unwrap();
    let client = RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds)));
    if sdk {
        client.with_wire(Arc::new(SdkWire))
    } else {
        client
    }
}

struct Figures {
    calls: usize,
    wall: Duration,
    cpu: Duration,
    p50: Duration,
    p99: Duration,
    connections: u64,
}

async fn sequential_calls(mock: &MockSlbHandle, sdk: bool, calls: usize) -> Figures {
    let c = client(mock, sdk);
    for _ in 0..10 {
        c.describe_vserver_group("rsp-0").await.expect("warm-up");
    }
    let mut samples = Vec::with_capacity(calls);
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    for _ in 0..calls {
        let t = Instant::now();
        let group = c.describe_vserver_group("rsp-0").await.expect("call");
        samples.push(t.elapsed());
        assert_eq!(group.backends.len(), PER_GROUP);
    }
    let (wall, cpu) = (wall0.elapsed(), thread_cpu() - cpu0);
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Figures {
        calls,
        wall,
        cpu,
        p50: pick(0.5),
        p99: pick(0.99),
        // Every connection of the run: set-up, warm-up and the measured calls.
        connections: mock.api_connections(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn target(g: usize, backends: Vec<Backend>) -> GroupTarget {
    let mut backends = backends;
    backends.sort_by_key(|b| b.key());
    GroupTarget {
        load_balancer_id: LB.into(),
        desired: DesiredGroup {
            service_port: 8000 + g as u16,
            protocol: Protocol::Tcp,
            v_server_group_id: Some(format!("rsp-{g}")),
            name: owner(g),
            backends,
            keep_weights: false,
        },
        drain_window: Duration::ZERO,
        emptying: false,
    }
}

/// Replaces `i-1..=20` by `i-21..=40` in every group, `WAVE` nodes at a time: a surge
/// pass (add the new, weight 0 for the old), a removal pass and a settled pass per wave.
async fn rolling_update(mock: &MockSlbHandle, sdk: bool) -> (Duration, Duration, usize) {
    let api = Arc::new(client(mock, sdk));
    let node =
        |i: usize, state| Backend::ecs(format!("i-{i}"), 30080, Weight::new(100).unwrap(), state);
    // Start: the old nodes, added through the agent's own transport (not measured).
    let setup = client(mock, false);
    for g in 0..GROUPS {
        let old: Vec<SlbBackend> = (1..=PER_GROUP)
            .map(|i| SlbBackend {
                server_id: format!("i-{i}"),
                server_ip: None,
                port: 30080,
                weight: Weight::new(100).unwrap(),
                backend_type: BackendType::Ecs,
                description: owner(g).as_str().to_owned(),
            })
            .collect();
        setup
            .add_backends(&format!("rsp-{g}"), &old)
            .await
            .expect("setup");
    }
    let mut config = ExecutorConfig::default();
    config.limits.qps = 1e6;
    config.limits.burst = std::num::NonZeroU32::new(1_000_000).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(Timestamp::now()));
    let exec = Executor::new(api, clock, config);
    let calls0: u64 = mock.counters().values().map(|c| c.calls).sum();
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut start = 0;
    while start < PER_GROUP {
        let end = start + WAVE;
        let desired = |draining: bool| {
            let mut backends = Vec::new();
            for i in 1..=PER_GROUP {
                if i > end {
                    backends.push(node(i, BackendState::Active));
                } else if i > start && draining {
                    backends.push(node(i, BackendState::Draining));
                }
                if i <= end {
                    backends.push(node(PER_GROUP + i, BackendState::Active));
                }
            }
            backends
        };
        for g in 0..GROUPS {
            exec.reconcile(&target(g, desired(true)))
                .await
                .expect("surge pass");
            exec.reconcile(&target(g, desired(true)))
                .await
                .expect("removal pass");
            exec.reconcile(&target(g, desired(false)))
                .await
                .expect("settled pass");
        }
        start = end;
    }
    let (wall, cpu) = (wall0.elapsed(), thread_cpu() - cpu0);
    for g in 0..GROUPS {
        let group = setup
            .describe_vserver_group(&format!("rsp-{g}"))
            .await
            .unwrap();
        let mut ids: Vec<_> = group.backends.iter().map(|b| b.server_id.clone()).collect();
        ids.sort();
        let mut want: Vec<_> = (PER_GROUP + 1..=2 * PER_GROUP)
            .map(|i| format!("i-{i}"))
            .collect();
        want.sort();
        assert_eq!(ids, want, "group {g} converged");
    }
    let calls: u64 = mock.counters().values().map(|c| c.calls).sum::<u64>() - calls0;
    (wall, cpu, calls as usize)
}

fn main() {
    let calls = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (ours_n, sdk_n) = (calls("BENCH_CALLS", 2000), calls("BENCH_SDK_CALLS", 200));
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = |seed| {
        server_rt.block_on(async {
            MockSlb::start(Config {
                seed,
                ..Config::default()
            })
            .await
        })
    };

    println!("SLB transport, loopback mock-slb, DescribeVServerGroupAttribute of 20 backends");
    println!(
        "{:<34} {:>7} {:>10} {:>12} {:>9} {:>9} {:>12}",
        "path", "calls", "calls/s", "CPU/call ms", "p50 ms", "p99 ms", "connections"
    );
    for (name, sdk, n) in [
        ("slb-sync transport (shared client)", false, ours_n),
        ("vendor SDK (client per call)", true, sdk_n),
    ] {
        let mock = start(seed()).expect("mock-slb");
        let setup = client(&mock, false);
        client_rt.block_on(async {
            let backends: Vec<SlbBackend> = (1..=PER_GROUP)
                .map(|i| SlbBackend {
                    server_id: format!("i-{i}"),
                    server_ip: None,
                    port: 30080,
                    weight: Weight::new(100).unwrap(),
                    backend_type: BackendType::Ecs,
                    description: owner(0).as_str().to_owned(),
                })
                .collect();
            setup.add_backends("rsp-0", &backends).await.expect("setup");
        });
        let f = client_rt.block_on(sequential_calls(&mock, sdk, n));
        println!(
            "{name:<34} {:>7} {:>10.1} {:>12.3} {:>9.3} {:>9.3} {:>12}",
            f.calls,
            f.calls as f64 / f.wall.as_secs_f64(),
            ms(f.cpu) / f.calls as f64,
            ms(f.p50),
            ms(f.p99),
            f.connections
        );
        drop(mock);
    }

    println!();
    println!(
        "rolling update through the executor: {GROUPS} groups x {PER_GROUP} ECS backends replaced {WAVE} at a time"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10}",
        "path", "wall s", "CPU s", "SLB calls"
    );
    for (name, sdk) in [
        ("slb-sync transport (shared client)", false),
        ("vendor SDK (client per call)", true),
    ] {
        let mock = start(seed()).expect("mock-slb");
        let (wall, cpu, calls) = client_rt.block_on(rolling_update(&mock, sdk));
        println!(
            "{name:<34} {:>10.3} {:>10.3} {:>10}",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            calls
        );
        drop(mock);
    }
}
