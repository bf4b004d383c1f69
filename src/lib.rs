//! slb-sync keeps Alibaba Cloud SLB backend groups in sync with a Kubernetes cluster,
//! make-before-break: add first, lower weights to 0, drain, then remove.
//!
//! The crate is a functional core (`index` → `desired` → `plan`, pure, handed `now`)
//! inside an imperative shell (`slb`, `reconcile`, `k8s`, `http`) that does the I/O.
#![forbid(unsafe_code)]

pub mod agent;
pub mod annotations;
pub mod cli;
pub mod demo;
pub mod desired;
pub mod doctor;
pub mod http;
pub mod index;
pub mod k8s;
pub mod logging;
pub mod model;
pub mod offline;
pub mod plan;
pub mod reconcile;
pub mod slb;

#[cfg(test)]
mod layering;
