//! A typed async client for Coffer's native REST API (`/v1/...`).
//!
//! The `coffer` command-line tool is built on it, and Rust applications use it to read
//! secrets and call the key manager without writing HTTP by hand. There is one method per
//! route of the API; requests and responses are the types of [`coffer_api`], re-exported
//! here as [`api`]. The client knows nothing of the server's internals: it only speaks the
//! wire format.
//!
//! ```no_run
//! use coffer_client::{api::CreateSecretRequest, Client, ClientError};
//!
//! # async fn demo() -> Result<(), ClientError> {
//! let token = std::env::var("COFFER_TOKEN").unwrap_or_default();
//! let client = Client::new("http://127.0.0.1:8330", token)?.with_region("eu-west-1");
//!
//! client
//!     .create_secret(&CreateSecretRequest {
//!         name: "prod/database/password".into(),
//!         secret_string: Some("s3cr3t".into()),
//!         ..Default::default()
//!     })
//!     .await?;
//!
//! let value = client
//!     .get_secret_value("prod/database/password", None, Some("AWSCURRENT"))
//!     .await?;
//! assert_eq!(value.secret_string.as_deref(), Some("s3cr3t"));
//!
//! match client.describe_secret("prod/missing").await {
//!     Err(err) if err.code() == Some("ResourceNotFound") => {}
//!     other => panic!("unexpected: {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every request carries `Authorization: Bearer <token>` and, when a region is set,
//! `X-Coffer-Region`. Path parameters (secret names, key ids, aliases, token ids) are
//! percent-encoded as one path segment, so `prod/database/password` is sent as
//! `prod%2Fdatabase%2Fpassword`. The token never appears in `Debug` output or in errors.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use coffer_api as api;

mod aliases;
mod audit;
mod crypto;
mod endpoint;
mod error;
mod keys;
mod secrets;
mod system;
mod tokens;

pub use coffer_api::ListSecretsQuery;
pub use error::ClientError;
pub use keys::ListKeysQuery;

use std::time::Duration;

use reqwest::{header::HeaderValue, Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::endpoint::BaseUrl;

/// Largest response size taken from `Content-Length` to pre-size the body buffer.
const MAX_BODY_PREALLOC: usize = 1 << 20;

/// A connection to one Coffer server, as one principal (the token), in one region.
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: BaseUrl,
    token: Zeroizing<String>,
    region: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.base.as_str())
            .field("region", &self.region)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    /// A client for the server at `addr` (`http://host:port`, `https://host/prefix`, or a
    /// bare `host:port`, taken as `http://`) that authenticates with `token`.
    ///
    /// An empty token sends no `Authorization` header, which is enough for
    /// [`health`](Self::health) and [`ready`](Self::ready) only. The default HTTP client
    /// follows no redirects, connects within 10 s and gives up on a request after 60 s;
    /// use [`with_http_client`](Self::with_http_client) for other settings (a private CA,
    /// a proxy).
    pub fn new(addr: &str, token: impl Into<String>) -> Result<Self, ClientError> {
        let token = Zeroizing::new(token.into());
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::InvalidArgument(
                "the API token contains whitespace, control or non-ASCII characters; \
                 check for a stray newline"
                    .to_owned(),
            ));
        }
        let base = BaseUrl::parse(addr)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("coffer-client/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Self {
            http,
            base,
            token,
            region: None,
        })
    }

    /// Sends every request to `region` (the `X-Coffer-Region` header) instead of the
    /// server's default region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Uses `http` for all requests, e.g. one built with a private root certificate.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The server's base address.
    pub fn addr(&self) -> &str {
        self.base.as_str()
    }

    /// The region requests go to, if one was set.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// A request to an authenticated `/v1` route. `path` has its parameters encoded already.
    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<RequestBuilder, ClientError> {
        let mut builder = self.http.request(method, self.base.join(path, query));
        if !self.token.is_empty() {
            builder = builder.bearer_auth(self.token.as_str());
        }
        if let Some(region) = &self.region {
            let value = HeaderValue::from_str(region)
                .ok()
                .filter(|_| !region.is_empty())
                .ok_or_else(|| {
                    ClientError::InvalidArgument(format!(
                        "the region {region:?} is empty or not a valid HTTP header value"
                    ))
                })?;
            builder = builder.header(coffer_api::REGION_HEADER, value);
        }
        Ok(builder)
    }
}

/// Sends `request` and decodes a JSON response body.
async fn fetch<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ClientError> {
    let (status, body) = execute(request).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::decode(status, &e))
}

/// Sends `request`, expecting a success status and ignoring any body.
async fn fetch_nothing(request: RequestBuilder) -> Result<(), ClientError> {
    execute(request).await.map(|_| ())
}

/// Sends a request; on a success status returns it with the body, otherwise the error.
async fn execute(request: RequestBuilder) -> Result<(u16, Zeroizing<Vec<u8>>), ClientError> {
    let mut response = request.send().await.map_err(ClientError::Transport)?;
    let status = response.status();
    let request_id = response
        .headers()
        .get(coffer_api::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body(&mut response).await?;
    if status.is_success() {
        Ok((status.as_u16(), body))
    } else {
        Err(ClientError::from_response(
            status.as_u16(),
            request_id,
            &body,
        ))
    }
}

/// Reads the whole body into a buffer that is wiped when dropped, growing it by hand so
/// that no reallocation leaves an unwiped copy of a secret behind.
async fn read_body(response: &mut Response) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let hint = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(MAX_BODY_PREALLOC);
    let mut body = Zeroizing::new(Vec::with_capacity(hint));
    while let Some(chunk) = response.chunk().await.map_err(ClientError::Transport)? {
        append_wiping(&mut body, &chunk);
    }
    Ok(body)
}

/// Appends `bytes` to `buf`; when `buf` must grow, the old allocation is wiped.
fn append_wiping(buf: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
