//! Parsing and validation of the `BackendServers` parameter: a JSON array string whose
//! keys are matched case-insensitively and whose values may be strings or numbers (real
//! clients send both, e.g. `"Port":"80"` and `"Port":80`).

use std::net::IpAddr;

use serde_json::Value;

use super::model::BackendType;
use crate::api::error::ApiError;

/// Most backends one write call may carry.
pub const MAX_PER_CALL: usize = 20;

/// One entry of `BackendServers` after validation; absent fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInput {
    pub server_id: String,
    pub port: u16,
    pub weight: Option<u8>,
    pub kind: BackendType,
    pub description: Option<String>,
    pub server_ip: Option<IpAddr>,
}

fn bad(field: &str, value: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidParameter",
        format!("The parameter BackendServers.{field} is invalid: {value:?}."),
    )
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// True for a Description the SLB accepts: 1–80 of `A-Z a-z 0-9 - / . _`.
pub fn valid_description(s: &str) -> bool {
    (1..=80).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'.' | b'_'))
}

/// Parses `raw`. Errors name the field and value so a failing test says what was wrong.
pub fn parse(raw: &str) -> Result<Vec<BackendInput>, ApiError> {
    let malformed = || {
        ApiError::new(
            400,
            "BackendServersMalformed",
            "the specified parameter BackendServers is unavailable (not a JSON array).",
        )
    };
    let value: Value = serde_json::from_str(raw).map_err(|_| malformed())?;
    let Value::Array(items) = value else {
        return Err(malformed());
    };
    if items.len() > MAX_PER_CALL {
        return Err(ApiError::new(
            400,
            "TooManyBackendServers",
            format!(
                "The total number of input real servers exceeds max supported number: {MAX_PER_CALL} (got {}).",
                items.len()
            ),
        ));
    }
    let mut out: Vec<BackendInput> = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(map) = item else {
            return Err(bad("item", &item.to_string()));
        };
        let field = |name: &str| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let text = |name: &str| -> Result<Option<String>, ApiError> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => scalar(v).map(Some).ok_or_else(|| bad(name, &v.to_string())),
            }
        };
        let server_id = text("ServerId")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing("BackendServers.ServerId"))?;
        let port_raw = text("Port")?.ok_or_else(|| ApiError::missing("BackendServers.Port"))?;
        let port = port_raw
            .parse::<u16>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "InvalidParameter",
                    format!("The specified BackendServers is invalid, as the Port value should be in [1, 65535]: {port_raw:?}."),
                )
            })?;
        let weight = match text("Weight")? {
            None => None,
            Some(w) => Some(w.parse::<u8>().ok().filter(|w| *w <= 100).ok_or_else(|| {
                ApiError::new(
                    400,
                    "InvalidWeight.Malformed",
                    format!("A specified weight is not valid: {w:?} (0 to 100)."),
                )
            })?),
        };
        let kind = match text("Type")?.as_deref() {
            None | Some("") => BackendType::Ecs,
            Some(t) if t.eq_ignore_ascii_case("ecs") => BackendType::Ecs,
            Some(t) if t.eq_ignore_ascii_case("eni") => BackendType::Eni,
            Some(t) => {
                return Err(ApiError::new(
                    400,
                    "BackendServer.InvalidType",
                    format!("The specified Type is invalid: {t:?}."),
                ))
            }
        };
        let description = match text("Description")? {
            None => None,
            Some(d) if d.is_empty() => None,
            Some(d) if valid_description(&d) => Some(d),
            Some(d) => return Err(bad("Description", &d)),
        };
        let server_ip = match text("ServerIp")? {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| bad("ServerIp", &s))?),
        };
        let input = BackendInput {
            server_id,
            port,
            weight,
            kind,
            description,
            server_ip,
        };
        if out.iter().any(|o| {
            o.server_id == input.server_id && o.port == input.port && o.server_ip == input.server_ip
        }) {
            return Err(bad("ServerId", "duplicated in one request"));
        }
        out.push(input);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_case_insensitive_and_values_string_or_number() {
        let v = parse(r#"[{"serverid":"i-1","PORT":80,"weight":"50","type":"ENI","serverIp":"127.0.0.2","Description":"k8s/80/a/b/c"}]"#)
            .unwrap();
        assert_eq!(v[0].server_id, "i-1");
        assert_eq!(v[0].port, 80);
        assert_eq!(v[0].weight, Some(50));
        assert_eq!(v[0].kind, BackendType::Eni);
        assert_eq!(v[0].description.as_deref(), Some("k8s/80/a/b/c"));
    }

    #[test]
    fn limits() {
        let err = |s: &str| parse(s).unwrap_err().code;
        assert_eq!(err(r#"[{"ServerId":"i","Port":0}]"#), "InvalidParameter");
        assert_eq!(
            err(r#"[{"ServerId":"i","Port":65536}]"#),
            "InvalidParameter"
        );
        assert_eq!(
            err(r#"[{"ServerId":"i","Port":1,"Weight":101}]"#),
            "InvalidWeight.Malformed"
        );
        assert_eq!(err("{}"), "BackendServersMalformed");
        assert_eq!(
            err(r#"[{"ServerId":"i","Port":1,"Type":"eci"}]"#),
            "BackendServer.InvalidType"
        );
        assert_eq!(
            err(r#"[{"ServerId":"i","Port":1,"Description":"a b"}]"#),
            "InvalidParameter"
        );
        let long = "x".repeat(81);
        assert_eq!(
            err(&format!(
                r#"[{{"ServerId":"i","Port":1,"Description":"{long}"}}]"#
            )),
            "InvalidParameter"
        );
        let many: Vec<String> = (1..=21)
            .map(|p| format!(r#"{{"ServerId":"i","Port":{p}}}"#))
            .collect();
        assert_eq!(
            err(&format!("[{}]", many.join(","))),
            "TooManyBackendServers"
        );
        assert!(parse(&format!("[{}]", many[..20].join(","))).is_ok());
        assert!(valid_description(&"x".repeat(80)));
    }
}
