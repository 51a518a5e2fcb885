//! Coffer rotation plugin `{{name}}`.
//!
//! The four steps run in order for one rotation, each in a fresh sandbox, and each may be
//! called again after a crash: keep every step idempotent. See the plugin author's guide
//! (`plugins/README.md` in the Coffer repository).

use coffer_rotator_sdk::serde_json::{self, Value};
use coffer_rotator_sdk::{self as sdk, log, PasswordPolicy, RotationError, Rotator, StepInput};

struct Plugin;

impl Rotator for Plugin {
    /// Build the PENDING value from CURRENT. Do not touch the target in a way that breaks
    /// CURRENT. (A retry that already has PENDING never gets here: the SDK returns it.)
    fn create(input: &StepInput) -> Result<String, RotationError> {
        let mut value: Value = serde_json::from_str(&input.current.value)
            .map_err(|_| RotationError::invalid_secret("CURRENT is not JSON"))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| RotationError::invalid_secret("CURRENT is not a JSON object"))?;
        let password = sdk::generate_password(&PasswordPolicy::from_config(input)?)?;
        object.insert("password".into(), Value::String(password));
        Ok(value.to_string())
    }

    /// Apply PENDING at the target. First check whether PENDING already works (then return
    /// Ok): the host may call this again after a crash.
    fn set(input: &StepInput) -> Result<(), RotationError> {
        let _pending = input.pending()?;
        // TODO: use sdk::sql::Connection or sdk::http::Request to change the credential.
        log::info("{{name}}: set (nothing to do yet)");
        Ok(())
    }

    /// Prove PENDING works, by logging in or calling an authenticated endpoint with it.
    fn test(input: &StepInput) -> Result<(), RotationError> {
        let _pending = input.pending()?;
        // TODO: return Err(RotationError::verification_failed(..)) when it does not work.
        Ok(())
    }

    /// Clean up (e.g. revoke the old key). The host moves the labels afterwards.
    fn finish(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(Plugin);
