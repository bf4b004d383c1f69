//! The whole agent (`slb_sync::agent::run`) in-process against mock-kube and mock-slb
//! over loopback: backends in each mode, bad annotations, Service deletion, /metrics.

use support::agent;
use support::slb_mock;

use std::collections::BTreeMap;
use std::time::Duration;

use agent::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use mock_kube::MockKubeHandle;
use mock_slb::MockSlbHandle;
use serde_json::json;
use slb_mock::{GROUP, LB, OWNER};

const WAIT: Duration = Duration::from_secs(20);

fn seed() -> mock_slb::Seed {
    slb_mock::seed(41, false, json!({}))
}

fn web_annotations() -> Vec<(&'static str, &'static str)> {
    vec![("vgroup-port", "rsp-int:80")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_service_gets_every_node_on_its_node_port() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    for i in 1..=3 {
        kube.put(&node(i)).unwrap();
    }
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;

    // Added at weight 0, raised once kube-proxy on the node had its allowance.
    let got = eventually("three node backends serving", WAIT, || {
        let m = members(&slb, GROUP);
        (m.len() == 3 && m.iter().all(|b| b.2 > 0)).then_some(m)
    })
    .await;
    for (i, (id, port, weight, description)) in got.iter().enumerate() {
        assert_eq!(id, &format!("i-{}", i + 1));
        assert_eq!((*port, *description == OWNER), (30080, true));
        assert!(*weight > 0);
    }
    // A new node joins: its backend follows.
    kube.put(&node(4)).unwrap();
    eventually("the fourth node", WAIT, || {
        (members(&slb, GROUP).len() == 4).then_some(())
    })
    .await;
    // The agent put its cleanup finalizer on the Service.
    let svc = kube.get("v1", "Service", "default", "web").unwrap();
    assert_eq!(
        svc["metadata"]["finalizers"],
        json!(["slb-sync.io/cleanup"])
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_service_gets_the_nodes_with_endpoints() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    for i in 1..=3 {
        kube.put(&node(i)).unwrap();
    }
    kube.put(&service("web", &web_annotations(), true)).unwrap();
    kube.put(&slice(
        "web",
        &[("10.0.0.1", "node-1"), ("10.0.0.2", "node-3")],
    ))
    .unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;

    let got = eventually("the two nodes with endpoints serving", WAIT, || {
        let m = members(&slb, GROUP);
        (m.len() == 2 && m.iter().all(|b| b.2 > 0)).then_some(m)
    })
    .await;
    assert_eq!(
        got.iter()
            .map(|m| (m.0.as_str(), m.1, m.2))
            .collect::<Vec<_>>(),
        [("i-1", 30080, 1), ("i-3", 30080, 1)]
    );
    // Each node joined at weight 0 and rose only once its kube-proxy had the allowance
    // (1 s here) to program the Service's rule.
    let log = slb.call_log();
    let added = log
        .iter()
        .find(|c| c.action == "AddVServerGroupBackendServers" && c.status == 200)
        .expect("nodes added");
    assert!(
        added.params.values().any(|v| v.contains("\"Weight\":0")),
        "{added:?}"
    );
    let raised = log
        .iter()
        .find(|c| {
            c.action == "SetVServerGroupAttribute"
                && c.params.values().any(|v| v.contains("\"Weight\":1"))
        })
        .expect("nodes raised");
    assert!(
        raised.at_ms >= added.at_ms + 1000,
        "raised at {} ms, added at {} ms",
        raised.at_ms,
        added.at_ms
    );
    agent.stop().await;
}

/// Two ready ENI endpoints of Service `web` on node-1.
const ENI_ENDPOINTS: [(&str, &str); 2] = [("127.0.41.101", "node-1"), ("127.0.41.103", "node-1")];

/// mock-kube with an ENI-mode Service `web` and its slice, mock-slb, and an agent.
async fn eni_web() -> (MockKubeHandle, MockSlbHandle, Agent) {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    let mut annotations = web_annotations();
    annotations.push(("service.beta.kubernetes.io/backend-type", "eni"));
    kube.put(&service("web", &annotations, false)).unwrap();
    kube.put(&slice("web", &ENI_ENDPOINTS)).unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    (kube, slb, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eni_mode_service_gets_pod_ips_on_the_target_port() {
    let (_kube, slb, agent) = eni_web().await;

    let got = eventually("two ENI backends", WAIT, || {
        let m = slb_mock::members(&slb, GROUP);
        (m.len() == 2).then_some(m)
    })
    .await;
    let mut got: Vec<_> = got
        .into_iter()
        .map(|(id, ip, port, _)| (id, ip.map(|ip| ip.to_string()), port))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("eni-1".to_owned(), Some("127.0.41.101".to_owned()), 8080),
            ("eni-2".to_owned(), Some("127.0.41.103".to_owned()), 8080),
        ]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_endpoint_is_taken_down_by_a_pass_of_the_drain_lane() {
    let (kube, slb, agent) = eni_web().await;
    eventually("two ENI backends", WAIT, || {
        (slb_mock::members(&slb, GROUP).len() == 2).then_some(())
    })
    .await;
    let drain_passes = || agent.metric("slb_sync_queue_wait_seconds", &[("lane", "drain")]);
    assert_eq!(drain_passes(), 0.0, "adding backends is no drain");

    // The first pod terminates: its endpoint is no longer ready.
    let mut terminating = slice("web", &ENI_ENDPOINTS);
    terminating["endpoints"][0]["conditions"] =
        serde_json::json!({"ready": false, "serving": true, "terminating": true});
    kube.put(&terminating).unwrap();
    eventually("the terminating pod's backend at weight 0", WAIT, || {
        slb_mock::members(&slb, GROUP)
            .iter()
            .any(|(_, ip, _, w)| *w == 0 && ip.is_some_and(|ip| ip.to_string() == "127.0.41.101"))
            .then_some(())
    })
    .await;
    assert!(
        drain_passes() >= 1.0,
        "the weight-0 pass ran in the drain lane"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_annotation_gets_an_event_while_another_service_keeps_syncing() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    kube.put(&service("bad", &[("connection-drain-timeout", "5")], false))
        .unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();

    eventually("web synced", WAIT, || {
        (members(&slb, GROUP).len() == 1).then_some(())
    })
    .await;
    let event = eventually("a BadAnnotation event on `bad`", WAIT, || {
        kube.list("events.k8s.io/v1", "Event", Some("default"))
            .into_iter()
            .find(|e| e["reason"] == "BadAnnotation" && e["regarding"]["name"] == "bad")
    })
    .await;
    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("connection-drain-timeout") && note.contains("\"5\""),
        "{note}"
    );
    // The bad Service got no group of its own.
    assert!(slb
        .state()
        .v_server_groups
        .values()
        .all(|g| !g.name.contains("/bad/")));
    // Once per distinct problem: a node change re-plans `bad` without a second Event.
    kube.put(&node(2)).unwrap();
    eventually("web follows the new node", WAIT, || {
        (members(&slb, GROUP).len() == 2).then_some(())
    })
    .await;
    let count = kube
        .list("events.k8s.io/v1", "Event", Some("default"))
        .into_iter()
        .filter(|e| e["reason"] == "BadAnnotation" && e["regarding"]["name"] == "bad")
        .map(|e| e["series"]["count"].as_u64().unwrap_or(1))
        .sum::<u64>();
    assert_eq!(count, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_weights_are_applied_and_annotations_the_agent_does_not_read_get_one_event() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    // With vgroup-port, ACK's shared weight is read: the group's 60 split over its nodes.
    let mut annotations = web_annotations();
    annotations.push(("weight", "60"));
    annotations.push((
        "service.beta.kubernetes.io/alicloud-loadbalancer-spec",
        "slb.s1.small",
    ));
    kube.put(&service("web", &annotations, false)).unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;

    eventually("web synced at the shared weight", WAIT, || {
        let m = members(&slb, GROUP);
        (m.len() == 1 && m[0].2 == 60).then_some(())
    })
    .await;
    let unsupported = || {
        kube.list("events.k8s.io/v1", "Event", Some("default"))
            .into_iter()
            .filter(|e| e["reason"] == "UnsupportedAnnotation" && e["regarding"]["name"] == "web")
            .collect::<Vec<_>>()
    };
    let event = eventually("an UnsupportedAnnotation event on `web`", WAIT, || {
        unsupported().into_iter().next()
    })
    .await;
    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("alibaba-cloud-loadbalancer-spec")
            && !note.contains("loadbalancer-weight")
            && !note.contains("vgroup-port"),
        "{note}"
    );
    // Once per distinct set: a node change re-plans `web` without a second Event, and
    // the two nodes share the weight (30 each).
    kube.put(&node(2)).unwrap();
    eventually("web follows the new node", WAIT, || {
        let m = members(&slb, GROUP);
        (m.len() == 2 && m.iter().all(|b| b.2 == 30)).then_some(())
    })
    .await;
    let count: u64 = unsupported()
        .iter()
        .map(|e| e["series"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(count, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_drains_and_removes_only_its_backends_then_releases_it() {
    let kube = start_kube().await;
    let foreign =
        json!({"server_id": "i-9", "port": 9999, "weight": 50, "description": "user-managed"});
    let slb = slb_mock::start_mock(slb_mock::seed(
        42,
        false,
        json!({"load_balancers": [{
            "id": LB, "name": "integration",
            "listeners": [{"port": 80, "protocol": "tcp", "vserver_group_id": GROUP}],
            "vserver_groups": [{"id": GROUP, "name": OWNER, "backends": [foreign]}],
        }]}),
    ))
    .await;
    for i in 1..=2 {
        kube.put(&node(i)).unwrap();
    }
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    // The SLB may take 2 s to carry a weight to its forwarders: the window counts from
    // then.
    let agent = start_agent_with(&kube, &slb, "agent-a", |c| {
        c.slb_propagation = Duration::from_secs(2)
    })
    .await;
    eventually(
        "two owned backends serving and the foreign one",
        WAIT,
        || {
            let m = members(&slb, GROUP);
            (m.len() == 3 && m.iter().all(|b| b.2 > 0)).then_some(())
        },
    )
    .await;
    eventually("the cleanup finalizer", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .filter(|s| s["metadata"]["finalizers"] == json!(["slb-sync.io/cleanup"]))
    })
    .await;

    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Service gone", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        members(&slb, GROUP),
        [("i-9".to_owned(), 9999, 50, "user-managed".to_owned())]
    );
    // Drained before removed: weight 0 was set, and removal came after the window.
    let log = slb.call_log();
    let set = log
        .iter()
        .filter(|c| {
            c.action == "SetVServerGroupAttribute"
                && c.params.values().any(|v| v.contains("\"Weight\":0"))
        })
        .map(|c| c.at_ms)
        .min()
        .expect("weights set to 0");
    let removed = log
        .iter()
        .filter(|c| c.action == "RemoveVServerGroupBackendServers" && c.status == 200)
        .map(|c| c.at_ms)
        .max()
        .expect("backends removed");
    assert!(
        removed >= set + 2000 + 1000,
        "removed {removed} ms, drain started {set} ms (propagation 2 s + window 1 s)"
    );
    agent.stop().await;
}

/// The metric names and types deploy/METRICS.md documents.
fn documented_metrics() -> BTreeMap<String, String> {
    let text = include_str!("../../deploy/METRICS.md");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.get(2)?;
            name.starts_with("slb_sync_")
                .then(|| (name.to_owned(), kind.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_exposes_every_documented_metric_with_its_type() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    let agent = start_agent(&kube, &slb, "agent-a").await;
    let documented = documented_metrics();
    assert!(documented.len() >= 9, "{documented:?}");
    eventually("leading", WAIT, || {
        (agent.metric("slb_sync_leader", &[]) == 1.0).then_some(())
    })
    .await;
    let text = agent.metrics_text().await;
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("# TYPE ")?.split_whitespace();
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    for (name, kind) in &documented {
        assert_eq!(
            types.get(name.as_str()),
            Some(&kind.as_str()),
            "{name} in:\n{text}"
        );
    }
    assert!(text.contains("slb_sync_leader 1"), "{text}");
    let ready = reqwest::get(format!("http://{}/readyz", agent.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_leaving_type_load_balancer_is_cleaned_up_and_released() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    for i in 1..=2 {
        kube.put(&node(i)).unwrap();
    }
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    eventually("two owned backends", WAIT, || {
        (members(&slb, GROUP).len() == 2).then_some(())
    })
    .await;
    eventually("the cleanup finalizer", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .filter(|s| s["metadata"]["finalizers"] == json!(["slb-sync.io/cleanup"]))
    })
    .await;

    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    let to_cluster_ip = json!({"spec": {
        "type": "ClusterIP", "loadBalancerClass": null, "externalTrafficPolicy": null,
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    }});
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&to_cluster_ip),
        )
        .await
        .unwrap();
    eventually("the finalizer released", WAIT, || {
        kube.get("v1", "Service", "default", "web").filter(|s| {
            s["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
        })
    })
    .await;
    assert_eq!(members(&slb, GROUP), []);
    assert_eq!(
        kube.get("v1", "Service", "default", "web").unwrap()["spec"]["type"],
        "ClusterIP"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_drain_annotations_reach_the_listener() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    let mut annotations = web_annotations();
    annotations.push(("connection-drain", "on"));
    annotations.push(("connection-drain-timeout", "15"));
    kube.put(&service("web", &annotations, false)).unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    eventually("listener 80 draining for 15 s", WAIT, || {
        let state = slb.state();
        let l = state.load_balancers.get(LB)?.listeners.get(&80)?.clone();
        (l.connection_drain && l.connection_drain_timeout == 15).then_some(())
    })
    .await;
    assert_eq!(members(&slb, GROUP).len(), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_slb_error_becomes_an_event_quoting_code_and_request_id() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    let faults: mock_slb::FaultConfig = serde_json::from_value(json!({"errors": [{
        "action": "AddVServerGroupBackendServers", "code": "InvalidParameter",
        "status": 400, "message": "injected", "rate": 1.0,
    }]}))
    .unwrap();
    slb.set_faults(faults);
    kube.put(&node(1)).unwrap();
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    let event = eventually("an SlbError event on `web`", WAIT, || {
        kube.list("events.k8s.io/v1", "Event", Some("default"))
            .into_iter()
            .find(|e| e["reason"] == "SlbError" && e["regarding"]["name"] == "web")
    })
    .await;
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("Code InvalidParameter")
            && note.contains("RequestId ")
            && !note.contains("RequestId none"),
        "{note}"
    );
    assert!(agent.metric("slb_sync_reconcile_errors_total", &[]) >= 1.0);
    assert_eq!(members(&slb, GROUP), []);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_removed_from_a_service_has_its_group_emptied() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    let mut svc = service("web", &web_annotations(), false);
    svc["spec"]["ports"].as_array_mut().unwrap().push(
        json!({"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53, "nodePort": 30053}),
    );
    kube.put(&svc).unwrap();
    let agent = start_agent(&kube, &slb, "agent-a").await;
    let dns_group = "k8s/53/web/default/c1";
    let dns = eventually("a group for port 53 with the node", WAIT, || {
        let state = slb.state();
        let g = state
            .v_server_groups
            .values()
            .find(|g| g.name == dns_group)?;
        (g.backends.len() == 1).then(|| g.id.clone())
    })
    .await;
    eventually("port 80 synced", WAIT, || {
        (members(&slb, GROUP).len() == 1).then_some(())
    })
    .await;

    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    let only_http = json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP",
        "targetPort": 8080, "nodePort": 30080}]}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&only_http))
        .await
        .unwrap();
    eventually("port 53's group emptied", WAIT, || {
        members(&slb, &dns).is_empty().then_some(())
    })
    .await;
    assert_eq!(members(&slb, GROUP).len(), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_cleanup_drains_for_a_full_window_then_completes() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed()).await;
    kube.put(&node(1)).unwrap();
    kube.put(&service("web", &web_annotations(), false))
        .unwrap();
    let window = |c: &mut slb_sync::agent::AgentConfig| c.default_drain_secs = 3;
    let agent = start_agent_with(&kube, &slb, "agent-a", window).await;
    eventually("the node backend", WAIT, || {
        (members(&slb, GROUP).len() == 1).then_some(())
    })
    .await;
    eventually("the cleanup finalizer", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .filter(|s| s["metadata"]["finalizers"] == json!(["slb-sync.io/cleanup"]))
    })
    .await;

    let services: Api<Service> = Api::namespaced(kube.client().unwrap(), "default");
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("weight 0", WAIT, || {
        (members(&slb, GROUP).first().map(|m| m.2) == Some(0)).then_some(())
    })
    .await;
    agent.stop().await;

    // A new agent knows nothing of when the drain started: it drains a full window again.
    let restarted = std::time::Instant::now();
    let agent = start_agent_with(&kube, &slb, "agent-b", window).await;
    eventually("the Service gone", WAIT, || {
        kube.get("v1", "Service", "default", "web")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        restarted.elapsed() >= Duration::from_secs(3),
        "removed {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(members(&slb, GROUP), []);
    agent.stop().await;
}
