//! `create` spins forever without calling the host: only fuel or the epoch deadline stop it.
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct Looping;

impl Rotator for Looping {
    const REUSE_PENDING: bool = false;

    fn create(_input: &StepInput) -> Result<String, RotationError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(Looping);
