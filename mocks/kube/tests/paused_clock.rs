//! The double under tokio's paused clock, as the agent's timing tests run it: requests,
//! watches and bookmarks work while virtual time jumps ahead.

mod common;

use std::time::Duration;

use common::create_pod;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mock_kube::MockKube;

#[tokio::test(start_paused = true)]
async fn works_with_paused_time() {
    let kube = MockKube::builder()
        .bookmark_interval(Duration::from_secs(60))
        .serve()
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), "default");
    create_pod(&pods, "a", &[], None).await;
    let mut w = watcher(pods.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("Apply b") {
        let ev = w.next().await.unwrap().unwrap();
        seen.push(match ev {
            watcher::Event::InitDone => {
                create_pod(&pods, "b", &[], None).await;
                "InitDone".to_string()
            }
            watcher::Event::Apply(p) => format!("Apply {}", p.name_any()),
            watcher::Event::InitApply(p) => format!("InitApply {}", p.name_any()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["Init", "InitApply a", "InitDone", "Apply b"]);

    // A bookmark arrives after 60 virtual seconds, and the watch ends at its timeout.
    let rv = kube.resource_version().to_string();
    let start = tokio::time::Instant::now();
    let mut s = pods
        .watch(&WatchParams::default().timeout(150), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(s.next().await, Some(Ok(WatchEvent::Bookmark(_)))));
    assert!(start.elapsed() >= Duration::from_secs(60));
    while let Some(ev) = s.next().await {
        ev.unwrap();
    }
    assert!(start.elapsed() >= Duration::from_secs(150));
}
