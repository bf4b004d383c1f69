//! The Kubernetes side of the agent's shell: the cluster connection, names, pod drain
//! states, finalizer release, Events, leader election and the flags for them.

pub mod args;
pub mod client;
pub mod drain_state;
pub mod events;
pub mod leader;
pub mod names;
pub mod release;
