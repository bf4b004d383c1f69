//! Domain types shared by the pure core (index → desired → plan) and the I/O edges.
//!
//! Everything here is plain data: no I/O, no clocks. Serialised names follow the JSON
//! that `slb-sync plan` prints, which operators and tests read.

mod backend;
mod lb_spec;
mod observed;

pub use backend::{
    Backend, BackendKey, BackendState, BackendType, DesiredGroup, DesiredService, Mode,
    OwnerDescription, Protocol, Weight,
};
pub use lb_spec::LbSpec;
pub use observed::{ObservedGroup, SlbBackend};
