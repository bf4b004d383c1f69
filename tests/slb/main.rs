//! The SLB client: its requests and answers pinned against `wiremock`
//! (`slb_contract_*`), the credential sources (`slb_credentials_*`), and every action,
//! limit, fault and the data plane through the mock SLB (`slb_mock_*`).
//!
//! One test binary; each module was one test file. Run one with
//! `cargo test --test slb slb_mock_faults::`. The signer's check against the vendor SDK
//! is a binary of its own (`tests/slb_signer_oracle.rs`): it sets the process's
//! `SSL_CERT_FILE` before any thread exists.

mod slb_contract_errors;
mod slb_contract_reads;
mod slb_contract_transport;
mod slb_contract_writes;
mod slb_credentials_chain;
mod slb_credentials_file;
mod slb_credentials_metadata;
mod slb_credentials_redaction;
mod slb_credentials_rrsa;
mod slb_mock_actions;
mod slb_mock_auth;
mod slb_mock_dataplane;
mod slb_mock_faults;
mod slb_mock_limits;
