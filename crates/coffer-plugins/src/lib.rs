//! wasmtime host for Coffer's WebAssembly rotators.
//!
//! A rotator is a WebAssembly component (`wasm32-wasip2`) implementing the
//! `coffer:rotator@0.1.0` world (`wit/rotator.wit`), shipped in its own directory with a
//! `plugin.toml` ([`manifest`]). [`PluginHost`] loads every plugin of the configured
//! directories, refuses components that import anything beyond `coffer:rotator/*` and the
//! harmless WASI interfaces, keeps a compile cache, and runs each rotation step in a fresh
//! sandboxed instance (fuel, memory and wall-clock limits) on its own tokio runtime,
//! implementing [`coffer_core::rotation_api::RotationRunner`].

pub mod bindings {
    //! Host bindings of `wit/rotator.wit`.
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "rotator",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "coffer:rotator/sql.connection": crate::caps::sql::SqlConn },
    });
}

pub mod caps;
pub mod egress;
pub mod engine;
pub mod error;
pub mod manifest;
mod output;
pub mod redact;
pub mod runner;
mod state;
#[doc(hidden)]
pub mod testing;

pub use engine::CompileSource;
pub use error::PluginError;
pub use manifest::Manifest;
pub use runner::{PluginHost, PluginHostConfig, PluginInfo};
pub use state::StoreState;
