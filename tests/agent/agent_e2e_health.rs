//! Health-aware readiness gates, the whole agent in-process against mock-kube and
//! mock-slb over loopback: the listener checks its backends (a real TCP connect to the
//! pod's address every second, normal after two successes) and holds a backend it has
//! not checked yet out of rotation. The gate opens only once the SLB reports the pod's
//! backend `normal`; an `abnormal` backend keeps it shut with a Warning Event until the
//! health-gate timeout opens it; `DescribeHealthStatus` is read only while a gate waits,
//! once per load balancer per check interval.

use support::agent;
use support::pod_e2e;
use support::slb_mock;

use std::time::{Duration, Instant};

use agent::eventually;
use pod_e2e::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The integration seed with listener 80 checking every second, normal after two
/// successes, abnormal after two failures, and unchecked backends held out of rotation.
fn checked_seed(net: u8) -> mock_slb::Seed {
    let mut seed = slb_mock::seed(net, false, json!({}));
    seed.load_balancers[0].listeners[0].health_check = Some(mock_slb::state::HealthCheck {
        interval_ms: 1_000,
        timeout_ms: 500,
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        unchecked_serves: false,
    });
    seed
}

/// The gated pod with `ContainersReady` True since now (the health gate's timeout counts
/// from it).
fn ready_pod(name: &str, ip: &str) -> Value {
    let mut p = pod(name, ip);
    p["status"]["conditions"][0]["lastTransitionTime"] = json!(jiff::Timestamp::now().to_string());
    p
}

/// `at_ms` of every `DescribeHealthStatus` call in the mock's log.
fn health_reads(slb: &mock_slb::MockSlbHandle) -> Vec<u64> {
    slb.call_log()
        .iter()
        .filter(|c| c.action == "DescribeHealthStatus")
        .map(|c| c.at_ms)
        .collect()
}

