//! Replaces secret values with `<redacted>` in anything that leaves the sandbox as text
//! (logs, trail entries, error messages).

use zeroize::Zeroizing;

/// Shortest value that is redacted; shorter strings would garble every message.
pub const MIN_REDACTED_LEN: usize = 3;
/// JSON keys whose string values are redacted on their own too.
const SENSITIVE_KEYS: &[&str] = &["password", "secret", "token", "key", "credential", "pass"];

/// The set of values to hide.
#[derive(Default)]
pub struct Redactor {
    values: Vec<Zeroizing<String>>,
}

impl Redactor {
    /// Adds a secret value; if it is a JSON object, its sensitive-looking fields too.
    pub fn add_secret(&mut self, value: &str) {
        self.add(value);
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(value)
        {
            for (k, v) in map {
                let k = k.to_ascii_lowercase();
                if let serde_json::Value::String(s) = v {
                    let s = Zeroizing::new(s);
                    if SENSITIVE_KEYS.iter().any(|w| k.contains(w)) {
                        self.add(&s);
                    }
                }
            }
        }
    }

    /// Adds one value verbatim (and its JSON-escaped form, if different).
    pub fn add(&mut self, value: &str) {
        if value.len() < MIN_REDACTED_LEN || self.values.iter().any(|v| v.as_str() == value) {
            return;
        }
        self.values.push(Zeroizing::new(value.to_string()));
        if let Ok(escaped) = serde_json::to_string(value) {
            let inner = &escaped[1..escaped.len() - 1];
            if inner != value {
                self.values.push(Zeroizing::new(inner.to_string()));
            }
        }
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// `text` with every known value replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// Truncates to at most `max` bytes at a char boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated]", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values_and_json_fields() {
        let mut r = Redactor::default();
        r.add_secret(r#"{"username":"app","password":"hunter2!x","host":"db"}"#);
        r.add("ab");
        let s = r.redact("pw=hunter2!x user=app ab");
        assert_eq!(s, "pw=<redacted> user=app ab");
        let s = r.redact(r#"value {"username":"app","password":"hunter2!x","host":"db"}"#);
        assert_eq!(s, "value <redacted>");
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("ééé", 3), "é…[truncated]");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
