//! Host side of the `coffer:rotator` imports.

pub mod host;
pub mod http;
pub mod sql;

impl crate::bindings::coffer::rotator::types::Host for crate::state::StoreState {}
