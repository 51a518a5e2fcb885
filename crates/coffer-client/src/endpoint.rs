//! Where requests go: the server's base address, and route paths whose parameters are
//! percent-encoded as single path segments.

use reqwest::Url;

use crate::ClientError;

/// The server's base URL, validated once.
#[derive(Clone)]
pub(crate) struct BaseUrl {
    url: Url,
    /// The base path without a trailing `/` (`""` for a server at the root).
    prefix: String,
}

impl BaseUrl {
    /// Parses `http://host:port`, `https://host/prefix`, or a bare `host:port` (taken as
    /// `http://`).
    pub(crate) fn parse(addr: &str) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidAddress {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = addr.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the address are not used; pass the API token separately",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must not have a query (?…) or fragment (#…)"));
        }
        let prefix = url.path().trim_end_matches('/').to_owned();
        Ok(Self { url, prefix })
    }

    /// The URL of `path` (which starts with `/` and has its parameters already encoded by
    /// [`segment`]) with the given query pairs.
    pub(crate) fn join(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.url.clone();
        url.set_path(&format!("{}{path}", self.prefix));
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// The base address as text.
    pub(crate) fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

/// Validates a path parameter and percent-encodes it as exactly one path segment.
///
/// `what` names the parameter in the error (`"secret id"`, `"key id"`, …).
pub(crate) fn segment(what: &str, value: &str) -> Result<String, ClientError> {
    if value.is_empty() {
        return Err(ClientError::InvalidArgument(format!(
            "the {what} must not be empty"
        )));
    }
    // URL parsers resolve `.` and `..` segments (even as `%2E`) before the request is sent,
    // so such a name would silently address a different route.
    if value == "." || value == ".." {
        return Err(ClientError::InvalidArgument(format!(
            "the {what} {value:?} cannot be sent as a URL path segment; use its ARN"
        )));
    }
    Ok(encode_segment(value))
}

/// Percent-encodes every byte outside the RFC 3986 unreserved set `A-Za-z0-9-_.~`.
pub(crate) fn encode_segment(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &byte in value.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_in_a_name_stays_inside_one_segment() {
        assert_eq!(
            encode_segment("prod/database/password"),
            "prod%2Fdatabase%2Fpassword"
        );
        assert_eq!(encode_segment("alias/app"), "alias%2Fapp");
    }

    #[test]
    fn unreserved_bytes_pass_and_everything_else_is_encoded() {
        assert_eq!(encode_segment("Az09-_.~"), "Az09-_.~");
        assert_eq!(
            encode_segment("a+b=c@d e%f?g#h&i:j"),
            "a%2Bb%3Dc%40d%20e%25f%3Fg%23h%26i%3Aj"
        );
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(
            encode_segment("arn:coffer:secretsmanager:local:secret:prod/db-AbC123"),
            "arn%3Acoffer%3Asecretsmanager%3Alocal%3Asecret%3Aprod%2Fdb-AbC123"
        );
    }

    #[test]
    fn empty_and_dot_segments_are_refused() {
        assert!(matches!(
            segment("secret id", ""),
            Err(ClientError::InvalidArgument(_))
        ));
        assert!(segment("secret id", ".").is_err());
        assert!(segment("secret id", "..").is_err());
        assert_eq!(segment("secret id", "...").unwrap(), "...");
    }

    #[test]
    fn joined_url_keeps_encoded_slashes() {
        let base = BaseUrl::parse("http://127.0.0.1:8330").unwrap();
        let path = format!(
            "/v1/secrets/{}/value",
            segment("secret id", "prod/database/password").unwrap()
        );
        let url = base.join(&path, &[("version_stage", "AWSCURRENT".into())]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8330/v1/secrets/prod%2Fdatabase%2Fpassword/value?version_stage=AWSCURRENT"
        );
    }

    #[test]
    fn query_values_are_form_encoded() {
        let base = BaseUrl::parse("http://localhost:8330/").unwrap();
        let url = base.join(
            "/v1/secrets",
            &[
                ("name_prefix", "prod/a b&c".into()),
                ("tag_value", "x=y".into()),
            ],
        );
        assert_eq!(
            url.as_str(),
            "http://localhost:8330/v1/secrets?name_prefix=prod%2Fa+b%26c&tag_value=x%3Dy"
        );
    }

    #[test]
    fn base_path_prefix_is_kept() {
        let base = BaseUrl::parse("https://vault.example.com/coffer/").unwrap();
        let url = base.join("/v1/keys", &[]);
        assert_eq!(url.as_str(), "https://vault.example.com/coffer/v1/keys");
    }

    #[test]
    fn bare_host_port_means_http() {
        let base = BaseUrl::parse("127.0.0.1:8330").unwrap();
        assert_eq!(base.as_str(), "http://127.0.0.1:8330/");
        let base = BaseUrl::parse("localhost:8330").unwrap();
        assert_eq!(base.as_str(), "http://localhost:8330/");
    }

    #[test]
    fn unusable_addresses_are_refused() {
        for addr in [
            "",
            "ftp://host",
            "http://",
            "http://user:pw@host:8330",
            "http://host:8330/?x=1",
            "http://host:8330/#frag",
            "http://host:notaport",
        ] {
            assert!(
                matches!(
                    BaseUrl::parse(addr),
                    Err(ClientError::InvalidAddress { .. })
                ),
                "{addr:?} should be refused"
            );
        }
    }
}
