//! The SLB OpenAPI edge: the [`SlbApi`] trait the reconciler drives, its error classes,
//! and the production RPC client.

mod api;
mod error;

pub use api::{BackendHealth, Listener, ListenerProtocol, SlbApi, VServerGroupSummary};
pub use error::{ErrorClass, SlbError};
