//! List with selectors and watch semantics, through `kube::Api` and kube-runtime's
//! `watcher`.

mod common;

use std::time::Duration;

use common::{api_err, create_pod, setup, WAIT};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mock_kube::MockKube;
use serde_json::json;
use tokio::time::timeout;

fn names(pods: &[Pod]) -> Vec<String> {
    let mut n: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
    n.sort();
    n
}

#[tokio::test]
async fn list_with_label_and_field_selectors_across_namespaces() {
    let (kube, client) = setup().await;
    let default: Api<Pod> = Api::namespaced(client.clone(), "default");
    let other: Api<Pod> = Api::namespaced(client.clone(), "other");
    let all: Api<Pod> = Api::all(client);
    create_pod(&default, "a", &[("app", "web"), ("tier", "fe")], Some("n1")).await;
    create_pod(&default, "b", &[("app", "web")], Some("n2")).await;
    create_pod(&default, "c", &[("app", "db")], Some("n1")).await;
    create_pod(&other, "d", &[("app", "web")], None).await;

    let list = |api: Api<Pod>, lp: ListParams| async move { api.list(&lp).await.unwrap() };
    let l = list(all.clone(), ListParams::default()).await;
    assert_eq!(names(&l.items), ["a", "b", "c", "d"]);
    assert_eq!(
        l.metadata.resource_version,
        Some(kube.resource_version().to_string())
    );
    assert_eq!(
        names(&list(default.clone(), ListParams::default()).await.items),
        ["a", "b", "c"]
    );
    let by = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(&list(all.clone(), by("app=web")).await.items),
        ["a", "b", "d"]
    );
    assert_eq!(
        names(&list(all.clone(), by("app==web,tier")).await.items),
        ["a"]
    );
    assert_eq!(names(&list(all.clone(), by("app!=web")).await.items), ["c"]);
    assert_eq!(
        names(&list(all.clone(), by("app in (db, cache)")).await.items),
        ["c"]
    );
    assert_eq!(
        names(&list(all.clone(), by("app notin (web)")).await.items),
        ["c"]
    );
    assert_eq!(
        names(&list(all.clone(), by("!tier")).await.items),
        ["b", "c", "d"]
    );

    let f = |s: &str| ListParams::default().fields(s);
    assert_eq!(
        names(&list(all.clone(), f("spec.nodeName=n1")).await.items),
        ["a", "c"]
    );
    assert_eq!(
        names(
            &list(all.clone(), f("metadata.namespace!=default"))
                .await
                .items
        ),
        ["d"]
    );
    assert_eq!(
        names(&list(all.clone(), f("metadata.name=b")).await.items),
        ["b"]
    );
    assert_eq!(
        names(
            &list(all.clone(), f("status.phase=Pending,spec.nodeName=n2"))
                .await
                .items
        ),
        ["b"]
    );
    let err = all.list(&f("spec.bogus=1")).await.unwrap_err();
    assert_eq!(api_err(err).0, 400);
    let err = all.list(&by("app in web")).await.unwrap_err();
    assert_eq!(api_err(err).0, 400);
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<Pod>>> + Unpin),
) -> WatchEvent<Pod> {
    timeout(WAIT, stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event ok")
}

#[tokio::test]
async fn watch_from_resource_version_streams_changes_and_selector_transitions() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "old", &[("app", "web")], None).await;
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let wp = WatchParams::default().labels("app=web");
    let mut stream = pods.watch(&wp, &rv).await.unwrap().boxed();
    create_pod(&pods, "p", &[("app", "web")], None).await;
    create_pod(&pods, "ignored", &[("app", "db")], None).await;
    let patch = json!({"metadata": {"annotations": {"x": "1"}}});
    pods.patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // Leaving the selector is a DELETED for this watch.
    let patch = json!({"metadata": {"labels": {"app": "other"}}});
    pods.patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // Entering it is an ADDED.
    let patch = json!({"metadata": {"labels": {"app": "web"}}});
    pods.patch("ignored", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    pods.delete("old", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..5 {
        let ev = next_event(&mut stream).await;
        seen.push(match ev {
            WatchEvent::Added(p) => format!("ADDED {}", p.name_any()),
            WatchEvent::Modified(p) => format!("MODIFIED {}", p.name_any()),
            WatchEvent::Deleted(p) => format!("DELETED {}", p.name_any()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            "ADDED p",
            "MODIFIED p",
            "DELETED p",
            "ADDED ignored",
            "DELETED old"
        ]
    );
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_existing_objects() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "a", &[], None).await;
    let mut stream = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Added(p) => assert_eq!(p.name_any(), "a"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watch_sends_bookmarks_and_ends_at_timeout() {
    let kube = MockKube::builder()
        .bookmark_interval(Duration::from_millis(50))
        .serve()
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), "default");
    let rv = kube.resource_version().to_string();
    let wp = WatchParams::default().timeout(1);
    let mut stream = pods.watch(&wp, &rv).await.unwrap().boxed();
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // The server closes the stream at timeoutSeconds.
    let end = timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            ev.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "watch did not end at its timeout");

    // Without allowWatchBookmarks there are none.
    let wp = WatchParams::default().disable_bookmarks().timeout(1);
    let events: Vec<_> = pods.watch(&wp, &rv).await.unwrap().collect().await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn watch_from_compacted_version_is_410_gone() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let rv = kube.resource_version().to_string();
    create_pod(&pods, "a", &[], None).await;
    kube.compact_history();
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(s) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // The current version is still fine.
    let rv = kube.resource_version().to_string();
    let wp = WatchParams::default().disable_bookmarks().timeout(1);
    let events: Vec<_> = pods.watch(&wp, &rv).await.unwrap().collect().await;
    assert!(events.is_empty());
}

#[tokio::test]
async fn bounded_history_expires_old_versions() {
    let kube = MockKube::builder().history_limit(2).serve().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), "default");
    let rv = kube.resource_version().to_string();
    for n in ["a", "b", "c"] {
        create_pod(&pods, n, &[], None).await;
    }
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(next_event(&mut stream).await, WatchEvent::Error(s) if s.code == 410));
}

