//! End to end through the mock SLB's data plane in Cluster mode, where every node is an
//! SLB backend from the start and only kube-proxy's lag races the pods: without preStop
//! a rolling update sends requests to stopped pods; a preStop sleep longer than the
//! endpoint and kube-proxy lag closes that race.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use mock_cluster::delay::Delay;
use mock_cluster::http::get_once;
use mock_cluster::load::{Cause, Load, LoadConfig, LoadReport};
use mock_cluster::rollout::{roll, RolloutConfig};
use mock_cluster::sim::{instance_id, node_ip, Sim, SimConfig};
use serde_json::json;

async fn eventually<F: FnMut() -> bool>(what: &str, mut f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn slb_seed(cfg: &SimConfig) -> mock_slb::Seed {
    let ecs: Vec<String> = (1..=cfg.nodes)
        .map(|i| format!("{{id: {}, ip: {}}}", instance_id(i), node_ip(cfg.subnet, i)))
        .collect();
    let backends: Vec<String> = (1..=cfg.nodes)
        .map(|i| {
            format!(
                "{{server_id: {}, port: {}, weight: 100, type: ecs}}",
                instance_id(i),
                cfg.node_port
            )
        })
        .collect();
    let yaml = format!(
        "ecs_instances: [{}]\nload_balancers:\n  - id: lb-lab\n    listeners: [{{port: 80, protocol: tcp, vserver_group_id: rsp-web}}]\n    vserver_groups: [{{id: rsp-web, name: web, backends: [{}]}}]\n",
        ecs.join(", "),
        backends.join(", ")
    );
    mock_slb::Seed::parse(&yaml, "lab").expect("lab seed parses")
}

/// Deploys revision 1, runs load through the SLB while rolling to revision 2, returns
/// the load totals.
async fn rolling_update(seed: u64, subnet: u8, pre_stop_sleep: Option<i64>) -> LoadReport {
    let cfg = SimConfig {
        seed,
        subnet,
        proxy_lag: Delay::between(Duration::from_millis(300), Duration::from_millis(600)),
        ..SimConfig::default()
    };
    let slb = mock_slb::MockSlb::start(mock_slb::Config {
        seed: slb_seed(&cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let target = slb.listener_addr("lb-lab", 80).expect("listener bound");
    let sim = Sim::start(cfg.clone()).await.unwrap();
    let mut container = json!({"name": "app", "image": "lab"});
    // `sleep` policy: the usual advice, a readinessProbe and a preStop sleep.
    if let Some(s) = pre_stop_sleep {
        container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": s}}});
        container["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}});
    }
    let template: Pod = serde_json::from_value(json!({"metadata": {}, "spec": {
        "terminationGracePeriodSeconds": 30, "containers": [container]}}))
    .unwrap();
    let rc = RolloutConfig {
        namespace: "default".into(),
        name: "web".into(),
        replicas: 3,
        max_surge: 1,
        max_unavailable: 0,
        period: Duration::from_millis(50),
        deadline: Duration::from_secs(60),
    };
    roll(sim.client.clone(), &rc, 1, &template).await.unwrap();
    let proxies = &sim.proxies;
    eventually("every kube-proxy forwards to 3 ready endpoints", || {
        proxies
            .iter()
            .all(|p| p.view().iter().filter(|e| e.ready).count() == 3)
    })
    .await;

    // Without a probe Ready comes before the apps serve: wait for them before measuring.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for e in sim.proxies[0].view().iter() {
        while !get_once(e.addr, "/", Duration::from_secs(5))
            .await
            .is_ok_and(|r| r.status == 200)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "app {} never served",
                e.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let load = Load::start(LoadConfig {
        target,
        short_every: Some(Duration::from_millis(10)),
        keepalive_conns: 4,
        keepalive_every: Duration::from_millis(20),
        slow_conns: 0,
        slow_delay: Default::default(),
        streams: 0,
        stream_hold: Default::default(),
        seed: 1,
        timeout: Duration::from_secs(5),
    });
    eventually("load flowing", || load.report().ok >= 50).await;
    assert_eq!(
        load.report().failed(),
        0,
        "steady state is clean: {:?}",
        load.report().samples
    );
    roll(sim.client.clone(), &rc, 2, &template).await.unwrap();
    let kube = &sim.kube;
    eventually("old pods gone", || {
        kube.list("v1", "Pod", Some("default")).len() == 3
    })
    .await;
    let report = load.stop();
    sim.shutdown().await;
    slb.shutdown().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prestop_kube_proxy_lag_sends_requests_to_stopped_pods() {
    let r = rolling_update(11, 31, None).await;
    eprintln!("naive: {r:?}");
    assert!(
        r.failures.get(&Cause::Stopped).copied().unwrap_or(0) > 0,
        "{r:?}"
    );
    assert_eq!(
        r.failures.get(&Cause::NoRules),
        None,
        "Cluster mode always has ready endpoints"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prestop_sleep_longer_than_the_lag_loses_nothing_in_cluster_mode() {
    let r = rolling_update(12, 32, Some(3)).await;
    eprintln!("sleep: {r:?}");
    assert!(r.ok > 100);
    assert_eq!(r.failed(), 0, "{:?}", r.samples);
}
