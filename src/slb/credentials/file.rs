//! Credentials from a mounted file or Secret directory, re-read when its content changes.
//!
//! Accepted layouts (keys matched case-insensitively):
//! - a JSON object: `{"AccessKeyId": "...", "AccessKeySecret": "...", "SecurityToken": "..."}`;
//! - `key=value` lines with the same keys (or `ALIBABA_CLOUD_ACCESS_KEY_ID`,
//!   `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, `ALIBABA_CLOUD_SECURITY_TOKEN`); `#` starts a
//!   comment, values may be quoted;
//! - a directory holding one file per key (a Kubernetes Secret mounted as a volume).
//!
//! The content is compared on every use rather than the mtime: file timestamps have
//! coarse (millisecond) granularity, and a Secret update swaps a symlink, so reading a few
//! hundred bytes per API call is the cheap way to never sign with a rotated-out key.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::{Credentials, CredentialsError, CredentialsProvider};

const ID_KEYS: [&str; 2] = ["AccessKeyId", "ALIBABA_CLOUD_ACCESS_KEY_ID"];
const SECRET_KEYS: [&str; 2] = ["AccessKeySecret", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"];
const TOKEN_KEYS: [&str; 2] = ["SecurityToken", "ALIBABA_CLOUD_SECURITY_TOKEN"];

/// Reads credentials from `path` (file or directory) on every use, re-parsing on change.
#[derive(Debug)]
pub struct FileProvider {
    path: PathBuf,
    last: Mutex<Option<(SecretSlice<u8>, Credentials)>>,
}

impl FileProvider {
    pub fn new(path: PathBuf) -> Self {
        FileProvider {
            path,
            last: Mutex::new(None),
        }
    }

    fn load(&self) -> Result<Credentials, CredentialsError> {
        let is_dir = self.path.is_dir();
        let dir_keys = if is_dir {
            read_dir_keys(&self.path)?
        } else {
            Vec::new()
        };
        let raw = if is_dir {
            let mut raw = Vec::new();
            for (key, value) in &dir_keys {
                raw.extend_from_slice(key.as_bytes());
                raw.push(0);
                raw.extend_from_slice(value.expose_secret().as_bytes());
                raw.push(0);
            }
            raw
        } else {
            std::fs::read(&self.path).map_err(read_err(&self.path))?
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, creds)) = last.as_ref() {
            if seen.expose_secret() == raw.as_slice() {
                return Ok(creds.clone());
            }
        }
        let creds = if is_dir {
            parse_dir(&self.path, dir_keys)?
        } else {
            parse_file(&self.path, &raw)?
        };
        *last = Some((SecretSlice::from(raw), creds.clone()));
        Ok(creds)
    }
}

#[async_trait]
impl CredentialsProvider for FileProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        match self.load() {
            Ok(creds) => Ok(creds),
            Err(err) => {
                // A half-written file from a non-atomic editor must not stop the agent:
                // keep signing with the last good pair and say so.
                let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                match last.as_ref() {
                    Some((_, creds)) => {
                        tracing::warn!(path = %self.path.display(), error = %err,
                            "credentials file unreadable; using the last good credentials");
                        Ok(creds.clone())
                    }
                    None => Err(err),
                }
            }
        }
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::FileRead {
        path: path.to_path_buf(),
        source,
    }
}

/// The key files present in a Secret directory, in a fixed order.
fn read_dir_keys(dir: &Path) -> Result<Vec<(&'static str, SecretString)>, CredentialsError> {
    let mut found = Vec::new();
    for key in ID_KEYS.iter().chain(&SECRET_KEYS).chain(&TOKEN_KEYS) {
        if let Some(content) = read_key_file(dir, key)? {
            found.push((*key, content));
        }
    }
    Ok(found)
}

fn read_key_file(dir: &Path, key: &str) -> Result<Option<SecretString>, CredentialsError> {
    let file = dir.join(key);
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(SecretString::from(text.trim().to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(&file)(e)),
    }
}

fn parse_dir(
    dir: &Path,
    keys: Vec<(&'static str, SecretString)>,
) -> Result<Credentials, CredentialsError> {
    let first = |names: &[&str]| {
        keys.iter()
            .find(|(k, _)| names.contains(k))
            .map(|(_, v)| v.clone())
    };
    let id = first(&ID_KEYS).map(|s| s.expose_secret().to_string());
    build(dir, id, first(&SECRET_KEYS), first(&TOKEN_KEYS))
}

fn parse_file(path: &Path, raw: &[u8]) -> Result<Credentials, CredentialsError> {
    let format_err = |reason: String| CredentialsError::FileFormat {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(raw).map_err(|_| format_err("not UTF-8".into()))?;
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut assign = |key: &str, value: String| {
        let is = |keys: &[&str]| keys.iter().any(|k| k.eq_ignore_ascii_case(key));
        if is(&ID_KEYS) {
            id = Some(value);
        } else if is(&SECRET_KEYS) {
            secret = Some(SecretString::from(value));
        } else if is(&TOKEN_KEYS) {
            token = Some(SecretString::from(value));
        }
    };
    if text.trim_start().starts_with('{') {
        // serde_json's messages name a line and column, never the content.
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format_err(format!("invalid JSON ({e})")))?;
        for (key, value) in map {
            if let serde_json::Value::String(s) = value {
                assign(&key, s);
            }
        }
    } else {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(format_err(format!("line {} is not key=value", n + 1)));
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            assign(key.trim(), value.to_string());
        }
    }
    build(path, id, secret, token)
}

fn build(
    path: &Path,
    id: Option<String>,
    secret: Option<SecretString>,
    token: Option<SecretString>,
) -> Result<Credentials, CredentialsError> {
    let origin = format!("credentials file {}", path.display());
    Credentials::new(
        id.unwrap_or_default(),
        secret.unwrap_or_else(|| SecretString::from("")),
        token,
        &origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        parse_file(Path::new("/creds"), text.as_bytes())
    }

    #[test]
    fn json_and_key_value_forms_parse() {
        let c =
            parse(r#"{"AccessKeyId":"id1","AccessKeySecret":"s1","SecurityToken":"t1"}"#).unwrap();
        assert_eq!(c.access_key_id(), "id1");
        assert_eq!(c.access_key_secret().expose_secret(), "s1");
        assert!(c.is_temporary());

        let c = parse("# comment\naccesskeyid = id2\nAccessKeySecret=\"s 2\"\n").unwrap();
        assert_eq!(c.access_key_id(), "id2");
        assert_eq!(c.access_key_secret().expose_secret(), "s 2");
        assert!(!c.is_temporary());

        let c = parse("export ALIBABA_CLOUD_ACCESS_KEY_ID=id3\nALIBABA_CLOUD_ACCESS_KEY_SECRET='s3'\nALIBABA_CLOUD_SECURITY_TOKEN=\n").unwrap();
        assert_eq!(c.access_key_id(), "id3");
        assert!(!c.is_temporary(), "an empty token means permanent keys");
    }

    #[test]
    fn malformed_files_name_the_problem_not_the_content() {
        let e = parse("AccessKeyId=id\nsupersecretvalue\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("supersecretvalue"));

        let e = parse("AccessKeyId=id\n").unwrap_err();
        assert!(e.to_string().contains("lack AccessKeySecret"), "{e}");

        let e = parse("{\"AccessKeySecret\": \"hunter22\"").unwrap_err();
        assert!(!e.to_string().contains("hunter22"), "{e}");
    }
}
