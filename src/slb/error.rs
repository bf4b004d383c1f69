//! SLB API errors, classified by what the caller should do about them.

use std::fmt;

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// `Throttling*`: retry with a longer backoff.
    Throttling,
    /// The group or instance is busy configuring: retry with backoff.
    Busy,
    /// `ServiceUnavailable`, `InternalError`, transport errors, timeouts, 5xx: retry.
    Unavailable,
    /// Validation, not found, quota, auth: do not retry; report as an Event.
    Permanent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        self != ErrorClass::Permanent
    }

    /// Bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttling => "throttling",
            ErrorClass::Busy => "busy",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed SLB/ECS call, quoting what the API said so logs and Events can show it.
#[derive(Debug, thiserror::Error)]
#[error("{action} failed ({class}): {code}: {message} (RequestId {request_id})", request_id = request_id.as_deref().unwrap_or("none"))]
pub struct SlbError {
    pub action: &'static str,
    pub class: ErrorClass,
    /// The API's `Code`, or a local code such as `Timeout` / `Transport`.
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}
