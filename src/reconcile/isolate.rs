//! Running one write step, and when the SLB refuses a backend of it, finding which: the
//! batch is split (the backends the error message names first, else in halves) until
//! every backend the SLB accepts is written and every one it refuses stands alone.
//!
//! Only errors that name a backend as the cause are split (see [`refuses_a_backend`]);
//! any other failure ends the step as before, and the pass reads the group again.

use super::executor::{lock, Executor, QuarantinedBackend};
use crate::model::{DesiredGroup, SlbBackend};
use crate::plan::{Refusal, StepAction};
use crate::slb::{ErrorClass, SlbApi, SlbError};

/// What a step did.
#[derive(Debug, Default)]
pub(super) struct StepRun {
    /// Batches the SLB accepted, in the order written.
    pub applied: Vec<Vec<SlbBackend>>,
    /// Backends the SLB refused, each with its own answer.
    pub refused: Vec<(SlbBackend, SlbError)>,
    /// A failure that is not about one backend; the batches above were still applied.
    pub failed: Option<SlbError>,
}

/// True when the SLB refused the call because of one of its backends (the server does
/// not exist or is in no state to be a backend, its IP or ENI is wrong, the instance
/// has no room for more), not because of the group, the instance or the request as a
/// whole: calls without that backend can succeed.
pub(super) fn refuses_a_backend(error: &SlbError) -> bool {
    const ABOUT_A_BACKEND: [&str; 5] = [
        "ServerId",
        "ServerIp",
        "BackendServer",
        "NetworkInterface",
        "Eni",
    ];
    // The member is (or is not) in the group already: the agent's reading of the group
    // is stale, and reading it again is the cure, not holding the backend out.
    let membership = error.code.contains("AlreadyExist")
        || (error.code.starts_with("BackendServer") && error.code.contains(".NotExist"));
    error.class == ErrorClass::Permanent
        && !membership
        && ABOUT_A_BACKEND.iter().any(|part| error.code.contains(part))
}

/// Splits a refused batch in two: the backends the error message names, after the rest
/// (the rest then usually succeeds at once), or else in halves.
fn split(mut batch: Vec<SlbBackend>, error: &SlbError) -> [Vec<SlbBackend>; 2] {
    let named = |b: &SlbBackend| {
        mentions(&error.message, &b.server_id)
            || b.server_ip
                .is_some_and(|ip| mentions(&error.message, &ip.to_string()))
    };
    let (named, rest): (Vec<_>, Vec<_>) = batch.iter().cloned().partition(named);
    if !named.is_empty() && !rest.is_empty() {
        return [rest, named];
    }
    let second = batch.split_off(batch.len() / 2);
    [batch, second]
}

/// True when `text` holds `token` as a whole word (`i-1` is not in `i-10`).
fn mentions(text: &str, token: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    !token.is_empty()
        && text.match_indices(token).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + token.len()..].chars().next();
            !before.is_some_and(part) && !after.is_some_and(part)
        })
}

impl<A: SlbApi + ?Sized> Executor<A> {
    /// One write call of `action` under the rate limit; adds are never retried as they
    /// are (not idempotent), weight changes and removals are.
    pub(super) async fn write(
        &self,
        action: StepAction,
        group_id: &str,
        backends: &[SlbBackend],
    ) -> Result<(), SlbError> {
        let result = match action {
            StepAction::Add => {
                self.gate
                    .once(
                        "AddVServerGroupBackendServers",
                        self.api.add_backends(group_id, backends),
                    )
                    .await
            }
            StepAction::SetWeight => {
                self.gate
                    .retried("SetVServerGroupAttribute", || {
                        self.api.set_backends(group_id, backends)
                    })
                    .await
            }
            StepAction::Remove => {
                self.gate
                    .retried("RemoveVServerGroupBackendServers", || {
                        self.api.remove_backends(group_id, backends)
                    })
                    .await
            }
        };
        if let Some(metrics) = self.metrics() {
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics
                .steps
                .with_label_values(&[action.as_str(), outcome])
                .inc();
        }
        result
    }

    /// Runs one step on `load_balancer_id` (holding its mutation lock throughout),
    /// isolating the backends the SLB refuses.
    pub(super) async fn run_step(
        &self,
        load_balancer_id: &str,
        group_id: &str,
        action: StepAction,
        backends: &[SlbBackend],
    ) -> StepRun {
        let instance = self.gate.instance_lock(load_balancer_id);
        let _guard = instance.lock().await;
        let mut run = StepRun::default();
        let mut pending = vec![backends.to_vec()];
        while let Some(batch) = pending.pop() {
            match self.write(action, group_id, &batch).await {
                Ok(()) => run.applied.push(batch),
                Err(e) if refuses_a_backend(&e) && batch.len() == 1 => {
                    if let Some(b) = batch.into_iter().next() {
                        run.refused.push((b, e));
                    }
                }
                Err(e) if refuses_a_backend(&e) && batch.len() > 1 => {
                    let [first, second] = split(batch, &e);
                    pending.push(second);
                    pending.push(first);
                }
                Err(e) => {
                    run.failed = Some(e);
                    break;
                }
            }
        }
        if !run.refused.is_empty() {
            tracing::warn!(
                %group_id,
                action = action.as_str(),
                refused = run.refused.len(),
                written = run.applied.iter().map(Vec::len).sum::<usize>(),
                "the SLB refused some backends of a batch; the others were written"
            );
        }
        run
    }

