use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::delay::{rng_for, Delay};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::scheduler::{spawn_scheduler, Layout};

fn cfg(replicas: usize, max_surge: usize, max_unavailable: usize) -> RolloutConfig {
    RolloutConfig {
        namespace: "default".into(),
        name: "web".into(),
        replicas,
        max_surge,
        max_unavailable,
        period: Duration::from_millis(50),
        deadline: Duration::from_secs(60),
    }
}

fn pod(name: &str, rev: u32, ready: bool, terminating: bool) -> Pod {
    let mut meta = json!({"name": name, "labels": {"app": "web", REVISION_LABEL: rev.to_string()}});
    if terminating {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({"metadata": meta, "spec": {"containers": []},
        "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
    .unwrap()
}

#[test]
fn surge_then_delete_only_what_availability_allows() {
    let c = cfg(3, 1, 0);
    let old = vec![
        pod("a", 1, true, false),
        pod("b", 1, true, false),
        pod("c", 1, true, false),
    ];
    assert_eq!(
        step(&c, 2, &old),
        Step {
            create: 1,
            delete: vec![],
            done: false
        }
    );
    let mut with_new = old.clone();
    with_new.push(pod("n1", 2, false, false));
    assert_eq!(
        step(&c, 2, &with_new),
        Step {
            create: 0,
            delete: vec![],
            done: false
        },
        "new pod not Ready holds the rollout"
    );
    with_new[3] = pod("n1", 2, true, false);
    assert_eq!(step(&c, 2, &with_new).delete, vec!["a".to_string()]);
    with_new[0] = pod("a", 1, true, true);
    assert_eq!(
        step(&c, 2, &with_new).create,
        1,
        "terminating pods do not count"
    );
    let done = vec![
        pod("x", 2, true, false),
        pod("y", 2, true, false),
        pod("z", 2, true, false),
        pod("a", 1, false, true),
    ];
    assert!(step(&c, 2, &done).done);
    let c = cfg(3, 0, 1);
    assert_eq!(
        step(&c, 2, &old),
        Step {
            create: 0,
            delete: vec!["a".into()],
            done: false
        },
        "maxUnavailable without surge"
    );
}

#[tokio::test]
async fn rolls_real_pods_keeping_availability() {
    let kube = mock_kube::MockKube::builder()
        .graceful_pod_deletion(true)
        .serve()
        .await
        .unwrap();
    let client = kube.client().unwrap();
    let nodes: Vec<String> = vec!["n1".into(), "n2".into()];
    let _sched = spawn_scheduler(
        client.clone(),
        "default",
        "app=web",
        nodes.clone(),
        Layout::Spread,
    );
    let _kubelets: Vec<Kubelet> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let kc = KubeletConfig {
                node: n.clone(),
                subnet: 22,
                node_index: i as u8 + 1,
                namespace: "default".into(),
                container_port: 8080,
                startup: Delay::between(Duration::from_millis(50), Duration::from_millis(300)),
                response: Delay::fixed(Duration::ZERO),
                idle_close: Duration::from_millis(200),
                probe_period: Duration::from_millis(50),
                times: Default::default(),
            };
            Kubelet::start(client.clone(), kc, rng_for(9, n))
        })
        .collect();
    let template: Pod = serde_json::from_value(
        json!({"metadata": {}, "spec": {"terminationGracePeriodSeconds": 5,
        "containers": [{"name": "app", "image": "lab", "readinessProbe": {"httpGet": {"path": "/", "port": 8080}}}]}}),
    )
    .unwrap();
    let c = cfg(3, 1, 0);
    roll(client.clone(), &c, 1, &template).await.unwrap();

    // Watch availability while rolling to revision 2.
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (min_ready, stop) = (
        Arc::new(AtomicUsize::new(usize::MAX)),
        Arc::new(AtomicBool::new(false)),
    );
    let (m, s, a) = (min_ready.clone(), stop.clone(), api.clone());
    let sampler = tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            if let Ok(l) = a.list(&ListParams::default().labels("app=web")).await {
                let ready = l
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
                    .count();
                m.fetch_min(ready, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    roll(client.clone(), &c, 2, &template).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert!(
        min_ready.load(Ordering::Relaxed) >= 3,
        "maxUnavailable 0 kept 3 Ready pods"
    );

    crate::apps::tests::eventually("old pods removed", || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels("app=web"))
                .await
                .is_ok_and(|l| {
                    l.items.len() == 3
                        && l.items
                            .iter()
                            .all(|p| p.metadata.labels.as_ref().unwrap()[REVISION_LABEL] == "2")
                })
        }
    })
    .await;
    let on: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert!(
        on.contains(&"n1".to_string()) && on.contains(&"n2".to_string()),
        "spread over both nodes: {on:?}"
    );
}
