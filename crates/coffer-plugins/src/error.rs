//! Errors of the plugin host (loading, installing). Step failures use
//! [`coffer_core::rotation_api::StepFailure`] instead.

use std::path::PathBuf;

/// Why a plugin could not be loaded, installed, or the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// `plugin.toml` is missing, malformed or invalid.
    #[error("plugin manifest {}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The component imports an interface rotators may not use.
    #[error(
        "plugin manifest {}: the component imports `{interface}`, which rotators may not use \
         (allowed: coffer:rotator/*, wasi:cli/*, wasi:io/*, wasi:clocks/*, wasi:random/*; \
         use the `sql`/`http` imports of coffer:rotator instead of files or sockets)",
        manifest.display()
    )]
    ForbiddenImport {
        /// The manifest of the refused plugin.
        manifest: PathBuf,
        /// The offending import, e.g. `wasi:filesystem/types@0.2.6`.
        interface: String,
    },
    /// The `.wasm` file is not a valid component, or does not export the rotator world.
    #[error("plugin manifest {}: {message}", manifest.display())]
    Component {
        /// The manifest of the refused plugin.
        manifest: PathBuf,
        /// What wasmtime said.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A plugin of that name is already installed.
    #[error("plugin `{name}` is already installed in {}; remove that directory first", dir.display())]
    AlreadyInstalled {
        /// Plugin name.
        name: String,
        /// Where it is installed.
        dir: PathBuf,
    },
    /// The wasmtime engine or the plugin runtime could not be created.
    #[error("plugin engine: {0}")]
    Engine(String),
}

impl PluginError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
