//! `create` panics. With `panic = "abort"` that is a wasm trap (`unreachable`); the host
//! must report it as a plugin failure and never reuse the instance.
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct Panicker;

impl Rotator for Panicker {
    const REUSE_PENDING: bool = false;

    fn create(input: &StepInput) -> Result<String, RotationError> {
        panic!(
            "panicker: deliberate panic in create for {}",
            input.secret_name
        );
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(Panicker);
