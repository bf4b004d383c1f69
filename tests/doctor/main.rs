//! `slb-sync doctor`: every rule in-process (`doctor_rules`), the command line on files
//! (`doctor_cli`) and `--live` against mock-kube (`doctor_live`).
//!
//! One test binary; each module was one test file. Run one with
//! `cargo test --test doctor doctor_live::`.

mod doctor_cli;
mod doctor_live;
mod doctor_rules;