    /// Holds a refused backend out of this group's plans until its retry.
    pub(super) fn hold(
        &self,
        group_id: &str,
        backend: SlbBackend,
        action: StepAction,
        error: &SlbError,
    ) -> QuarantinedBackend {
        let now = self.clock.now();
        let refusal = Refusal {
            action,
            code: error.code.clone(),
            message: error.message.clone(),
        };
        let mut quarantine = lock(&self.quarantine);
        let held = match backend.key() {
            Some(key) => quarantine
                .hold(group_id, key, refusal, now, self.config.hold)
                .clone(),
            // Unreachable for backends a plan wrote (they have identities); reported all
            // the same.
            None => crate::plan::Held {
                refusal,
                strikes: 1,
                hold: std::time::Duration::ZERO,
                until: now,
            },
        };
        tracing::warn!(
            %group_id,
            server_id = %backend.server_id,
            port = backend.port,
            action = action.as_str(),
            code = %error.code,
            retry_at = %held.until,
            strikes = held.strikes,
            "the SLB refused a backend; holding it out of the group's plans until its retry"
        );
        if let Some(metrics) = self.metrics() {
            metrics.quarantines.inc();
            metrics.quarantined.set(quarantine.len() as i64);
        }
        QuarantinedBackend { backend, held }
    }

    /// Forgets held backends of `group_id` that are neither desired nor present any more.
    pub(super) fn forget_unwanted_holds(
        &self,
        group_id: &str,
        desired: &DesiredGroup,
        members: &[SlbBackend],
    ) {
        let mut quarantine = lock(&self.quarantine);
        quarantine.retain(group_id, |key| {
            desired.backends.iter().any(|b| b.key() == *key)
                || members.iter().any(|b| b.key().as_ref() == Some(key))
        });
        if let Some(metrics) = self.metrics() {
            metrics.quarantined.set(quarantine.len() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BackendType, Weight};

    fn ecs(id: &str) -> SlbBackend {
        SlbBackend {
            server_id: id.into(),
            server_ip: None,
            port: 30080,
            weight: Weight::new(100).unwrap(),
            backend_type: BackendType::Ecs,
            description: "k8s/80/web/default/c1".into(),
        }
    }

    fn error(code: &str, message: &str) -> SlbError {
        SlbError::api("AddVServerGroupBackendServers", code, message, None)
    }

    #[test]
    fn only_permanent_errors_about_a_backend_are_isolated() {
        assert!(refuses_a_backend(&error(
            "InvalidServerId.NotExist",
            "gone"
        )));
        assert!(refuses_a_backend(&error(
            "InvalidBackendServers.ServerIpConflict",
            "x"
        )));
        assert!(refuses_a_backend(&error("BackendServer.InvalidType", "x")));
        assert!(!refuses_a_backend(&error(
            "InvalidParameter",
            "The resource already exists: backend server i-1"
        )));
        assert!(!refuses_a_backend(&error("Forbidden.RAM", "x")));
        assert!(!refuses_a_backend(&error(
            "BackendServer.AlreadyExist",
            "x"
        )));
        assert!(!refuses_a_backend(&error("BackendServer.NotExist", "x")));
        assert!(!refuses_a_backend(&error("ServiceUnavailable", "x")));
    }

    #[test]
    fn the_named_backends_are_split_from_the_rest_else_halves() {
        let batch = vec![ecs("i-1"), ecs("i-2"), ecs("i-3")];
        let [first, second] = split(
            batch.clone(),
            &error(
                "InvalidServerId.NotExist",
                "The ServerId is not exist: i-2.",
            ),
        );
        assert_eq!(first, vec![ecs("i-1"), ecs("i-3")]);
        assert_eq!(second, vec![ecs("i-2")]);
        let [first, second] = split(
            batch.clone(),
            &error(
                "InvalidServerId.NotExist",
                "The ServerId is not exist: i-10.",
            ),
        );
        assert_eq!(first, vec![ecs("i-1")], "i-1 is not named by i-10");
        assert_eq!(second, vec![ecs("i-2"), ecs("i-3")]);
        let [first, second] = split(batch, &error("InvalidServerId.NotExist", "no id"));
        assert_eq!(first, vec![ecs("i-1")]);
        assert_eq!(second, vec![ecs("i-2"), ecs("i-3")]);
    }
}
