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
