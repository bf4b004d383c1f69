//! The handle's direct hooks, the kubeconfig and shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{api_err, create_pod, mk_pod_in, setup, WAIT};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, ResourceExt};
use mock_kube::{Fault, MockKube};
use serde_json::json;
use tokio::time::timeout;

#[tokio::test]
async fn put_get_list_remove_are_seen_by_clients() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let rv = kube.resource_version().to_string();
    let mut stream = pods
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();

    let mut p = mk_pod_in("p", "default", &[("app", "web")]);
    p["status"] = json!({"phase": "Running", "podIP": "10.0.0.5"});
    let stored = kube.put(&p).unwrap();
    assert!(stored["metadata"]["uid"].is_string());
    // put keeps status as given (create through the API would reset it).
    let got = pods.get("p").await.unwrap();
    assert_eq!(got.status.unwrap().pod_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(
        kube.get("v1", "Pod", "default", "p").unwrap()["status"]["phase"],
        "Running"
    );
    assert_eq!(kube.list("v1", "Pod", None).len(), 1);
    assert_eq!(kube.list("v1", "Pod", Some("other")).len(), 0);
    assert!(kube.remove("v1", "Pod", "default", "p").is_some());
    assert!(kube.get("v1", "Pod", "default", "p").is_none());

    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            match timeout(WAIT, stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                WatchEvent::Added(p) => format!("ADDED {}", p.name_any()),
                WatchEvent::Deleted(p) => format!("DELETED {}", p.name_any()),
                other => format!("{other:?}"),
            },
        );
    }
    assert_eq!(seen, ["ADDED p", "DELETED p"]);
    assert!(kube
        .put(&json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"}}))
        .is_err());
}

#[tokio::test]
async fn request_counts_by_verb_and_resource() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[], None).await;
    pods.get("p").await.unwrap();
    pods.get("p").await.unwrap();
    pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(kube.request_count("create", "pods"), 1);
    assert_eq!(kube.request_count("get", "pods"), 2);
    assert_eq!(kube.request_count("list", "pods"), 1);
    assert_eq!(kube.request_count("patch", "pods"), 0);
    kube.reset_request_counts();
    assert!(kube.request_counts().is_empty());
}

#[tokio::test]
async fn injected_failures_and_latency() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[], None).await;
    kube.inject_fault(
        Fault::fail("/api/v1/namespaces/default/pods", 500, "InternalError")
            .method("GET")
            .times(2),
    );
    for _ in 0..2 {
        let err = pods.get("p").await.unwrap_err();
        assert_eq!(api_err(err), (500, "InternalError".to_string()));
    }
    pods.get("p").await.unwrap();

    let id = kube.inject_fault(Fault::fail(
        "/api/v1/namespaces/default/pods/p",
        409,
        "Conflict",
    ));
    assert_eq!(api_err(pods.get("p").await.unwrap_err()).0, 409);
    assert_eq!(api_err(pods.get("p").await.unwrap_err()).0, 409);
    kube.remove_fault(id);
    pods.get("p").await.unwrap();

    // kube's client retries 429/503/504 by itself; every attempt is counted.
    kube.reset_request_counts();
    kube.inject_fault(
        Fault::fail("/api/v1/namespaces/default/pods/p", 429, "TooManyRequests").times(2),
    );
    pods.get("p").await.unwrap();
    assert_eq!(kube.request_count("get", "pods"), 3);

    kube.inject_fault(
        Fault::delay(
            "/api/v1/namespaces/default/pods",
            Duration::from_millis(300),
        )
        .times(1),
    );
    let start = Instant::now();
    pods.get("p").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    kube.clear_faults();
}

#[tokio::test]
async fn kubeconfig_file_gives_a_working_client() {
    let kube = MockKube::builder()
        .namespaces(["default", "slb-sync"])
        .serve()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        kube.url()
    );
    let client = kube::Client::try_from(config).unwrap();
    let ns: Api<Namespace> = Api::all(client);
    let names: Vec<String> = ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names, ["default", "slb-sync"]);
}

#[tokio::test]
async fn strict_namespaces_reject_unknown_namespace() {
    let kube = MockKube::builder()
        .strict_namespaces(true)
        .serve()
        .await
        .unwrap();
    let client = kube.client().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "nope");
    let err = pods
        .create(&PostParams::default(), &common::mk_pod("p", &[], None))
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (404, "NotFound".to_string()));
    let ns: Api<Namespace> = Api::all(client);
    let created = ns
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "nope"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    pods.create(&PostParams::default(), &common::mk_pod("p", &[], None))
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let rv = kube.resource_version().to_string();
    let mut stream = pods
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    let url = kube.url();
    timeout(WAIT, kube.shutdown())
        .await
        .expect("shutdown completes with a watch open");
    let rest = timeout(WAIT, stream.next()).await.expect("stream ends");
    assert!(rest.is_none() || rest.unwrap().is_err());
    // Nothing listens any more.
    assert!(
        tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .is_err()
    );
}
