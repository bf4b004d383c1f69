//! The HTTP front: content negotiation, discovery and OpenAPI documents, request
//! counting and fault injection; [`object`] serves the resources.

mod media;
mod object;
mod page;
mod proto_body;
mod route;
mod scale;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::discovery::{self, Served};
use crate::hooks::Hooks;
use crate::openapi;
use crate::resources::RESOURCES;
use crate::status::ApiError;
use crate::store::{Filter, Store};
use media::Form;
use route::Route;
use table::IncludeObject;

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
    pub served: Served,
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

fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(serde_json::to_vec(body).unwrap_or_default()),
    )
        .into_response();
    for w in warnings {
        // RFC 7234 warn-code 299 ("miscellaneous persistent warning"), as the server sends.
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

fn error_response(err: &ApiError) -> Response {
    json_response(err.code, &err.to_status(), &[])
}

/// How answers about objects of one kind are shaped for the client.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The kind as requested (its API's form of the objects).
    pub kind: usize,
    pub form: Form,
    pub include: IncludeObject,
}

impl Shape {
    /// An object (or a list of them) in the requested form: itself, its metadata, or a
    /// `Table`. `Status` objects pass unchanged.
    pub fn apply(&self, v: Value) -> Value {
        if v["kind"] == "Status" || v.get("metadata").is_none() {
            return v;
        }
        let def = &RESOURCES[self.kind];
        let partial = |o: &Value| {
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
            })
        };
        let items = v.get("items").and_then(Value::as_array);
        match (self.form, items) {
            (Form::Json, _) => v,
            (Form::Metadata, Some(items)) => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": v["metadata"],
                "items": items.iter().map(partial).collect::<Vec<_>>(),
            }),
            (Form::Metadata, None) => partial(&v),
            (Form::Table, Some(items)) => {
                let rows: Vec<(Value, Value)> = items
                    .iter()
                    .map(|o| (o.clone(), def.to_stored(o.clone())))
                    .collect();
                table::table(def, &rows, v["metadata"].clone(), self.include)
            }
            (Form::Table, None) => {
                let stored = def.to_stored(v.clone());
                let rv = v.pointer("/metadata/resourceVersion").cloned();
                table::table(
                    def,
                    &[(v, stored)],
                    json!({"resourceVersion": rv}),
                    self.include,
                )
            }
        }
    }
}

/// What a request is answered with.
pub enum Reply {
    /// API objects, shaped by the `Accept` header.
    Objects(u16, Value),
    /// A discovery or OpenAPI document.
    Document(Value),
    Watch(Filter, watch::WatchParams),
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
            .count(object::verb_of(&method, &t, &query), &resource);
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
    if path.trim_end_matches('/') == "/openapi/v2" && media::accepts(&headers, openapi::V2_PROTOBUF)
    {
        // The media type itself is not a valid Content-Type (its `@`), so the server
        // labels the bytes `application/octet-stream`, and clients expect that.
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from(openapi::v2_protobuf(shared.served)),
        )
            .into_response();
    }
    let Some(form) = media::accepted(&headers) else {
        return error_response(&media::not_acceptable());
    };
    let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
    let warnings = std::cell::RefCell::new(Vec::new());
    let result = dispatch(&shared, &method, &path, &query, &headers, &body, &warnings);
    let warnings = warnings.into_inner();
    match result {
        Ok((Reply::Objects(code, v), kind)) => {
            let shape = Shape {
                kind,
                form,
                include,
            };
            json_response(code, &shape.apply(v), &warnings)
        }
        Ok((Reply::Document(v), _)) => json_response(200, &v, &[]),
        Ok((Reply::Watch(filter, mut params), kind)) => {
            params.shape = Shape {
                kind,
                form,
                include,
            };
            watch::respond(shared.clone(), filter, params)
        }
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = %e.reason, "mock-kube error");
            error_response(&e)
        }
    }
}

/// Answers a request; the kind is the requested kind of a resource request (its answers'
/// form), `0` otherwise.
fn dispatch(
    shared: &Shared,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    warnings: &std::cell::RefCell<Vec<String>>,
) -> Result<(Reply, usize), ApiError> {
    let served = shared.served;
    let doc = |v: Option<Value>, what: &str| {
        v.map(|v| (Reply::Document(v), 0)).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({what})"),
            )
        })
    };
    let target = match route::parse(path)? {
        Route::Version => return doc(Some(discovery::version()), path),
        Route::CoreVersions => return doc(Some(discovery::core_versions(&shared.address)), path),
        Route::GroupList => return doc(Some(discovery::group_list(served)), path),
        Route::Group(g) => return doc(discovery::group(served, &g), path),
        Route::ResourceList(g, v) => {
            return doc(discovery::api_resource_list(served, &g, &v), path)
        }
        Route::OpenApiV2 => return doc(Some(openapi::v2_document(served)), path),
        Route::OpenApiV3Index => return doc(Some(openapi::v3_index(served)), path),
        Route::OpenApiV3(g, v) => return doc(openapi::v3_document(served, &g, &v), path),
        Route::Resource(t) => t,
    };
    if !served.serves(&RESOURCES[target.kind]) {
        return doc(None, path);
    }
    let kind = target.kind;
    let reply = object::resource(shared, method, target, q, headers, body, warnings)?;
    Ok((reply, kind))
}
