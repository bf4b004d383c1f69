//! Finalizer release and Events through a real `kube::Client` against mock-kube over
//! loopback: paged cluster-wide lists, JSON patches guarded by `test` (a failed one is
//! `422`), refused writes, and the events.k8s.io API.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Api;
use mock_kube::{Fault, MockKube, MockKubeHandle};
use serde_json::{json, Value};
use slb_sync::k8s::events::{AgentEvent, Events};
use slb_sync::k8s::names::{POD_FINALIZER, SERVICE_FINALIZER};
use slb_sync::k8s::release::{release_all, remove_finalizer, Removal};

/// Page size of `release_all`'s cluster-wide lists.
const PAGE: usize = 500;

fn object(kind: &str, namespace: &str, name: &str, finalizers: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": { "name": name, "namespace": namespace, "finalizers": finalizers },
    })
}

/// Five pods and two Services, some held by us, some by others, plus enough pods without
/// finalizers (`shop/x-*`, listed after `shop/web-*` and before `tools/job-0`) that the
/// pods take three pages: ours are on the first and the last.
async fn cluster() -> MockKubeHandle {
    let kube = MockKube::start().await.unwrap();
    let put = |doc: Value| {
        kube.put(&doc).unwrap();
    };
    put(object("Pod", "shop", "web-0", &[POD_FINALIZER]));
    put(object(
        "Pod",
        "shop",
        "web-1",
        &["example.com/keep", POD_FINALIZER],
    ));
    put(object("Pod", "shop", "web-2", &["example.com/keep"]));
    put(object("Pod", "shop", "web-3", &[]));
    for n in 0..2 * PAGE {
        put(object("Pod", "shop", &format!("x-{n:04}"), &[]));
    }
    put(object("Pod", "tools", "job-0", &[POD_FINALIZER]));
    put(object(
        "Service",
        "shop",
        "web",
        &[SERVICE_FINALIZER, "service.k8s.io/x"],
    ));
    // Our pod finalizer on a Service is not ours to remove there.
    put(object("Service", "shop", "api", &[POD_FINALIZER]));
    kube
}

fn finalizers(kube: &MockKubeHandle, kind: &str, namespace: &str, name: &str) -> Vec<String> {
    let object = kube
        .get("v1", kind, namespace, name)
        .unwrap_or_else(|| panic!("{kind} {namespace}/{name} exists"));
    serde_json::from_value(object["metadata"]["finalizers"].clone()).unwrap_or_default()
}

/// PATCH requests served (or refused) for pods and Services.
fn patches(kube: &MockKubeHandle) -> u64 {
    kube.request_count("patch", "pods") + kube.request_count("patch", "services")
}

fn client(kube: &MockKubeHandle) -> kube::Client {
    kube.client().unwrap()
}

async fn release(
    kube: &MockKubeHandle,
    dry_run: bool,
) -> (Result<usize, Vec<String>>, Vec<String>) {
    let mut lines = Vec::new();
    let result = release_all(client(kube), dry_run, |released| {
        lines.push(released.to_string())
    })
    .await
    .map_err(|errors| errors.iter().map(ToString::to_string).collect());
    (result, lines)
}

#[tokio::test]
async fn release_all_removes_only_our_finalizers_across_pages() {
    let kube = cluster().await;
    let (result, lines) = release(&kube, false).await;
    assert_eq!(result, Ok(4));
    assert_eq!(
        lines,
        [
            "pod shop/web-0: removed finalizer slb-sync.io/drain",
            "pod shop/web-1: removed finalizer slb-sync.io/drain",
            "pod tools/job-0: removed finalizer slb-sync.io/drain",
            "service shop/web: removed finalizer slb-sync.io/cleanup",
        ]
    );
    assert!(finalizers(&kube, "Pod", "shop", "web-0").is_empty());
    assert_eq!(
        finalizers(&kube, "Pod", "shop", "web-1"),
        ["example.com/keep"]
    );
    assert_eq!(
        finalizers(&kube, "Pod", "shop", "web-2"),
        ["example.com/keep"]
    );
    assert_eq!(
        finalizers(&kube, "Pod", "tools", "job-0"),
        Vec::<String>::new()
    );
    assert_eq!(
        finalizers(&kube, "Service", "shop", "web"),
        ["service.k8s.io/x"]
    );
    assert_eq!(finalizers(&kube, "Service", "shop", "api"), [POD_FINALIZER]);
    assert_eq!(patches(&kube), 4);
    // Three pages of pods were read by continue token.
    assert_eq!(kube.request_count("list", "pods"), 3);

    // Idempotent: a second run changes nothing.
    let (result, lines) = release(&kube, false).await;
    assert_eq!((result, lines.len(), patches(&kube)), (Ok(0), 0, 4));
}

