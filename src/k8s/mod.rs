//! The Kubernetes side of the agent's shell: names, pod drain states, finalizer release,
//! Events and leader election.

pub mod drain_state;
pub mod events;
pub mod leader;
pub mod names;
pub mod release;
