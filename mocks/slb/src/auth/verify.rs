//! Request authentication like the real gateway: required common parameters, timestamp
//! skew, access key lookup, signature v1, nonce replay.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::sign;
use crate::api::error::ApiError;

/// How far the request `Timestamp` may be from the server clock, and how long a
/// `SignatureNonce` is remembered (both 15 minutes at Alibaba Cloud).
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Parameters every signed call must carry.
const REQUIRED: &[&str] = &[
    "Action",
    "Version",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
];

/// A key pair; temporary (STS) credentials also carry a security token.
#[derive(Clone, Default)]
pub struct Key {
    pub secret: String,
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Checks signatures against the configured key pairs and remembers nonces.
#[derive(Debug, Default)]
pub struct Verifier {
    keys: HashMap<String, Key>,
    nonces: HashMap<String, Instant>,
}

impl Verifier {
    pub fn new(keys: HashMap<String, Key>) -> Self {
        Self {
            keys,
            nonces: HashMap::new(),
        }
    }

    /// Adds or replaces a key pair.
    pub fn add_key(&mut self, id: String, key: Key) {
        self.keys.insert(id, key);
    }

    /// Revokes a key pair (credential rotation tests); true if it existed.
    pub fn remove_key(&mut self, id: &str) -> bool {
        self.keys.remove(id).is_some()
    }

    /// Verifies one request. `params` are the form-decoded query and body parameters;
    /// `wall_now` is the wall clock (for `Timestamp`), `now` the tokio clock (for nonces).
    pub fn verify(
        &mut self,
        method: &str,
        params: &[(String, String)],
        wall_now: jiff::Timestamp,
        now: Instant,
    ) -> Result<(), ApiError> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        for k in REQUIRED {
            if get(k).is_none_or(str::is_empty) {
                return Err(ApiError::missing(k));
            }
        }
        let value = |k: &str| get(k).unwrap_or_default();
        if value("SignatureMethod") != "HMAC-SHA1" {
            return Err(ApiError::unsupported_signature_method());
        }
        if value("SignatureVersion") != "1.0" {
            return Err(ApiError::invalid(
                "SignatureVersion",
                value("SignatureVersion"),
            ));
        }
        let ts_raw = value("Timestamp");
        let ts: jiff::Timestamp = ts_raw
            .parse()
            .map_err(|_| ApiError::timestamp_format(ts_raw))?;
        let skew = wall_now.duration_since(ts).unsigned_abs();
        if skew >= WINDOW {
            return Err(ApiError::timestamp_expired(ts_raw));
        }
        let Some(key) = self.keys.get(value("AccessKeyId")) else {
            return Err(ApiError::access_key_not_found());
        };
        if let Some(token) = &key.security_token {
            match get("SecurityToken") {
                None => return Err(ApiError::missing("SecurityToken")),
                Some(t) if t != token => {
                    return Err(ApiError::new(
                        400,
                        "InvalidSecurityToken.MismatchWithAccessKey",
                        "Specified SecurityToken mismatch with the AccessKey.",
                    ))
                }
                Some(_) => {}
            }
        }
        let expected = sign::signature(method, params, &key.secret);
        if expected != value("Signature") {
            return Err(ApiError::signature_mismatch(&sign::string_to_sign(
                method, params,
            )));
        }
        self.nonces
            .retain(|_, seen| now.duration_since(*seen) < WINDOW);
        let nonce = value("SignatureNonce").to_string();
        if self.nonces.contains_key(&nonce) {
            return Err(ApiError::nonce_used());
        }
        self.nonces.insert(nonce, now);
        Ok(())
    }
}
