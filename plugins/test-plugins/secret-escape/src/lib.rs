//! `create` reads the secret `prod/not-granted` (or rotation config `secret`), which its
//! manifest does not list. Expected: `denied("get-secret \"prod/not-granted\": <host's
//! message>")`. Should the read succeed, it fails with `internal("escaped: …")` (without the
//! value).
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct SecretEscape;

impl Rotator for SecretEscape {
    const REUSE_PENDING: bool = false;

    fn create(input: &StepInput) -> Result<String, RotationError> {
        let name = input.config("secret").unwrap_or("prod/not-granted");
        match sdk::get_secret(name) {
            Ok(value) => Err(RotationError::internal(format!(
                "escaped: read {} bytes of {name:?}",
                value.len()
            ))),
            Err(e) => Err(e),
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(SecretEscape);
