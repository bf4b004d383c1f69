//! Create, get, replace, status subresource, generation, leases, events, discovery,
//! through real `kube::Api` calls.

mod common;

use common::{api_err, create_pod, mk_pod, setup};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::core::v1::{
    Node, Pod, PodCondition, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn create_get_and_already_exists() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = create_pod(&pods, "web-0", &[("app", "web")], Some("n1")).await;
    assert!(created.uid().is_some_and(|u| !u.is_empty()));
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.namespace().as_deref(), Some("default"));
    let rv: u64 = created.resource_version().unwrap().parse().unwrap();
    assert!(rv > 0);

    let got = pods.get("web-0").await.unwrap();
    assert_eq!(got.uid(), created.uid());
    assert_eq!(got.resource_version(), created.resource_version());

    let err = pods
        .create(&PostParams::default(), &mk_pod("web-0", &[], None))
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (409, "AlreadyExists".to_string()));

    let err = pods.get("missing").await.unwrap_err();
    assert_eq!(api_err(err), (404, "NotFound".to_string()));
    assert!(pods.get_opt("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn generate_name_gives_distinct_names() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut p = mk_pod("", &[], None);
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-".into());
    let a = pods.create(&PostParams::default(), &p).await.unwrap();
    let b = pods.create(&PostParams::default(), &p).await.unwrap();
    assert!(a.name_any().starts_with("web-") && a.name_any().len() == 9);
    assert_ne!(a.name_any(), b.name_any());
    assert_ne!(a.uid(), b.uid());

    p.metadata.generate_name = None;
    let err = pods.create(&PostParams::default(), &p).await.unwrap_err();
    assert_eq!(api_err(err).0, 422);
}

#[tokio::test]
async fn create_resets_pod_status_and_replace_checks_resource_version() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut p = mk_pod("p", &[], None);
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

    // A replace from a stale copy loses.
    let mut first = pods.get("p").await.unwrap();
    let mut stale = first.clone();
    first.labels_mut().insert("a".into(), "1".into());
    let replaced = pods
        .replace("p", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(replaced.labels().get("a").map(String::as_str), Some("1"));
    // Labels are metadata: generation stays.
    assert_eq!(replaced.metadata.generation, Some(1));
    stale.labels_mut().insert("b".into(), "2".into());
    let err = pods
        .replace("p", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (409, "Conflict".to_string()));

    // A spec change bumps generation; a status change through the main endpoint is ignored.
    let mut cur = pods.get("p").await.unwrap();
    cur.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    cur.status.as_mut().unwrap().phase = Some("Failed".into());
    let replaced = pods
        .replace("p", &PostParams::default(), &cur)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn status_subresource_changes_only_status() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[("app", "web")], Some("n1")).await;
    let patch = json!({
        "metadata": {"labels": {"app": "changed"}},
        "spec": {"activeDeadlineSeconds": 5},
        "status": {"phase": "Running", "conditions": [
            {"type": "registered.slb-sync.io/web", "status": "True", "reason": "BackendRegistered"}
        ]}
    });
    let out = pods
        .patch_status("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(out.labels().get("app").map(String::as_str), Some("web"));
    assert_eq!(out.spec.as_ref().unwrap().active_deadline_seconds, None);
    let status = out.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(
        status.conditions.unwrap()[0].reason.as_deref(),
        Some("BackendRegistered")
    );
    assert_eq!(out.metadata.generation, Some(1));

    // Strategic merge on /status merges conditions by type.
    let cond = PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    };
    let sp = json!({"status": {"conditions": [cond]}});
    let out = pods
        .patch_status("p", &PatchParams::default(), &Patch::Strategic(&sp))
        .await
        .unwrap();
    let types: Vec<String> = out
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(
        types,
        vec![
            "registered.slb-sync.io/web".to_string(),
            "Ready".to_string()
        ]
    );

    let got = pods.get_status("p").await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(kube.request_count("patch", "pods/status"), 2);
    assert_eq!(kube.request_count("get", "pods/status"), 1);
}

