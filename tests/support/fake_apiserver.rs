//! A minimal in-process Kubernetes API for the write paths this crate tests before the
//! shared `mocks/kube` double exists: list (paged, with continue tokens), get, JSON patch
//! (with RFC 6902 `test`, answering 422 when it fails, as the API server does) of pods and
//! services, and Event creation. A real `kube::Client` talks to it through `Client::new`.
//!
//! It is deliberately small: no watch, no resourceVersion preconditions, no field
//! selectors, no server-side apply.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Items per list page, small so tests cross page boundaries.
pub const PAGE: usize = 2;

type Key = (String, String, String); // (resource, namespace, name)
type PatchHook = Box<dyn FnMut(&Key, &mut Value) + Send>;

#[derive(Default)]
pub struct Inner {
    pub objects: BTreeMap<Key, Value>,
    /// `METHOD path` of every request, in order.
    pub requests: Vec<String>,
    pub events: Vec<Value>,
    /// Runs on the stored object before a patch is applied (simulates a concurrent writer).
    pub before_patch: Option<PatchHook>,
    /// Objects whose patches are refused with 403.
    pub forbidden: Vec<Key>,
}

#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<Inner>>);

impl FakeApi {
    pub fn insert(&self, resource: &str, object: Value) {
        let meta = &object["metadata"];
        let key = (
            resource.to_owned(),
            meta["namespace"].as_str().unwrap().to_owned(),
            meta["name"].as_str().unwrap().to_owned(),
        );
        self.0.lock().unwrap().objects.insert(key, object);
    }

    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Value {
        let key = (resource.into(), namespace.into(), name.into());
        self.0.lock().unwrap().objects[&key].clone()
    }

    pub fn finalizers(&self, resource: &str, namespace: &str, name: &str) -> Vec<String> {
        serde_json::from_value(
            self.object(resource, namespace, name)["metadata"]["finalizers"].clone(),
        )
        .unwrap_or_default()
    }

    pub fn patches(&self) -> usize {
        let inner = self.0.lock().unwrap();
        inner
            .requests
            .iter()
            .filter(|r| r.starts_with("PATCH"))
            .count()
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/{resource}", get(list))
            .route(
                "/api/v1/namespaces/{namespace}/{resource}/{name}",
                get(get_one).patch(patch),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{namespace}/events",
                post(create_event),
            )
            .fallback(|uri: axum::http::Uri| async move {
                status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("fake: no route {uri}"),
                )
            })
            .with_state(self.clone())
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "code": code.as_u16(),
        })),
    )
        .into_response()
}

fn list_kind(resource: &str) -> &'static str {
    match resource {
        "pods" => "PodList",
        "services" => "ServiceList",
        _ => "List",
    }
}

async fn list(
    State(api): State<FakeApi>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut inner = api.0.lock().unwrap();
    inner.requests.push(format!(
        "GET /api/v1/{resource}?{}",
        query.clone().unwrap_or_default()
    ));
    let start: usize = query
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("continue="))
        .map(|c| c.parse().unwrap())
        .unwrap_or(0);
    let all: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((r, _, _), _)| *r == resource)
        .map(|(_, v)| v.clone())
        .collect();
    let end = (start + PAGE).min(all.len());
    let next = (end < all.len()).then(|| end.to_string());
    Json(json!({
        "apiVersion": "v1", "kind": list_kind(&resource),
        "metadata": { "resourceVersion": "1", "continue": next },
        "items": all[start..end],
    }))
    .into_response()
}

async fn get_one(
    State(api): State<FakeApi>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
) -> Response {
    let mut inner = api.0.lock().unwrap();
    inner.requests.push(format!(
        "GET /api/v1/namespaces/{namespace}/{resource}/{name}"
    ));
    match inner.objects.get(&(resource, namespace, name.clone())) {
        Some(object) => Json(object.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{name} not found"),
        ),
    }
}

async fn patch(
    State(api): State<FakeApi>,
    Path((namespace, resource, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = api.0.lock().unwrap();
    inner.requests.push(format!(
        "PATCH /api/v1/namespaces/{namespace}/{resource}/{name}"
    ));
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json-patch+json") {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("fake: only JSON patch, got {content_type:?}"),
        );
    }
    let key = (resource, namespace, name.clone());
    if inner.forbidden.contains(&key) {
        return status(StatusCode::FORBIDDEN, "Forbidden", "patch is forbidden");
    }
    let mut hook = inner.before_patch.take();
    let Some(stored) = inner.objects.get_mut(&key) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{name} not found"),
        );
    };
    if let Some(hook) = hook.as_mut() {
        hook(&key, stored);
    }
    let patch: json_patch::Patch = serde_json::from_slice(&body).unwrap();
    let mut patched = stored.clone();
    let result = json_patch::patch(&mut patched, &patch);
    match result {
        Ok(()) => {
            *stored = patched.clone();
            inner.before_patch = hook;
            Json(patched).into_response()
        }
        Err(err) => {
            inner.before_patch = hook;
            status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                &err.to_string(),
            )
        }
    }
}

async fn create_event(
    State(api): State<FakeApi>,
    Path(namespace): Path<String>,
    Json(event): Json<Value>,
) -> Response {
    let mut inner = api.0.lock().unwrap();
    inner.requests.push(format!(
        "POST /apis/events.k8s.io/v1/namespaces/{namespace}/events"
    ));
    inner.events.push(event.clone());
    (StatusCode::CREATED, Json(event)).into_response()
}
