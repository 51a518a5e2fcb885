//! `create` opens SQL to 10.255.255.1:5432 (or rotation config `target` = `host:port`),
//! which its manifest does not list. The host must refuse it before connecting: `create`
//! fails with the host's error mapped by the SDK (`denied(<host's message>)` expected).
//! Should the connection open, it fails with `internal("escaped: …")`.
use coffer_rotator_sdk::sql::{ConnectOptions, Connection, Engine, TlsMode};
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct SqlEscape;

impl Rotator for SqlEscape {
    const REUSE_PENDING: bool = false;

    fn create(input: &StepInput) -> Result<String, RotationError> {
        let target = input.config("target").unwrap_or("10.255.255.1:5432");
        let (host, port) = target.rsplit_once(':').unwrap_or((target, "5432"));
        let options = ConnectOptions {
            engine: Engine::Postgres,
            host: host.to_string(),
            port: port.parse().unwrap_or(5432),
            database: None,
            user: "postgres".into(),
            password: "not-a-real-password".into(),
            tls: TlsMode::Disable,
        };
        match Connection::open(&options) {
            Ok(_) => Err(RotationError::internal(format!(
                "escaped: connected to {target}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(SqlEscape);