fn label(ev: &watcher::Event<Pod>) -> String {
    match ev {
        watcher::Event::Init => "Init".into(),
        watcher::Event::InitApply(p) => format!("InitApply {}", p.name_any()),
        watcher::Event::InitDone => "InitDone".into(),
        watcher::Event::Apply(p) => format!("Apply {}", p.name_any()),
        watcher::Event::Delete(p) => format!("Delete {}", p.name_any()),
    }
}

#[tokio::test]
async fn runtime_watcher_sees_changes_and_relists_after_410() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "a", &[("app", "web")], None).await;
    let cfg = watcher::Config::default().labels("app=web");
    let mut stream = watcher(pods.clone(), cfg).boxed();
    let mut next = async || -> String {
        match timeout(WAIT, stream.next()).await.expect("event in time") {
            Some(Ok(ev)) => label(&ev),
            Some(Err(e)) => {
                // The 410 surfaces as an error item; the watcher then re-lists.
                assert!(
                    matches!(&e, watcher::Error::WatchError(s) if s.code == 410),
                    "{e:?}"
                );
                "Gone".into()
            }
            None => panic!("watcher ended"),
        }
    };
    assert_eq!(next().await, "Init");
    assert_eq!(next().await, "InitApply a");
    assert_eq!(next().await, "InitDone");

    create_pod(&pods, "b", &[("app", "web")], None).await;
    assert_eq!(next().await, "Apply b");
    let patch = json!({"spec": {"activeDeadlineSeconds": 9}});
    pods.patch("b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(next().await, "Apply b");
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(next().await, "Delete a");

    // The connection drops, a change happens, and the history is compacted before the
    // watcher comes back: it must get 410 and re-list to learn about "c".
    kube.disconnect_watches();
    kube.put(&common::mk_pod_in("c", "default", &[("app", "web")]))
        .unwrap();
    kube.compact_history();
    assert_eq!(next().await, "Gone");
    assert_eq!(next().await, "Init");
    let mut relisted = vec![next().await, next().await];
    relisted.sort();
    assert_eq!(relisted, ["InitApply b", "InitApply c"]);
    assert_eq!(next().await, "InitDone");
    assert!(kube.request_count("list", "pods") >= 2);
}

#[tokio::test]
async fn runtime_watcher_streaming_list_uses_initial_events() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "a", &[], None).await;
    let cfg = watcher::Config::default().streaming_lists();
    let mut stream = watcher(pods.clone(), cfg).boxed();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("InitDone") {
        let ev = timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(label(&ev));
    }
    assert_eq!(seen, ["Init", "InitApply a", "InitDone"]);
    assert_eq!(kube.request_count("list", "pods"), 0);
    create_pod(&pods, "b", &[], None).await;
    let ev = timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(label(&ev), "Apply b");
}

#[tokio::test]
async fn metadata_watcher_gets_partial_objects() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_pod(&pods, "a", &[("app", "web")], Some("n1")).await;
    let meta = pods.get_metadata("a").await.unwrap();
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(meta.metadata.labels.unwrap()["app"], "web");
    let list = pods.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let meta_api: Api<kube::core::PartialObjectMeta<Pod>> = Api::namespaced(client, "default");
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("Apply b") {
        let ev = timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match ev {
            watcher::Event::Init => "Init".into(),
            watcher::Event::InitApply(p) => format!("InitApply {}", p.name_any()),
            watcher::Event::InitDone => {
                create_pod(&pods, "b", &[], None).await;
                "InitDone".into()
            }
            watcher::Event::Apply(p) => format!("Apply {}", p.name_any()),
            watcher::Event::Delete(p) => format!("Delete {}", p.name_any()),
        });
    }
    assert_eq!(seen, ["Init", "InitApply a", "InitDone", "Apply b"]);
}
