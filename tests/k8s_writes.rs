//! Finalizer release and Events through a real `kube::Client` against a small in-process
//! API (see `support/fake_apiserver.rs` for what it does and does not do).

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use fake_apiserver::FakeApi;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Api;
use serde_json::{json, Value};
use slb_sync::k8s::events::{AgentEvent, Events};
use slb_sync::k8s::names::{POD_FINALIZER, SERVICE_FINALIZER};
use slb_sync::k8s::release::{release_all, remove_finalizer, Removal};

fn object(kind: &str, namespace: &str, name: &str, finalizers: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": { "name": name, "namespace": namespace, "finalizers": finalizers },
    })
}

/// Five pods (three pages) and two Services, some held by us, some by others.
fn cluster() -> FakeApi {
    let api = FakeApi::default();
    api.insert("pods", object("Pod", "shop", "web-0", &[POD_FINALIZER]));
    api.insert(
        "pods",
        object("Pod", "shop", "web-1", &["example.com/keep", POD_FINALIZER]),
    );
    api.insert(
        "pods",
        object("Pod", "shop", "web-2", &["example.com/keep"]),
    );
    api.insert("pods", object("Pod", "shop", "web-3", &[]));
    api.insert("pods", object("Pod", "tools", "job-0", &[POD_FINALIZER]));
    api.insert(
        "services",
        object(
            "Service",
            "shop",
            "web",
            &[SERVICE_FINALIZER, "service.k8s.io/x"],
        ),
    );
    // Our pod finalizer on a Service is not ours to remove there.
    api.insert(
        "services",
        object("Service", "shop", "api", &[POD_FINALIZER]),
    );
    api
}

async fn release(api: &FakeApi, dry_run: bool) -> (Result<usize, Vec<String>>, Vec<String>) {
    let mut lines = Vec::new();
    let result = release_all(api.client(), dry_run, |released| {
        lines.push(released.to_string())
    })
    .await
    .map_err(|errors| errors.iter().map(ToString::to_string).collect());
    (result, lines)
}

#[tokio::test]
async fn release_all_removes_only_our_finalizers_across_pages() {
    let api = cluster();
    let (result, lines) = release(&api, false).await;
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
    assert!(api.finalizers("pods", "shop", "web-0").is_empty());
    assert_eq!(
        api.finalizers("pods", "shop", "web-1"),
        ["example.com/keep"]
    );
    assert_eq!(
        api.finalizers("pods", "shop", "web-2"),
        ["example.com/keep"]
    );
    assert_eq!(
        api.finalizers("pods", "tools", "job-0"),
        Vec::<String>::new()
    );
    assert_eq!(
        api.finalizers("services", "shop", "web"),
        ["service.k8s.io/x"]
    );
    assert_eq!(api.finalizers("services", "shop", "api"), [POD_FINALIZER]);
    assert_eq!(api.patches(), 4);
    // Three pages of pods were read by continue token.
    let pod_lists = {
        let inner = api.0.lock().unwrap();
        inner
            .requests
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/pods?"))
            .count()
    };
    assert_eq!(pod_lists, 3);

    // Idempotent: a second run changes nothing.
    let (result, lines) = release(&api, false).await;
    assert_eq!((result, lines.len(), api.patches()), (Ok(0), 0, 4));
}

#[tokio::test]
async fn dry_run_reports_without_writing() {
    let api = cluster();
    let (result, lines) = release(&api, true).await;
    assert_eq!(result, Ok(4));
    assert_eq!(
        lines[0],
        "pod shop/web-0: would remove finalizer slb-sync.io/drain"
    );
    assert_eq!(api.patches(), 0);
    assert_eq!(api.finalizers("pods", "shop", "web-0"), [POD_FINALIZER]);
}

/// Another controller adds its finalizer between our read and our write: the `test`
/// fails (422), we read again and remove ours without dropping theirs.
#[tokio::test]
async fn a_concurrent_change_is_retried_without_losing_the_other_finalizer() {
    let api = cluster();
    let mut fired = false;
    api.0.lock().unwrap().before_patch = Some(Box::new(move |key, stored| {
        if !fired && key.2 == "web-0" {
            fired = true;
            stored["metadata"]["finalizers"]
                .as_array_mut()
                .unwrap()
                .push(json!("late.io/x"));
        }
    }));
    let pods: Api<Pod> = Api::namespaced(api.client(), "shop");
    let removal = remove_finalizer(&pods, "web-0", POD_FINALIZER, false)
        .await
        .unwrap();
    assert_eq!(removal, Removal::Removed);
    assert_eq!(api.finalizers("pods", "shop", "web-0"), ["late.io/x"]);
    assert_eq!(api.patches(), 2);
}

#[tokio::test]
async fn absent_and_gone_objects_are_not_errors() {
    let api = cluster();
    let pods: Api<Pod> = Api::namespaced(api.client(), "shop");
    let absent = remove_finalizer(&pods, "web-2", POD_FINALIZER, false).await;
    assert_eq!(absent.unwrap(), Removal::Absent);
    let gone = remove_finalizer(&pods, "web-9", POD_FINALIZER, false).await;
    assert_eq!(gone.unwrap(), Removal::Gone);
    assert_eq!(api.patches(), 0);
}

#[tokio::test]
async fn one_refused_object_does_not_stop_the_rest() {
    let api = cluster();
    api.0
        .lock()
        .unwrap()
        .forbidden
        .push(("pods".into(), "shop".into(), "web-1".into()));
    let (result, lines) = release(&api, false).await;
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
        api.finalizers("pods", "shop", "web-1"),
        ["example.com/keep", POD_FINALIZER]
    );
    assert!(api.finalizers("pods", "shop", "web-0").is_empty());
}

#[tokio::test]
async fn events_reach_the_events_api_with_reason_note_and_type() {
    let api = FakeApi::default();
    let events = Events::new(api.client(), Some("slb-sync-7d9f".into()));
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
    let inner = api.0.lock().unwrap();
    assert_eq!(
        inner.requests,
        ["POST /apis/events.k8s.io/v1/namespaces/shop/events"]
    );
    let event = &inner.events[0];
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
