//! `limit`/`continue` chunking of lists, so clients that page large collections (kubectl's
//! `--chunk-size`, kube-runtime's watcher, `slb-sync doctor --live`) are exercised.
//!
//! The continue token is the last returned object's `<namespace>/<name>` (opaque to
//! clients); the next page starts after it in the store's (namespace, name) order. Unlike
//! the real server, pages are not a consistent snapshot: each is read from the current
//! state, which is enough for clients that only need every object once.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::status::ApiError;

/// One page of `items` (already in (namespace, name) order) and the list metadata fields
/// it adds: `continue`, and `remainingItemCount` when no selector filtered the list.
pub fn chunk(
    items: Vec<Value>,
    q: &HashMap<String, String>,
) -> Result<(Vec<Value>, serde_json::Map<String, Value>), ApiError> {
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("limit {v:?} is not a number")))?,
    };
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => Some(token.split_once('/').ok_or_else(|| {
            ApiError::bad_request(format!("continue key {token:?} is not valid"))
        })?),
    };
    let key = |v: &Value| {
        (
            v["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            v["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut rest: Vec<Value> = match after {
        None => items,
        Some((ns, name)) => items
            .into_iter()
            .filter(|v| {
                let (n, m) = key(v);
                (n.as_str(), m.as_str()) > (ns, name)
            })
            .collect(),
    };
    let mut meta = serde_json::Map::new();
    if limit > 0 && rest.len() > limit {
        let remaining = rest.len() - limit;
        rest.truncate(limit);
        let (ns, name) = key(&rest[limit - 1]);
        meta.insert("continue".into(), json!(format!("{ns}/{name}")));
        let selected = ["labelSelector", "fieldSelector"]
            .iter()
            .any(|k| q.get(*k).is_some_and(|s| !s.is_empty()));
        if !selected {
            meta.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    Ok((rest, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pages_follow_the_continue_token_to_the_end() {
        let all = vec![obj("a", "x"), obj("a", "y"), obj("b", "x")];
        let (page, meta) = chunk(all.clone(), &query(&[("limit", "2")])).unwrap();
        assert_eq!(page, all[..2]);
        assert_eq!(meta["continue"], "a/y");
        assert_eq!(meta["remainingItemCount"], 1);
        let (page, meta) =
            chunk(all.clone(), &query(&[("limit", "2"), ("continue", "a/y")])).unwrap();
        assert_eq!(page, all[2..]);
        assert!(meta.is_empty(), "last page: {meta:?}");
        let (page, _) = chunk(all.clone(), &query(&[])).unwrap();
        assert_eq!(page.len(), 3, "no limit: everything");
        assert!(chunk(all, &query(&[("continue", "garbage")])).is_err());
    }
}
