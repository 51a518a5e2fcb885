//! Returns what a careless plugin might: `create` an empty value, `set` an error with a
//! 1 MiB message. `test` and `finish` succeed. The host must reject the empty value and bound
//! the message before storing or logging it.
//!
//! This plugin implements the generated `Guest` trait directly instead of `Rotator`, because
//! the SDK's glue already refuses empty values.
use coffer_rotator_sdk::bindings::Guest;
use coffer_rotator_sdk::{RotationError, StepInput};

struct Garbage;

impl Guest for Garbage {
    fn create_secret(_input: StepInput) -> Result<String, RotationError> {
        Ok(String::new())
    }

    fn set_secret(_input: StepInput) -> Result<(), RotationError> {
        Err(RotationError::internal("x".repeat(1 << 20)))
    }

    fn test_secret(_input: StepInput) -> Result<(), RotationError> {
        Ok(())
    }

    fn finish_secret(_input: StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

coffer_rotator_sdk::bindings::export!(Garbage with_types_in coffer_rotator_sdk::bindings);
