//! The HTTP front: path parsing, dispatch by verb, request counting and fault injection.

mod page;
mod route;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::hooks::Hooks;
use crate::patch::{self, PatchKind};
use crate::resources::{self, RESOURCES};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{now_rfc3339, DeleteOptions, DeleteOutcome, Filter, Key, Store, WriteOptions};
use route::{Route, Target};

/// State shared by the server, its watch streams and the handle.
#[derive(Debug)]
pub struct Shared {
    pub store: Mutex<Store>,
    pub hooks: Mutex<Hooks>,
    pub rv_rx: tokio::sync::watch::Receiver<u64>,
    pub shutdown_rx: tokio::sync::watch::Receiver<bool>,
    /// Bumped to end every open watch stream (a simulated connection drop).
    pub disconnect_tx: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Duration,
    pub address: String,
}

impl Shared {
    /// Locks the store; a poisoned lock (a panicking test thread) is still usable.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn hooks(&self) -> MutexGuard<'_, Hooks> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The axum router serving every path.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(serde_json::to_vec(body).unwrap_or_default()),
    )
        .into_response()
}

fn error_response(err: &ApiError) -> Response {
    json_response(err.code, &err.to_status())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    // Every attempt counts, including those a fault answers: tests assert on load.
    if let Ok(Route::Resource(t)) = route::parse(&path) {
        let def = &RESOURCES[t.kind];
        let resource = match &t.subresource {
            Some(s) => format!("{}/{s}", def.plural),
            None => def.plural.to_string(),
        };
        shared
            .hooks()
            .count(verb_of(&method, &t, &query), &resource);
    }
    let fault = shared.hooks().take_fault(method.as_str(), &path);
    if let Some((delay, fail)) = fault {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(err) = fail {
            return error_response(&err);
        }
    }
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    match dispatch(&shared, &method, &path, &query, &headers, &body) {
        Ok(Reply::Json(code, v)) => json_response(code, &shape(metadata_only, v)),
        Ok(Reply::Watch(filter, mut params)) => {
            params.metadata_only = metadata_only;
            watch::respond(shared.clone(), filter, params)
        }
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = %e.reason, "mock-kube error");
            error_response(&e)
        }
    }
}

/// Answers in `PartialObjectMetadata` form when the client asked for metadata only
/// (lists become `PartialObjectMetadataList`); `Status` objects pass unchanged.
fn shape(metadata_only: bool, v: Value) -> Value {
    let partial = |o: &Value| {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    };
    if !metadata_only || v["kind"] == "Status" || v.get("metadata").is_none() {
        return v;
    }
    match v.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": v["metadata"],
            "items": items.iter().map(partial).collect::<Vec<_>>(),
        }),
        None => partial(&v),
    }
}

enum Reply {
    Json(u16, Value),
    Watch(Filter, watch::WatchParams),
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

fn write_options(q: &HashMap<String, String>, headers: &HeaderMap, status: bool) -> WriteOptions {
    WriteOptions {
        field_manager: q.get("fieldManager").filter(|s| !s.is_empty()).cloned(),
        fallback_manager: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        force: truthy(q, "force"),
        status,
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn filter_for(t: &Target, q: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let def = &RESOURCES[t.kind];
    Ok(Filter {
        kind: t.kind,
        namespace: t.namespace.clone(),
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str), def.kind)?,
    })
}

fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", false) if truthy(q, "watch") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        _ => "other",
    }
}

