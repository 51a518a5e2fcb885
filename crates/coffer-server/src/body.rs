//! Request-body and query extractors whose failures are JSON errors with precise
//! messages (axum's own rejections are plain text).

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: 413 past the body limit, 400 for malformed JSON, 422 for JSON of the
/// wrong shape (unknown or missing fields, wrong types). An empty body reads as `{}`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PayloadTooLarge",
                        "request body is larger than the server's limit (max_body_bytes)",
                    )
                } else {
                    ApiError::bad_request(format!("cannot read request body: {e}"))
                }
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "MalformedJson",
                    format!(
                        "request body is not valid JSON (line {}, column {})",
                        inner.line(),
                        inner.column()
                    ),
                )
            } else {
                // serde's data errors name fields and types, never values of secrets:
                // they quote at most the offending token's type.
                let path = e.path().to_string();
                let msg = redact_serde_message(&inner.to_string());
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "InvalidRequestBody",
                    if path == "." {
                        format!("request body: {msg}")
                    } else {
                        format!("request body field {path}: {msg}")
                    },
                )
            }
        })?;
        de.end().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MalformedJson",
                "trailing characters after the JSON body",
            )
        })?;
        Ok(JsonBody(value))
    }
}

/// serde_json quotes string values in some messages (`invalid type: string "…"`);
/// drop the quoted part so a misplaced secret never echoes back.
fn redact_serde_message(m: &str) -> String {
    let m = m.split(" at line ").next().unwrap_or(m);
    match (m.find('"'), m.rfind('"')) {
        (Some(a), Some(b)) if b > a && m.starts_with("invalid") => {
            format!("{}<redacted>{}", &m[..a], &m[b + 1..])
        }
        _ => m.to_string(),
    }
}

/// A query string; 400 with the reason when it does not parse.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryParams(v))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("query string: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_do_not_echo_values() {
        let m = redact_serde_message(
            "invalid type: string \"hunter2\", expected u32 at line 1 column 9",
        );
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("expected u32"));
    }
}
