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
    /// Every class, for pre-registering metric label values.
    pub const ALL: [ErrorClass; 4] = [
        ErrorClass::Throttling,
        ErrorClass::Busy,
        ErrorClass::Unavailable,
        ErrorClass::Permanent,
    ];

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

    /// Classifies an API error `Code` (the JSON error body's `Code`).
    ///
    /// The SDK transport does not hand back the HTTP status of an error answer, so the
    /// class rests on the code alone. Server-side failure codes the API answers with 5xx
    /// (`ServiceUnavailable*`, `InternalError*`, `UnknownError`) are listed explicitly;
    /// every other code is a request the API will keep refusing (validation, not found,
    /// quota, auth) and is permanent.
    pub fn from_code(code: &str) -> ErrorClass {
        const BUSY: [&str; 6] = [
            "SystemBusy",
            "OperationBusy",
            "VServerGroupProcessing",
            "BackendServer.configuring",
            "ServiceIsConfiguring",
            "ServiceIsStopping",
        ];
        if code.starts_with("Throttling") {
            ErrorClass::Throttling
        } else if BUSY.contains(&code) {
            ErrorClass::Busy
        } else if code.starts_with("ServiceUnavailable")
            || code.starts_with("InternalError")
            || code == "UnknownError"
        {
            ErrorClass::Unavailable
        } else {
            ErrorClass::Permanent
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed SLB/ECS call, quoting what the API said so logs and Events can show it.
///
/// Built only from scrubbed text: the client removes credentials from the message and
/// strips request URLs (which carry the signature and `SecurityToken`) from the source.
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

impl SlbError {
    /// An error the API answered with `Code`, classified by [`ErrorClass::from_code`].
    pub fn api(
        action: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
        request_id: Option<String>,
    ) -> SlbError {
        let code = code.into();
        SlbError {
            action,
            class: ErrorClass::from_code(&code),
            code,
            message: message.into(),
            request_id: request_id.filter(|id| !id.is_empty()),
            source: None,
        }
    }

    /// An error found on this side (transport, timeout, undecodable answer, credentials).
    pub fn local(
        action: &'static str,
        class: ErrorClass,
        code: &str,
        message: impl Into<String>,
    ) -> SlbError {
        SlbError {
            action,
            class,
            code: code.to_string(),
            message: message.into(),
            request_id: None,
            source: None,
        }
    }

    /// Attaches the underlying cause (must not carry secrets or signed URLs).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes() {
        for (code, class) in [
            ("Throttling", ErrorClass::Throttling),
            ("Throttling.User", ErrorClass::Throttling),
            ("Throttling.Api", ErrorClass::Throttling),
            ("SystemBusy", ErrorClass::Busy),
            ("OperationBusy", ErrorClass::Busy),
            ("VServerGroupProcessing", ErrorClass::Busy),
            ("BackendServer.configuring", ErrorClass::Busy),
            ("ServiceIsConfiguring", ErrorClass::Busy),
            ("ServiceIsStopping", ErrorClass::Busy),
            ("ServiceUnavailable", ErrorClass::Unavailable),
            ("InternalError", ErrorClass::Unavailable),
            ("UnknownError", ErrorClass::Unavailable),
            ("InvalidParameter", ErrorClass::Permanent),
            ("TooManyBackendServers", ErrorClass::Permanent),
            ("InvalidVServerGroupId.NotFound", ErrorClass::Permanent),
            (
                "InstanceBackendServerNumberOverLimit",
                ErrorClass::Permanent,
            ),
            ("SignatureDoesNotMatch", ErrorClass::Permanent),
            ("Forbidden.RAM", ErrorClass::Permanent),
            ("", ErrorClass::Permanent),
        ] {
            assert_eq!(ErrorClass::from_code(code), class, "code {code:?}");
        }
    }

    #[test]
    fn display_quotes_code_message_and_request_id() {
        let e = SlbError::api(
            "AddVServerGroupBackendServers",
            "TooManyBackendServers",
            "too many",
            Some("R-1".into()),
        );
        assert_eq!(
            e.to_string(),
            "AddVServerGroupBackendServers failed (permanent): TooManyBackendServers: too many (RequestId R-1)"
        );
        let e = SlbError::api("DeleteVServerGroup", "X", "m", Some(String::new()));
        assert!(e.to_string().ends_with("(RequestId none)"));
    }
}
