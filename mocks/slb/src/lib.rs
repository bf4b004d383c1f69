//! Stateful SLB OpenAPI simulator.
#![forbid(unsafe_code)]
