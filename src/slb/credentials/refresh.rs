//! Temporary credentials cached until shortly before they expire: the one refresh policy
//! shared by every source that hands out an `Expiration` (the ECS RAM role, RRSA).
//!
//! A pair is served from the cache until `refresh_before` ahead of its `Expiration`, so a
//! call never signs with a token about to lapse. If that early refresh fails, the cached
//! pair is still used (with a warning) until it really expires: a short outage of the
//! metadata service or STS must not stop the agent while its keys are still good. A failed
//! fetch is not repeated for [`RETRY_AFTER`], whatever the call rate.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::SecretString;
use serde::Deserialize;

use super::{Credentials, CredentialsError};

/// Wall-clock source; tests hand in a controllable one.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How far ahead of `Expiration` a pair is replaced by default.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// After a failed fetch, the next waits this long; calls meanwhile get the cached pair
/// while it is valid, else the failure again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A temporary pair and the instant it stops working.
pub(super) struct Expiring {
    pub credentials: Credentials,
    pub expiration: Timestamp,
}

/// A temporary pair as both the ECS metadata service and STS spell it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TemporaryPair {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: String,
    #[serde(default)]
    security_token: String,
    #[serde(default)]
    expiration: String,
}

impl TemporaryPair {
    /// The pair and its expiry; `unusable(reason)` for an answer without a valid
    /// `Expiration` or without a `SecurityToken` (a temporary pair cannot sign without it).
    pub fn into_expiring(
        self,
        origin: &str,
        unusable: impl Fn(&str) -> CredentialsError,
    ) -> Result<Expiring, CredentialsError> {
        let expiration: Timestamp = self
            .expiration
            .parse()
            .map_err(|_| unusable("the answer has no valid Expiration"))?;
        let credentials = Credentials::new(
            self.access_key_id,
            SecretString::from(self.access_key_secret),
            Some(SecretString::from(self.security_token)),
            origin,
        )?;
        if !credentials.is_temporary() {
            return Err(unusable("the answer has no SecurityToken"));
        }
        Ok(Expiring {
            credentials,
            expiration,
        })
    }
}

/// The cached pair of one provider, and when to fetch the next.
pub(super) struct RefreshingCache {
    pub refresh_before: Duration,
    pub clock: Clock,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    pair: Option<Expiring>,
    /// The last fetch failed at this time with this error (its text and whether it is
    /// transient): no new fetch before [`RETRY_AFTER`].
    failure: Option<(Timestamp, String, bool)>,
}

impl RefreshingCache {
    pub fn new() -> Self {
        RefreshingCache {
            refresh_before: DEFAULT_REFRESH_BEFORE,
            clock: Arc::new(Timestamp::now),
            slot: tokio::sync::Mutex::new(Slot::default()),
        }
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// The cached pair while it is fresh, otherwise the result of `fetch` (cached when it
    /// succeeds). Concurrent callers wait for one fetch instead of each starting their own,
    /// and after a failed fetch the next one waits [`RETRY_AFTER`]: every SLB call asks for
    /// credentials, and STS answers a caller that asks too often with `Throttling.User`.
    /// `source` names the provider in log lines.
    pub async fn get<F, Fut>(
        &self,
        source: &'static str,
        fetch: F,
    ) -> Result<Credentials, CredentialsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Expiring, CredentialsError>>,
    {
        let mut slot = self.slot.lock().await;
        let now = self.now();
        let refresh_before = jiff::SignedDuration::try_from(self.refresh_before)
            .unwrap_or(jiff::SignedDuration::ZERO);
        let still_valid = |slot: &Slot| {
            slot.pair
                .as_ref()
                .filter(|cached| now < cached.expiration)
                .map(|cached| cached.credentials.clone())
        };
        if let Some(cached) = slot.pair.as_ref() {
            let refresh_at = cached
                .expiration
                .checked_sub(refresh_before)
                .unwrap_or(Timestamp::MIN);
            if now < refresh_at {
                return Ok(cached.credentials.clone());
            }
        }
        if let Some((failed_at, message, transient)) = &slot.failure {
            let retry_at = failed_at.checked_add(RETRY_AFTER).unwrap_or(Timestamp::MAX);
            if now < retry_at {
                return match still_valid(&slot) {
                    Some(credentials) => Ok(credentials),
                    None => Err(CredentialsError::RecentlyFailed {
                        message: message.clone(),
                        transient: *transient,
                        retry_after_secs: RETRY_AFTER.as_secs(),
                    }),
                };
            }
        }
        match fetch().await {
            Ok(fresh) => {
                tracing::debug!(source, expiration = %fresh.expiration,
                    "fetched temporary credentials");
                let credentials = fresh.credentials.clone();
                *slot = Slot {
                    pair: Some(fresh),
                    failure: None,
                };
                Ok(credentials)
            }
            Err(err) => {
                slot.failure = Some((now, err.to_string(), err.is_transient()));
                match still_valid(&slot) {
                    Some(credentials) => {
                        tracing::warn!(source, error = %err,
                            "credentials refresh failed; using the cached ones until they expire");
                        Ok(credentials)
                    }
                    None => Err(err),
                }
            }
        }
    }
}
