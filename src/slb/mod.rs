//! The SLB OpenAPI edge: the [`SlbApi`] trait the reconciler drives, its error classes,
//! batching, per-action metrics, credentials, the process's one HTTP client and the
//! production RPC client.

mod api;
pub mod batch;
pub mod budget;
mod caller;
pub mod credentials;
mod error;
pub mod http;
mod metrics;
pub mod rpc;

pub use crate::model::{Listener, ListenerProtocol};
pub use api::{BackendHealth, SlbApi, VServerGroupSummary, CREATED_FOR_TAG, LISTENER_READ_BATCH};
pub use error::{AnswerStatus, ErrorClass, SlbError};
pub use metrics::{SlbMetrics, ACTIONS};
pub use rpc::{RpcConfig, RpcSlbClient};
