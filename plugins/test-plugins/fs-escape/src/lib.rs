//! `create` reads /etc/passwd with `std::fs`. That makes the component import
//! `wasi:filesystem/*`, so the host must refuse it at install. (Were it loaded anyway, with no
//! preopens the read fails with "No such file or directory (os error 44)".)
use coffer_rotator_sdk::serde_json::json;
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct FsEscape;

impl Rotator for FsEscape {
    const REUSE_PENDING: bool = false;

    fn create(_input: &StepInput) -> Result<String, RotationError> {
        match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Ok(json!({ "escaped": true, "bytes": text.len() }).to_string()),
            Err(e) => Err(RotationError::denied(format!(
                "std::fs::read_to_string(/etc/passwd): {e}"
            ))),
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(FsEscape);
