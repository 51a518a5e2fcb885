//! `create` sends `GET http://169.254.169.254/latest/meta-data/` (or rotation config `url`),
//! which its manifest does not list. The host must refuse it before connecting: `create`
//! fails with the host's error mapped by the SDK (`denied(<host's message>)` expected).
//! Should a response come back, it fails with `internal("escaped: …")`.
use coffer_rotator_sdk::http::Request;
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct HttpEscape;

impl Rotator for HttpEscape {
    const REUSE_PENDING: bool = false;

    fn create(input: &StepInput) -> Result<String, RotationError> {
        let url = input
            .config("url")
            .unwrap_or("http://169.254.169.254/latest/meta-data/");
        match Request::get(url).send() {
            Ok(resp) => Err(RotationError::internal(format!(
                "escaped: HTTP {} from {url}",
                resp.status
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(HttpEscape);
