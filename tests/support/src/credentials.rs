//! Fixtures for the credentials tests (`tests/slb/slb_credentials_*.rs`): files written
//! the way operators and the kubelet write them, a hand-moved wall clock and one that
//! follows tokio's clock, fake metadata and STS answers, and the checks that no secret
//! leaks.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use jiff::Timestamp;
use serde_json::json;
use slb_sync::slb::credentials::{
    Clock, Credentials, CredentialsConfig, CredentialsProvider, SecretString,
};
use wiremock::matchers::{method, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The ECS metadata path of RAM role credentials.
pub const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";
/// The tests' "now" (2027-01-15), in Unix seconds.
pub const T0: i64 = 1_800_000_000;

/// A key secret and a security token that must never be printed.
pub const SECRET: &str = "Zx9-never-print-this-secret";
pub const TOKEN: &str = "CAIS/never+print=this~token";
/// An OIDC token (a JWT in real life) that must never be printed either.
pub const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.never-print.this-oidc+token/==";

pub fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub fn json_creds(id: &str, secret: &str) -> String {
    json!({"AccessKeyId": id, "AccessKeySecret": secret}).to_string()
}

/// Lays out a volume the way the kubelet does for Secrets and projected tokens: key
/// files are symlinks through `..data`, which is swapped atomically to a new timestamped
/// directory on update.
pub fn kubelet_write(root: &Path, generation: &str, entries: &[(&str, &str)]) {
    let target = root.join(generation);
    std::fs::create_dir(&target).unwrap();
    for (key, value) in entries {
        write(&target.join(key), value);
        let link = root.join(key);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(key), &link).unwrap();
        }
    }
    let tmp = root.join("..data_tmp");
    std::os::unix::fs::symlink(generation, &tmp).unwrap();
    std::fs::rename(&tmp, root.join("..data")).unwrap();
}

/// A clock the test moves by hand.
pub fn manual_clock() -> (Arc<AtomicI64>, Clock) {
    let now = Arc::new(AtomicI64::new(T0));
    let reader = now.clone();
    let clock: Clock =
        Arc::new(move || Timestamp::from_second(reader.load(Ordering::SeqCst)).unwrap());
    (now, clock)
}

/// A wall clock at `T0` when called first that then follows tokio's clock, so
/// `tokio::time::advance` (or `mock_slb::testkit::jump`) moves it.
pub fn tokio_clock() -> Clock {
    let start = tokio::time::Instant::now();
    Arc::new(move || Timestamp::from_second(T0 + start.elapsed().as_secs() as i64).unwrap())
}

pub fn at(second: i64) -> String {
    Timestamp::from_second(second).unwrap().to_string()
}

/// The metadata service's answer for pair `n`, expiring at `expires_at`.
pub fn role_answer(n: usize, expires_at: i64) -> serde_json::Value {
    json!({
        "AccessKeyId": format!("STS.key{n}"),
        "AccessKeySecret": format!("role-secret-{n}"),
        "SecurityToken": format!("role-token-{n}"),
        "Expiration": at(expires_at),
        "LastUpdated": at(T0),
        "Code": "Success"
    })
}

/// STS's `AssumeRoleWithOIDC` answer for pair `n`, expiring at `expires_at`.
pub fn sts_answer(n: usize, expires_at: i64) -> serde_json::Value {
    json!({
        "RequestId": format!("3D57EAD2-{n}"),
        "OIDCTokenInfo": {"Issuer": "https://oidc-ack-cn-hangzhou.example/c1",
                          "Subject": "system:serviceaccount:slb-sync:slb-sync",
                          "ClientIds": "sts.aliyuncs.com"},
        "AssumedRoleUser": {"Arn": "acs:ram::1234567890123456:role/slb-sync/slb-sync",
                            "AssumedRoleId": "33157794895460****"},
        "Credentials": {
            "AccessKeyId": format!("STS.rrsa{n}"),
            "AccessKeySecret": format!("rrsa-secret-{n}"),
            "SecurityToken": format!("rrsa-token-{n}"),
            "Expiration": Timestamp::from_second(expires_at).unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    })
}

// ---- no secret anywhere a human or a log collector can read ----

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[track_caller]
pub fn assert_clean(what: &str, text: &str) {
    let token = url_encode(TOKEN);
    let oidc = url_encode(OIDC_TOKEN);
    for needle in [SECRET, TOKEN, token.as_str(), OIDC_TOKEN, oidc.as_str()] {
        assert!(!text.contains(needle), "{what} leaks a secret: {text}");
    }
}

/// Display, Debug and every source of `err` are free of the secrets.
#[track_caller]
pub fn assert_error_clean(what: &str, err: &(dyn std::error::Error + 'static)) {
    assert_clean(what, &err.to_string());
    assert_clean(what, &format!("{err:?}"));
    let mut source = err.source();
    while let Some(s) = source {
        assert_clean(what, &s.to_string());
        assert_clean(what, &format!("{s:?}"));
        source = s.source();
    }
}

pub fn secret_creds() -> Credentials {
    Credentials::new(
        "LTAIleaktest",
        SecretString::from(SECRET),
        Some(SecretString::from(TOKEN)),
        "test",
    )
    .unwrap()
}

/// Collects everything `tracing` emits while a test runs.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Installs a TRACE-level subscriber writing here, for the current thread.
    ///
    /// tracing caches whether a callsite is enabled for the whole process. While a single
    /// dispatcher is registered, it decides that with the default subscriber of whichever
    /// thread reaches the callsite first, so a callsite first reached by a concurrent test
    /// without a subscriber would stay disabled here too. With a second dispatcher
    /// registered for the life of the process, it asks every registered one instead.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        static SECOND_DISPATCHER: OnceLock<tracing::Dispatch> = OnceLock::new();
        SECOND_DISPATCHER
            .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

// ---- RRSA ----

pub const ROLE_ARN: &str = "acs:ram::1234567890123456:role/slb-sync";
pub const PROVIDER_ARN: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789";

/// A fake STS: every `AssumeRoleWithOIDC` POST gets pair `n` (1, 2, …), valid until
/// `T0 + n` hours; `exchanges` counts them.
pub async fn sts_fake(exchanges: Arc<AtomicUsize>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(query_param("Action", "AssumeRoleWithOIDC"))
        .respond_with(move |_: &wiremock::Request| {
            let n = exchanges.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(sts_answer(n, T0 + 3600 * n as i64))
        })
        .mount(&server)
        .await;
    server
}

/// RRSA settings for `sts`, with the token in `token_file`.
pub fn rrsa_config(sts: &MockServer, token_file: &Path) -> CredentialsConfig {
    CredentialsConfig {
        role_arn: Some(ROLE_ARN.into()),
        oidc_provider_arn: Some(PROVIDER_ARN.into()),
        oidc_token_file: Some(token_file.to_path_buf()),
        sts_endpoint: Some(sts.uri()),
        region_id: Some("cn-hangzhou".into()),
        ..CredentialsConfig::default()
    }
}

/// The AccessKeyId `provider` hands out now.
pub async fn key_id(provider: &dyn CredentialsProvider) -> String {
    let creds = provider.credentials().await.expect("credentials");
    creds.access_key_id().to_string()
}

/// The form fields of a recorded request body.
pub fn form_fields(request: &wiremock::Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// The query parameters of a recorded request.
pub fn query_fields(request: &wiremock::Request) -> BTreeMap<String, String> {
    request.url.query_pairs().into_owned().collect()
}
