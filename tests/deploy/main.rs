//! What users apply and copy: the manifests under `deploy/` (`deploy_*`), the examples in
//! `deploy/examples/` (`examples`), and the docs' kubectl commands run against mock-kube
//! (`docs_kubectl`).
//!
//! One test binary; each module was one test file. Run one with
//! `cargo test --test deploy deploy_rbac::`.

mod deploy_agent;
mod deploy_manifests;
mod deploy_metrics;
mod deploy_rbac;
mod docs_kubectl;
mod examples;