#[tokio::test]
async fn services_and_nodes_keep_their_create_rules() {
    let (_kube, client) = setup().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}))
                .unwrap(),
        ),
    };
    let created = svcs.create(&PostParams::default(), &svc).await.unwrap();
    assert!(created
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .is_none());

    let nodes: Api<Node> = Api::all(client);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"providerID": "cn-hangzhou.i-abc"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
    }))
    .unwrap();
    let created = nodes.create(&PostParams::default(), &node).await.unwrap();
    assert!(created.namespace().is_none());
    assert_eq!(
        created.status.unwrap().addresses.unwrap()[0].address,
        "10.0.0.1"
    );
    let patch = json!({"spec": {"unschedulable": true}});
    let out = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().unschedulable, Some(true));
    assert_eq!(out.metadata.generation, Some(2));
}

fn mk_lease(holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("slb-sync".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn lease_create_and_replace_conflict_for_leader_election() {
    let (_kube, client) = setup().await;
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let a = leases
        .create(&PostParams::default(), &mk_lease("a"))
        .await
        .unwrap();
    let err = leases
        .create(&PostParams::default(), &mk_lease("b"))
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (409, "AlreadyExists".to_string()));

    // Two candidates read the same version; only the first replace wins.
    let mut a_take = a.clone();
    a_take.spec.as_mut().unwrap().lease_transitions = Some(1);
    let mut b_take = a.clone();
    b_take.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("slb-sync", &PostParams::default(), &a_take)
        .await
        .unwrap();
    let err = leases
        .replace("slb-sync", &PostParams::default(), &b_take)
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (409, "Conflict".to_string()));
    let cur = leases.get("slb-sync").await.unwrap();
    assert_eq!(cur.spec.unwrap().holder_identity.as_deref(), Some("a"));
}

#[tokio::test]
async fn events_are_created_in_both_groups() {
    let (kube, client) = setup().await;
    let events: Api<EventV1> = Api::namespaced(client.clone(), "default");
    let ev = EventV1 {
        metadata: ObjectMeta {
            generate_name: Some("web.".into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        reason: Some("InvalidAnnotation".into()),
        note: Some("bad value".into()),
        type_: Some("Warning".into()),
        action: Some("Reconcile".into()),
        reporting_controller: Some("slb-sync.io/agent".into()),
        reporting_instance: Some("agent-0".into()),
        regarding: Some(ObjectReference {
            kind: Some("Service".into()),
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = events.create(&PostParams::default(), &ev).await.unwrap();
    assert!(created.name_any().starts_with("web."));
    let listed = events
        .list(&kube::api::ListParams::default().fields("regarding.name=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let ce = CoreEvent {
        metadata: ObjectMeta {
            name: Some("e1".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("p".into()),
            ..Default::default()
        },
        reason: Some("DrainStarted".into()),
        ..Default::default()
    };
    core.create(&PostParams::default(), &ce).await.unwrap();
    // One store, two APIs: each sees both Events, in its own field names.
    let through_core = core.list(&Default::default()).await.unwrap();
    assert_eq!(through_core.items.len(), 2);
    let web = through_core
        .items
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some("web"))
        .expect("the events.k8s.io Event, seen as core/v1");
    assert_eq!(web.metadata.uid, created.metadata.uid);
    assert_eq!(kube.list("v1", "Event", Some("default")).len(), 2);
    let through_v1 = kube.list("events.k8s.io/v1", "Event", None);
    assert_eq!(through_v1.len(), 2);
    assert!(through_v1
        .iter()
        .any(|e| e["regarding"]["name"] == "p" && e["reason"] == "DrainStarted"));
}

#[tokio::test]
async fn discovery_finds_every_served_kind() {
    let (_kube, client) = setup().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let discovery = Discovery::new(client).run().await.unwrap();
    let mut kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| {
            g.recommended_resources()
                .into_iter()
                .map(|(ar, _)| format!("{}/{}", ar.api_version, ar.kind))
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "apps/v1/Deployment",
            "apps/v1/StatefulSet",
            "coordination.k8s.io/v1/Lease",
            "discovery.k8s.io/v1/EndpointSlice",
            "events.k8s.io/v1/Event",
            "policy/v1/PodDisruptionBudget",
            "rbac.authorization.k8s.io/v1/ClusterRole",
            "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
            "rbac.authorization.k8s.io/v1/Role",
            "rbac.authorization.k8s.io/v1/RoleBinding",
            "v1/ConfigMap",
            "v1/Event",
            "v1/Namespace",
            "v1/Node",
            "v1/Pod",
            "v1/Secret",
            "v1/Service",
            "v1/ServiceAccount",
        ]
    );
}
