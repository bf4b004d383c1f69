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

    /// Classifies an API error `Code` (the JSON error body's `Code`) when the HTTP status
    /// is not known: the codes [`ErrorClass::known_code`] lists keep their class, every
    /// other code is a request the API will keep refusing (validation, not found, quota,
    /// auth) and is permanent.
    pub fn from_code(code: &str) -> ErrorClass {
        ErrorClass::known_code(code).unwrap_or(ErrorClass::Permanent)
    }

    /// Classifies an error answer by its HTTP status and `Code` together. A code the agent
    /// knows keeps its class whatever the status (the SLB answers `Throttling` with 400 or
    /// 503); an unknown code is judged by the status: 5xx is the server's trouble and worth
    /// a retry, 429 is throttling, any other status (4xx) a refusal that will repeat.
    pub fn from_status_and_code(status: u16, code: &str) -> ErrorClass {
        ErrorClass::known_code(code).unwrap_or_else(|| ErrorClass::from_status(status))
    }

    /// The class of an error answer with no usable `Code` (a proxy's page, an empty body).
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            429 => ErrorClass::Throttling,
            408 | 500..=599 => ErrorClass::Unavailable,
            _ => ErrorClass::Permanent,
        }
    }

    /// The class of the codes whose meaning does not depend on the status: throttling,
    /// busy, and the server-side failures (`ServiceUnavailable*`, `InternalError*`,
    /// `UnknownError`); `None` for every other code.
    pub fn known_code(code: &str) -> Option<ErrorClass> {
        const BUSY: [&str; 6] = [
            "SystemBusy",
            "OperationBusy",
            "VServerGroupProcessing",
            "BackendServer.configuring",
            "ServiceIsConfiguring",
            "ServiceIsStopping",
        ];
        if code.starts_with("Throttling") {
            Some(ErrorClass::Throttling)
        } else if BUSY.contains(&code) {
            Some(ErrorClass::Busy)
        } else if code.starts_with("ServiceUnavailable")
            || code.starts_with("InternalError")
            || code == "UnknownError"
        {
            Some(ErrorClass::Unavailable)
        } else {
            None
        }
    }
}

/// The HTTP status an error answer came with, kept as the [`SlbError`]'s source so the
/// error's fields stay as they are; read it with [`SlbError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API answered with HTTP status {0}")]
pub struct AnswerStatus(pub u16);

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed SLB/ECS call, quoting what the API said so logs and Events can show it.
///
/// Built only from scrubbed text: the client removes credentials from the server's
/// message, and its transport errors never quote a request URL (which carries the
/// signature and `SecurityToken`).
#[derive(Debug, thiserror::Error)]
#[error("{action} failed ({class}): {code}: {message} ({status}RequestId {request_id})",
    status = self.status().map(|s| format!("HTTP {s}, ")).unwrap_or_default(),
    request_id = request_id.as_deref().unwrap_or("none"))]
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

    /// An error answer with HTTP `status` and `Code`, classified by both
    /// ([`ErrorClass::from_status_and_code`]).
    pub fn answered(
        action: &'static str,
        status: u16,
        code: impl Into<String>,
        message: impl Into<String>,
        request_id: Option<String>,
    ) -> SlbError {
        let code = code.into();
        SlbError {
            class: ErrorClass::from_status_and_code(status, &code),
            ..SlbError::api(action, code, message, request_id)
        }
        .with_source(AnswerStatus(status))
    }

    /// The HTTP status of the error answer; `None` when no answer came (transport errors,
    /// timeouts) or the error was built without one.
    pub fn status(&self) -> Option<u16> {
        let source = self.source.as_deref()?;
        source.downcast_ref::<AnswerStatus>().map(|s| s.0)
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
    fn status_and_code_together() {
        for (status, code, class) in [
            (400, "Throttling.User", ErrorClass::Throttling),
            (503, "Throttling", ErrorClass::Throttling),
            (400, "VServerGroupProcessing", ErrorClass::Busy),
            (500, "InternalError", ErrorClass::Unavailable),
            (503, "SomethingNew", ErrorClass::Unavailable),
            (502, "", ErrorClass::Unavailable),
            (504, "InvalidParameter", ErrorClass::Unavailable),
            (429, "SomethingNew", ErrorClass::Throttling),
            (408, "SomethingNew", ErrorClass::Unavailable),
            (400, "SomethingNew", ErrorClass::Permanent),
            (404, "InvalidVServerGroupId.NotFound", ErrorClass::Permanent),
            (403, "Forbidden.RAM", ErrorClass::Permanent),
            (301, "", ErrorClass::Permanent),
        ] {
            assert_eq!(
                ErrorClass::from_status_and_code(status, code),
                class,
                "{status} {code:?}"
            );
        }
        let e = SlbError::answered("DeleteVServerGroup", 503, "X", "m", Some("R-2".into()));
        assert_eq!(e.class, ErrorClass::Unavailable);
        assert_eq!(
            e.to_string(),
            "DeleteVServerGroup failed (unavailable): X: m (HTTP 503, RequestId R-2)"
        );
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
