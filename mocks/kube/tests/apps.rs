//! apps/v1 Deployments and StatefulSets (what `slb-sync doctor --live` lists), and
//! `limit`/`continue` chunking of lists, through real `kube::Api` calls.

mod common;

use common::{create_pod, setup};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn template() -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..Default::default()
        }),
        spec: None,
    }
}

#[tokio::test]
async fn deployments_and_stateful_sets_are_served_with_status_reset_on_create() {
    let (kube, client) = setup().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = Deployment {
        metadata: meta("web"),
        spec: DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector::default(),
            template: template(),
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            replicas: Some(3),
            ..Default::default()
        }),
    };
    let created = deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(created.spec.replicas, Some(3));
    // As the real strategy does, a client cannot create a Deployment with a status.
    assert_eq!(created.status, Some(DeploymentStatus::default()));

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "other");
    let s = StatefulSet {
        metadata: meta("db"),
        spec: StatefulSetSpec {
            selector: LabelSelector::default(),
            template: template(),
            ..Default::default()
        },
        status: None,
    };
    sets.create(&PostParams::default(), &s).await.unwrap();

    // Cluster-wide lists and the test hooks see both kinds.
    let all: Api<StatefulSet> = Api::all(client.clone());
    let names: Vec<_> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|s| format!("{}/{}", s.namespace().unwrap(), s.name_any()))
        .collect();
    assert_eq!(names, ["other/db"]);
    assert!(kube
        .get("apps/v1", "Deployment", "default", "web")
        .is_some());
    kube.put(
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "put", "namespace": "other"}, "spec": d.spec}),
    )
    .unwrap();
    assert_eq!(kube.list("apps/v1", "Deployment", None).len(), 2);
}

#[tokio::test]
async fn lists_are_chunked_by_limit_and_continue() {
    let (kube, client) = setup().await;
    for ns in ["a", "b"] {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        for name in ["p1", "p2", "p3"] {
            create_pod(&pods, name, &[("app", "web")], None).await;
        }
    }
    let all: Api<Pod> = Api::all(client.clone());
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(4);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = all.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 4);
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(2));
        }
        seen.extend(
            page.iter()
                .map(|p| format!("{}/{}", p.namespace().unwrap(), p.name_any())),
        );
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, ["a/p1", "a/p2", "a/p3", "b/p1", "b/p2", "b/p3"]);
    assert_eq!(kube.request_count("list", "pods"), 2);

    // Cluster-scoped kinds page the same way; without a limit everything comes at once.
    let nodes: Api<Node> = Api::all(client.clone());
    for name in ["n1", "n2", "n3"] {
        nodes
            .create(
                &PostParams::default(),
                &Node {
                    metadata: meta(name),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let first = nodes.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.unwrap();
    let rest = nodes
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items[0].name_any(), "n3");
    assert!(rest.metadata.continue_.is_none());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    // A token the server did not issue is a 400, as on the real server.
    let err = all
        .list(&ListParams::default().limit(2).continue_token("garbage"))
        .await
        .unwrap_err();
    assert_eq!(common::api_err(err).0, 400);
}
