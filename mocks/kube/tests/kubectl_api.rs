//! What kubectl asks of the server, over plain HTTP: the OpenAPI documents and the
//! `fieldValidation` checks behind them, content negotiation (protobuf, Table), the
//! `scale` subresource and custom resources.

use std::time::Duration;

use mock_kube::{MockKube, MockKubeHandle};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP/1.1 answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
async fn http(
    kube: &MockKubeHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(kube.addr()).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        kube.addr(),
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answer within 10 s")
        .unwrap();
    // Bodies may be binary (protobuf); what the tests read of them is text.
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn deployment(spec: Value) -> String {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    .to_string()
}

fn valid_spec() -> Value {
    json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
           "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}})
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn openapi_v3_names_field_validation_for_every_patch() {
    let kube = MockKube::start().await.unwrap();
    let index = http(&kube, "GET", "/openapi/v3", &[], "").await.json();
    let paths = index["paths"].as_object().unwrap();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/events.k8s.io/v1",
        "apis/policy/v1",
    ] {
        assert!(paths.contains_key(gv), "{gv} missing from {paths:?}");
    }
    assert!(
        !paths.contains_key("apis/monitoring.coreos.com/v1"),
        "no Prometheus Operator CRDs unless asked for"
    );
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let doc = http(&kube, "GET", url, &[("Accept", "application/json")], "")
        .await
        .json();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if let Some(patch) = item.get("patch") {
            let params = patch["parameters"].as_array().unwrap();
            assert!(
                params.iter().any(|p| p["name"] == "fieldValidation"),
                "{path}"
            );
        }
    }
    // kubectl computes strategic merge patches from these extensions.
    let containers =
        &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");

    let with_crds = MockKube::builder()
        .prometheus_operator_crds(true)
        .serve()
        .await
        .unwrap();
    let doc = http(
        &with_crds,
        "GET",
        "/openapi/v3/apis/monitoring.coreos.com/v1",
        &[],
        "",
    )
    .await
    .json();
    let patch = &doc["paths"]
        ["/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors/{name}"]["patch"];
    let content = patch["requestBody"]["content"].as_object().unwrap();
    assert!(content.contains_key("application/merge-patch+json"));
    assert!(
        !content.contains_key("application/strategic-merge-patch+json"),
        "custom resources take no strategic merge patch"
    );
}

