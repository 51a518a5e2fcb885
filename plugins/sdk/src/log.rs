//! Logging to the server log, under the plugin's name.
//!
//! The host bounds the size of each line and redacts the values of the versions in the step
//! input, but do not rely on that: never log a secret value, a password or a connection
//! option set (`ConnectOptions`'s `Debug` prints the password).

use crate::bindings::coffer::rotator::host::{self, Level};

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    host::log(Level::Debug, message.as_ref());
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    host::log(Level::Info, message.as_ref());
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    host::log(Level::Warn, message.as_ref());
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    host::log(Level::Error, message.as_ref());
}