fn dispatch(
    shared: &Shared,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let target = match route::parse(path)? {
        Route::Version => return Ok(Reply::Json(200, resources::version())),
        Route::CoreVersions => {
            return Ok(Reply::Json(200, resources::core_versions(&shared.address)))
        }
        Route::GroupList => return Ok(Reply::Json(200, resources::group_list())),
        Route::Group(g) => {
            return resources::group(&g)
                .map(|v| Reply::Json(200, v))
                .ok_or_else(|| ApiError::not_found("apigroups", &g))
        }
        Route::ResourceList(g, v) => {
            return resources::api_resource_list(&g, &v)
                .map(|v| Reply::Json(200, v))
                .ok_or_else(|| ApiError::not_found("groupversions", &format!("{g}/{v}")))
        }
        Route::Resource(t) => t,
    };
    let def = &RESOURCES[target.kind];
    let resource = match &target.subresource {
        Some(s) => format!("{}/{s}", def.plural),
        None => def.plural.to_string(),
    };
    if let Some(sub) = &target.subresource {
        if sub != "status" || !def.status_subresource {
            return Err(ApiError::not_found(
                &resource,
                target.name.as_deref().unwrap_or(""),
            ));
        }
    }
    let status_sub = target.subresource.is_some();
    let now = now_rfc3339();
    let Some(name) = target.name.clone() else {
        return collection(shared, method, &target, q, headers, body, &now);
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let key: Key = (target.kind, ns, name.clone());
    let resource_name = if def.group.is_empty() {
        def.plural.to_string()
    } else {
        format!("{}.{}", def.plural, def.group)
    };
    match *method {
        Method::GET => shared
            .store()
            .get(&key)
            .cloned()
            .map(|v| Reply::Json(200, v))
            .ok_or_else(|| ApiError::not_found(&resource_name, &name)),
        Method::PUT => {
            let obj = parse_json(body)?;
            let v =
                shared
                    .store()
                    .update(&key, obj, &write_options(q, headers, status_sub), &now)?;
            Ok(Reply::Json(200, v))
        }
        Method::PATCH => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(ct)?;
            let patch_body = patch::parse_body(kind, body)?;
            let (v, created) = shared.store().patch(
                &key,
                kind,
                &patch_body,
                &write_options(q, headers, status_sub),
                &now,
            )?;
            Ok(Reply::Json(if created { 201 } else { 200 }, v))
        }
        Method::DELETE if !status_sub => {
            let opts = delete_options(q, body)?;
            match shared.store().delete(&key, &opts)? {
                DeleteOutcome::Pending(v) => Ok(Reply::Json(200, v)),
                DeleteOutcome::Deleted(v) => Ok(Reply::Json(
                    200,
                    status::success(def.plural, &name, &v["metadata"]["uid"]),
                )),
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {resource}"
        ))),
    }
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let grace = b
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or_else(|| q.get("gracePeriodSeconds").and_then(|s| s.parse().ok()));
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All")
        || b.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

fn collection(
    shared: &Shared,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    now: &str,
) -> Result<Reply, ApiError> {
    let def = &RESOURCES[t.kind];
    match *method {
        Method::GET => {
            let filter = filter_for(t, q)?;
            if truthy(q, "watch") {
                return Ok(Reply::Watch(filter, watch::WatchParams::parse(q)?));
            }
            let store = shared.store();
            let (items, mut metadata) = page::chunk(store.list(&filter), q)?;
            metadata.insert(
                "resourceVersion".into(),
                json!(store.resource_version().to_string()),
            );
            Ok(Reply::Json(
                200,
                json!({
                    "kind": format!("{}List", def.kind),
                    "apiVersion": def.api_version(),
                    "metadata": metadata,
                    "items": items,
                }),
            ))
        }
        Method::POST => {
            let Some(ns) = t.namespace.as_deref().or((!def.namespaced).then_some("")) else {
                return Err(ApiError::method_not_allowed(format!(
                    "create {} needs a namespace in the path",
                    def.plural
                )));
            };
            let obj = parse_json(body)?;
            let v =
                shared
                    .store()
                    .create(t.kind, ns, obj, &write_options(q, headers, false), now)?;
            Ok(Reply::Json(201, v))
        }
        Method::DELETE => {
            let filter = filter_for(t, q)?;
            let opts = delete_options(q, body)?;
            let mut store = shared.store();
            let mut items = Vec::new();
            for obj in store.list(&filter) {
                let ns = obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                match store.delete(&(t.kind, ns, name), &opts)? {
                    DeleteOutcome::Pending(v) | DeleteOutcome::Deleted(v) => items.push(v),
                }
            }
            Ok(Reply::Json(
                200,
                json!({
                    "kind": format!("{}List", def.kind),
                    "apiVersion": def.api_version(),
                    "metadata": {"resourceVersion": store.resource_version().to_string()},
                    "items": items,
                }),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on the {} collection",
            def.plural
        ))),
    }
}
