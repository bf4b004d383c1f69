//! Authentication end to end: the production client's signature v1 is verified by the
//! mock's own verifier against its key pairs; every auth failure the client can cause
//! is a Permanent error that never quotes a secret; credentials files rotate without a
//! restart; STS pairs send their SecurityToken.

use support::slb_mock;

use std::path::Path;
use std::sync::Arc;

use mock_slb::{ErrorFault, FaultConfig};
use serde_json::json;
use slb_mock::*;
use slb_sync::slb::credentials::FileProvider;
use slb_sync::slb::{ErrorClass, RpcSlbClient, SlbApi, SlbError};

const PERMANENT: ErrorClass = ErrorClass::Permanent;
const KEY_B: &str = "LTAI-rotated";
const SECRET_B: &str = "rotated-secret-9876543210";
const STS_ID: &str = "STS.integration";
const STS_SECRET: &str = "sts-secret-abcdef123456";
const STS_TOKEN: &str = "CAIS+sts/token==value";

fn seed_with_keys(net: u8) -> mock_slb::Seed {
    seed(
        net,
        false,
        json!({"access_keys": [
            {"id": KEY_ID, "secret": SECRET},
            {"id": KEY_B, "secret": SECRET_B},
            {"id": STS_ID, "secret": STS_SECRET, "security_token": STS_TOKEN},
        ]}),
    )
}

fn client_with(
    mock: &mock_slb::MockSlbHandle,
    id: &str,
    secret: &str,
    token: Option<&str>,
) -> RpcSlbClient {
    RpcSlbClient::new(config(mock), static_creds(id, secret, token))
}

/// Display, Debug and every source of the error are free of `secrets`.
#[track_caller]
fn assert_no_secret(e: &SlbError, secrets: &[&str]) {
    let mut texts = vec![e.to_string(), format!("{e:?}")];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        texts.push(s.to_string());
        texts.push(format!("{s:?}"));
        source = s.source();
    }
    for text in texts {
        for secret in secrets {
            assert!(!text.contains(secret), "secret leaked in: {text}");
        }
    }
}

#[tokio::test]
async fn wrong_secret_is_a_permanent_signature_mismatch_without_the_secret() {
    let mock = start_mock(seed_with_keys(190)).await;
    let wrong = "wrong-secret-value-5555";
    let c = client_with(&mock, KEY_ID, wrong, None);
    let e = assert_api_error(
        c.list_vserver_groups(LB).await,
        "SignatureDoesNotMatch",
        PERMANENT,
    );
    assert!(!e.is_retryable());
    assert_no_secret(&e, &[wrong, SECRET]);
    // The mock's message quotes its string-to-sign, which names the key id, not the secret.
    assert!(e.message.contains("string to sign"), "{e}");
    // Nothing was changed and the call was refused at authentication.
    let log = mock.call_log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status, log[0].code.as_deref()),
        (400, Some("SignatureDoesNotMatch"))
    );
}

#[tokio::test]
async fn unknown_and_revoked_keys_are_not_found() {
    let mock = start_mock(seed_with_keys(191)).await;
    let c = client_with(&mock, "LTAI-nobody", "whatever-secret-123", None);
    let e = assert_api_error(
        c.list_vserver_groups(LB).await,
        "InvalidAccessKeyId.NotFound",
        PERMANENT,
    );
    assert_no_secret(&e, &["whatever-secret-123"]);

    let c = client(&mock);
    c.list_vserver_groups(LB).await.unwrap();
    assert!(mock.remove_access_key(KEY_ID));
    assert_api_error(
        c.list_vserver_groups(LB).await,
        "InvalidAccessKeyId.NotFound",
        PERMANENT,
    );
}

