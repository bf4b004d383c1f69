//! Pure step planner: desired backends + observed SLB group + drain ledger + `now` →
//! ordered SLB write steps (docs/architecture.md, "Make before break" and "Steps").
//!
//! Nothing here does I/O or reads a clock; the reconciler hands in `now` and runs the
//! steps, and `plan --offline --slb-state` runs the same code against a snapshot.

mod group;
mod ledger;
mod listener;
mod offline;
mod quarantine;
mod state;
mod step;
mod warm_up;

#[cfg(test)]
mod tests;

pub use group::{plan_group, plan_group_holding, Holds};
pub use ledger::{DrainLedger, DrainRecord, DrainStart, LedgerUpdates};
pub use listener::{plan_listener_drain, ListenerDrainChange, ListenerDrainPlan};
pub use offline::{
    match_group, plan_offline, GroupMatch, MatchedGroupPlan, OfflineOptions, ServicePlan,
};
pub use quarantine::{Held, HoldPolicy, Quarantine, Refusal};
pub use state::{SlbState, StateError};
pub use step::{members_after, GroupPlan, PlanConfig, Step, StepAction, MAX_BATCH};
pub use warm_up::WarmUp;
