//! Checks an object against its OpenAPI schema the way the API server decodes it.
//!
//! The real server decodes built-in kinds into Go structs and custom resources against
//! their structural schema. What a client sees of that:
//! - a value of the wrong JSON type is always refused (`400 BadRequest`, "cannot
//!   unmarshal"), whatever `fieldValidation` says;
//! - a field the schema does not declare is dropped (pruned) from the stored object;
//!   with `fieldValidation=Strict` the request fails instead (`400`, "strict decoding
//!   error: unknown field"), with `Warn` (the default) each dropped field is named in a
//!   `Warning` header, with `Ignore` it is dropped silently.
//!
//! `null` is accepted anywhere (it decodes to the zero value). Maps (`additionalProperties`)
//! check their values; objects without declared properties and
//! `x-kubernetes-preserve-unknown-fields` keep anything. Duplicate keys, formats, enums,
//! `required` and the semantic validation of each kind (`422 Invalid`) are not checked.

use serde_json::{Map, Value};

/// `fieldValidation`: what to do with fields the schema does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the server's default).
    #[default]
    Warn,
    /// Refuse the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; an unknown value is an error like the server's.
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            )),
        }
    }
}

/// What checking found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Paths of undeclared fields (already removed from the object), e.g.
    /// `spec.template.spec.containers[0].imagePullPolicyy`.
    pub unknown: Vec<String>,
    /// Values of the wrong type: (path, JSON type found, type expected).
    pub wrong_type: Vec<(String, &'static str, String)>,
}

/// Checks `value` against `schema` (resolving `$ref`s in `schemas`), removing undeclared
/// fields.
pub fn check<'a>(
    value: &mut Value,
    schema: &'a Value,
    schemas: &'a Map<String, Value>,
) -> Findings {
    let mut walk = Walk {
        schemas,
        found: Findings::default(),
    };
    walk.value(value, schema, "");
    walk.found.unknown.sort();
    walk.found.wrong_type.sort();
    walk.found
}

struct Walk<'a> {
    schemas: &'a Map<String, Value>,
    found: Findings,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Whether `v` is of the OpenAPI primitive or container `ty`.
fn is_type(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

impl<'a> Walk<'a> {
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        // `$ref`, or a single-element `allOf` wrapping one (how the server's v3 documents
        // attach a default or description to a reference).
        for _ in 0..32 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or(r);
                match self.schemas.get(name) {
                    Some(s) => schema = s,
                    None => return &Value::Null,
                }
            } else if let Some([only]) = schema
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                schema = only;
            } else {
                break;
            }
        }
        schema
    }

    fn value(&mut self, value: &mut Value, schema: &'a Value, path: &str) {
        if value.is_null() {
            return;
        }
        let schema = self.resolve(schema);
        if schema.is_null() {
            return;
        }
        // Int-or-string and quantity: one of a few primitive types.
        let alternatives = ["oneOf", "anyOf"]
            .iter()
            .find_map(|k| schema.get(*k).and_then(Value::as_array));
        if let Some(alts) = alternatives {
            if schema.get("type").is_none() {
                let types: Vec<&str> = alts
                    .iter()
                    .filter_map(|a| a.get("type").and_then(Value::as_str))
                    .collect();
                if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
                    self.wrong(path, value, types.join(" or "));
                }
                return;
            }
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        if !is_type(value, ty) {
            self.wrong(path, value, ty.to_string());
            return;
        }
        match value {
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.value(item, item_schema, &format!("{path}[{i}]"));
                    }
                }
            }
            Value::Object(map) => self.object(map, schema, path),
            _ => {}
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>, schema: &'a Value, path: &str) {
        let preserve = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        let mut undeclared = Vec::new();
        for (key, child) in map.iter_mut() {
            let child_path = join(path, key);
            if let Some(s) = properties.and_then(|p| p.get(key)) {
                self.value(child, s, &child_path);
            } else if let Some(s) = additional {
                self.value(child, s, &child_path);
            } else if properties.is_some() && !preserve {
                undeclared.push(key.clone());
                self.found.unknown.push(child_path);
            }
        }
        for key in undeclared {
            map.remove(&key);
        }
    }

    fn wrong(&mut self, path: &str, value: &Value, expected: String) {
        self.found
            .wrong_type
            .push((path.to_string(), json_type(value), expected));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> Map<String, Value> {
        json!({
            "Obj": {"type": "object", "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer"},
                "port": {"$ref": "#/components/schemas/IntOrString"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "free": {"type": "object"},
                "kept": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"a": {"type": "string"}}},
            }},
            "Item": {"type": "object", "properties": {"k": {"type": "string"}}},
            "IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn prunes_unknown_fields_and_reports_their_paths() {
        let s = schemas();
        let mut v = json!({"name": "x", "nmae": "y", "items": [{"k": "a"}, {"k": "b", "z": 1}],
                           "free": {"anything": [1]}, "kept": {"a": "1", "b": 2},
                           "labels": {"app": "web"}, "port": "http", "count": null});
        let f = check(&mut v, &json!({"$ref": "#/components/schemas/Obj"}), &s);
        assert_eq!(
            f.unknown,
            vec!["items[1].z".to_string(), "nmae".to_string()]
        );
        assert!(f.wrong_type.is_empty(), "{f:?}");
        assert!(v.get("nmae").is_none());
        assert_eq!(v["items"][1], json!({"k": "b"}));
        assert_eq!(
            v["kept"]["b"], 2,
            "preserve-unknown-fields keeps undeclared fields"
        );
        assert_eq!(v["free"]["anything"], json!([1]));
    }

    #[test]
    fn wrong_types_are_named() {
        let s = schemas();
        let mut v = json!({"count": "3", "port": true, "labels": {"a": 1}, "items": {}});
        let f = check(&mut v, &s["Obj"], &s);
        let paths: Vec<&str> = f.wrong_type.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["count", "items", "labels.a", "port"]);
        assert_eq!(
            f.wrong_type[0],
            ("count".into(), "string", "integer".into())
        );
        let mut ok = json!({"count": 3, "port": 8080});
        assert_eq!(check(&mut ok, &s["Obj"], &s), Findings::default());
    }

    #[test]
    fn field_validation_values() {
        assert_eq!(FieldValidation::parse(None), Ok(FieldValidation::Warn));
        assert_eq!(
            FieldValidation::parse(Some("Strict")),
            Ok(FieldValidation::Strict)
        );
        assert!(FieldValidation::parse(Some("strict")).is_err());
    }
}