#[tokio::test]
async fn openapi_v2_is_served_in_protobuf_and_json() {
    let kube = MockKube::start().await.unwrap();
    // What client-go asks for (and needs for kinds no v3 document covers).
    let pb = http(
        &kube,
        "GET",
        "/openapi/v2",
        &[(
            "Accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )],
        "",
    )
    .await;
    assert_eq!(pb.status, 200);
    assert_eq!(pb.header("content-type"), ["application/octet-stream"]);
    assert!(pb.body.starts_with("\n\u{3}2.0"), "Document.swagger first");
    assert!(pb.body.contains("io.k8s.api.apps.v1.Deployment"));
    assert!(pb.body.contains("x-kubernetes-group-version-kind"));
    let doc = http(
        &kube,
        "GET",
        "/openapi/v2",
        &[("Accept", "application/json")],
        "",
    )
    .await
    .json();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(
        doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    let neither = http(&kube, "GET", "/openapi/v2", &[("Accept", "text/html")], "").await;
    assert_eq!(neither.status, 406);
}

#[tokio::test]
async fn field_validation_strict_refuses_warn_drops_and_says_ignore_drops() {
    let kube = MockKube::start().await.unwrap();
    let mut spec = valid_spec();
    spec["replica"] = json!(3);
    let body = deployment(spec);

    let strict = http(
        &kube,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Strict"),
        &[JSON],
        &body,
    )
    .await;
    assert_eq!(strict.status, 400);
    assert_eq!(
        strict.json()["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replica\""
    );
    assert!(kube
        .get("apps/v1", "Deployment", "default", "web")
        .is_none());

    let warn = http(&kube, "POST", DEPLOYMENTS, &[JSON], &body).await;
    assert_eq!(warn.status, 201, "{}", warn.body);
    assert_eq!(
        warn.header("warning"),
        ["299 - \"unknown field \\\"spec.replica\\\"\""]
    );
    let stored = kube.get("apps/v1", "Deployment", "default", "web").unwrap();
    assert!(stored["spec"].get("replica").is_none(), "pruned");
    assert_eq!(stored["spec"]["replicas"], 2);

    let ignore = http(
        &kube,
        "PUT",
        &format!("{DEPLOYMENTS}/web?fieldValidation=Ignore"),
        &[JSON],
        &body,
    )
    .await;
    assert_eq!(ignore.status, 200, "{}", ignore.body);
    assert!(ignore.header("warning").is_empty());

    // A patch is checked as the object it makes.
    let patched = http(
        &kube,
        "PATCH",
        &format!("{DEPLOYMENTS}/web?fieldValidation=Strict"),
        &[("Content-Type", "application/merge-patch+json")],
        r#"{"spec": {"paused": true, "pasued": true}}"#,
    )
    .await;
    assert_eq!(patched.status, 400);
    assert!(patched.body.contains("unknown field \\\"spec.pasued\\\""));

    // A value of the wrong type is refused whatever fieldValidation says.
    let mut spec = valid_spec();
    spec["replicas"] = json!("two");
    let wrong = http(
        &kube,
        "PUT",
        &format!("{DEPLOYMENTS}/web?fieldValidation=Ignore"),
        &[JSON],
        &deployment(spec),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.body.contains("cannot unmarshal string"),
        "{}",
        wrong.body
    );
}

#[tokio::test]
async fn protobuf_bodies_are_unsupported_and_protobuf_answers_fall_back_to_json() {
    let kube = MockKube::start().await.unwrap();
    let created = http(
        &kube,
        "POST",
        DEPLOYMENTS,
        &[("Content-Type", "application/vnd.kubernetes.protobuf")],
        "k8s\0",
    )
    .await;
    assert_eq!(created.status, 415);
    assert_eq!(created.json()["reason"], "UnsupportedMediaType");

    http(
        &kube,
        "POST",
        DEPLOYMENTS,
        &[JSON],
        &deployment(valid_spec()),
    )
    .await;
    // client-go's typed clients: protobuf preferred, JSON accepted.
    let got = http(
        &kube,
        "GET",
        &format!("{DEPLOYMENTS}/web"),
        &[(
            "Accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), ["application/json"]);
    assert_eq!(got.json()["metadata"]["name"], "web");
    let only_pb = http(
        &kube,
        "GET",
        &format!("{DEPLOYMENTS}/web"),
        &[("Accept", "application/vnd.kubernetes.protobuf")],
        "",
    )
    .await;
    assert_eq!(only_pb.status, 406);
}

const TABLE: (&str, &str) = (
    "Accept",
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
);

#[tokio::test]
async fn kubectl_get_receives_tables() {
    let kube = MockKube::start().await.unwrap();
    kube.put(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5",
                   "containerStatuses": [{"name": "a", "ready": true, "restartCount": 2},
                                         {"name": "b", "ready": false, "restartCount": 1}]},
    }))
    .unwrap();
    let list = http(
        &kube,
        "GET",
        "/api/v1/namespaces/default/pods?limit=500",
        &[TABLE],
        "",
    )
    .await
    .json();
    assert_eq!(list["kind"], "Table");
    let columns: Vec<&str> = list["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    let row = &list["rows"][0];
    assert_eq!(
        row["cells"].as_array().unwrap()[..4],
        [json!("web-0"), json!("1/2"), json!("Running"), json!(3)]
    );
    assert_eq!(row["cells"][5], "10.0.0.5");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["namespace"], "default");

    let one = http(
        &kube,
        "GET",
        "/api/v1/namespaces/default/pods/web-0?includeObject=Object",
        &[TABLE],
        "",
    )
    .await
    .json();
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one["rows"][0]["object"]["kind"], "Pod");
}

#[tokio::test]
async fn kubectl_scale_goes_through_the_scale_subresource() {
    let kube = MockKube::start().await.unwrap();
    http(
        &kube,
        "POST",
        DEPLOYMENTS,
        &[JSON],
        &deployment(valid_spec()),
    )
    .await;
    let resources = http(&kube, "GET", "/apis/apps/v1", &[], "").await.json();
    let scale = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .expect("deployments/scale is discovered");
    assert_eq!(
        (&scale["group"], &scale["kind"]),
        (&json!("autoscaling"), &json!("Scale"))
    );

    let got = http(&kube, "GET", &format!("{DEPLOYMENTS}/web/scale"), &[], "")
        .await
        .json();
    assert_eq!(got["spec"]["replicas"], 2);
    assert_eq!(got["status"]["selector"], "app=web");
    let patched = http(
        &kube,
        "PATCH",
        &format!("{DEPLOYMENTS}/web/scale"),
        &[("Content-Type", "application/merge-patch+json")],
        r#"{"spec":{"replicas":0}}"#,
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.json()["spec"]["replicas"], 0);
    let stored = kube.get("apps/v1", "Deployment", "default", "web").unwrap();
    assert_eq!(stored["spec"]["replicas"], 0);
    let negative = http(
        &kube,
        "PATCH",
        &format!("{DEPLOYMENTS}/web/scale"),
        &[("Content-Type", "application/merge-patch+json")],
        r#"{"spec":{"replicas":-1}}"#,
    )
    .await;
    assert_eq!(negative.status, 422);
}

#[tokio::test]
async fn prometheus_operator_kinds_exist_only_with_their_crds() {
    let bare = MockKube::start().await.unwrap();
    let path = "/apis/monitoring.coreos.com/v1/namespaces/default/servicemonitors";
    assert_eq!(http(&bare, "GET", path, &[], "").await.status, 404);
    assert_eq!(
        http(&bare, "GET", "/apis/monitoring.coreos.com/v1", &[], "")
            .await
            .status,
        404
    );

    let kube = MockKube::builder()
        .prometheus_operator_crds(true)
        .serve()
        .await
        .unwrap();
    let monitor = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                         "metadata": {"name": "m"},
                         "spec": {"selector": {"matchLabels": {"app": "web"}},
                                  "endpoints": [{"port": "http", "interval": "30s",
                                                 "tlsConfig": {"insecureSkipVerify": true}}]}});
    let created = http(
        &kube,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        &[JSON],
        &monitor.to_string(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let smp = http(
        &kube,
        "PATCH",
        &format!("{path}/m"),
        &[("Content-Type", "application/strategic-merge-patch+json")],
        "{}",
    )
    .await;
    assert_eq!(smp.status, 415);
    let mut bad = monitor.clone();
    bad["metadata"]["name"] = json!("n");
    bad["spec"]["endpoints"][0]["intervall"] = json!("30s");
    let refused = http(
        &kube,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        &[JSON],
        &bad.to_string(),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .body
            .contains("unknown field \\\"spec.endpoints[0].intervall\\\""),
        "{}",
        refused.body
    );
}
