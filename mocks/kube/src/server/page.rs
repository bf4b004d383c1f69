//! `limit`/`continue` chunking of lists, so clients that page large collections (kubectl's
//! `--chunk-size`, kube-runtime's watcher, `slb-sync doctor --live`) are exercised.
//!
//! The continue token is the last returned object's `<namespace>/<name>` (opaque to
//! clients); the next page starts after it in the store's (namespace, name) order. Unlike
//! the real server, pages are not a consistent snapshot: each is read from the current
//! state, which is enough for clients that only need every object once.
//!
//! A page is read from the store's ordered map starting after the token, and only the
//! page's objects are copied: a client paging through 150,000 pods 500 at a time costs
//! each page its own size, not the whole collection's.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::status::ApiError;

/// What a list request asks of the pager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<'q> {
    /// Most objects in the answer; 0 means all.
    pub limit: usize,
    /// Start after this `(namespace, name)`.
    pub after: Option<(&'q str, &'q str)>,
    /// A selector filters the list: the real server then leaves out `remainingItemCount`.
    pub selected: bool,
}

/// Reads `limit`, `continue` and whether a selector is set.
pub fn request(q: &HashMap<String, String>) -> Result<PageRequest<'_>, ApiError> {
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
    let selected = ["labelSelector", "fieldSelector"]
        .iter()
        .any(|k| q.get(*k).is_some_and(|s| !s.is_empty()));
    Ok(PageRequest {
        limit,
        after,
        selected,
    })
}

/// One page of `items` (the matching objects after the request's token, in (namespace,
/// name) order) and the list metadata fields it adds: `continue`, and
/// `remainingItemCount` when no selector filtered the list. Only the page is copied.
pub fn chunk<'a>(
    items: impl Iterator<Item = &'a Value>,
    req: &PageRequest<'_>,
) -> (Vec<Value>, serde_json::Map<String, Value>) {
    let mut meta = serde_json::Map::new();
    let mut items = items.peekable();
    let page: Vec<Value> = if req.limit == 0 {
        items.by_ref().cloned().collect()
    } else {
        items.by_ref().take(req.limit).cloned().collect()
    };
    if items.peek().is_some() {
        let last = page.last().unwrap_or(&Value::Null);
        let ns = last["metadata"]["namespace"].as_str().unwrap_or("");
        let name = last["metadata"]["name"].as_str().unwrap_or("");
        meta.insert("continue".into(), json!(format!("{ns}/{name}")));
        if !req.selected {
            meta.insert("remainingItemCount".into(), json!(items.count()));
        }
    }
    (page, meta)
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

    /// What the store hands the pager: the objects after the token.
    fn after<'a>(all: &'a [Value], req: &PageRequest<'_>) -> impl Iterator<Item = &'a Value> {
        let after = req.after.map(|(a, b)| (a.to_owned(), b.to_owned()));
        all.iter().filter(move |v| {
            let key = (
                v["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                v["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            );
            after.as_ref().is_none_or(|a| key > *a)
        })
    }

    #[test]
    fn pages_follow_the_continue_token_to_the_end() {
        let all = vec![obj("a", "x"), obj("a", "y"), obj("b", "x")];
        let q = query(&[("limit", "2")]);
        let req = request(&q).unwrap();
        let (page, meta) = chunk(after(&all, &req), &req);
        assert_eq!(page, all[..2]);
        assert_eq!(meta["continue"], "a/y");
        assert_eq!(meta["remainingItemCount"], 1);
        let q = query(&[("limit", "2"), ("continue", "a/y")]);
        let req = request(&q).unwrap();
        let (page, meta) = chunk(after(&all, &req), &req);
        assert_eq!(page, all[2..]);
        assert!(meta.is_empty(), "last page: {meta:?}");
        let q = query(&[]);
        let req = request(&q).unwrap();
        let (page, _) = chunk(after(&all, &req), &req);
        assert_eq!(page.len(), 3, "no limit: everything");
        assert!(request(&query(&[("continue", "garbage")])).is_err());
    }

    #[test]
    fn a_selected_list_has_no_remaining_count() {
        let all = vec![obj("a", "x"), obj("a", "y")];
        let q = query(&[("limit", "1"), ("labelSelector", "app=web")]);
        let req = request(&q).unwrap();
        let (page, meta) = chunk(after(&all, &req), &req);
        assert_eq!(page.len(), 1);
        assert_eq!(meta["continue"], "a/x");
        assert!(meta.get("remainingItemCount").is_none());
    }
}
