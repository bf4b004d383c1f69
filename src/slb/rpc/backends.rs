//! `BackendServers` in both directions: the JSON array string write calls send, and the
//! tolerant reading of `BackendServers.BackendServer[]` answers.

use serde_json::{json, Map, Value};

use super::decode;
use crate::model::{BackendType, SlbBackend, Weight};

/// Which write call a batch is for: removal needs only the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    Add,
    Remove,
    Set,
}

/// The `BackendServers` parameter: a JSON array of
/// `{ServerId, Port, Weight, Type, Description, ServerIp}` (ServerIp only when known,
/// Description omitted on removal and when empty).
pub(crate) fn encode(batch: &[SlbBackend], kind: WriteKind) -> String {
    let items: Vec<Value> = batch
        .iter()
        .map(|b| {
            let mut item = Map::new();
            item.insert("ServerId".into(), json!(b.server_id));
            item.insert("Port".into(), json!(b.port));
            item.insert("Weight".into(), json!(u32::from(b.weight)));
            item.insert("Type".into(), json!(b.backend_type.as_str()));
            if kind != WriteKind::Remove && !b.description.is_empty() {
                item.insert("Description".into(), json!(b.description));
            }
            if let Some(ip) = b.server_ip {
                item.insert("ServerIp".into(), json!(ip.to_string()));
            }
            Value::Object(item)
        })
        .collect();
    Value::Array(items).to_string()
}

/// Why one `BackendServer` entry could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// A backend type the agent never writes (e.g. `eci`): foreign, left out.
    ForeignType(String),
    /// A required field is missing or out of range: the whole answer is suspect.
    Invalid(&'static str),
}

/// Reads one entry, numbers accepted as strings and keys in any case.
pub(crate) fn decode_one(item: &Value) -> Result<SlbBackend, Skip> {
    let backend_type = match decode::string(item, "Type") {
        None => BackendType::Ecs,
        Some(t) if t.eq_ignore_ascii_case("ecs") => BackendType::Ecs,
        Some(t) if t.eq_ignore_ascii_case("eni") => BackendType::Eni,
        Some(other) => return Err(Skip::ForeignType(other)),
    };
    let server_id = decode::string(item, "ServerId").ok_or(Skip::Invalid("ServerId"))?;
    let port = decode::port(item, "Port").ok_or(Skip::Invalid("Port"))?;
    let weight = decode::uint(item, "Weight")
        .and_then(|w| u32::try_from(w).ok())
        .and_then(Weight::new)
        .ok_or(Skip::Invalid("Weight"))?;
    Ok(SlbBackend {
        server_id,
        server_ip: decode::ip(item, "ServerIp").or_else(|| decode::ip(item, "EniHost")),
        port,
        weight,
        backend_type,
        description: decode::string(item, "Description").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eni(ip: &str) -> SlbBackend {
        SlbBackend {
            server_id: "eni-1".into(),
            server_ip: Some(ip.parse().unwrap()),
            port: 8080,
            weight: Weight::new(0).unwrap(),
            backend_type: BackendType::Eni,
            description: "k8s/80/web/default/c1".into(),
        }
    }

    #[test]
    fn encodes_the_documented_shape() {
        let got: Value = serde_json::from_str(&encode(&[eni("10.0.0.7")], WriteKind::Set)).unwrap();
        assert_eq!(
            got,
            json!([{"ServerId": "eni-1", "Port": 8080, "Weight": 0, "Type": "eni",
                    "Description": "k8s/80/web/default/c1", "ServerIp": "10.0.0.7"}])
        );
        let got: Value =
            serde_json::from_str(&encode(&[eni("10.0.0.7")], WriteKind::Remove)).unwrap();
        assert!(got[0].get("Description").is_none());
    }

    #[test]
    fn decodes_strings_lowercase_keys_and_rejects_bad_entries() {
        let b = decode_one(&json!({"serverid": "i-1", "port": "30080", "weight": "100",
            "type": "ECS", "description": "x"}))
        .unwrap();
        assert_eq!(
            (b.server_id.as_str(), b.port, b.weight.get()),
            ("i-1", 30080, 100)
        );
        assert_eq!(b.backend_type, BackendType::Ecs);
        assert_eq!(
            decode_one(&json!({"ServerId": "i-1", "Port": 80})),
            Err(Skip::Invalid("Weight"))
        );
        assert_eq!(
            decode_one(&json!({"ServerId": "i-1", "Port": 80, "Weight": 101})),
            Err(Skip::Invalid("Weight"))
        );
        assert_eq!(
            decode_one(&json!({"ServerId": "eci-1", "Port": 80, "Weight": 1, "Type": "eci"})),
            Err(Skip::ForeignType("eci".into()))
        );
        assert_eq!(decode_one(&json!(null)), Err(Skip::Invalid("ServerId")));
    }
}
