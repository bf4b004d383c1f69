//! Error answers shaped like the real OpenAPI gateway's:
//! `{"RequestId","HostId","Code","Message","Recommend"}` with the real HTTP status.

use axum::http::StatusCode;
use serde::Serialize;

/// An error the mock answers with. Codes and statuses follow the Alibaba Cloud
/// documentation for SLB 2014-05-15 / ECS 2014-05-26 and the common gateway errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    // --- gateway / authentication -------------------------------------------------------

    pub fn missing(param: &str) -> Self {
        Self::new(
            400,
            "MissingParameter",
            format!("The input parameter \"{param}\" that is mandatory for processing this request is not supplied."),
        )
    }
    pub fn invalid(param: &str, value: &str) -> Self {
        Self::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{param}\" is not valid: {value:?}."),
        )
    }
    pub fn signature_mismatch(string_to_sign: &str) -> Self {
        Self::new(
            400,
            "SignatureDoesNotMatch",
            format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"),
        )
    }
    pub fn access_key_not_found() -> Self {
        Self::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )
    }
    pub fn timestamp_expired(ts: &str) -> Self {
        Self::new(
            400,
            "InvalidTimeStamp.Expired",
            format!("Specified time stamp or date value is expired. Timestamp: {ts}"),
        )
    }
    pub fn timestamp_format(ts: &str) -> Self {
        Self::new(
            400,
            "InvalidTimeStamp.Format",
            format!("Specified time stamp or date value is not well formatted: {ts}"),
        )
    }
    pub fn nonce_used() -> Self {
        Self::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )
    }
    pub fn unsupported_signature_method() -> Self {
        Self::new(
            400,
            "InvalidSignatureMethod",
            "Specified signature method is not supported.",
        )
    }
    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            404,
            "InvalidAction.NotFound",
            format!(
                "Specified api is not found, please check your url and method. Action: {action}"
            ),
        )
    }
    pub fn invalid_version(version: &str) -> Self {
        Self::new(
            400,
            "InvalidVersion",
            format!("Specified parameter Version is not valid: {version}"),
        )
    }
    pub fn throttling() -> Self {
        Self::new(
            400,
            "Throttling",
            "Request was denied due to request throttling.",
        )
    }

    // --- SLB resources ------------------------------------------------------------------

    pub fn lb_not_found() -> Self {
        Self::new(
            404,
            "InvalidLoadBalancerId.NotFound",
            "The specified LoadBalancerId does not exist.",
        )
    }
    /// The real SLB answers an unknown group id with `InvalidParameter` (HTTP 404) and this
    /// message (tooling such as the Terraform provider matches on it).
    pub fn group_not_found() -> Self {
        Self::new(
            404,
            "InvalidParameter",
            "The specified VServerGroupId does not exist.",
        )
    }
    pub fn listener_not_found() -> Self {
        Self::new(
            404,
            "ListenerNotFound",
            "You have not created a listener for the specified port of the load balancer.",
        )
    }
    pub fn server_not_found(id: &str) -> Self {
        Self::new(
            400,
            "InvalidServerId.NotExist",
            format!("The specified ServerId is not exist: {id}."),
        )
    }
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody<'a> {
    pub request_id: &'a str,
    pub host_id: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub recommend: String,
}
