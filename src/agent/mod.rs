pub mod metrics;
pub mod pods;
