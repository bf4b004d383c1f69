//! The call log and per-action counters the admin API exposes, so tests can assert what a
//! client sent (batch sizes, retries) without a packet capture.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Entries kept in the log (oldest dropped first).
pub const LOG_CAPACITY: usize = 10_000;

/// Parameters never written to the log.
const HIDDEN: &[&str] = &["Signature", "SecurityToken"];

/// One API call as the mock saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallRecord {
    pub seq: u64,
    /// Milliseconds since the mock started, on the tokio clock.
    pub at_ms: u64,
    pub method: String,
    pub action: String,
    pub params: BTreeMap<String, String>,
    pub status: u16,
    /// Error code, absent on success.
    pub code: Option<String>,
    pub request_id: String,
}

/// Calls and outcomes of one action.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ActionCounters {
    pub calls: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct CallLog {
    seq: u64,
    entries: VecDeque<CallRecord>,
    counters: BTreeMap<String, ActionCounters>,
}

impl CallLog {
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        at_ms: u64,
        method: &str,
        action: &str,
        params: &[(String, String)],
        status: u16,
        code: Option<&str>,
        request_id: &str,
    ) {
        self.seq += 1;
        let c = self.counters.entry(action.to_string()).or_default();
        c.calls += 1;
        match code {
            None => c.ok += 1,
            Some(code) => *c.errors.entry(code.to_string()).or_default() += 1,
        }
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(CallRecord {
            seq: self.seq,
            at_ms,
            method: method.to_string(),
            action: action.to_string(),
            params: params
                .iter()
                .filter(|(k, _)| !HIDDEN.contains(&k.as_str()))
                .cloned()
                .collect(),
            status,
            code: code.map(str::to_string),
            request_id: request_id.to_string(),
        });
    }

    pub fn entries(&self) -> Vec<CallRecord> {
        self.entries.iter().cloned().collect()
    }

    pub fn counters(&self) -> BTreeMap<String, ActionCounters> {
        self.counters.clone()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.counters.clear();
    }
}
