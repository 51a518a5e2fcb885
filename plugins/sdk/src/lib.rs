//! Write Coffer rotation plugins in Rust.
//!
//! A rotator is a WebAssembly component (target `wasm32-wasip2`) that implements the four steps
//! of the contract in `wit/rotator.wit` (`coffer:rotator@0.1.0`): `create`, `set`, `test` and
//! `finish`. The host owns the versions, the labels and the step journal; a plugin never writes
//! a secret. It returns the PENDING value from `create`, and the host stores it under the
//! rotation's `token` before it calls `set`. Every step may be called again after a crash, so
//! every step must be idempotent.
//!
//! ```ignore
//! use coffer_rotator_sdk::{self as sdk, Rotator, RotationError, StepInput};
//!
//! struct MyRotator;
//!
//! impl Rotator for MyRotator {
//!     fn create(input: &StepInput) -> Result<String, RotationError> {
//!         let mut secret = sdk::DbSecret::parse(&input.current.value)?;
//!         secret.password = sdk::generate_password(&sdk::PasswordPolicy::default())?;
//!         Ok(secret.to_json())
//!     }
//!     fn test(input: &StepInput) -> Result<(), RotationError> {
//!         let _pending = sdk::DbSecret::parse(&input.pending()?.value)?;
//!         Ok(())
//!     }
//! }
//!
//! sdk::export_rotator!(MyRotator);
//! ```
//!
//! Sandbox: a plugin has no file system, no sockets, no environment and no clock other than the
//! WASI clocks. Components that import `wasi:filesystem/*`, `wasi:sockets/*` or `wasi:http/*`
//! (e.g. because they use `std::fs` or `std::net`) are refused at install time. Reach databases
//! through [`sql`] and web APIs through [`http`]; the host checks every destination against the
//! plugin's manifest.

#![warn(missing_docs)]

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "rotator",
        pub_export_macro: true,
        default_bindings_module: "coffer_rotator_sdk::bindings",
        export_macro_name: "export",
    });
}

pub mod http;
pub mod log;
mod secret;
pub mod sql;

use std::marker::PhantomData;

pub use bindings::coffer::rotator::host::PasswordPolicy;
pub use bindings::coffer::rotator::types::{RotationError, StepInput, Version};
pub use secret::{
    alternate_username, create_db_pending, login_current_or_previous, parse_db_secret,
    pending_works, prepare_db_set, test_db_pending, DbSecret, DbSetInput, Strategy, CLONE_SUFFIX,
};

/// Re-exported so that plugins need no direct `serde_json` dependency for simple JSON work.
pub use serde_json;

/// A rotation plugin. Implement this on a unit struct and export it with [`export_rotator!`].
///
/// Each step gets a fresh instance: keep no state between calls (statics are reset).
pub trait Rotator {
    /// When `true` (the default), a `create` call that already has a PENDING version (a retry
    /// after a crash, or after the host stored the value) returns that value unchanged and
    /// [`Rotator::create`] is not called. Set it to `false` to see every call.
    const REUSE_PENDING: bool = true;

    /// Produce the PENDING value from `input.current`. Must not change the target system in a
    /// way that breaks CURRENT (API-key rotators mint the new key here; see
    /// `plugins/README.md` for making that retry-safe with `input.token`).
    fn create(input: &StepInput) -> Result<String, RotationError>;

    /// Apply PENDING (`input.pending()`) to the target. It must be a no-op when PENDING
    /// already works. Default: nothing to do.
    fn set(input: &StepInput) -> Result<(), RotationError> {
        let _ = input;
        Ok(())
    }

    /// Prove that PENDING works at the target.
    fn test(input: &StepInput) -> Result<(), RotationError>;

    /// Clean up after a successful test (e.g. revoke the old API key). The host moves the
    /// labels after this returns. Default: nothing to do.
    fn finish(input: &StepInput) -> Result<(), RotationError> {
        let _ = input;
        Ok(())
    }
}

/// Exports a [`Rotator`] as the component's `create-secret`, `set-secret`, `test-secret` and
/// `finish-secret`. Use it once per crate, at the crate root or in any module.
///
/// ```ignore
/// coffer_rotator_sdk::export_rotator!(MyRotator);
/// ```
#[macro_export]
macro_rules! export_rotator {
    ($ty:ty) => {
        #[doc(hidden)]
        type __CofferRotatorExport = $crate::Export<$ty>;
        $crate::bindings::export!(__CofferRotatorExport with_types_in $crate::bindings);
    };
}

/// The glue between a [`Rotator`] and the generated component exports. Use
/// [`export_rotator!`] rather than naming this type.
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Rotator> bindings::Guest for Export<T> {
    fn create_secret(input: StepInput) -> Result<String, RotationError> {
        if T::REUSE_PENDING {
            if let Some(pending) = &input.pending {
                return Ok(pending.value.clone());
            }
        }
        let value = T::create(&input)?;
        if value.is_empty() {
            return Err(RotationError::internal(
                "create produced an empty secret value",
            ));
        }
        Ok(value)
    }

    fn set_secret(input: StepInput) -> Result<(), RotationError> {
        T::set(&input)
    }

    fn test_secret(input: StepInput) -> Result<(), RotationError> {
        T::test(&input)
    }

    fn finish_secret(input: StepInput) -> Result<(), RotationError> {
        T::finish(&input)
    }
}

// ---------------------------------------------------------------------------------------------
// Step input helpers
// ---------------------------------------------------------------------------------------------

