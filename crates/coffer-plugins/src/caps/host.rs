//! `coffer:rotator/host`: log, random-bytes, generate-password, now, get-secret.

use coffer_api::RandomPasswordRequest;
use rand::RngCore;

use crate::bindings::coffer::rotator::host::{Host, Level, PasswordPolicy};
use crate::redact::truncate;
use crate::state::StoreState;

/// Bytes kept of one log line.
pub const MAX_LOG_LINE: usize = 4096;
/// Log lines kept per step.
pub const MAX_LOG_LINES: u32 = 256;
/// Largest `random-bytes` request.
pub const MAX_RANDOM_BYTES: u32 = 65536;
/// Characters that break connection strings, excluded unless `allow-unsafe`.
pub const UNSAFE_PASSWORD_CHARS: &str = ":/@\"'\\ ";

/// Target of everything a guest logs or prints.
pub const GUEST_TARGET: &str = "coffer_plugins::guest";

pub(crate) fn password_request(policy: &PasswordPolicy) -> Result<RandomPasswordRequest, String> {
    let length = if policy.length == 0 {
        32
    } else {
        policy.length
    };
    if !(4..=4096).contains(&length) {
        return Err(format!(
            "password length {length} is out of range (4-4096, or 0 for the default of 32)"
        ));
    }
    let mut exclude = policy.exclude_characters.clone();
    if !policy.allow_unsafe {
        exclude.push_str(UNSAFE_PASSWORD_CHARS);
    }
    Ok(RandomPasswordRequest {
        password_length: Some(length),
        exclude_characters: Some(exclude),
        exclude_numbers: policy.exclude_numbers,
        exclude_punctuation: policy.exclude_punctuation,
        exclude_uppercase: policy.exclude_uppercase,
        exclude_lowercase: policy.exclude_lowercase,
        include_space: policy.allow_unsafe && !policy.exclude_characters.contains(' '),
        require_each_included_type: Some(policy.require_each_included_type),
    })
}

impl Host for StoreState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let step = &mut self.step;
        step.log_lines += 1;
        if step.log_lines > MAX_LOG_LINES {
            if step.log_lines == MAX_LOG_LINES + 1 {
                let plugin = step.manifest.name.clone();
                tracing::warn!(target: GUEST_TARGET, plugin = %plugin, "log limit of {MAX_LOG_LINES} lines per step reached; dropping the rest");
                step.record(
                    "log",
                    format!("warn: log limit of {MAX_LOG_LINES} lines reached"),
                );
            }
            return Ok(());
        }
        let line = step.redactor.redact(&truncate(&message, MAX_LOG_LINE));
        let plugin = step.manifest.name.as_str();
        match level {
            Level::Debug => tracing::debug!(target: GUEST_TARGET, plugin = %plugin, "{line}"),
            Level::Info => tracing::info!(target: GUEST_TARGET, plugin = %plugin, "{line}"),
            Level::Warn => tracing::warn!(target: GUEST_TARGET, plugin = %plugin, "{line}"),
            Level::Error => tracing::error!(target: GUEST_TARGET, plugin = %plugin, "{line}"),
        }
        let lvl = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        step.record("log", format!("{lvl}: {line}"));
        Ok(())
    }

    async fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("random-bytes: asked for {len} bytes, the limit is {MAX_RANDOM_BYTES}");
        }
        let mut buf = vec![0u8; len as usize];
        rand::rngs::OsRng.fill_bytes(&mut buf);
        Ok(buf)
    }

    async fn generate_password(
        &mut self,
        policy: PasswordPolicy,
    ) -> wasmtime::Result<Result<String, String>> {
        let req = match password_request(&policy) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        match coffer_core::generate_password(&req) {
            Ok(p) => {
                self.step.redactor.add(&p);
                Ok(Ok(p.to_string()))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    async fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0))
    }

    async fn get_secret(&mut self, name: String) -> wasmtime::Result<Result<String, String>> {
        let step = &mut self.step;
        let shown = truncate(&name, 256);
        if !step.granted_secrets.contains(&name) {
            let msg = format!(
                "denied: capability `get-secret` for `{shown}`: the secret's rotation config does not grant it to plugin `{}` (manifest {})",
                step.manifest.name,
                step.manifest_path()
            );
            step.record(
                "secret",
                format!("denied {shown}: not granted by the rotation config"),
            );
            return Ok(Err(msg));
        }
        if !step.manifest.allows_secret(&name) {
            let msg = format!(
                "denied: capability `get-secret` for `{shown}`: not listed in capabilities.secrets of {}",
                step.manifest_path()
            );
            step.record("secret", format!("denied {shown}: not in the manifest"));
            return Ok(Err(msg));
        }
        let reader = step.reader.clone();
        let plugin = step.manifest.name.clone();
        let region = step.region.clone();
        // Host calls are polled on the guest's fiber, whose stack is small and which
        // libraries that check their remaining stack (the policy engine does) reject:
        // run the read as a task of its own.
        let read = {
            let name = name.clone();
            tokio::spawn(async move { reader.read_for_plugin(&plugin, &region, &name).await })
        };
        let result = read
            .await
            .unwrap_or_else(|e| Err(format!("the secret read did not finish: {e}")));
        match result {
            Ok(value) => {
                self.step.redactor.add_secret(&value);
                self.step.record("secret", format!("read {shown}"));
                Ok(Ok(value.to_string()))
            }
            Err(why) => {
                let why = self.step.redactor.redact(&why);
                self.step.record("secret", format!("denied {shown}: {why}"));
                Ok(Err(format!("denied: get-secret `{shown}`: {why}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            length: 0,
            exclude_characters: "x".into(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            require_each_included_type: true,
            allow_unsafe: false,
        }
    }

    #[test]
    fn passwords_exclude_unsafe_characters() {
        let req = password_request(&policy()).unwrap();
        for _ in 0..20 {
            let p = coffer_core::generate_password(&req).unwrap();
            assert_eq!(p.len(), 32);
            assert!(
                !p.chars()
                    .any(|c| UNSAFE_PASSWORD_CHARS.contains(c) || c == 'x'),
                "{}",
                *p
            );
        }
        let mut unsafe_ok = policy();
        unsafe_ok.allow_unsafe = true;
        let req = password_request(&unsafe_ok).unwrap();
        assert!(!req.exclude_characters.unwrap().contains('@'));
        let mut short = policy();
        short.length = 3;
        assert!(password_request(&short).is_err());
    }
}
