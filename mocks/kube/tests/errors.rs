//! Error answers for requests kube's typed API would not send: they must still be
//! `Status` objects with the real codes, so the agent's error handling sees what a real
//! server says.

mod common;

use axum::http::Request;
use common::setup;
use serde_json::Value;

async fn send(client: &kube::Client, req: Request<Vec<u8>>) -> (u16, String) {
    match client.request::<Value>(req).await {
        Err(kube::Error::Api(s)) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn status_objects_for_bad_requests() {
    let (_kube, client) = setup().await;
    let get = |uri: &str| Request::get(uri).body(Vec::new()).unwrap();
    assert_eq!(
        send(&client, get("/apis/apps/v1/namespaces/default/daemonsets"))
            .await
            .0,
        404
    );
    assert_eq!(
        send(&client, get("/api/v1/namespaces/default/nodes"))
            .await
            .0,
        404
    );
    assert_eq!(
        send(&client, get("/api/v1/namespaces/default/pods/p/log"))
            .await
            .0,
        404
    );
    assert_eq!(
        send(&client, get("/api/v1/pods?watch=true&resourceVersion=abc"))
            .await
            .0,
        400
    );

    let patch = |ct: &str, body: &str| {
        Request::patch("/api/v1/namespaces/default/pods/p")
            .header("content-type", ct)
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    assert_eq!(
        send(&client, patch("text/plain", "{}")).await,
        (415, "UnsupportedMediaType".into())
    );
    assert_eq!(
        send(&client, patch("application/merge-patch+json", "{not json"))
            .await
            .0,
        400
    );
    // Apply requires a fieldManager.
    let apply = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#;
    assert_eq!(
        send(&client, patch("application/apply-patch+yaml", apply))
            .await
            .0,
        400
    );

    let post = |body: &str| {
        Request::post("/api/v1/namespaces/default/pods")
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    // Namespace in the body differs from the path.
    let wrong_ns = r#"{"metadata":{"name":"p","namespace":"other"}}"#;
    assert_eq!(send(&client, post(wrong_ns)).await.0, 400);
    // resourceVersion must not be set on create.
    let with_rv = r#"{"metadata":{"name":"p","resourceVersion":"5"}}"#;
    assert_eq!(send(&client, post(with_rv)).await.0, 500);
}
