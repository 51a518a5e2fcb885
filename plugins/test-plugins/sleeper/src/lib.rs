//! Never returns, in two ways:
//! - `create` (rotation config `mode` = `busy`, the default): calls the host's `now()` in an
//!   endless loop. CPU-bound, with a host call per iteration: fuel or the epoch deadline must
//!   stop it even though it keeps leaving wasm.
//! - `create` with `mode` = `sleep`, and `set` always: `std::thread::sleep` forever, blocked
//!   in WASI `poll` on a monotonic-clock pollable. Burns no fuel: only the step's wall-clock
//!   timeout (`limits.step_timeout_secs`) stops it.
use std::time::Duration;

use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct Sleeper;

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

impl Rotator for Sleeper {
    const REUSE_PENDING: bool = false;

    fn create(input: &StepInput) -> Result<String, RotationError> {
        if input.config("mode") == Some("sleep") {
            sleep_forever();
        }
        let mut last = 0;
        loop {
            last = std::hint::black_box(sdk::now().max(last));
        }
    }

    fn set(_input: &StepInput) -> Result<(), RotationError> {
        sleep_forever();
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(Sleeper);
