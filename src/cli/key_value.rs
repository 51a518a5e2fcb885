//! `KEY=VALUE` arguments: tags (`--tag`, `coffer secret tag`) and encryption contexts
//! (`--context`).

use std::collections::BTreeMap;

use anyhow::bail;

/// One `KEY=VALUE` argument. The value may be empty and may itself contain `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Before the first `=`.
    pub key: String,
    /// After the first `=`.
    pub value: String,
}

/// Parses `KEY=VALUE`; used as a clap value parser, so the message completes clap's
/// "invalid value 'x' for '--tag <KEY=VALUE>': …".
pub fn parse(arg: &str) -> Result<KeyValue, String> {
    match arg.split_once('=') {
        Some(("", _)) => Err("the key before '=' is empty; expected KEY=VALUE".to_owned()),
        Some((key, value)) => Ok(KeyValue {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
        None => Err("no '=' found; expected KEY=VALUE".to_owned()),
    }
}

/// Collects pairs into a map; a key given twice is an error (`what` names the option in
/// the message, e.g. `"--tag"`).
pub fn into_map(pairs: Vec<KeyValue>, what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for KeyValue { key, value } in pairs {
        if map.contains_key(&key) {
            bail!("{what} key {key:?} is given more than once");
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// [`into_map`], or `None` when no pair was given (so the field is left out of the request).
pub fn into_optional_map(
    pairs: Vec<KeyValue>,
    what: &str,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if pairs.is_empty() {
        Ok(None)
    } else {
        into_map(pairs, what).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn splits_at_the_first_equals_sign() {
        assert_eq!(parse("env=prod"), Ok(kv("env", "prod")));
        assert_eq!(parse("url=a=b"), Ok(kv("url", "a=b")));
        assert_eq!(parse("empty="), Ok(kv("empty", "")));
    }

    #[test]
    fn input_without_a_key_is_refused_clearly() {
        assert!(parse("novalue").unwrap_err().contains("expected KEY=VALUE"));
        assert!(parse("=v").unwrap_err().contains("key before '=' is empty"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = into_map(vec![kv("a", "1"), kv("a", "2")], "--context").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--context key \"a\" is given more than once"
        );
    }

    #[test]
    fn no_pairs_means_no_map() {
        assert_eq!(into_optional_map(vec![], "--tag").unwrap(), None);
        let map = into_optional_map(vec![kv("b", "2"), kv("a", "1")], "--tag")
            .unwrap()
            .unwrap();
        assert_eq!(
            map.into_iter().collect::<Vec<_>>(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }
}
