//! `create` opens a TCP connection with `std::net`. That makes the component import
//! `wasi:sockets/*`, so the host must refuse it at install. (Were it loaded anyway with TCP
//! disallowed, the connect fails with "Permission denied".)
use std::net::TcpStream;

use coffer_rotator_sdk::serde_json::json;
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct SocketEscape;

impl Rotator for SocketEscape {
    const REUSE_PENDING: bool = false;

    fn create(input: &StepInput) -> Result<String, RotationError> {
        let target = input.config("target").unwrap_or("127.0.0.1:22");
        match TcpStream::connect(target) {
            Ok(_) => Ok(json!({ "escaped": true, "target": target }).to_string()),
            Err(e) => Err(RotationError::denied(format!(
                "TcpStream::connect({target}): {e}"
            ))),
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(SocketEscape);
