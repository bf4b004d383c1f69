//! The agent: the whole agent in-process against mock-kube and mock-slb (Services, pods,
//! leader election, failure isolation), its pod side alone, the drain API and
//! `wait-drained`, and its Kubernetes writes (finalizer release, Events).
//!
//! One test binary; each module was one test file. Run one with
//! `cargo test --test agent agent_sync::`.

mod agent_e2e_health;
mod agent_e2e_pods;
mod agent_isolation;
mod agent_leader;
mod agent_pods_allowance;
mod agent_pods_lifecycle;
mod agent_service_changes;
mod agent_sync;
mod drain_api;
mod k8s_writes;
mod wait_drained;