#[tokio::test]
async fn sts_pair_works_with_its_token_and_fails_without_or_with_another() {
    let mock = start_mock(seed_with_keys(192)).await;
    let c = client_with(&mock, STS_ID, STS_SECRET, Some(STS_TOKEN));
    c.add_backends(GROUP, &[ecs("i-1", 30080, 100)])
        .await
        .unwrap();
    assert_eq!(members(&mock, GROUP).len(), 1);
    // The call log never records the token (nor the signature).
    assert!(mock
        .call_log()
        .iter()
        .all(|c| !c.params.contains_key("SecurityToken") && !c.params.contains_key("Signature")));

    let c = client_with(&mock, STS_ID, STS_SECRET, Some("CAIS+another/token"));
    let e = assert_api_error(
        c.list_vserver_groups(LB).await,
        "InvalidSecurityToken.MismatchWithAccessKey",
        PERMANENT,
    );
    assert_no_secret(&e, &[STS_SECRET, "CAIS+another/token"]);

    let c = client_with(&mock, STS_ID, STS_SECRET, None);
    let e = assert_api_error(
        c.list_vserver_groups(LB).await,
        "MissingParameter",
        PERMANENT,
    );
    assert!(e.message.contains("SecurityToken"), "{e}");
}

/// The client stamps each call with the current time and a fresh nonce, so a stale
/// timestamp or a replayed nonce cannot be produced through it (the mock's own tests
/// cover those checks with its raw client). What the client must do with those answers
/// is the same as for any auth failure: Permanent, message and RequestId kept.
#[tokio::test]
async fn timestamp_and_nonce_refusals_are_permanent() {
    let (mock, c) = start(seed(193, false, json!({}))).await;
    for (code, message) in [
        (
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ),
        (
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ),
        (
            "Forbidden.RAM",
            "User not authorized to operate on the specified resource.",
        ),
    ] {
        mock.set_faults(FaultConfig {
            errors: vec![ErrorFault {
                action: None,
                code: code.into(),
                status: if code.starts_with("Forbidden") {
                    403
                } else {
                    400
                },
                message: Some(message.into()),
                rate: 1.0,
            }],
            ..FaultConfig::default()
        });
        let e = assert_api_error(c.list_vserver_groups(LB).await, code, PERMANENT);
        assert_eq!(e.message, message);
    }
}

fn write_creds(path: &Path, id: &str, secret: &str) {
    // Write-then-rename, as an operator's tooling (or the kubelet's symlink swap) would.
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        json!({"AccessKeyId": id, "AccessKeySecret": secret}).to_string(),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_rotated_credentials_file_keeps_the_client_working() {
    let mock = start_mock(seed_with_keys(194)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.json");
    write_creds(&path, KEY_ID, SECRET);
    let c = RpcSlbClient::new(config(&mock), Arc::new(FileProvider::new(path.clone())));
    c.add_backends(GROUP, &[ecs("i-1", 30080, 100)])
        .await
        .unwrap();

    // The old key is revoked before the Secret is updated: calls fail meanwhile...
    assert!(mock.remove_access_key(KEY_ID));
    let e = assert_api_error(
        c.list_vserver_groups(LB).await,
        "InvalidAccessKeyId.NotFound",
        PERMANENT,
    );
    assert_no_secret(&e, &[SECRET]);
    // ...and work again, with the same client, once the file carries the new pair.
    write_creds(&path, KEY_B, SECRET_B);
    c.add_backends(GROUP, &[ecs("i-2", 30080, 100)])
        .await
        .unwrap();
    assert_eq!(members(&mock, GROUP).len(), 2);
    let log = mock.call_log();
    let last = log.last().unwrap();
    assert_eq!(
        (last.status, last.params["AccessKeyId"].as_str()),
        (200, KEY_B)
    );

    // Rotation the usual way round: new key added, file rewritten, old key revoked.
    mock.apply_seed(
        &serde_json::from_value(
            json!({"access_keys": [{"id": "LTAI-third", "secret": "third-secret-000111"}]}),
        )
        .unwrap(),
    )
    .unwrap();
    write_creds(&path, "LTAI-third", "third-secret-000111");
    assert!(mock.remove_access_key(KEY_B));
    c.remove_backends(GROUP, &[ecs("i-1", 30080, 0)])
        .await
        .unwrap();
    assert_eq!(members(&mock, GROUP).len(), 1);
    assert!(mock
        .call_log()
        .iter()
        .filter(|c| c.status != 200)
        .all(|c| c.code.as_deref() == Some("InvalidAccessKeyId.NotFound")));
}
