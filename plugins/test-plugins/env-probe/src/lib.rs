//! `create` returns `{"env_vars": N, "args": M}`: what the sandbox exposes (both should be 0).
use coffer_rotator_sdk::serde_json::json;
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct EnvProbe;

impl Rotator for EnvProbe {
    const REUSE_PENDING: bool = false;

    fn create(_input: &StepInput) -> Result<String, RotationError> {
        Ok(json!({
            "env_vars": std::env::vars_os().count(),
            "args": std::env::args_os().count(),
        })
        .to_string())
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(EnvProbe);
