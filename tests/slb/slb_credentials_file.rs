//! Credentials from a mounted file or Secret directory: every layout, rotation without a
//! restart (including the kubelet's symlink swap), the last good pair kept through a
//! half-written file, and errors that name the path.

use slb_sync::slb::credentials::{
    CredentialsError, CredentialsProvider, ExposeSecret, FileProvider,
};
use support::credentials::{json_creds, kubelet_write, write};

#[tokio::test]
async fn a_rewritten_file_is_picked_up_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    write(&file, &json_creds("LTAIaaaa", "secret-1"));
    let provider = FileProvider::new(file.clone());
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "LTAIaaaa"
    );

    // Same length, written within the same millisecond: only the content tells.
    write(&file, &json_creds("LTAIbbbb", "secret-2"));
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIbbbb");
    assert_eq!(creds.access_key_secret().expose_secret(), "secret-2");

    write(
        &file,
        "AccessKeyId=LTAIcccc\nAccessKeySecret=secret-3\nSecurityToken=token-3\n",
    );
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIcccc");
    assert!(creds.is_temporary());

    // A half-written file keeps the last good pair in use.
    write(&file, "{\"AccessKeyId\": \"LTAId");
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIcccc");
}

#[tokio::test]
async fn an_unreadable_file_without_history_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.json");
    let err = FileProvider::new(missing.clone())
        .credentials()
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialsError::FileRead { .. }));
    assert!(err.to_string().contains("absent.json"), "{err}");
}

#[tokio::test]
async fn a_mounted_secret_directory_rotates_like_the_kubelet_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    kubelet_write(
        root,
        "..2026_11_27_15_00_00.1",
        &[
            ("AccessKeyId", "LTAIdir1\n"),
            ("AccessKeySecret", "dir-secret-1\n"),
        ],
    );
    let provider = FileProvider::new(root.to_path_buf());
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIdir1");
    assert_eq!(creds.access_key_secret().expose_secret(), "dir-secret-1");
    assert!(!creds.is_temporary());

    kubelet_write(
        root,
        "..2026_11_27_15_05_00.2",
        &[
            ("AccessKeyId", "LTAIdir2"),
            ("AccessKeySecret", "dir-secret-2"),
            ("SecurityToken", "dir-token-2"),
        ],
    );
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "LTAIdir2");
    assert_eq!(creds.access_key_secret().expose_secret(), "dir-secret-2");
    assert!(creds.is_temporary());
}
