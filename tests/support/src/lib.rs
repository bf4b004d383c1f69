//! Helpers shared by slb-sync's integration tests (`tests/<area>/`), one module per kind
//! of fixture. A dev-dependency of the root crate only, under the name `support`, so a
//! test reads `use support::slb_mock;`; nothing here is part of the product.
//!
//! | module | what it sets up |
//! |---|---|
//! | [`agent`] | the whole agent in-process against mock-kube and mock-slb |
//! | [`pod_e2e`] | an ENI Service, pods and EndpointSlices for the agent's pod side |
//! | [`pod_side`] | the pod lifecycle alone, wired to mock-kube |
//! | [`drain_fixture`] | the drain API's reflector store and HTTP state |
//! | [`slb_mock`] | a seeded mock-slb and the production client pointed at it |
//! | [`reconcile_mock`] | the executor and scheduler against mock-slb |
//! | [`slb_contract`] | a loopback `wiremock` SLB and the signature recomputed |
//! | [`credentials`] | credential files, clocks, fake metadata and STS answers |
//! | [`manifests`], [`schemas`] | the repository's files, above all `deploy/` |
//! | [`doctor`] | the examples as documents, edits of them, in-process audits |
#![forbid(unsafe_code)]

pub mod agent;
pub mod credentials;
pub mod doctor;
pub mod drain_fixture;
pub mod manifests;
pub mod pod_e2e;
pub mod pod_side;
pub mod reconcile_mock;
pub mod schemas;
pub mod slb_contract;
pub mod slb_mock;
