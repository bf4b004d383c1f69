//! Typed access to the form-decoded request parameters.

use super::error::ApiError;

/// The decoded query + form body parameters of one call.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text (query string or body).
    pub fn extend_form(&mut self, raw: &[u8]) {
        self.0
            .extend(form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `Tag.N.Key` / `Tag.N.Value` pairs, N in 1..=20 as the API allows; a value may be
    /// empty, a key may not.
    pub fn tags(&self) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        let mut tags = std::collections::BTreeMap::new();
        for n in 1..=20 {
            let key = format!("Tag.{n}.Key");
            let Some(k) = self.get(&key) else { continue };
            if k.len() > 64 || k.starts_with("aliyun") || k.starts_with("acs:") {
                return Err(ApiError::invalid(&key, k));
            }
            let value = self
                .0
                .iter()
                .find(|(name, _)| *name == format!("Tag.{n}.Value"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            tags.insert(k.to_owned(), value);
        }
        if self.0.iter().any(|(k, _)| k.starts_with("Tag.21.")) {
            return Err(ApiError::invalid("Tag.N", "more than 20 tags"));
        }
        Ok(tags)
    }

    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| ApiError::missing(key))
    }

    pub fn port(&self, key: &str) -> Result<u16, ApiError> {
        let raw = self.required(key)?;
        raw.parse::<u16>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ApiError::invalid(key, raw))
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, ApiError> {
        self.get(key)
            .map(|raw| raw.parse::<u32>().map_err(|_| ApiError::invalid(key, raw)))
            .transpose()
    }

    /// `on`/`off` switches.
    pub fn opt_on_off(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("on") => Ok(Some(true)),
            Some("off") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(key, other)),
        }
    }

    /// `Key.1`, `Key.2`, … in index order.
    pub fn indexed(&self, key: &str) -> Result<Vec<(u32, &str)>, ApiError> {
        let prefix = format!("{key}.");
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            if let Some(n) = k.strip_prefix(&prefix) {
                let n: u32 = n.parse().map_err(|_| ApiError::invalid(k, v))?;
                out.push((n, v.as_str()));
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out)
    }
}
