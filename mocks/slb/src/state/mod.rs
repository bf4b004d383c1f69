//! Control-plane state: model, `BackendServers` parsing, the write rules, the seed file.
pub mod backends;
pub mod model;
pub mod ops;
pub mod seed;

pub use model::*;
pub use ops::ListenerChange;
pub use seed::Seed;
