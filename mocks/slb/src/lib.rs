//! Stateful Alibaba Cloud SLB OpenAPI simulator with a TCP data plane.
//!
//! The API half speaks the RPC style (signature v1, SLB 2014-05-15 and ECS 2014-05-26
//! `DescribeNetworkInterfaces`) with the real limits and error codes; the data plane
//! forwards real TCP connections by weight and drains like the SLB. Faults, latency,
//! throttling and propagation delay are injected through `/admin` or the seed file.
//! Time comes from `tokio::time` (except the signature `Timestamp` check, which uses the
//! wall clock), so tests under a paused clock control windows and delays.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod calls;
pub mod client;
pub mod dataplane;
pub mod faults;
pub mod server;
pub mod state;
pub mod testkit;

pub use auth::sign;
pub use faults::{ErrorFault, FaultConfig, LatencyFault};
pub use server::{Config, MockSlb, MockSlbHandle, StartError};
pub use state::Seed;
