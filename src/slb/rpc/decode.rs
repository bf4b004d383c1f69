//! Tolerant reading of the API's JSON answers.
//!
//! The SLB answers are not uniform across actions and API generations: numbers sometimes
//! arrive as strings, some fields have had misspelled twins (`ListenerPortsAndProtocal`),
//! and single-element lists converted from XML may come as an object. These helpers read
//! a `serde_json::Value` without ever panicking; callers decide what is required.

use std::net::IpAddr;

use serde_json::Value;

/// `obj[key]`, falling back to a case-insensitive key match.
pub(crate) fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A string field; numbers and booleans are rendered as text. Empty strings are `None`.
pub(crate) fn string(obj: &Value, key: &str) -> Option<String> {
    let text = match field(obj, key)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// An unsigned integer field given as a JSON number or a numeric string.
pub(crate) fn uint(obj: &Value, key: &str) -> Option<u64> {
    match field(obj, key)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A port field in 1–65535.
pub(crate) fn port(obj: &Value, key: &str) -> Option<u16> {
    uint(obj, key)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// An IP address field; anything unparsable (masked IPs in examples, garbage) is `None`.
pub(crate) fn ip(obj: &Value, key: &str) -> Option<IpAddr> {
    string(obj, key).and_then(|s| s.parse().ok())
}

/// The items of a wrapped list `obj[outer][inner]` (`{"BackendServers":{"BackendServer":[…]}}`),
/// also accepting an unwrapped array `obj[outer]` or a lone object in place of the array.
/// Absent lists are empty.
pub(crate) fn list<'a>(obj: &'a Value, outer: &str, inner: &str) -> Vec<&'a Value> {
    let Some(outer_value) = field(obj, outer) else {
        return Vec::new();
    };
    let items = match outer_value {
        Value::Array(_) => Some(outer_value),
        Value::Object(_) => field(outer_value, inner),
        _ => None,
    };
    match items {
        Some(Value::Array(items)) => items.iter().filter(|v| v.is_object()).collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_strings_and_key_case_are_tolerated() {
        let v = json!({"Port": "8080", "weight": 50, "ServerIp": "10.0.0.1", "Bad": "x"});
        assert_eq!(port(&v, "Port"), Some(8080));
        assert_eq!(uint(&v, "Weight"), Some(50));
        assert_eq!(ip(&v, "ServerIp"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(uint(&v, "Bad"), None);
        assert_eq!(port(&json!({"Port": 70000}), "Port"), None);
        assert_eq!(port(&json!({"Port": 0}), "Port"), None);
        assert_eq!(uint(&json!({"N": -1}), "N"), None);
        assert_eq!(string(&json!({"S": ""}), "S"), None);
    }

    #[test]
    fn lists_wrapped_unwrapped_single_or_absent() {
        let wrapped = json!({"B": {"Item": [{"a": 1}, {"a": 2}, 3]}});
        assert_eq!(list(&wrapped, "B", "Item").len(), 2);
        let bare = json!({"B": [{"a": 1}]});
        assert_eq!(list(&bare, "B", "Item").len(), 1);
        let single = json!({"B": {"Item": {"a": 1}}});
        assert_eq!(list(&single, "B", "Item").len(), 1);
        assert!(list(&json!({}), "B", "Item").is_empty());
        assert!(list(&json!({"B": ""}), "B", "Item").is_empty());
        assert!(list(&json!([1, 2]), "B", "Item").is_empty());
    }
}
