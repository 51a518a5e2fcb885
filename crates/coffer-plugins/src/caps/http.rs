//! `coffer:rotator/http`: outbound HTTP to the origins the manifest lists.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bindings::coffer::rotator::http::{Error, Host, Request, Response};
use crate::egress::{self, EgressError};
use crate::redact::truncate;
use crate::state::StoreState;

/// Request timeout (bounded by the step deadline).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body handed to the plugin.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Largest request body.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Settings of every client: rustls, no redirects, no proxies from the environment.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(HTTP_TIMEOUT)
        .user_agent(concat!("coffer-rotator/", env!("CARGO_PKG_VERSION")))
}

/// The shared client, used for URLs whose host is an IP literal (nothing to resolve).
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A client for one request to `domain` that connects only to `addrs` (the addresses
/// [`egress::resolve_checked`] approved) instead of resolving `domain` again; TLS still
/// verifies the certificate against `domain`.
pub fn pinned_client(domain: &str, addrs: &[SocketAddr]) -> Result<reqwest::Client, Error> {
    client_builder()
        .resolve_to_addrs(domain, addrs)
        .build()
        .map_err(map_err)
}

/// The URL as shown in the trail: no user info, query replaced by `?<redacted>`.
pub fn shown_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    let had_query = u.query().is_some();
    u.set_query(None);
    let mut s = u.to_string();
    if had_query {
        s.push_str("?<redacted>");
    }
    s
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    req: Request,
    limit: Duration,
) -> Result<Response, Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &req.headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            Error::InvalidRequest(format!("invalid header name `{}`", truncate(k, 64)))
        })?;
        let value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|_| Error::InvalidRequest(format!("invalid value for header `{name}`")))?;
        headers.append(name, value);
    }
    let mut builder = client.request(method, url).headers(headers).timeout(limit);
    if let Some(body) = req.body {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Error::InvalidRequest(format!(
                "request body over {MAX_REQUEST_BYTES} bytes"
            )));
        }
        builder = builder.body(body);
    }
    let fut = async {
        let mut resp = builder.send().await.map_err(map_err)?;
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(Error::TooLarge);
        }
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(map_err)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(Error::Timeout),
        Ok(r) => r,
    }
}

fn map_err(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Timeout;
    }
    let e = e.without_url();
    let mut m = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        m.push_str(&format!(": {s}"));
        src = s.source();
    }
    Error::Connect(m)
}

impl Host for StoreState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, Error>> {
        let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                return Ok(Err(Error::InvalidRequest(format!(
                    "invalid method `{}`",
                    truncate(&request.method, 32)
                ))))
            }
        };
        let url = match reqwest::Url::parse(&request.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => {
                let shown = self.step.redactor.redact(&truncate(&request.url, 256));
                return Ok(Err(Error::InvalidRequest(format!(
                    "`{shown}` is not an absolute http(s) URL"
                ))));
            }
        };
        let shown = shown_url(&url);
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.step.manifest.allows_http(url.scheme(), &host, port) {
            let origin = format!(
                "{}://{}:{port}",
                url.scheme(),
                url.host_str().unwrap_or_default()
            );
            self.step.record(
                "http",
                format!("{method} {shown}: denied, not in the manifest"),
            );
            return Ok(Err(Error::Denied(format!(
                "capability `http` does not allow {origin}: add it to capabilities.http in {}",
                self.step.manifest_path()
            ))));
        }
        let limit = self.step.bounded(HTTP_TIMEOUT);
        let started = Instant::now();
        let manifest = self.step.manifest.clone();
        let scheme = url.scheme().to_string();
        let checked = match egress::resolve_checked_within(&host, port, limit, |ip| {
            manifest.names_http_ip(&scheme, ip, port)
        })
        .await
        {
            Ok(addrs) => Ok(addrs),
            Err(EgressError::Timeout) => Err(Error::Timeout),
            Err(EgressError::Lookup(m)) => Err(Error::Connect(m)),
            Err(EgressError::Blocked(m)) => {
                self.step
                    .record("http", format!("{method} {shown}: denied, {m}"));
                return Ok(Err(Error::Denied(format!(
                    "capability `http` refuses {}://{host}:{port}: {m} (capabilities.http in {})",
                    url.scheme(),
                    self.step.manifest_path()
                ))));
            }
        };
        let res = match checked {
            Err(e) => Err(e),
            Ok(addrs) => {
                let client = if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
                    // An IP literal: reqwest connects to it without resolving anything.
                    Ok(self.step.http.clone())
                } else {
                    pinned_client(&host, &addrs)
                };
                let left = limit.saturating_sub(started.elapsed());
                match client {
                    Err(e) => Err(e),
                    Ok(_) if left.is_zero() => Err(Error::Timeout),
                    Ok(c) => send(&c, method.clone(), url, request, left).await,
                }
            }
        };
        let outcome = match &res {
            Ok(r) => r.status.to_string(),
            Err(Error::Denied(_)) => "denied".into(),
            Err(Error::Connect(_)) => "connect error".into(),
            Err(Error::Timeout) => "timeout".into(),
            Err(Error::TooLarge) => "response too large".into(),
            Err(Error::InvalidRequest(_)) => "invalid request".into(),
        };
        self.step
            .record("http", format!("{method} {shown} -> {outcome}"));
        Ok(res.map_err(|e| match e {
            Error::Connect(m) => Error::Connect(truncate(&self.step.redactor.redact(&m), 2048)),
            Error::InvalidRequest(m) => {
                Error::InvalidRequest(truncate(&self.step.redactor.redact(&m), 2048))
            }
            other => other,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_query_or_credentials() {
        let u = reqwest::Url::parse("https://me:pw@api.example.com/v1/keys?token=abc#x").unwrap();
        assert_eq!(shown_url(&u), "https://api.example.com/v1/keys?<redacted>");
    }

    /// The pinned client connects to the checked address, never resolving the name
    /// (`.invalid` cannot resolve), and keeps the shared settings (no redirects).
    #[tokio::test]
    async fn pinned_client_connects_to_the_checked_address() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let host_seen = String::from_utf8_lossy(&buf[..n])
                    .to_ascii_lowercase()
                    .contains("host: pinned.invalid");
                let head = if host_seen {
                    "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                let _ = sock.write_all(head.as_bytes()).await;
            }
        });
        let client = pinned_client("pinned.invalid", &[addr]).unwrap();
        let url = format!("http://pinned.invalid:{}/", addr.port());
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
    }
}
