//! The four patch flavours through `kube::Api::patch`.

mod common;

use common::{api_err, create_pod, setup};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn merge_patch_sets_and_removes_fields() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[("app", "web"), ("tier", "fe")], None).await;
    let patch = json!({"metadata": {"labels": {"tier": null, "new": "x"}, "finalizers": ["f/a"]}});
    let out = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let labels: Vec<(&String, &String)> = out.labels().iter().collect();
    assert_eq!(
        labels,
        [
            (&"app".to_string(), &"web".to_string()),
            (&"new".to_string(), &"x".to_string())
        ]
    );
    assert_eq!(out.finalizers(), ["f/a"]);
    // Merge patch replaces lists.
    let patch = json!({"metadata": {"finalizers": ["f/b"]}});
    let out = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(out.finalizers(), ["f/b"]);
}

#[tokio::test]
async fn patch_with_stale_resource_version_conflicts_and_noop_keeps_version() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let p = create_pod(&pods, "p", &[], None).await;
    let rv = p.resource_version().unwrap();
    let patch = json!({"metadata": {"labels": {"a": "1"}, "resourceVersion": rv}});
    let out = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let err = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (409, "Conflict".to_string()));

    let same = json!({"metadata": {"labels": {"a": "1"}}});
    let again = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&same))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), out.resource_version());
}

#[tokio::test]
async fn strategic_merge_handles_finalizers_gates_and_directives() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[], None).await;
    let sp = |v: serde_json::Value| async {
        pods.patch("p", &PatchParams::default(), &Patch::Strategic(v))
            .await
            .unwrap()
    };
    sp(json!({"metadata": {"finalizers": ["a"]}})).await;
    let out = sp(json!({"metadata": {"finalizers": ["b"]}})).await;
    assert_eq!(out.finalizers(), ["a", "b"]);
    let out = sp(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})).await;
    assert_eq!(out.finalizers(), ["b"]);

    let out =
        sp(json!({"spec": {"readinessGates": [{"conditionType": "registered.slb-sync.io/web"}]}}))
            .await;
    let out2 = sp(json!({"spec": {"readinessGates": [{"conditionType": "service.readiness.alibabacloud.com/web"}]}})).await;
    assert_eq!(out.spec.unwrap().readiness_gates.unwrap().len(), 1);
    assert_eq!(
        out2.spec
            .as_ref()
            .unwrap()
            .readiness_gates
            .as_ref()
            .unwrap()
            .len(),
        2
    );
    // Containers merge by name: the image changes, the container list keeps one entry.
    let out = sp(json!({"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}})).await;
    let spec = out.spec.unwrap();
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:2"));
    assert_eq!(out.metadata.generation, Some(4));
}

#[tokio::test]
async fn json_patch_with_test_op() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[], None).await;
    let add: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["slb-sync.io/drain"]}
    ]))
    .unwrap();
    let out = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::<()>::Json(add.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.finalizers(), ["slb-sync.io/drain"]);
    // The same patch again fails its test: 422 Invalid, nothing changes.
    let err = pods
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(add))
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (422, "Invalid".to_string()));
    let remove_wrong: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "someone-else"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    let err = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::<()>::Json(remove_wrong),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(err).0, 422);
    assert_eq!(
        pods.get("p").await.unwrap().finalizers(),
        ["slb-sync.io/drain"]
    );
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let (kube, client) = setup().await;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("slb-sync").force();
    let applied = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}
    });
    let created = svcs
        .patch("web", &pp, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(created.labels()["app"], "web");
    assert_eq!(kube.request_count("patch", "services"), 1);

    // The next apply is the manager's whole intent: what it still wants plus the finalizer.
    let mut more = applied.clone();
    more["metadata"]["finalizers"] = json!(["slb-sync.io/cleanup"]);
    let out = svcs.patch("web", &pp, &Patch::Apply(&more)).await.unwrap();
    assert_eq!(out.finalizers(), ["slb-sync.io/cleanup"]);
    assert_eq!(out.labels()["app"], "web");
    assert_eq!(out.spec.unwrap().ports.unwrap()[0].port, 80);
    let managers: Vec<String> = out
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| Some(format!("{}/{}", m.manager?, m.operation?)))
        .collect();
    assert_eq!(managers, ["slb-sync/Apply"]);

    // Leaving a field out of the next apply removes it (nobody else owns it).
    let mut less = more.clone();
    less["metadata"]["labels"] = json!({});
    let out = svcs.patch("web", &pp, &Patch::Apply(&less)).await.unwrap();
    assert!(out.labels().is_empty());
    assert_eq!(out.finalizers(), ["slb-sync.io/cleanup"]);

    // Status apply through the subresource.
    let st = json!({"apiVersion": "v1", "kind": "Service",
                    "status": {"loadBalancer": {"ingress": [{"ip": "47.1.2.3"}]}}});
    let out = svcs
        .patch_status("web", &pp, &Patch::Apply(&st))
        .await
        .unwrap();
    assert_eq!(
        out.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("47.1.2.3")
    );
    // The status apply is recorded apart and does not drop what the main apply owns.
    assert_eq!(out.spec.unwrap().ports.unwrap()[0].port, 80);
    let subs: Vec<Option<String>> = out
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| m.subresource)
        .collect();
    assert_eq!(subs, [None, Some("status".to_string())]);
    let again = svcs.patch("web", &pp, &Patch::Apply(&less)).await.unwrap();
    assert_eq!(again.finalizers(), ["slb-sync.io/cleanup"]);
}
