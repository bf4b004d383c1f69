//! Kubernetes API test double.
#![forbid(unsafe_code)]
