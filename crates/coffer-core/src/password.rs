//! Random password generation with character-class rules (GetRandomPassword).

use rand::seq::SliceRandom;
use rand::Rng;
use zeroize::Zeroizing;

use coffer_api::RandomPasswordRequest;

use crate::{CoreError, Result};

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const PUNCT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Generates a password from the OS CSPRNG following AWS GetRandomPassword's rules:
/// length 1–4,096 (default 32); classes lower, upper, digits, punctuation (and space when
/// asked), minus excluded classes and characters; by default at least one character of
/// every included class.
pub fn generate_password(req: &RandomPasswordRequest) -> Result<Zeroizing<String>> {
    let len = req.password_length.unwrap_or(32) as usize;
    if !(1..=4096).contains(&len) {
        return Err(CoreError::InvalidParameter(
            "password_length must be 1–4096".into(),
        ));
    }
    let excluded = req.exclude_characters.as_deref().unwrap_or("");
    let mut classes: Vec<Vec<char>> = Vec::new();
    let mut add = |set: &str, on: bool| {
        if on {
            let chars: Vec<char> = set.chars().filter(|c| !excluded.contains(*c)).collect();
            if !chars.is_empty() {
                classes.push(chars);
            }
        }
    };
    add(LOWER, !req.exclude_lowercase);
    add(UPPER, !req.exclude_uppercase);
    add(DIGITS, !req.exclude_numbers);
    add(PUNCT, !req.exclude_punctuation);
    add(" ", req.include_space);
    if classes.is_empty() {
        return Err(CoreError::InvalidParameter(
            "the exclusions leave no characters to build a password from".into(),
        ));
    }
    let require_each = req.require_each_included_type.unwrap_or(true);
    if require_each && len < classes.len() {
        return Err(CoreError::InvalidParameter(format!(
            "password_length {len} is shorter than the {} required character classes",
            classes.len()
        )));
    }
    let all: Vec<char> = classes.iter().flatten().copied().collect();
    let mut rng = rand::rngs::OsRng;
    let mut out: Zeroizing<Vec<char>> = Zeroizing::new(Vec::with_capacity(len));
    if require_each {
        for class in &classes {
            out.push(class[rng.gen_range(0..class.len())]);
        }
    }
    while out.len() < len {
        out.push(all[rng.gen_range(0..all.len())]);
    }
    out.shuffle(&mut rng);
    Ok(Zeroizing::new(out.iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_every_class_and_length() {
        for _ in 0..50 {
            let p = generate_password(&RandomPasswordRequest::default()).unwrap();
            assert_eq!(p.chars().count(), 32);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| PUNCT.contains(c)));
        }
    }

    #[test]
    fn exclusions_are_honoured() {
        let req = RandomPasswordRequest {
            password_length: Some(200),
            exclude_punctuation: true,
            exclude_characters: Some("abc012".into()),
            ..Default::default()
        };
        let p = generate_password(&req).unwrap();
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!p.chars().any(|c| "abc012".contains(c)));
    }

    #[test]
    fn impossible_requests_fail() {
        let none = RandomPasswordRequest {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(generate_password(&none).is_err());
        let short = RandomPasswordRequest {
            password_length: Some(2),
            ..Default::default()
        };
        assert!(generate_password(&short).is_err());
        let zero = RandomPasswordRequest {
            password_length: Some(0),
            ..Default::default()
        };
        assert!(generate_password(&zero).is_err());
    }
}
