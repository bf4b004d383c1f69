//! The hook through which drain start times leave the process, so that a restart or a
//! leader change does not shorten a drain.

use jiff::Timestamp;

use crate::model::BackendKey;

/// Receives every change of the executor's drain ledger.
///
/// The Kubernetes layer implements it by writing `slb-sync.io/drain-started-at` on the
/// pod behind an ENI backend (and, on start-up, hands the recorded times back through
/// [`super::Executor::restore_ledger`]). Backends nothing can hold the time for (nodes)
/// need no journal: after a restart their window restarts in full, which is safe.
///
/// Called with the ledger locked: implementations must not block (queue the write).
pub trait DrainJournal: Send + Sync {
    /// The SLB confirmed weight 0 for `key` at `at` (or found it at 0 with no record).
    fn drain_started(&self, v_server_group_id: &str, key: &BackendKey, at: Timestamp);
    /// `key` was removed, restored to a non-zero weight, or left the group.
    fn drain_ended(&self, v_server_group_id: &str, key: &BackendKey);
}