impl StepInput {
    /// The value of a rotation config key (the non-secret `--config key=value` parameters).
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The PENDING version, or an `internal` error when the host did not pass one (it always
    /// does for `set`, `test` and `finish`).
    pub fn pending(&self) -> Result<&Version, RotationError> {
        self.pending
            .as_ref()
            .ok_or_else(|| RotationError::internal("the step input carries no PENDING version"))
    }
}

/// The value of a rotation config key, see [`StepInput::config`].
pub fn config<'a>(input: &'a StepInput, key: &str) -> Option<&'a str> {
    input.config(key)
}

/// Parses a rotation config key that selects one of `allowed` (matched case-insensitively),
/// returning `default` when the key is absent and `invalid-secret` when the value is unknown.
pub fn config_choice<'a>(
    input: &StepInput,
    key: &str,
    allowed: &[&'a str],
    default: &'a str,
) -> Result<&'a str, RotationError> {
    match input.config(key) {
        None => Ok(default),
        Some(v) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(v.trim()))
            .copied()
            .ok_or_else(|| {
                RotationError::invalid_secret(format!(
                    "rotation config `{key}` = {v:?} is not one of {}",
                    allowed.join(", ")
                ))
            }),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

impl RotationError {
    /// The secret's value is not what the rotator expects (permanent).
    pub fn invalid_secret(msg: impl Into<String>) -> Self {
        Self::InvalidSecret(msg.into())
    }
    /// A capability was refused by the manifest or a policy (permanent).
    pub fn denied(msg: impl Into<String>) -> Self {
        Self::Denied(msg.into())
    }
    /// The target could not be reached (transient).
    pub fn unreachable(msg: impl Into<String>) -> Self {
        Self::Unreachable(msg.into())
    }
    /// The target refused the credentials (transient).
    pub fn auth_failed(msg: impl Into<String>) -> Self {
        Self::AuthFailed(msg.into())
    }
    /// The target was reached but refused the change (permanent).
    pub fn target_refused(msg: impl Into<String>) -> Self {
        Self::TargetRefused(msg.into())
    }
    /// `test` could not prove that PENDING works (transient).
    pub fn verification_failed(msg: impl Into<String>) -> Self {
        Self::VerificationFailed(msg.into())
    }
    /// A bug in the plugin (permanent).
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// The kebab-case name of the variant, as in the WIT (`auth-failed`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidSecret(_) => "invalid-secret",
            Self::Denied(_) => "denied",
            Self::Unreachable(_) => "unreachable",
            Self::AuthFailed(_) => "auth-failed",
            Self::TargetRefused(_) => "target-refused",
            Self::VerificationFailed(_) => "verification-failed",
            Self::Internal(_) => "internal",
        }
    }

    /// The message carried by the error.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidSecret(m)
            | Self::Denied(m)
            | Self::Unreachable(m)
            | Self::AuthFailed(m)
            | Self::TargetRefused(m)
            | Self::VerificationFailed(m)
            | Self::Internal(m) => m,
        }
    }

    /// The same kind of error with `context: ` put in front of the message.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        let wrap = |m: String| format!("{context}: {m}");
        match self {
            Self::InvalidSecret(m) => Self::InvalidSecret(wrap(m)),
            Self::Denied(m) => Self::Denied(wrap(m)),
            Self::Unreachable(m) => Self::Unreachable(wrap(m)),
            Self::AuthFailed(m) => Self::AuthFailed(wrap(m)),
            Self::TargetRefused(m) => Self::TargetRefused(wrap(m)),
            Self::VerificationFailed(m) => Self::VerificationFailed(wrap(m)),
            Self::Internal(m) => Self::Internal(wrap(m)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Host services
// ---------------------------------------------------------------------------------------------

impl Default for PasswordPolicy {
    /// AWS's defaults: 32 characters, every character type, at least one of each. The host
    /// also excludes the characters that break connection strings (`:/@"'\` and space).
    fn default() -> Self {
        PasswordPolicy {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            require_each_included_type: true,
            allow_unsafe: false,
        }
    }
}

impl PasswordPolicy {
    /// The default policy adjusted by the rotation config keys `password_length`,
    /// `exclude_characters` and `exclude_punctuation` (`true`/`false`).
    pub fn from_config(input: &StepInput) -> Result<Self, RotationError> {
        let mut p = PasswordPolicy::default();
        if let Some(len) = input.config("password_length") {
            p.length = len.trim().parse().map_err(|_| {
                RotationError::invalid_secret(format!(
                    "rotation config `password_length` = {len:?} is not a number"
                ))
            })?;
        }
        if let Some(ex) = input.config("exclude_characters") {
            p.exclude_characters = ex.to_string();
        }
        if let Some(ex) = input.config("exclude_punctuation") {
            p.exclude_punctuation = matches!(ex.trim(), "true" | "1" | "yes");
        }
        Ok(p)
    }
}

/// A fresh random password from the host's generator (the GetRandomPassword algorithm).
pub fn generate_password(policy: &PasswordPolicy) -> Result<String, RotationError> {
    bindings::coffer::rotator::host::generate_password(policy)
        .map_err(|e| RotationError::internal(format!("generate-password: {e}")))
}

/// Cryptographically secure random bytes (at most 65536 per call).
pub fn random_bytes(len: u32) -> Vec<u8> {
    bindings::coffer::rotator::host::random_bytes(len)
}

/// The CURRENT value of another secret (e.g. the superuser secret of the alternating-users
/// strategy). Needs the name in the manifest's `capabilities.secrets`, a grant in the rotation
/// config (`--grant-secret`) and a Cedar policy permitting it; otherwise `denied`.
pub fn get_secret(name: &str) -> Result<String, RotationError> {
    bindings::coffer::rotator::host::get_secret(name)
        .map_err(|e| RotationError::denied(format!("get-secret {name:?}: {e}")))
}

/// Seconds since the Unix epoch, from the host.
pub fn now() -> u64 {
    bindings::coffer::rotator::host::now()
}
