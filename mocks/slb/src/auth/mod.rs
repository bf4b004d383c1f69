//! Signature v1: the signer (public, for tests and clients) and the verifier.
pub mod sign;
pub mod verify;

pub use verify::{Key, Verifier};
