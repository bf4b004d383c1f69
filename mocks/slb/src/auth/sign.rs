//! Alibaba Cloud RPC signature version 1.0 (HMAC-SHA1).
//!
//! Public so that tests (and any Rust client that wants a second opinion) can sign requests
//! exactly the way the mock verifies them:
//!
//! ```text
//! StringToSign = METHOD & percentEncode("/") & percentEncode(canonicalized query)
//! Signature    = Base64(HMAC-SHA1(secret + "&", StringToSign))
//! ```
//! where the canonicalized query is the parameters (without `Signature`), each key and value
//! RFC 3986-encoded, sorted by encoded key, joined as `k=v` with `&`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// RFC 3986 percent-encoding as the RPC signature requires: everything except
/// `A-Z a-z 0-9 - _ . ~` is encoded as `%XX` with upper-case hex (so space is `%20`,
/// `*` is `%2A`, and `~` is kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonicalized query string: encoded pairs sorted by key (then value), `Signature`
/// left out.
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k.as_ref() != "Signature")
        .map(|(k, v)| (percent_encode(k.as_ref()), percent_encode(v.as_ref())))
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The string that is signed for `method` (`GET` or `POST`) and these parameters.
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(method: &str, params: &[(K, V)]) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// The Base64 signature of these parameters with this access key secret.
pub fn signature<K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    params: &[(K, V)],
    secret: &str,
) -> String {
    let key = format!("{secret}&");
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs `params` (which must already hold every common parameter except `Signature`) and
/// returns the full query string, `Signature` included, ready to append after `?` or to
/// send as an `application/x-www-form-urlencoded` body.
pub fn sign_query<K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    params: &[(K, V)],
    secret: &str,
) -> String {
    let sig = signature(method, params, secret);
    format!(
        "Signature={}&{}",
        percent_encode(&sig),
        canonical_query(params)
    )
}

/// The common parameters of an RPC call, for callers that build requests by hand.
#[derive(Debug, Clone)]
pub struct CommonParams<'a> {
    pub action: &'a str,
    pub version: &'a str,
    pub access_key_id: &'a str,
    pub nonce: String,
    /// ISO 8601 UTC, e.g. `2016-02-23T12:46:24Z`.
    pub timestamp: String,
    pub security_token: Option<&'a str>,
}

impl CommonParams<'_> {
    /// The parameter pairs every call carries (`Format=JSON`, HMAC-SHA1, 1.0).
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("Action".to_string(), self.action.to_string()),
            ("Version".to_string(), self.version.to_string()),
            ("Format".to_string(), "JSON".to_string()),
            ("AccessKeyId".to_string(), self.access_key_id.to_string()),
            ("SignatureMethod".to_string(), "HMAC-SHA1".to_string()),
            ("SignatureVersion".to_string(), "1.0".to_string()),
            ("SignatureNonce".to_string(), self.nonce.clone()),
            ("Timestamp".to_string(), self.timestamp.clone()),
        ];
        if let Some(t) = self.security_token {
            v.push(("SecurityToken".to_string(), t.to_string()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alibaba Cloud's published worked example for signature v1.
    #[test]
    fn published_worked_example() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ];
        assert_eq!(
            string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            signature("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn rfc3986_encoding() {
        assert_eq!(percent_encode("a b*c~d+e/é"), "a%20b%2Ac~d%2Be%2F%C3%A9");
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let a = [("B", "2"), ("A", "1")];
        let b = [("A", "1"), ("B", "2")];
        assert_eq!(signature("GET", &a, "s"), signature("GET", &b, "s"));
        assert_ne!(signature("GET", &a, "s"), signature("POST", &a, "s"));
    }
}
