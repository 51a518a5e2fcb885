//! The one error type of the client, and how a failed response becomes one.

use coffer_api::ErrorResponse;

/// Longest piece of a non-JSON error body kept in [`ClientError::Api`]'s message.
const MAX_FALLBACK_BODY_CHARS: usize = 512;

/// Everything that can go wrong when calling Coffer.
///
/// No variant ever contains the API token or a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error status.
    ///
    /// `code` and `message` come from the `{"error":{"code","message"}}` envelope. When the
    /// body is not that envelope (a proxy in between, an old server), `code` is
    /// `Http<status>` (e.g. `Http502`) and `message` is the body text or the status reason.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Machine-readable code, e.g. `ResourceNotFound`, `AccessDenied`.
        code: String,
        /// Human message from the server.
        message: String,
        /// The server's request id (`x-request-id`), to find the request in audit logs.
        request_id: Option<String>,
    },
    /// The request did not complete: connection refused, TLS failure, timeout, reset.
    #[error("request to the Coffer server failed")]
    Transport(#[source] reqwest::Error),
    /// The server answered with a success status but a body this client cannot read,
    /// usually a client/server version mismatch.
    #[error("unexpected response from the Coffer server (HTTP {status}): {message}")]
    Decode {
        /// HTTP status of the response.
        status: u16,
        /// What did not match. Never quotes values from the body.
        message: String,
    },
    /// The server address is not a usable `http://` or `https://` URL.
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument cannot be sent as given (empty id, a region or token that cannot be an
    /// HTTP header value, …). Nothing was sent.
    #[error("{0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The HTTP status, for errors the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an [`Api`](Self::Api) error, e.g. `ResourceNotFound`.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The server's request id of an [`Api`](Self::Api) error.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Builds the error for a non-2xx response from its status, request id and body.
    pub(crate) fn from_response(status: u16, request_id: Option<String>, body: &[u8]) -> Self {
        if let Ok(envelope) = serde_json::from_slice::<ErrorResponse>(body) {
            return Self::Api {
                status,
                code: envelope.error.code,
                message: envelope.error.message,
                request_id,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no response body")
                .to_owned()
        } else if text.chars().count() > MAX_FALLBACK_BODY_CHARS {
            let cut: String = text.chars().take(MAX_FALLBACK_BODY_CHARS).collect();
            format!("{cut}…")
        } else {
            text.to_owned()
        };
        Self::Api {
            status,
            code: format!("Http{status}"),
            message,
            request_id,
        }
    }

    /// Builds the error for a 2xx body that does not decode as the expected type.
    ///
    /// serde_json's messages for type mismatches quote the offending value (`invalid type:
    /// string "hunter2", expected u32`), and that value may be a secret, so only messages
    /// that name fields are kept; everything else is reduced to its position.
    pub(crate) fn decode(status: u16, err: &serde_json::Error) -> Self {
        let text = err.to_string();
        let names_only = ["missing field", "unknown field", "duplicate field"]
            .iter()
            .any(|prefix| text.starts_with(prefix));
        let message = if names_only {
            text
        } else {
            let what = match err.classify() {
                serde_json::error::Category::Syntax => "malformed JSON",
                serde_json::error::Category::Eof => "truncated JSON",
                serde_json::error::Category::Data => "a value of the wrong type or range",
                serde_json::error::Category::Io => "an I/O error",
            };
            format!("{what} at line {} column {}", err.line(), err.column())
        };
        Self::Decode { status, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_becomes_api_error_with_code_and_message() {
        let body = br#"{"error":{"code":"ResourceNotFound","message":"secret prod/x not found"}}"#;
        let err = ClientError::from_response(404, Some("req-1".into()), body);
        assert_eq!(err.to_string(), "ResourceNotFound: secret prod/x not found");
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.code(), Some("ResourceNotFound"));
        assert_eq!(err.request_id(), Some("req-1"));
    }

    #[test]
    fn non_envelope_body_falls_back_to_status_and_text() {
        let err = ClientError::from_response(502, None, b"  upstream went away\n");
        assert_eq!(err.to_string(), "Http502: upstream went away");
        assert_eq!(err.code(), Some("Http502"));
    }

    #[test]
    fn empty_error_body_uses_the_status_reason() {
        let err = ClientError::from_response(503, None, b"");
        assert_eq!(err.to_string(), "Http503: Service Unavailable");
    }

    #[test]
    fn long_error_bodies_are_truncated() {
        let body = "x".repeat(10_000);
        let err = ClientError::from_response(500, None, body.as_bytes());
        let ClientError::Api { message, .. } = err else {
            panic!("expected an Api error");
        };
        assert_eq!(message.chars().count(), MAX_FALLBACK_BODY_CHARS + 1);
    }

    #[test]
    fn decode_errors_never_quote_values() {
        let err = serde_json::from_str::<u32>(r#""hunter2""#).unwrap_err();
        let err = ClientError::decode(200, &err);
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn decode_errors_keep_missing_field_names() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Shape {
            version_id: String,
        }
        let err = serde_json::from_str::<Shape>("{}").unwrap_err();
        let text = ClientError::decode(200, &err).to_string();
        assert!(text.contains("missing field `version_id`"), "{text}");
    }
}
