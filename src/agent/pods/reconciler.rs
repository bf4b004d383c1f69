//! The pod side as a keyed reconciler: kube-runtime's applier runs [`reconcile_pod`] for
//! each pod named on the trigger channel or due again, never two reconciles of one pod at
//! once, a request for a pod already waiting merged with it (the earliest time wins).
//! Every reconcile looks at the whole pod again (level-triggered) and says when it wants
//! to be woken: the end of the kube-proxy allowance or the fail-open deadline. A failed
//! write is retried with a doubling delay until it succeeds or the pod goes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::book::pod_key;
use super::lifecycle::{lock, PodContext};
use super::step;
use super::writer::WriteError;
use crate::model::StoredPod;

/// Pod writes in flight at once (each is one or two API calls).
const CONCURRENCY: u16 = 16;
/// The first retry of a failed write; each further failure doubles it, up to
/// [`MAX_RETRY_DELAY`] (a pod's grace period is short, its fail-open deadline near).
const RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(16);

/// Starts the reconciler; it ends once every sender of the returned channel is dropped.
pub(super) fn spawn(context: Arc<PodContext>) -> mpsc::UnboundedSender<ObjectRef<StoredPod>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<ObjectRef<StoredPod>>();
    let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let store = context.stores.pods.clone();
    let applier = controller::applier(
        |pod, ctx| Box::pin(reconcile_pod(pod, ctx)),
        error_policy,
        context,
        store,
        requests.map(Ok::<_, Infallible>),
        controller::Config::default().concurrency(CONCURRENCY),
    );
    tokio::spawn(applier.for_each(|result| async move {
        match result {
            Ok(_) => {}
            // The pod left the store before its turn: nothing left to do for it.
            Err(controller::Error::ObjectNotFound(_)) => {}
            Err(error) => tracing::warn!(%error, "pod reconciler"),
        }
    }));
    tx
}

/// Looks at one pod: decides from its [`step::PodFacts`], writes what is due (journal
/// entries and Events first, so a drain start is persisted before anything else), and
/// returns when to look again. Only the leader writes; a follower's pods are all looked
/// at again when it gains the lease.
async fn reconcile_pod(pod: Arc<StoredPod>, ctx: Arc<PodContext>) -> Result<Action, WriteError> {
    let Some(key) = pod_key(&pod) else {
        return Ok(Action::await_change());
    };
    if !*ctx.leader.borrow() {
        return Ok(Action::await_change());
    }
    let (ns, name) = (&key.0, &key.1);
    let (journal, events) = {
        let mut book = lock(&ctx.book);
        (book.journal.remove(&key), book.events.remove(&key))
    };
    if let Some(entries) = journal {
        if let Err(error) = ctx.writer.journal(ns, name, &entries).await {
            // Put back what no newer entry replaced meanwhile.
            let mut book = lock(&ctx.book);
            let pending = book.journal.entry(key.clone()).or_default();
            for (entry, at) in entries {
                pending.entry(entry).or_insert(at);
            }
            return Err(error);
        }
    }
    for event in events.into_iter().flatten() {
        ctx.writer.event(ns, name, &event).await;
    }
    let now = ctx.config.clock.now();
    let facts = ctx.facts(&pod, &key);
    let step = step::pod_step(&pod, &facts, ctx.config.hold_rules(), now);
    for write in &step.writes {
        ctx.writer.write(ns, name, write).await?;
    }
    lock(&ctx.book).failures.remove(&key);
    Ok(match step.wake_at {
        Some(at) => {
            let wait = Duration::try_from(now.duration_until(at)).unwrap_or_default();
            Action::requeue(wait.max(Duration::from_millis(1)))
        }
        None => Action::await_change(),
    })
}

fn error_policy(pod: Arc<StoredPod>, error: &WriteError, ctx: Arc<PodContext>) -> Action {
    let Some(key) = pod_key(&pod) else {
        return Action::await_change();
    };
    let attempt = {
        let mut book = lock(&ctx.book);
        let failures = book.failures.entry(key.clone()).or_default();
        *failures += 1;
        *failures
    };
    let delay = RETRY_DELAY
        .saturating_mul(1 << (attempt - 1).min(8))
        .min(MAX_RETRY_DELAY);
    tracing::info!(namespace = %key.0, pod = %key.1, %error, attempt, retry_in = ?delay, "pod write failed; retrying");
    Action::requeue(delay)
}
