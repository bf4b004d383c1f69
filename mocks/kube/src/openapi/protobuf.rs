//! `/openapi/v2` in protobuf (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`),
//! the only form client-go asks for.
//!
//! kubectl falls back to it where v3 has nothing to say: for a kind no v3 document
//! serves (a custom resource whose CRD is not installed) it validates client-side
//! against the v2 definitions, finds none, and lets the apply fail with "no matches for
//! kind" as against a real server. Without a v2 document it could parse, kubectl would
//! stop the whole apply with a validation error instead.
//!
//! The encoder writes the JSON v2 document ([`super::v2`]) as the gnostic `Document`
//! message, field by field: the info, each path's operations (parameters, responses and
//! vendor extensions) and each definition's schema (`$ref`, format, required, type,
//! items, allOf, properties, additionalProperties, vendor extensions). Vendor extension
//! values are carried as YAML text, written as JSON (which YAML reads).

use serde_json::Value;

/// A protobuf message under construction (proto3 wire format: absent fields omitted).
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.varint(u64::from(field << 3 | 2));
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Message) {
        self.bytes(field, &m.0);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.varint(u64::from(field << 3));
            self.varint(1);
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `repeated NamedAny vendor_extension` entries for the `x-` keys of `v`.
fn vendor_extensions(out: &mut Message, field: u32, v: &Value) {
    let Some(map) = v.as_object() else { return };
    for (k, ext) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut any = Message::default();
        any.string(2, &ext.to_string());
        let mut named = Message::default();
        named.string(1, k);
        named.message(2, any);
        out.message(field, named);
    }
}

fn schema(v: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, str_of(v, "$ref"));
    m.string(2, str_of(v, "format"));
    for r in v
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, r.as_str().unwrap_or(""));
    }
    match v.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Message::default();
            item.varint(2 << 3);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Message::default();
            item.message(1, schema(s));
            m.message(21, item);
        }
        _ => {}
    }
    if let Some(t) = v.get("type").and_then(Value::as_str) {
        let mut item = Message::default();
        item.string(1, t);
        m.message(22, item);
    }
    if let Some(items) = v.get("items") {
        let mut item = Message::default();
        item.message(1, schema(items));
        m.message(23, item);
    }
    for s in v
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(s));
    }
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        let mut p = Message::default();
        for (name, s) in props {
            let mut named = Message::default();
            named.string(1, name);
            named.message(2, schema(s));
            p.message(1, named);
        }
        m.message(25, p);
    }
    vendor_extensions(&mut m, 31, v);
    m
}

fn parameter(v: &Value) -> Message {
    // ParametersItem.parameter → Parameter.non_body_parameter →
    // NonBodyParameter.query_parameter_sub_schema (the only kind the double lists).
    let mut query = Message::default();
    query.boolean(
        1,
        v.get("required").and_then(Value::as_bool).unwrap_or(false),
    );
    query.string(2, str_of(v, "in"));
    query.string(4, str_of(v, "name"));
    query.string(6, str_of(v, "type"));
    let mut non_body = Message::default();
    non_body.message(3, query);
    let mut param = Message::default();
    param.message(2, non_body);
    let mut item = Message::default();
    item.message(1, param);
    item
}

fn operation(v: &Value) -> Message {
    let mut m = Message::default();
    for p in v
        .get("produces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(6, p.as_str().unwrap_or(""));
    }
    for c in v
        .get("consumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(7, c.as_str().unwrap_or(""));
    }
    for p in v
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, parameter(p));
    }
    if let Some(responses) = v.get("responses").and_then(Value::as_object) {
        let mut rs = Message::default();
        for (code, r) in responses {
            let mut response = Message::default();
            response.string(1, str_of(r, "description"));
            if let Some(s) = r.get("schema") {
                let mut item = Message::default();
                item.message(1, schema(s));
                response.message(2, item);
            }
            let mut value = Message::default();
            value.message(1, response);
            let mut named = Message::default();
            named.string(1, code);
            named.message(2, value);
            rs.message(1, named);
        }
        m.message(9, rs);
    }
    vendor_extensions(&mut m, 13, v);
    m
}

/// The protobuf encoding of a Swagger 2.0 document in JSON.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut d = Message::default();
    d.string(1, str_of(doc, "swagger"));
    let mut info = Message::default();
    info.string(1, str_of(&doc["info"], "title"));
    info.string(2, str_of(&doc["info"], "version"));
    d.message(2, info);
    let mut paths = Message::default();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let mut p = Message::default();
        for (field, method) in [
            (2, "get"),
            (3, "put"),
            (4, "post"),
            (5, "delete"),
            (8, "patch"),
        ] {
            if let Some(op) = item.get(method) {
                p.message(field, operation(op));
            }
        }
        let mut named = Message::default();
        named.string(1, path);
        named.message(2, p);
        paths.message(2, named);
    }
    d.message(8, paths);
    let mut definitions = Message::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        let mut named = Message::default();
        named.string(1, name);
        named.message(2, schema(s));
        definitions.message(1, named);
    }
    d.message(9, definitions);
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_format() {
        let mut m = Message::default();
        m.string(1, "2.0");
        m.varint(300);
        assert_eq!(m.0, [0x0a, 3, b'2', b'.', b'0', 0xac, 0x02]);
        let doc = json!({"swagger": "2.0", "info": {"title": "T", "version": "v"},
                         "paths": {}, "definitions": {"A": {"type": "string"}}});
        let bytes = encode(&doc);
        // Document.swagger, Document.info{title, version}, Document.paths{},
        // Document.definitions{NamedSchema{name "A", Schema{type{value "string"}}}}.
        #[rustfmt::skip]
        let expected = [
            0x0a, 3, b'2', b'.', b'0',
            0x12, 6, 0x0a, 1, b'T', 0x12, 1, b'v',
            0x42, 0,
            0x4a, 18, 0x0a, 16, 0x0a, 1, b'A', 0x12, 11,
            0xb2, 0x01, 8, 0x0a, 6, b's', b't', b'r', b'i', b'n', b'g',
        ];
        assert_eq!(bytes, expected);
    }
}
