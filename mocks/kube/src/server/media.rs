//! Content negotiation: which answer a client accepts (`Accept`), and which request
//! bodies the double reads (`Content-Type`).
//!
//! The double answers in JSON only: a client that also accepts JSON gets JSON (client-go's
//! typed clients send `Accept: application/vnd.kubernetes.protobuf,application/json`), one
//! that accepts nothing else gets `406 Not Acceptable`. It reads JSON and YAML bodies, and
//! protobuf ones for the kinds `kubectl create` of the docs needs ([`super::proto_body`]);
//! any other body is `415 Unsupported Media Type`, which is what lets client-go fall back
//! from CBOR. The `as=Table` and `as=PartialObjectMetadata(List)` forms of JSON are
//! understood.

use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::resources::ResourceDef;
use crate::status::ApiError;

/// The answer form a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The objects themselves.
    Json,
    /// `as=PartialObjectMetadata` / `as=PartialObjectMetadataList`.
    Metadata,
    /// `as=Table`: what `kubectl get` prints.
    Table,
}

/// The first acceptable form in the `Accept` header, or `None` when nothing in it is
/// served (protobuf or CBOR only, aggregated discovery only).
pub fn accepted(headers: &HeaderMap) -> Option<Form> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Form::Json);
    };
    if accept.trim().is_empty() {
        return Some(Form::Json);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match media.as_str() {
            "application/json" => match param("as") {
                None => return Some(Form::Json),
                Some("Table") if param("g") == Some("meta.k8s.io") => return Some(Form::Table),
                Some("PartialObjectMetadata" | "PartialObjectMetadataList") => {
                    return Some(Form::Metadata)
                }
                // Aggregated discovery and unknown forms: try the next range.
                Some(_) => continue,
            },
            "*/*" | "application/*" => return Some(Form::Json),
            _ => continue,
        }
    }
    None
}

/// Whether the `Accept` header names `media` (parameters aside).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|r| {
                r.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(media)
            })
        })
}

pub fn not_acceptable() -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    )
}

/// Reads a create or update body for kind `def`: JSON (or no `Content-Type`), YAML, and
/// protobuf for the kinds [`super::proto_body`] reads; anything else is `415`.
pub fn read_body(headers: &HeaderMap, body: &[u8], def: &ResourceDef) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct.split(';').next().unwrap_or("").trim();
    match base {
        "" | "application/json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}"))),
        "application/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("request body is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        "application/vnd.kubernetes.protobuf" => super::proto_body::decode(def, ct, body),
        _ => Err(ApiError::unsupported_media_type(
            ct,
            "application/json, application/yaml",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> Option<Form> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        accepted(&h)
    }

    #[test]
    fn negotiation() {
        assert_eq!(accepted(&HeaderMap::new()), Some(Form::Json));
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf,application/json"),
            Some(Form::Json)
        );
        assert_eq!(accept("application/vnd.kubernetes.protobuf"), None);
        assert_eq!(
            accept("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
            None
        );
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
            Some(Form::Table)
        );
        assert_eq!(
            accept("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"),
            Some(Form::Json)
        );
        assert_eq!(
            accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            ),
            Some(Form::Metadata)
        );
    }

    #[test]
    fn bodies() {
        let pods = &crate::resources::RESOURCES[0];
        let read_body = |h: &HeaderMap, b: &[u8]| read_body(h, b, pods);
        let mut h = HeaderMap::new();
        assert!(read_body(&h, b"{}").is_ok());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
        );
        assert_eq!(read_body(&h, b"k8s\0").unwrap_err().code, 415);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        assert_eq!(read_body(&h, b"a: 1").unwrap()["a"], 1);
    }
}
