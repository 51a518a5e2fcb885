//! A rotator without I/O, for host benchmarks and state-machine tests.
//! - create: `<CURRENT value>-rotated-<token>` (a retry returns PENDING, as every SDK rotator)
//! - set / test / finish: log one line and succeed.
use coffer_rotator_sdk::{self as sdk, log, RotationError, Rotator, StepInput};

struct Echo;

impl Rotator for Echo {
    fn create(input: &StepInput) -> Result<String, RotationError> {
        Ok(format!("{}-rotated-{}", input.current.value, input.token))
    }

    fn set(input: &StepInput) -> Result<(), RotationError> {
        log::info(format!(
            "echo: set {} version {}",
            input.secret_name, input.token
        ));
        Ok(())
    }

    fn test(input: &StepInput) -> Result<(), RotationError> {
        log::info(format!(
            "echo: test {} version {}",
            input.secret_name, input.token
        ));
        Ok(())
    }

    fn finish(input: &StepInput) -> Result<(), RotationError> {
        log::info(format!(
            "echo: finish {} version {}",
            input.secret_name, input.token
        ));
        Ok(())
    }
}

sdk::export_rotator!(Echo);
