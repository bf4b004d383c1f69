//! Which source the agent uses: the environment variables it reads, and the precedence
//! explicit keys → credentials file → RRSA → ECS instance RAM role, with half-set
//! sources reported instead of silently skipped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slb_sync::slb::credentials::{
    CredentialsConfig, CredentialsError, ExposeSecret, RrsaSettings, SecretString,
    DEFAULT_ROLE_SESSION_NAME,
};
use support::credentials::*;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn env_lookup_reads_the_alibaba_variables_and_ignores_empty_ones() {
    let env = |k: &str| match k {
        "ALIBABA_CLOUD_ACCESS_KEY_ID" => Some("LTAIenv".to_string()),
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET" => Some("env-secret".to_string()),
        "ALIBABA_CLOUD_SECURITY_TOKEN" => Some("  ".to_string()),
        "ALIBABA_CLOUD_ECS_METADATA" => Some("node-role".to_string()),
        "ALIBABA_CLOUD_ROLE_ARN" => Some(ROLE_ARN.to_string()),
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" => Some(PROVIDER_ARN.to_string()),
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE" => Some("/var/run/token".to_string()),
        "ALIBABA_CLOUD_ROLE_SESSION_NAME" => Some("".to_string()),
        "ALIBABA_CLOUD_REGION_ID" => Some("cn-shanghai".to_string()),
        _ => None,
    };
    let config = CredentialsConfig::from_lookup(env);
    assert_eq!(config.access_key_id.as_deref(), Some("LTAIenv"));
    assert_eq!(
        config.access_key_secret.as_ref().map(|s| s.expose_secret()),
        Some("env-secret")
    );
    assert!(config.security_token.is_none());
    assert_eq!(config.ram_role_name.as_deref(), Some("node-role"));

    let config = CredentialsConfig {
        access_key_id: None,
        access_key_secret: None,
        ..config
    };
    assert_eq!(
        config.rrsa_settings().unwrap(),
        Some(RrsaSettings {
            role_arn: ROLE_ARN.into(),
            oidc_provider_arn: PROVIDER_ARN.into(),
            oidc_token_file: PathBuf::from("/var/run/token"),
            role_session_name: DEFAULT_ROLE_SESSION_NAME.into(),
            duration: None,
            sts_endpoint: "https://sts.cn-shanghai.aliyuncs.com/".into(),
        })
    );
}

#[tokio::test]
async fn explicit_values_come_first_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds.json");
    write(&file, &json_creds("LTAIfile", "file-secret"));

    let mut config = CredentialsConfig {
        access_key_id: Some("LTAIflag".into()),
        access_key_secret: Some(SecretString::from("flag-secret")),
        security_token: Some(SecretString::from("flag-token")),
        credentials_file: Some(file.clone()),
        ..CredentialsConfig::default()
    };
    let creds = config.build().unwrap().credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIflag");
    assert!(creds.is_temporary());

    config.access_key_id = None;
    config.access_key_secret = None;
    let creds = config.build().unwrap().credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIfile");

    // Half an explicit pair is a mistake to report, not a reason to fall through.
    config.access_key_id = Some("LTAIflag".into());
    let err = config.build().unwrap_err();
    assert!(
        matches!(
            err,
            CredentialsError::Incomplete {
                missing: "AccessKeySecret",
                ..
            }
        ),
        "{err}"
    );

    let none = CredentialsConfig {
        instance_role: false,
        ..CredentialsConfig::default()
    };
    assert!(matches!(
        none.build().unwrap_err(),
        CredentialsError::NotConfigured
    ));
}

/// A metadata fake whose role pair is `STS.key1`: taking it means RRSA was skipped.
async fn metadata_fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(format!("{ROLE_PATH}node-role")))
        .respond_with(ResponseTemplate::new(200).set_body_json(role_answer(1, T0 + 3600)))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn rrsa_comes_after_keys_and_file_and_before_the_instance_role() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, OIDC_TOKEN);
    let file = dir.path().join("creds.json");
    write(&file, &json_creds("LTAIfile", "file-secret"));
    let exchanges = Arc::new(AtomicUsize::new(0));
    let sts = sts_fake(exchanges.clone()).await;
    let metadata = metadata_fake().await;

    let mut config = CredentialsConfig {
        access_key_id: Some("LTAIflag".into()),
        access_key_secret: Some(SecretString::from("flag-secret")),
        credentials_file: Some(file),
        ram_role_name: Some("node-role".into()),
        metadata_base_url: metadata.uri(),
        ..rrsa_config(&sts, &token)
    };
    let id = |config: &CredentialsConfig| {
        let provider = config.build().unwrap();
        async move { key_id(provider.as_ref()).await }
    };
    assert_eq!(id(&config).await, "LTAIflag");
    config.access_key_id = None;
    config.access_key_secret = None;
    assert_eq!(id(&config).await, "LTAIfile");
    assert_eq!(exchanges.load(Ordering::SeqCst), 0);
    config.credentials_file = None;
    assert_eq!(
        id(&config).await,
        "STS.rrsa1",
        "RRSA before the instance role"
    );
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    assert!(metadata.received_requests().await.unwrap().is_empty());
    config.role_arn = None;
    config.oidc_provider_arn = None;
    config.oidc_token_file = None;
    assert_eq!(id(&config).await, "STS.key1");
}

#[test]
fn half_configured_rrsa_is_an_error_naming_what_is_missing() {
    let full = CredentialsConfig {
        role_arn: Some(ROLE_ARN.into()),
        oidc_provider_arn: Some(PROVIDER_ARN.into()),
        oidc_token_file: Some("/var/run/token".into()),
        ..CredentialsConfig::default()
    };
    let cases = [
        (
            CredentialsConfig {
                role_arn: Some("  ".into()),
                ..full.clone()
            },
            "ALIBABA_CLOUD_ROLE_ARN",
        ),
        (
            CredentialsConfig {
                oidc_provider_arn: None,
                ..full.clone()
            },
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        ),
        (
            CredentialsConfig {
                oidc_token_file: None,
                oidc_provider_arn: None,
                ..full.clone()
            },
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        ),
        (
            CredentialsConfig {
                oidc_token_file: Some(PathBuf::new()),
                ..full.clone()
            },
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
        ),
    ];
    for (config, var) in cases {
        // Not a fall-through to the instance role (enabled by default).
        let err = config.build().unwrap_err();
        assert!(
            matches!(err, CredentialsError::RrsaIncomplete { missing } if missing == var),
            "{err}"
        );
        assert!(err.to_string().contains(var), "{err}");
    }
    // Settings STS would refuse are caught at start-up, naming the setting.
    let err = CredentialsConfig {
        role_session_name: Some("has spaces".into()),
        ..full.clone()
    }
    .build()
    .unwrap_err();
    assert!(
        err.to_string().contains("ALIBABA_CLOUD_ROLE_SESSION_NAME"),
        "{err}"
    );
    let err = CredentialsConfig {
        role_session_duration: Some(Duration::from_secs(60)),
        ..full
    }
    .build()
    .unwrap_err();
    assert!(err.to_string().contains("--sts-duration-seconds"), "{err}");
}
