//! The executor and scheduler against the real mock SLB over HTTP, under tokio's paused
//! clock: rolling replacements, restarts mid-drain, group ownership, listener drain
//! settings and ENIs that cannot be resolved yet.
//!
//! One test binary; each module was one test file. Run one with
//! `cargo test --test reconcile reconcile_mock_rolling::`.

mod reconcile_mock_eni;
mod reconcile_mock_group;
mod reconcile_mock_listener;
mod reconcile_mock_restart;
mod reconcile_mock_rolling;
