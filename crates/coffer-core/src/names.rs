//! Validation of names, ids, tags and labels: every rule about what a name may look like
//! lives here, so the front doors cannot disagree.

use std::collections::BTreeMap;

use crate::{CoreError, Result};

/// A validated secret name: 1–512 characters of `A-Za-z0-9/_+=.@-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// Validates a name.
    pub fn parse(name: &str) -> Result<Self> {
        if name.is_empty() || name.len() > 512 {
            return Err(CoreError::InvalidParameter(format!(
                "secret name must be 1–512 characters (got {})",
                name.chars().count()
            )));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
        {
            return Err(CoreError::InvalidParameter(format!(
                "secret name contains {c:?}; allowed are A-Z a-z 0-9 / _ + = . @ -"
            )));
        }
        if name.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(CoreError::InvalidParameter(
                "secret name must not contain `.` or `..` as a path segment (URLs would resolve them)".into(),
            ));
        }
        Ok(SecretName(name.to_string()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a region name: 1–32 of `a-z0-9-`.
pub fn validate_region(r: &str) -> Result<()> {
    if r.is_empty()
        || r.len() > 32
        || !r
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(CoreError::InvalidParameter(format!(
            "invalid region {r:?}: use 1–32 characters of a-z 0-9 -"
        )));
    }
    Ok(())
}

/// Validates a client request token (idempotency token / version id): 32–64 characters
/// of `A-Za-z0-9-_`.
pub(crate) fn validate_version_id(t: &str) -> Result<()> {
    if t.len() < 32
        || t.len() > 64
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CoreError::InvalidParameter(
            "client request token / version id must be 32–64 characters of A-Z a-z 0-9 - _".into(),
        ));
    }
    Ok(())
}

/// Validates a staging label: 1–256 printable characters.
pub(crate) fn validate_stage(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_control()) {
        return Err(CoreError::InvalidParameter(
            "staging label must be 1–256 printable characters".into(),
        ));
    }
    Ok(())
}

/// Validates a description (at most 2,048 characters).
pub(crate) fn validate_description(d: &str) -> Result<()> {
    if d.chars().count() > 2048 {
        return Err(CoreError::InvalidParameter(
            "description must be at most 2,048 characters".into(),
        ));
    }
    Ok(())
}

fn tag_chars_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

/// Validates tags as AWS does: at most 50, keys 1–128 characters, values 0–256, of
/// letters, digits, spaces and `_.:/=+-@`; `aws:` and `coffer:` prefixes are reserved.
pub(crate) fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > 50 {
        return Err(CoreError::InvalidParameter(
            "at most 50 tags per resource".into(),
        ));
    }
    for (k, v) in tags {
        validate_tag_key(k)?;
        if v.chars().count() > 256 || !tag_chars_ok(v) {
            return Err(CoreError::InvalidParameter(format!(
                "tag value of {k:?} must be at most 256 characters of letters, digits, spaces and _.:/=+-@"
            )));
        }
    }
    Ok(())
}

/// Validates one tag key.
pub(crate) fn validate_tag_key(k: &str) -> Result<()> {
    if k.is_empty() || k.chars().count() > 128 || !tag_chars_ok(k) {
        return Err(CoreError::InvalidParameter(format!(
            "tag key {k:?} must be 1–128 characters of letters, digits, spaces and _.:/=+-@"
        )));
    }
    if k.starts_with("aws:") || k.starts_with("coffer:") {
        return Err(CoreError::InvalidParameter(format!(
            "tag key {k:?} uses a reserved prefix (aws:, coffer:)"
        )));
    }
    Ok(())
}

/// Validates an alias name: `alias/` + 1–250 of `A-Za-z0-9/_-`.
pub(crate) fn validate_alias(a: &str) -> Result<()> {
    let Some(rest) = a.strip_prefix("alias/") else {
        return Err(CoreError::InvalidParameter(format!(
            "alias name {a:?} must start with alias/"
        )));
    };
    if rest.is_empty()
        || rest.len() > 250
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
    {
        return Err(CoreError::InvalidParameter(format!(
            "alias name {a:?} must be alias/ followed by 1–250 of A-Z a-z 0-9 / _ -"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        assert!(SecretName::parse("prod/database/password").is_ok());
        assert!(SecretName::parse("a+b=c.d@e-f_g").is_ok());
        assert!(SecretName::parse(&"a".repeat(512)).is_ok());
        assert!(SecretName::parse(&"a".repeat(513)).is_err());
        assert!(SecretName::parse("").is_err());
        assert!(SecretName::parse("has space").is_err());
        assert!(SecretName::parse("semi;colon").is_err());
        assert!(SecretName::parse("ünïcode").is_err());
        assert!(SecretName::parse("..").is_err());
        assert!(SecretName::parse("a/./b").is_err());
        assert!(SecretName::parse("a/.hidden").is_ok());
    }

    #[test]
    fn aliases_and_tokens() {
        assert!(validate_alias("alias/app-key").is_ok());
        assert!(validate_alias("app-key").is_err());
        assert!(validate_alias("alias/").is_err());
        assert!(validate_version_id(&"a".repeat(32)).is_ok());
        assert!(validate_version_id(&"a".repeat(31)).is_err());
        assert!(validate_version_id(&format!("{}!", "a".repeat(32))).is_err());
    }

    #[test]
    fn tags() {
        let mut t = BTreeMap::new();
        t.insert("team".to_string(), "payments".to_string());
        assert!(validate_tags(&t).is_ok());
        t.insert("aws:x".to_string(), "y".to_string());
        assert!(validate_tags(&t).is_err());
    }
}
