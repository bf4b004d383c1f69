//! Resource requests: get, list, watch, create, update, patch and delete of objects and
//! their `status` and `scale` subresources.
//!
//! A kind stored as another (events.k8s.io Events, stored as core/v1 Events) is converted
//! here: bodies to the stored form after they are checked against the requested API's
//! schema, answers back to the requested form.

use std::cell::RefCell;
use std::collections::HashMap;

use axum::http::{header, HeaderMap, Method};
use serde_json::{json, Value};

use super::route::Target;
use super::{media, page, scale, watch, Reply, Shared};
use crate::openapi::{self, FieldValidation};
use crate::patch::{self, PatchKind};
use crate::resources::{self, ResourceDef, RESOURCES};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{now_rfc3339, DeleteOptions, DeleteOutcome, Filter, Key, Store, WriteOptions};

pub fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

pub fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
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

pub fn write_options(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    status: bool,
) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))
            .map_err(ApiError::bad_request)?,
        warnings: RefCell::new(Vec::new()),
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
    })
}

fn filter_for(t: &Target, q: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let def = &RESOURCES[t.kind];
    Ok(Filter {
        kind: resources::storage_of(t.kind),
        namespace: t.namespace.clone(),
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(
            q.get("fieldSelector").map_or("", String::as_str),
            def.group,
            def.kind,
        )?,
    })
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?
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

/// Checks a body sent to a converted kind against its own API's schema (the stored
/// kind's schema would not know its field names), then converts it.
fn to_stored(def: &ResourceDef, mut obj: Value, opts: &WriteOptions) -> Result<Value, ApiError> {
    if def.stored_as.is_some() {
        let warnings = openapi::validate(def, &mut obj, opts.validation)?;
        opts.warnings.borrow_mut().extend(warnings);
    }
    Ok(def.to_stored(obj))
}

/// Serves a request for a collection, an object or a subresource of kind `t.kind`.
pub fn resource(
    shared: &Shared,
    method: &Method,
    t: Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    warnings: &RefCell<Vec<String>>,
) -> Result<Reply, ApiError> {
    let def = &RESOURCES[t.kind];
    let plural_sub = match &t.subresource {
        Some(s) => format!("{}/{s}", def.plural),
        None => def.plural.to_string(),
    };
    let status_sub = match t.subresource.as_deref() {
        None => false,
        Some("status") if def.status_subresource => true,
        Some("scale") if def.scale_subresource => false,
        Some(_) => {
            return Err(ApiError::not_found(
                &plural_sub,
                t.name.as_deref().unwrap_or(""),
            ))
        }
    };
    let now = now_rfc3339();
    let Some(name) = t.name.clone() else {
        return collection(shared, method, &t, q, headers, body, &now, warnings);
    };
    let key: Key = (
        resources::storage_of(t.kind),
        t.namespace.clone().unwrap_or_default(),
        name.clone(),
    );
    if t.subresource.as_deref() == Some("scale") {
        let opts = write_options(q, headers, false)?;
        let answer = scale::serve(shared, method, def, &key, headers, body, &opts, &now);
        warnings.borrow_mut().extend(opts.warnings.take());
        return answer.map(|v| Reply::Objects(200, v));
    }
    let answer = match *method {
        Method::GET => shared
            .store()
            .get(&key)
            .cloned()
            .map(|v| (200, def.to_view(v)))
            .ok_or_else(|| ApiError::not_found(&def.resource_name(), &name)),
        Method::PUT => {
            let opts = write_options(q, headers, status_sub)?;
            let obj = to_stored(def, media::read_body(headers, body, def)?, &opts)?;
            let result = shared.store().update(&key, obj, &opts, &now);
            warnings.borrow_mut().extend(opts.warnings.take());
            result.map(|v| (200, def.to_view(v)))
        }
        Method::PATCH => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(ct)?;
            if def.custom && kind == PatchKind::Strategic {
                return Err(ApiError::unsupported_media_type(
                    ct,
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            let patch_body = patch::parse_body(kind, body)?;
            let opts = write_options(q, headers, status_sub)?;
            let result = if def.stored_as.is_some() {
                patch_converted(shared, def, &key, kind, &patch_body, &opts, &now)
            } else {
                shared.store().patch(&key, kind, &patch_body, &opts, &now)
            };
            warnings.borrow_mut().extend(opts.warnings.take());
            result.map(|(v, created)| (if created { 201 } else { 200 }, def.to_view(v)))
        }
        Method::DELETE if !status_sub => {
            let opts = delete_options(q, body)?;
            match shared.store().delete(&key, &opts)? {
                DeleteOutcome::Pending(v) => Ok((200, def.to_view(v))),
                DeleteOutcome::Deleted(v) => Ok((
                    200,
                    status::success(def.plural, &name, &v["metadata"]["uid"]),
                )),
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {plural_sub}"
        ))),
    }?;
    Ok(Reply::Objects(answer.0, answer.1))
}

/// A patch to a converted kind: applied to the object in the requested API's form (the
/// patch names that API's fields), checked, converted back and written as an update.
fn patch_converted(
    shared: &Shared,
    def: &ResourceDef,
    key: &Key,
    kind: PatchKind,
    body: &Value,
    opts: &WriteOptions,
    now: &str,
) -> Result<(Value, bool), ApiError> {
    let mut store = shared.store();
    let Some(current) = store.get(key).cloned() else {
        if kind == PatchKind::Apply {
            let obj = to_stored(def, body.clone(), opts)?;
            return store
                .create(key.0, &key.1, obj, opts, now)
                .map(|v| (v, true));
        }
        return Err(ApiError::not_found(&def.resource_name(), &key.2));
    };
    let mut view = def.to_view(current);
    patch::apply(kind, &mut view, body)?;
    let new = to_stored(def, view, opts)?;
    store.update(key, new, opts, now).map(|v| (v, false))
}

#[allow(clippy::too_many_arguments)]
fn collection(
    shared: &Shared,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    now: &str,
    warnings: &RefCell<Vec<String>>,
) -> Result<Reply, ApiError> {
    let def = &RESOURCES[t.kind];
    let storage = resources::storage_of(t.kind);
    let list = |store: &Store, items: Vec<Value>, metadata: serde_json::Map<String, Value>| {
        let mut metadata = metadata;
        metadata.insert(
            "resourceVersion".into(),
            json!(store.resource_version().to_string()),
        );
        json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": metadata,
            "items": items.into_iter().map(|o| def.to_view(o)).collect::<Vec<_>>(),
        })
    };
    match *method {
        Method::GET => {
            let filter = filter_for(t, q)?;
            if truthy(q, "watch") {
                return Ok(Reply::Watch(filter, watch::WatchParams::parse(q)?));
            }
            let req = page::request(q)?;
            let store = shared.store();
            let (items, metadata) = page::chunk(store.iter_after(&filter, req.after), &req);
            Ok(Reply::Objects(200, list(&store, items, metadata)))
        }
        Method::POST => {
            let Some(ns) = t.namespace.as_deref().or((!def.namespaced).then_some("")) else {
                return Err(ApiError::method_not_allowed(format!(
                    "create {} needs a namespace in the path",
                    def.plural
                )));
            };
            let opts = write_options(q, headers, false)?;
            let obj = to_stored(def, media::read_body(headers, body, def)?, &opts)?;
            let result = shared.store().create(storage, ns, obj, &opts, now);
            warnings.borrow_mut().extend(opts.warnings.take());
            Ok(Reply::Objects(201, def.to_view(result?)))
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
                match store.delete(&(storage, ns, name), &opts)? {
                    DeleteOutcome::Pending(v) | DeleteOutcome::Deleted(v) => items.push(v),
                }
            }
            Ok(Reply::Objects(
                200,
                list(&store, items, serde_json::Map::new()),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on the {} collection",
            def.plural
        ))),
    }
}
