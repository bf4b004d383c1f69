//! Domain types shared by the pure core (index → desired → plan) and the I/O edges.
//!
//! Everything here is plain data: no I/O, no clocks. Serialised names follow the JSON
//! that `slb-sync plan` prints, which operators and tests read.

mod backend;
mod config;
mod group_ref;
mod lb_spec;
mod listener;
mod observed;
mod stored_pod;
mod target;

pub use backend::{
    Backend, BackendKey, BackendState, BackendType, DesiredGroup, DesiredService, Mode,
    OwnerDescription, Protocol, Weight,
};
pub use config::PlannerConfig;
pub use group_ref::{GroupRef, RetiredGroup, ServiceRef};
pub use lb_spec::LbSpec;
pub use listener::{GroupHealth, HealthCheck, Listener, ListenerProtocol};
pub use observed::{ObservedGroup, SlbBackend};
pub use stored_pod::{StoredPod, StoredPodCondition, StoredPodSpec, StoredPodStatus};
pub use target::{GroupObservation, GroupTarget};
