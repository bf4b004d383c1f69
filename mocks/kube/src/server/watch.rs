//! Watch streams: newline-delimited JSON events from a resourceVersion, bookmarks,
//! timeouts, and `410 Gone` as an `ERROR` event when the history no longer reaches back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::media::Form;
use super::table::IncludeObject;
use super::{Shape, Shared};
use crate::resources::RESOURCES;
use crate::status::ApiError;
use crate::store::Filter;

/// The watch query parameters the double honours.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// `None` when unset or `"0"`: start with synthetic ADDED events for what exists.
    pub resource_version: Option<u64>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    /// The form the client asked for (kube's `metadata_watcher` asks for
    /// `PartialObjectMetadata`, `kubectl get -w` for `Table`) and the kind requested.
    pub shape: Shape,
}

impl WatchParams {
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let resource_version =
            match q.get("resourceVersion").map(String::as_str) {
                None | Some("") | Some("0") => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {s:?}"))
                })?),
            };
        let timeout = q
            .get("timeoutSeconds")
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s:?}")))
            })
            .transpose()?
            .map(Duration::from_secs);
        let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
        Ok(Self {
            resource_version,
            timeout,
            bookmarks: flag("allowWatchBookmarks"),
            send_initial_events: flag("sendInitialEvents"),
            shape: Shape {
                kind: 0,
                form: Form::Json,
                include: IncludeObject::Metadata,
            },
        })
    }
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// An event's object in the form the client asked for.
fn shaped(shape: &Shape, stored: Value) -> Value {
    shape.apply(RESOURCES[shape.kind].to_view(stored))
}

fn bookmark(kind: usize, rv: u64, initial_events_end: bool) -> Bytes {
    let def = &RESOURCES[kind];
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}),
    )
}

/// Starts the stream and answers with it.
pub fn respond(shared: Arc<Shared>, filter: Filter, params: WatchParams) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(shared, filter, params, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn run(shared: Arc<Shared>, filter: Filter, params: WatchParams, tx: mpsc::Sender<Bytes>) {
    let mut rv_rx = shared.rv_rx.clone();
    let mut shutdown = shared.shutdown_rx.clone();
    let mut disconnect = shared.disconnect_tx.subscribe();
    let deadline = params.timeout.map(|d| Instant::now() + d);
    rv_rx.borrow_and_update();
    let start = {
        let store = shared.store();
        let current = store.resource_version();
        match params.resource_version {
            None => Ok((
                current,
                store
                    .list(&filter)
                    .into_iter()
                    .map(|o| ("ADDED", o))
                    .collect::<Vec<_>>(),
            )),
            Some(rv) => store
                .events_since(rv, &filter)
                .map(|evs| (current.max(rv), evs)),
        }
    };
    let mut last = match start {
        Ok((last, events)) => {
            for (t, o) in events {
                if tx.send(line(t, shaped(&params.shape, o))).await.is_err() {
                    return;
                }
            }
            last
        }
        Err(e) => {
            let _ = tx.send(line("ERROR", e.to_status())).await;
            return;
        }
    };
    if params.send_initial_events
        && params.resource_version.is_none()
        && tx
            .send(bookmark(params.shape.kind, last, true))
            .await
            .is_err()
    {
        return;
    }
    let mut tick = tokio::time::interval_at(
        Instant::now() + shared.bookmark_interval,
        shared.bookmark_interval,
    );
    let until_deadline = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    loop {
        tokio::select! {
            biased;
            _ = tx.closed() => return,
            _ = shutdown.changed() => return,
            _ = disconnect.changed() => return,
            _ = &mut until_deadline => return,
            changed = rv_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                rv_rx.borrow_and_update();
                let next = {
                    let store = shared.store();
                    store.events_since(last, &filter).map(|e| (e, store.resource_version()))
                };
                match next {
                    Ok((events, rv)) => {
                        for (t, o) in events {
                            if tx.send(line(t, shaped(&params.shape, o))).await.is_err() {
                                return;
                            }
                        }
                        last = last.max(rv);
                    }
                    Err(e) => {
                        let _ = tx.send(line("ERROR", e.to_status())).await;
                        return;
                    }
                }
            }
            _ = tick.tick(), if params.bookmarks => {
                if tx.send(bookmark(params.shape.kind, last, false)).await.is_err() {
                    return;
                }
            }
        }
    }
}
