//! Test and bench support: builds the `plugins/` workspace once per process and lays
//! out fixture directories the way [`crate::PluginHost`] expects them. Not a stable API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use coffer_core::rotation_api::{PluginSecretReader, RotationStep, RotationVersion, StepRequest};
use zeroize::Zeroizing;

use crate::manifest::MANIFEST_FILE;

/// Root of the repository (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run_build() -> Result<PathBuf, String> {
    let root = repo_root();
    let plugins = root.join("plugins");
    let mut notes = String::new();
    match Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => notes.push_str(&format!(
            "`rustup target add wasm32-wasip2` failed: {}\n",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => notes.push_str(&format!(
            "rustup is not available ({e}); the wasm32-wasip2 target must already be installed\n"
        )),
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        // The outer `cargo test` must not redirect or instrument the guest build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .output()
        .map_err(|e| format!("{notes}cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{notes}building the plugins failed ({cargo} build --release --manifest-path {}):\n{}\n{}",
            plugins.join("Cargo.toml").display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(plugins.join("target/wasm32-wasip2/release"))
}

/// Builds `plugins/` (release, wasm32-wasip2) once per process and returns the directory
/// holding the `.wasm` files. Panics with the build output if the build fails.
pub fn build_plugins() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(run_build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The source directory of plugin `name` (`plugins/<name>` or `plugins/test-plugins/<name>`).
pub fn plugin_source_dir(name: &str) -> PathBuf {
    let plugins = repo_root().join("plugins");
    let direct = plugins.join(name);
    if direct.join(MANIFEST_FILE).is_file() {
        direct
    } else {
        plugins.join("test-plugins").join(name)
    }
}

/// Copies the manifest and built wasm of one plugin into `<dest>/<name>/`.
pub fn lay_out_plugin(name: &str, dest: &Path) -> PathBuf {
    let release = build_plugins();
    let src = plugin_source_dir(name);
    let manifest_src = src.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_src)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest_src.display()));
    let table: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest_src.display()));
    let wasm = table
        .get("wasm")
        .and_then(|w| w.as_str())
        .unwrap_or_else(|| panic!("{}: no `wasm` field", manifest_src.display()))
        .to_string();
    let dir = dest.join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join(MANIFEST_FILE), text).unwrap_or_else(|e| panic!("{e}"));
    let from = release.join(&wasm);
    std::fs::copy(&from, dir.join(&wasm))
        .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    dir
}

/// A temporary directory with `<tmp>/<name>/plugin.toml + <wasm>` for each name.
pub fn plugin_fixture_dir(names: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for name in names {
        lay_out_plugin(name, tmp.path());
    }
    tmp
}

/// Rewrites `[limits]` of the manifest in `plugin_dir` (`None` keeps a value).
pub fn set_limits(
    plugin_dir: &Path,
    fuel: Option<u64>,
    memory_mib: Option<u64>,
    step_timeout_secs: Option<u64>,
) {
    let path = plugin_dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let limits = table
        .entry("limits")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(l) = limits.as_table_mut() {
        for (k, v) in [
            ("fuel", fuel),
            ("memory_mib", memory_mib),
            ("step_timeout_secs", step_timeout_secs),
        ] {
            if let Some(v) = v {
                l.insert(k.into(), toml::Value::Integer(v as i64));
            }
        }
    }
    std::fs::write(&path, toml::to_string(&table).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A [`PluginSecretReader`] over a fixed map; records what was asked.
#[derive(Default)]
pub struct FakeReader {
    /// name → value.
    pub values: BTreeMap<String, String>,
    /// (plugin, region, name) of every call.
    pub calls: std::sync::Mutex<Vec<(String, String, String)>>,
}

#[async_trait::async_trait]
impl PluginSecretReader for FakeReader {
    async fn read_for_plugin(
        &self,
        plugin: &str,
        region: &str,
        name: &str,
    ) -> Result<Zeroizing<String>, String> {
        if let Ok(mut c) = self.calls.lock() {
            c.push((plugin.into(), region.into(), name.into()));
        }
        self.values
            .get(name)
            .map(|v| Zeroizing::new(v.clone()))
            .ok_or_else(|| format!("secret `{name}` not found"))
    }
}

/// A request for `step` of `plugin` with CURRENT = `current`.
pub fn step_request(plugin: &str, step: RotationStep, current: &str) -> StepRequest {
    StepRequest {
        plugin: plugin.into(),
        step,
        region: "us-east-1".into(),
        secret_name: "test/secret".into(),
        token: "tok-1".into(),
        current: RotationVersion {
            id: "v1".into(),
            value: Zeroizing::new(current.into()),
        },
        pending: None,
        previous: None,
        config: BTreeMap::new(),
        granted_secrets: Vec::new(),
    }
}
