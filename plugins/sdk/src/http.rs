//! Outbound HTTP to the URLs the plugin's manifest allows (`capabilities.http`).
//!
//! The host checks the URL against the manifest (and its own IP block-list) before it
//! connects, caps the response size and does not follow redirects off the allow-list.

use serde::de::DeserializeOwned;

use crate::bindings::coffer::rotator::http as raw;
use crate::RotationError;

pub use raw::{Error, Request, Response};

/// Sends a request and waits for the response.
pub fn send(request: &Request) -> Result<Response, Error> {
    raw::send(request)
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.header("content-type", "application/json")
    }

    /// Sends it, see [`send`].
    pub fn send(&self) -> Result<Response, Error> {
        send(self)
    }
}

impl Response {
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; `target-refused` when it is not the expected shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RotationError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            RotationError::target_refused(format!(
                "HTTP {}: response body is not the expected JSON: {e}",
                self.status
            ))
        })
    }
}

impl Error {
    /// The message without the variant name.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::Connect(m) | Error::InvalidRequest(m) => m,
            Error::Timeout => "timed out",
            Error::TooLarge => "response body too large",
        }
    }
}

/// `denied` → `denied`, `connect`/`timeout` → `unreachable`, `too-large` → `target-refused`,
/// `invalid-request` → `internal`.
impl From<Error> for RotationError {
    fn from(e: Error) -> Self {
        match e {
            Error::Denied(m) => RotationError::Denied(m),
            Error::Connect(m) => RotationError::Unreachable(m),
            Error::Timeout => RotationError::Unreachable("HTTP request timed out".into()),
            Error::TooLarge => RotationError::TargetRefused("HTTP response too large".into()),
            Error::InvalidRequest(m) => {
                RotationError::Internal(format!("invalid HTTP request: {m}"))
            }
        }
    }
}

/// Percent-encodes a string for use in a URL path segment or query value (RFC 3986
/// unreserved characters are kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