fn events(kube: &mock_kube::MockKubeHandle, name: &str) -> Vec<(String, String)> {
    kube.list("events.k8s.io/v1", "Event", Some(NS))
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("reason"), s("note"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_opens_once_the_slb_reports_the_backend_normal_and_health_reads_stop() {
    let net = 45;
    let ip = format!("127.0.{net}.101");
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(checked_seed(net)).await;
    // The pod's server: the health check's connects succeed from the start.
    let server = tokio::net::TcpListener::bind((ip.as_str(), 8080))
        .await
        .unwrap();
    tokio::spawn(async move { while server.accept().await.is_ok() {} });
    put_eni_service(&kube);
    let agent = start(&kube, &slb, "agent-a", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        health_reads(&slb).is_empty(),
        "no gate waits: no health read"
    );

    kube.put(&ready_pod("web-0", &ip)).unwrap();
    kube.put(&slice("web-0", &ip, Ep::NotReady)).unwrap();
    // The gate must stay shut while the SLB does not report the backend normal: read
    // the gate first, then the SLB, and every True must find it normal.
    let started = Instant::now();
    let deadline = started + WAIT;
    let mut registered_at = None;
    let mut normal_at = None;
    let opened_at = loop {
        let gate = kube
            .get("v1", "Pod", NS, "web-0")
            .and_then(|p| condition(&p, GATE));
        let health = slb
            .backend_health(slb_mock::LB, 80)
            .into_iter()
            .find(|(addr, _)| addr.ip().to_string() == ip)
            .map(|(_, h)| h.as_str());
        if !weights_at(&slb, &ip).is_empty() && registered_at.is_none() {
            registered_at = Some(started.elapsed());
        }
        if health == Some("normal") && normal_at.is_none() {
            normal_at = Some(started.elapsed());
        }
        if let Some((status, reason)) = &gate {
            if status == "True" {
                assert_eq!(reason, "BackendHealthy");
                assert_eq!(health, Some("normal"), "gate True before normal");
                break started.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "gate never opened: {gate:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let registered_at = registered_at.expect("backend registered");
    let normal_at = normal_at.expect("normal seen before the gate opened");
    // Printed for the docs' figure (normal → gate True, one check interval is 1 s).
    println!(
        "normal → gate True: {} ms",
        (opened_at - normal_at).as_millis()
    );
    // Two checks a second apart, then at most one poll interval (1 s) to see it.
    assert!(
        opened_at >= registered_at + Duration::from_millis(900),
        "opened {opened_at:?}, registered {registered_at:?}: no time for two checks"
    );

    // While the gate waited: reads at most once per check interval (1 s).
    let reads = health_reads(&slb);
    assert!(!reads.is_empty());
    for pair in reads.windows(2) {
        assert!(
            pair[1] - pair[0] >= 900,
            "health reads closer than the interval: {reads:?}"
        );
    }
    // Gate open: nobody waits, the reads stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = health_reads(&slb);
    assert!(
        later.len() <= reads.len() + 1,
        "health still read with no gate waiting: {} → {}",
        reads.len(),
        later.len()
    );
    let before = later.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        health_reads(&slb).len(),
        before,
        "no gate waits: no health read"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abnormal_backend_keeps_the_gate_shut_with_an_event_until_the_timeout() {
    let net = 46;
    let ip = format!("127.0.{net}.101");
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(checked_seed(net)).await;
    put_eni_service(&kube);
    let agent = agent::start_agent_full(&kube, &slb, "agent-a", lifecycle(), |c| {
        c.default_drain_secs = 2;
        c.health_gate.timeout = Duration::from_secs(8);
    })
    .await;
    // Nothing listens on the pod's address: every check fails.
    kube.put(&ready_pod("web-0", &ip)).unwrap();
    kube.put(&slice("web-0", &ip, Ep::NotReady)).unwrap();
    let message = eventually("gate False: backend abnormal", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        let c = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == GATE)?
            .clone();
        (c["status"] == "False" && c["reason"] == "BackendUnhealthy")
            .then(|| c["message"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert!(message.contains("listener 80"), "{message}");
    assert!(message.contains("every 1s"), "{message}");
    let warned = eventually("BackendUnhealthy Event", WAIT, || {
        events(&kube, "web-0")
            .into_iter()
            .find(|(reason, _)| reason == "BackendUnhealthy")
    })
    .await;
    assert!(warned.1.contains("listener 80"), "{}", warned.1);

    // The timeout (8 s after ContainersReady) opens it, with a Warning and the metric.
    let (status, reason) = eventually("gate opened by the timeout", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        condition(&p, GATE).filter(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "HealthGateTimeout")
    );
    eventually("HealthGateTimeout Event", WAIT, || {
        events(&kube, "web-0")
            .into_iter()
            .find(|(reason, _)| reason == "HealthGateTimeout")
    })
    .await;
    let metrics = agent.metrics_text().await;
    assert!(
        metrics.contains("slb_sync_gate_fail_open_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("slb_sync_backend_unhealthy_total 1"));
    agent.stop().await;
}

/// An EndpointSlice of `web` with one endpoint per `(pod, ip, state)`.
fn slice_of(endpoints: &[(&str, &str, Ep)]) -> Value {
    let mut s = slice(endpoints[0].0, endpoints[0].1, endpoints[0].2);
    s["endpoints"] = endpoints
        .iter()
        .map(|(name, ip, ep)| {
            let one = slice(name, ip, *ep);
            one["endpoints"][0].clone()
        })
        .collect();
    s
}

/// One step of a rolling update as the Deployment controller makes it, under `gate_on`,
/// with a client opening a connection through the SLB every 20 ms: new pod `web-1` is
/// created, and once it is Ready (`gated`: its gate is True; else at once) old pod
/// `web-0` is deleted. Returns the client's connections the SLB refused (no backend in
/// rotation).
async fn rolling_step(net: u8, gate_on: slb_sync::agent::health::GateOn, gated: bool) -> u64 {
    let (ip0, ip1) = (format!("127.0.{net}.101"), format!("127.0.{net}.102"));
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(checked_seed(net)).await;
    for ip in [&ip0, &ip1] {
        let server = tokio::net::TcpListener::bind((ip.as_str(), 8080))
            .await
            .unwrap();
        tokio::spawn(async move { while server.accept().await.is_ok() {} });
    }
    put_eni_service(&kube);
    let agent = agent::start_agent_full(&kube, &slb, "agent-a", lifecycle(), |c| {
        c.default_drain_secs = 2;
        c.health_gate.gate_on = gate_on;
    })
    .await;
    let normal = |ip: &str| {
        slb.backend_health(slb_mock::LB, 80)
            .iter()
            .any(|(addr, h)| addr.ip().to_string() == ip && h.as_str() == "normal")
    };
    // The old pod serves: registered, checked normal, Ready.
    kube.put(&ready_pod("web-0", &ip0)).unwrap();
    kube.put(&slice_of(&[("web-0", &ip0, Ep::NotReady)]))
        .unwrap();
    eventually("web-0 gate True and normal", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        (is_true(&p, GATE) && normal(&ip0)).then_some(())
    })
    .await;
    kube.put(&slice_of(&[("web-0", &ip0, Ep::Ready)])).unwrap();

    let lb = slb.listener_addr(slb_mock::LB, 80).unwrap();
    let before = slb.dataplane_counters(slb_mock::LB, 80).unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let client = tokio::spawn(async move {
        loop {
            let _ = tokio::net::TcpStream::connect(lb).await;
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });

    // The surge pod; the Deployment controller deletes the old one once it is Ready.
    let mut surge = ready_pod("web-1", &ip1);
    if gated {
        kube.put(&surge).unwrap();
        kube.put(&slice_of(&[
            ("web-0", &ip0, Ep::Ready),
            ("web-1", &ip1, Ep::NotReady),
        ]))
        .unwrap();
        eventually("web-1 gate True", WAIT, || {
            let p = kube.get("v1", "Pod", NS, "web-1")?;
            is_true(&p, GATE).then_some(())
        })
        .await;
    } else {
        // No gate: Ready as soon as its containers are; the agent has only just seen it.
        surge["spec"]
            .as_object_mut()
            .unwrap()
            .remove("readinessGates");
        kube.put(&surge).unwrap();
        kube.put(&slice_of(&[
            ("web-0", &ip0, Ep::Ready),
            ("web-1", &ip1, Ep::Ready),
        ]))
        .unwrap();
        eventually("web-1 in the SLB", WAIT, || {
            (!weights_at(&slb, &ip1).is_empty()).then_some(())
        })
        .await;
    }
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kube.client().unwrap(), NS);
    pods.delete("web-0", &Default::default()).await.unwrap();
    kube.put(&slice_of(&[
        ("web-0", &ip0, Ep::Terminating),
        ("web-1", &ip1, Ep::Ready),
    ]))
    .unwrap();
    // Until web-0 is at weight 0 and well past web-1's checks.
    eventually("web-0 at weight 0", WAIT, || {
        weights_at(&slb, &ip0).iter().all(|w| *w == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop.send(());
    client.await.unwrap();
    let after = slb.dataplane_counters(slb_mock::LB, 80).unwrap();
    assert!(after.accepted - before.accepted > 50, "the client ran");
    agent.stop().await;
    after.refused - before.refused
}

/// With unchecked backends held out of rotation, a gate that opens on registration lets
/// the rollout take the old pod out before the new one takes traffic: the SLB refuses
/// connections. The health-aware gate loses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_step_loses_nothing_when_the_gate_waits_for_health() {
    use slb_sync::agent::health::GateOn;
    let healthy = rolling_step(48, GateOn::Healthy, true).await;
    let registered = rolling_step(49, GateOn::Registered, true).await;
    println!("refused connections: gate-on healthy {healthy}, registered {registered}");
    assert_eq!(healthy, 0, "connections refused with --gate-on healthy");
    assert!(
        registered > 0,
        "--gate-on registered should have lost connections here (the lab's claim depends on \
         this scenario being able to fail)"
    );
}

/// Without readiness gates the rollout deletes the old pod as soon as the new one is in
/// the SLB: with health reads on, the old backend keeps its weight until the new one is
/// reported normal (make before break by health), and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_waits_for_its_replacement_to_be_reported_normal() {
    use slb_sync::agent::health::GateOn;
    let held = rolling_step(56, GateOn::Healthy, false).await;
    let by_weights = rolling_step(57, GateOn::Registered, false).await;
    println!("refused connections without gates: health-aware {held}, by weights {by_weights}");
    assert_eq!(
        held, 0,
        "connections refused while the drain waited for health"
    );
    assert!(
        by_weights > 0,
        "draining by weights alone should have lost connections here"
    );
}

/// Cluster mode: a node passes the SLB's check only while kube-proxy has a ready
/// endpoint of the Service somewhere. The first pod (nothing listens on the node port
/// here, so every node is abnormal) keeps the registration rule instead of waiting for
/// the health-gate timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_cluster_mode_pod_opens_on_registration() {
    let net = 58;
    let ip = format!("127.0.{net}.101");
    let kube = agent::start_kube().await;
    let slb = slb_mock::start_mock(checked_seed(net)).await;
    kube.put(&agent::node(1)).unwrap();
    kube.put(&agent::service(
        "web",
        &[("vgroup-port", "rsp-int:80")],
        false,
    ))
    .unwrap();
    let agent = start(&kube, &slb, "agent-a", 2).await;
    kube.put(&ready_pod("web-0", &ip)).unwrap();
    kube.put(&slice("web-0", &ip, Ep::NotReady)).unwrap();
    let (status, reason) = eventually("gate True", WAIT, || {
        let p = kube.get("v1", "Pod", NS, "web-0")?;
        condition(&p, GATE).filter(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "BackendRegistered")
    );
    agent.stop().await;
}