#[tokio::test]
async fn dry_run_reports_without_writing() {
    let kube = cluster().await;
    let (result, lines) = release(&kube, true).await;
    assert_eq!(result, Ok(4));
    assert_eq!(
        lines[0],
        "pod shop/web-0: would remove finalizer slb-sync.io/drain"
    );
    assert_eq!(patches(&kube), 0);
    assert_eq!(finalizers(&kube, "Pod", "shop", "web-0"), [POD_FINALIZER]);
}

/// Another controller adds its finalizer between our read and our write: the `test`
/// fails (422), we read again and remove ours without dropping theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_change_is_retried_without_losing_the_other_finalizer() {
    let kube = cluster().await;
    // Our first PATCH is held long enough for the other controller's write to land
    // before it is applied.
    kube.inject_fault(
        Fault::delay("/api/v1/namespaces/shop/pods/web-0", Duration::from_secs(2))
            .method("PATCH")
            .times(1),
    );
    let pods: Api<Pod> = Api::namespaced(client(&kube), "shop");
    let removal =
        tokio::spawn(async move { remove_finalizer(&pods, "web-0", POD_FINALIZER, false).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while kube.request_count("patch", "pods") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "remove_finalizer sent no PATCH"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kube.put(&object(
        "Pod",
        "shop",
        "web-0",
        &[POD_FINALIZER, "late.io/x"],
    ))
    .unwrap();
    assert!(
        !removal.is_finished(),
        "the other controller wrote while our PATCH was held"
    );
    let removal = removal.await.unwrap().unwrap();
    assert_eq!(removal, Removal::Removed);
    assert_eq!(finalizers(&kube, "Pod", "shop", "web-0"), ["late.io/x"]);
    assert_eq!(patches(&kube), 2);
}

#[tokio::test]
async fn absent_and_gone_objects_are_not_errors() {
    let kube = cluster().await;
    let pods: Api<Pod> = Api::namespaced(client(&kube), "shop");
    let absent = remove_finalizer(&pods, "web-2", POD_FINALIZER, false).await;
    assert_eq!(absent.unwrap(), Removal::Absent);
    let gone = remove_finalizer(&pods, "web-9", POD_FINALIZER, false).await;
    assert_eq!(gone.unwrap(), Removal::Gone);
    assert_eq!(patches(&kube), 0);
}

#[tokio::test]
async fn one_refused_object_does_not_stop_the_rest() {
    let kube = cluster().await;
    kube.inject_fault(
        Fault::fail("/api/v1/namespaces/shop/pods/web-1", 403, "Forbidden").method("PATCH"),
    );
    let (result, lines) = release(&kube, false).await;
    let errors = result.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("Pod web-1")
            && errors[0].contains("may get and patch Pods")
            && errors[0].contains("kubectl patch pod"),
        "{}",
        errors[0]
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(
        finalizers(&kube, "Pod", "shop", "web-1"),
        ["example.com/keep", POD_FINALIZER]
    );
    assert!(finalizers(&kube, "Pod", "shop", "web-0").is_empty());
}

#[tokio::test]
async fn events_reach_the_events_api_with_reason_note_and_type() {
    let kube = MockKube::start().await.unwrap();
    // Only events.k8s.io answers: an Event written through core/v1 would fail the publish.
    kube.inject_fault(Fault::fail("/api/", 404, "NotFound"));
    let events = Events::new(client(&kube), Some("slb-sync-7d9f".into()));
    let pod = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some("shop".into()),
        name: Some("web-0".into()),
        uid: Some("uid-1".into()),
        ..ObjectReference::default()
    };
    events
        .publish(
            &AgentEvent::FailOpenRelease {
                held_secs: 95,
                reason: "SLB unreachable".into(),
            },
            &pod,
        )
        .await
        .unwrap();
    assert_eq!(
        kube.request_counts().into_iter().collect::<Vec<_>>(),
        [(("create".to_string(), "events".to_string()), 1)]
    );
    let stored = kube.list("events.k8s.io/v1", "Event", Some("shop"));
    assert_eq!(stored.len(), 1);
    let event = &stored[0];
    assert_eq!(event["reason"], "FailOpenRelease");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["action"], "ReleaseFinalizer");
    assert_eq!(event["reportingController"], "slb-sync");
    assert_eq!(event["reportingInstance"], "slb-sync-7d9f");
    assert_eq!(event["regarding"]["name"], "web-0");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("95s") && note.contains("SLB unreachable"),
        "{note}"
    );
}
