//! Test hooks that act on requests: per-verb/resource counters and injected latency or
//! failures, so the agent's tests can prove it retries, backs off and does not spam.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::status::ApiError;

/// A rule that delays and/or fails matching requests.
///
/// A request matches when its method equals `method` (if set) and its path starts with
/// `path_prefix` (e.g. `/api/v1/namespaces/default/pods`). The delay is applied first,
/// then the failure, if any, is answered instead of the real response.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<String>,
    pub path_prefix: String,
    pub delay: Option<Duration>,
    pub fail: Option<ApiError>,
    /// How many matching requests the rule applies to; `None` means every one.
    pub times: Option<usize>,
}

impl Fault {
    /// Fails every matching request with `code`/`reason`.
    pub fn fail(path_prefix: impl Into<String>, code: u16, reason: &str) -> Self {
        Self {
            method: None,
            path_prefix: path_prefix.into(),
            delay: None,
            fail: Some(ApiError::new(code, reason, "injected failure")),
            times: None,
        }
    }

    /// Delays every matching request.
    pub fn delay(path_prefix: impl Into<String>, delay: Duration) -> Self {
        Self {
            method: None,
            path_prefix: path_prefix.into(),
            delay: Some(delay),
            fail: None,
            times: None,
        }
    }

    /// Restricts the rule to one HTTP method (`GET`, `PATCH`, ...).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Applies the rule to the next `n` matching requests only.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
}

/// Identifies an injected fault, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

/// Counters and fault rules, shared by the server and the handle.
#[derive(Debug, Default)]
pub struct Hooks {
    counts: BTreeMap<(String, String), u64>,
    faults: Vec<(FaultId, Fault)>,
    next_id: u64,
}

impl Hooks {
    pub fn count(&mut self, verb: &str, resource: &str) {
        *self
            .counts
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }

    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts.clone()
    }

    pub fn reset_counts(&mut self) {
        self.counts.clear();
    }

    pub fn add_fault(&mut self, fault: Fault) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.faults.push((id, fault));
        id
    }

    pub fn remove_fault(&mut self, id: FaultId) {
        self.faults.retain(|(i, _)| *i != id);
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The delay and failure for this request, consuming one use of the first matching
    /// rule.
    pub fn take_fault(
        &mut self,
        method: &str,
        path: &str,
    ) -> Option<(Option<Duration>, Option<ApiError>)> {
        let pos = self.faults.iter().position(|(_, f)| {
            f.method.as_deref().is_none_or(|m| m == method) && path.starts_with(&f.path_prefix)
        })?;
        let (_, fault) = &mut self.faults[pos];
        let out = (fault.delay, fault.fail.clone());
        if let Some(n) = fault.times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.faults.remove(pos);
            }
        }
        Some(out)
    }
}
