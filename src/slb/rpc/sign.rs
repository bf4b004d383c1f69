//! Alibaba Cloud RPC signature version 1.0 (HMAC-SHA1), as the SLB, ECS and STS APIs
//! verify it:
//!
//! ```text
//! CanonicalizedQuery = every parameter but Signature, key and value RFC 3986-encoded,
//!                      sorted by key, joined as k=v with &
//! StringToSign       = METHOD & percentEncode("/") & percentEncode(CanonicalizedQuery)
//! Signature          = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))
//! ```
//!
//! Every call carries `Format=JSON`, `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`,
//! a fresh `SignatureNonce` (the API refuses a nonce it saw in the last 15 minutes) and
//! `Timestamp` in whole seconds UTC (refused when more than 15 minutes off), plus
//! `SecurityToken` for temporary (STS) credentials.
//!
//! These are pure functions of their inputs (nonce and time are handed in) so that the
//! vendor's published worked example is a unit test and `tests/slb_signer_oracle.rs` can
//! check them against `aliyun-openapi-core-rust-sdk` request by request. HMAC-SHA1 and the
//! nonce's randomness come from `ring`, which rustls already brings.

use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The HTTP method a call is signed for; it is part of the string to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every parameter in the URL query.
    Get,
    /// Parameters in the URL query and an `application/x-www-form-urlencoded` body,
    /// signed together.
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// RFC 3986 encoding as signature v1 wants it: only `A-Z a-z 0-9 - _ . ~` stay literal,
/// every other byte of the UTF-8 text is `%XY` with upper-case hex (space is `%20`, not
/// `+`; `*` is `%2A`).
pub fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xF)] as char);
        }
    }
    out
}

/// The canonicalised query: `Signature` left out, sorted by parameter name (a stable sort
/// on the raw name, as the vendor's SDKs do; the agent never sends a name twice), each
/// pair encoded as `k=v`, joined with `&`. Also the exact text sent as query or body.
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(k, _)| *k != "Signature")
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

/// `METHOD&%2F&percentEncode(canonical)`.
pub fn string_to_sign(method: Method, canonical: &str) -> String {
    format!(
        "{}&{}&{}",
        method.as_str(),
        percent_encode("/"),
        percent_encode(canonical)
    )
}

/// `Base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{secret}&").as_bytes(),
    );
    let tag = hmac::sign(&key, string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// A signed parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The canonicalised query of every parameter (without `Signature`).
    pub canonical: String,
    /// The Base64 signature (not yet encoded for a URL).
    pub signature: String,
}

impl Signed {
    /// `Signature=<encoded>&<canonical>`: the whole parameter set ready to send.
    pub fn query(&self) -> String {
        format!(
            "Signature={}&{}",
            percent_encode(&self.signature),
            self.canonical
        )
    }
}

/// Signs every parameter in `params` (common ones included) for `method`.
pub fn sign<K: AsRef<str>, V: AsRef<str>>(
    method: Method,
    params: &[(K, V)],
    secret: &str,
) -> Signed {
    let canonical = canonical_query(params);
    let signature = signature(secret, &string_to_sign(method, &canonical));
    Signed {
        canonical,
        signature,
    }
}

/// What identifies one call: who signs it, for which action and API version, and its
/// nonce and time.
#[derive(Debug, Clone, Copy)]
pub struct CallIdentity<'a> {
    pub action: &'a str,
    pub version: &'a str,
    pub access_key_id: &'a str,
    pub nonce: &'a str,
    /// [`timestamp`] of the time of the call.
    pub timestamp: &'a str,
}

/// The common parameters of signature v1 for one call (not `SecurityToken`, which callers
/// add with the action's own parameters).
pub fn common_params(call: CallIdentity<'_>) -> [(&'static str, String); 8] {
    [
        ("AccessKeyId", call.access_key_id.to_string()),
        ("Action", call.action.to_string()),
        ("Format", "JSON".to_string()),
        ("SignatureMethod", "HMAC-SHA1".to_string()),
        ("SignatureNonce", call.nonce.to_string()),
        ("SignatureVersion", "1.0".to_string()),
        ("Timestamp", call.timestamp.to_string()),
        ("Version", call.version.to_string()),
    ]
}

/// ISO 8601 UTC in whole seconds (`2016-02-23T12:46:24Z`), the form the API documents.
pub fn timestamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh nonce: 128 bits from the operating system's CSPRNG, written as a UUID v4.
pub fn new_nonce() -> String {
    let mut b = [0u8; 16];
    if SystemRandom::new().fill(&mut b).is_err() {
        // The OS generator does not fail on Linux; should it, a time-and-counter nonce
        // still never repeats within the API's 15-minute replay window.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = jiff::Timestamp::now().as_nanosecond() as u64;
        b[..8].copy_from_slice(&t.to_be_bytes());
        b[8..].copy_from_slice(&n.to_be_bytes());
    }
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the vendor's signature documentation: DescribeRegions with
    /// AccessKeyId `testid` and secret `testsecret`.
    #[test]
    fn the_published_worked_example() {
        let params = common_params(CallIdentity {
            action: "DescribeRegions",
            version: "2014-05-26",
            access_key_id: "testid",
            nonce: "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
            timestamp: "2016-02-23T12:46:24Z",
        })
        .map(|(k, v)| (k, if k == "Format" { "XML".into() } else { v }));
        let signed = sign(Method::Get, &params, "testsecret");
        assert_eq!(
            string_to_sign(Method::Get, &signed.canonical),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(signed.signature, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        assert!(signed
            .query()
            .starts_with("Signature=OLeaidS1JvxuMvnyHOwuJ%2BuX5qY%3D&AccessKeyId=testid&"));
    }

    #[test]
    fn rfc3986_encoding() {
        assert_eq!(
            percent_encode("a b*c~d+e/é=&-_."),
            "a%20b%2Ac~d%2Be%2F%C3%A9%3D%26-_."
        );
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn sorting_by_name_and_leaving_out_signature() {
        let a = [("B", "2"), ("Signature", "x"), ("A", "1 2")];
        assert_eq!(canonical_query(&a), "A=1%202&B=2");
        let b = [("A", "1 2"), ("B", "2")];
        assert_eq!(sign(Method::Get, &a, "s"), sign(Method::Get, &b, "s"));
        assert_ne!(
            sign(Method::Get, &a, "s").signature,
            sign(Method::Post, &a, "s").signature
        );
    }

    #[test]
    fn timestamps_are_whole_seconds_utc_and_nonces_fresh_uuids() {
        let t: jiff::Timestamp = "2026-01-02T03:04:05.987654321Z".parse().unwrap();
        assert_eq!(timestamp(t), "2026-01-02T03:04:05Z");
        let (a, b) = (new_nonce(), new_nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "{a}");
    }
}
