//! The SLB OpenAPI edge: the [`SlbApi`] trait the reconciler drives, its error classes,
//! batching, per-action metrics, credentials and the production RPC client.

mod api;
pub mod batch;
pub mod credentials;
mod error;
mod metrics;
pub mod rpc;

pub use api::{
    BackendHealth, Listener, ListenerProtocol, SlbApi, VServerGroupSummary, CREATED_FOR_TAG,
};
pub use error::{ErrorClass, SlbError};
pub use metrics::{SlbMetrics, ACTIONS};
pub use rpc::{RpcConfig, RpcSlbClient};
