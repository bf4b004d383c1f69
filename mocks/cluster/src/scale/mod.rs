//! The scale lab: the real agent in this process against mock-kube and mock-slb in child
//! processes, loaded with a generated cluster, under an account-wide API budget; each
//! preset measures what the agent does with that cluster (SLB calls by lane and time,
//! pod drains and gates) and what it costs (memory and CPU per process).

pub mod agent;
pub mod agent_process;
pub mod full;
pub mod gates;
pub mod lab;
pub mod objects;
pub mod phases;
pub mod pods;
pub mod procs;
pub mod recorder;
pub mod rollout;
pub mod serve;
pub mod spec;
pub mod stats;
pub mod tracker;
