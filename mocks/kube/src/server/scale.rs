//! The `scale` subresource of Deployments and StatefulSets (`kubectl scale`): an
//! `autoscaling/v1` Scale whose `spec.replicas` is the object's, and whose
//! `status.selector` is its pod selector as a string.

use axum::http::{header, HeaderMap, Method};
use serde_json::{json, Value};

use super::{media, Shared};
use crate::openapi;
use crate::patch::{self, PatchKind};
use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::store::{Key, WriteOptions};

/// The Scale view of `obj` (the real server defaults `spec.replicas` to 1).
fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector: Vec<String> = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector.join(","),
        },
    })
}

/// GET, PUT or PATCH of `<object>/scale`.
#[allow(clippy::too_many_arguments)]
pub fn serve(
    shared: &Shared,
    method: &Method,
    def: &ResourceDef,
    key: &Key,
    headers: &HeaderMap,
    body: &[u8],
    opts: &WriteOptions,
    now: &str,
) -> Result<Value, ApiError> {
    let mut store = shared.store();
    let current = store
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&def.resource_name(), &key.2))?;
    let mut wanted = match *method {
        Method::GET => return Ok(scale_of(&current)),
        Method::PUT => media::read_body(headers, body, def)?,
        Method::PATCH => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(ct)?;
            let mut s = scale_of(&current);
            patch::apply(kind, &mut s, &patch::parse_body(kind, body)?)?;
            s
        }
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {}/scale",
                def.plural
            )))
        }
    };
    let warnings = openapi::validate_as(
        "io.k8s.api.autoscaling.v1.Scale",
        "Scale",
        "v1",
        &mut wanted,
        opts.validation,
    )?;
    opts.warnings.borrow_mut().extend(warnings);
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(format!(
            "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0",
            key.2
        )));
    }
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(replicas);
    // A resourceVersion in the Scale is a precondition on the object.
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        new["metadata"]["resourceVersion"] = json!(rv);
    }
    let updated = store.update(key, new, opts, now)?;
    Ok(scale_of(&updated))
}
