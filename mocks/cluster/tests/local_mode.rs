//! Local mode, one pod per node, naive policy (baseline controller, no preStop, no
//! readinessProbe): when a node loses its last local endpoint kube-proxy drops the rules
//! before the baseline has taken the node out of the SLB, and requests meet `no-rules`
//! (docs/architecture.md, "The four races", race 3).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use mock_cluster::baseline::{spawn_baseline, BackendMode, BaselineConfig};
use mock_cluster::delay::{rng_for, Delay};
use mock_cluster::endpoints::endpoint_feed;
use mock_cluster::http::get_once;
use mock_cluster::kubeproxy::TrafficPolicy;
use mock_cluster::load::{Cause, Load, LoadConfig};
use mock_cluster::rollout::{roll, RolloutConfig};
use mock_cluster::scheduler::Layout;
use mock_cluster::sim::{instance_id, node_ip, node_name, Sim, SimConfig};
use serde_json::json;
use slb_sync::slb::credentials::{Credentials, SecretString, StaticProvider};
use slb_sync::slb::{RpcConfig, RpcSlbClient, SlbApi};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_local_mode_meets_no_rules_when_a_node_loses_its_last_pod() {
    let cfg = SimConfig {
        seed: 21,
        subnet: 41,
        nodes: 3,
        policy: TrafficPolicy::Local,
        layout: Layout::OnePerNode,
        proxy_lag: Delay::between(Duration::from_millis(20), Duration::from_millis(100)),
        ..SimConfig::default()
    };
    let ecs: Vec<String> = (1..=cfg.nodes)
        .map(|i| format!("{{id: {}, ip: {}}}", instance_id(i), node_ip(cfg.subnet, i)))
        .collect();
    let yaml = format!(
        "access_keys: [{{id: labkey, secret: labsecret}}]\necs_instances: [{}]\nload_balancers:\n  - id: lb-lab\n    listeners: [{{port: 80, protocol: tcp, vserver_group_id: rsp-web}}]\n    vserver_groups: [{{id: rsp-web, name: web, backends: []}}]\nfaults: {{propagation_delay_ms: 300}}\n",
        ecs.join(", ")
    );
    let seed = mock_slb::Seed::parse(&yaml, "lab").expect("lab seed parses");
    let slb = mock_slb::MockSlb::start(mock_slb::Config {
        seed,
        ..Default::default()
    })
    .await
    .unwrap();
    let target = slb.listener_addr("lb-lab", 80).expect("listener bound");
    let mut rpc = RpcConfig::new("cn-hangzhou");
    rpc.slb_endpoint = Some(slb.api_url());
    rpc.ecs_endpoint = Some(slb.api_url());
    let creds = Credentials::new("labkey", SecretString::from("labsecret"), None, "lab").unwrap();
    let api: Arc<dyn SlbApi> =
        Arc::new(RpcSlbClient::new(rpc, Arc::new(StaticProvider::new(creds))));

    let sim = Sim::start(cfg.clone()).await.unwrap();
    let (feed, feed_task) = endpoint_feed(sim.client.clone(), "default", "web");
    let _feed_task = mock_cluster::AbortOnDrop(feed_task);
    let bc = BaselineConfig {
        v_server_group_id: "rsp-web".into(),
        mode: BackendMode::Local,
        nodes: (1..=cfg.nodes)
            .map(|i| (node_name(i), instance_id(i)))
            .collect(),
        node_port: cfg.node_port,
        container_port: cfg.container_port,
        enis: BTreeMap::new(),
        description: "k8s/80/web/default/lab".into(),
        lag: Delay::between(Duration::from_millis(200), Duration::from_millis(400)),
    };
    let _baseline = spawn_baseline(api.clone(), bc, feed.clone(), rng_for(cfg.seed, "baseline"));

    let template: Pod = serde_json::from_value(json!({"metadata": {}, "spec": {
        "terminationGracePeriodSeconds": 30, "containers": [{"name": "app", "image": "lab"}]}}))
    .unwrap();
    let rc = RolloutConfig {
        namespace: "default".into(),
        name: "web".into(),
        replicas: 2,
        max_surge: 1,
        max_unavailable: 0,
        period: Duration::from_millis(50),
        deadline: Duration::from_secs(60),
    };
    roll(sim.client.clone(), &rc, 1, &template).await.unwrap();
    // Steady state: both apps serve and the SLB carries both nodes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let eps = feed.borrow().clone();
        let mut serving = eps.len() == 2;
        for e in eps.iter() {
            serving &= get_once(e.addr, "/", Duration::from_secs(5))
                .await
                .is_ok_and(|r| r.status == 200);
        }
        let group = api
            .describe_vserver_group("rsp-web")
            .await
            .map(|g| g.backends.len())
            .unwrap_or(0);
        if serving && group == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "steady state never reached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // SLB propagation of the last add
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
    roll(sim.client.clone(), &rc, 2, &template).await.unwrap();
    // Let the baseline and the SLB settle after the last deletion.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = load.stop();
    eprintln!("naive/local: {r:?}");
    assert!(r.ok > 50, "{r:?}");
    assert!(
        r.failures.get(&Cause::NoRules).copied().unwrap_or(0) > 0,
        "{r:?}"
    );
    sim.shutdown().await;
    slb.shutdown().await;
}
