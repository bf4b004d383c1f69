//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use mock_kube::{MockKube, MockKubeHandle};

/// Upper bound for waiting on something that normally happens within milliseconds.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn setup() -> (MockKubeHandle, Client) {
    let kube = MockKube::start().await.expect("mock-kube starts");
    let client = kube.client().expect("client");
    (kube, client)
}

pub fn mk_pod(name: &str, labels: &[(&str, &str)], node: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(str::to_string),
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn create_pod(
    api: &Api<Pod>,
    name: &str,
    labels: &[(&str, &str)],
    node: Option<&str>,
) -> Pod {
    api.create(&PostParams::default(), &mk_pod(name, labels, node))
        .await
        .expect("create pod")
}

/// The API error code and reason of a kube error, or panics.
pub fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A pod with apiVersion, kind and namespace set, for `MockKubeHandle::put`.
pub fn mk_pod_in(name: &str, namespace: &str, labels: &[(&str, &str)]) -> serde_json::Value {
    let mut v = serde_json::to_value(mk_pod(name, labels, None)).unwrap();
    v["apiVersion"] = "v1".into();
    v["kind"] = "Pod".into();
    v["metadata"]["namespace"] = namespace.into();
    v
}
