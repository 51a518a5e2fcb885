//! `coffer plugin …`: scaffold, build, list, install and try out rotation plugins, offline
//! (no server needed). Loading and running goes through [`coffer_plugins::PluginHost`],
//! the same host the server uses, so what works here works there.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use coffer_core::rotation_api::{
    PluginSecretReader, RotationRunner, RotationStep, RotationVersion, StepRequest,
};
use coffer_plugins::manifest::MANIFEST_FILE;
use coffer_plugins::{Manifest, PluginHost, PluginHostConfig, PluginInfo};
use zeroize::Zeroizing;

use super::key_value::{self, KeyValue};
use super::output::{self, OutputMode};

/// `coffer plugin`.
#[derive(Args, Debug)]
pub struct PluginArgs {
    /// Output format [default: text].
    #[arg(
        id = "plugin_output",
        long = "output",
        global = true,
        value_enum,
        value_name = "FORMAT"
    )]
    pub output: Option<OutputMode>,
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The plugin commands.
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Scaffold a working rotator crate with its manifest in ./NAME.
    New(NewArgs),
    /// Build a plugin crate for wasm32-wasip2 and put the .wasm next to its plugin.toml.
    Build(BuildArgs),
    /// Build (unless --no-build), check and install a plugin into the server's plugin directory.
    Install(InstallArgs),
    /// Load every plugin of the plugin directories and show what loaded and what did not.
    List(ListArgs),
    /// Run one step (or all four) of a plugin against its target, outside the server.
    Run(RunArgs),
}

/// `coffer plugin new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// Plugin name: lower-case letters, digits and dashes.
    pub name: String,
    /// Parent directory [default: .].
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Depend on this coffer-rotator-sdk checkout instead of a vendored copy.
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// `coffer plugin build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The plugin crate (holding Cargo.toml and plugin.toml) [default: .].
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// Where the server's plugins live.
#[derive(Args, Debug)]
pub struct PluginDirs {
    /// The server's data directory; its plugins are in <data-dir>/plugins.
    #[arg(long, env = "COFFER_DATA_DIR", default_value = "coffer-data")]
    pub data_dir: PathBuf,
    /// More plugin directories (as the server's --plugin-dir).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginDirs {
    fn installed(&self) -> PathBuf {
        self.data_dir.join("plugins")
    }

    fn all(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.installed()];
        dirs.extend(self.plugin_dirs.iter().cloned());
        dirs
    }

    fn cache(&self) -> PathBuf {
        self.data_dir.join("plugin-cache")
    }
}

/// `coffer plugin install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The plugin: a crate to build, or a directory with plugin.toml and the .wasm.
    pub dir: PathBuf,
    /// Install the .wasm already next to plugin.toml instead of building first.
    #[arg(long)]
    pub no_build: bool,
    #[command(flatten)]
    pub dirs: PluginDirs,
}

/// `coffer plugin list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub dirs: PluginDirs,
}

/// Which step `coffer plugin run` runs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepChoice {
    /// create
    Create,
    /// set
    Set,
    /// test
    Test,
    /// finish
    Finish,
    /// create, set, test, finish in order
    All,
}

/// `coffer plugin run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Step to run.
    #[arg(value_enum)]
    pub step: StepChoice,
    /// The plugin: a directory with plugin.toml and the built .wasm (`coffer plugin build`).
    #[arg(long, default_value = ".")]
    pub plugin: PathBuf,
    /// File holding the CURRENT secret value (e.g. AWS's RDS JSON shape).
    #[arg(long, value_name = "FILE")]
    pub secret_json: PathBuf,
    /// File holding the PENDING value (for set/test/finish; `all` makes its own).
    #[arg(long, value_name = "FILE")]
    pub pending_json: Option<PathBuf>,
    /// Rotation config parameter KEY=VALUE (repeatable), e.g. strategy=alternating-users.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub config: Vec<KeyValue>,
    /// Another secret the plugin may read: NAME=FILE (repeatable).
    #[arg(long = "grant-secret", value_name = "NAME=FILE", value_parser = key_value::parse)]
    pub grants: Vec<KeyValue>,
    /// Secret name shown to the plugin.
    #[arg(long, default_value = "dev/plugin-run")]
    pub name: String,
}

/// Runs a `coffer plugin` command.
pub async fn run(args: PluginArgs, global_output: OutputMode) -> anyhow::Result<()> {
    let mode = args.output.unwrap_or(global_output);
    match args.command {
        PluginCommand::New(a) => new_plugin(a, mode),
        PluginCommand::Build(a) => {
            let wasm = build(&a.dir)?;
            output::done(mode, &format!("built {}", wasm.display()))
        }
        PluginCommand::Install(a) => install(a, mode).await,
        PluginCommand::List(a) => list(a, mode).await,
        PluginCommand::Run(a) => run_steps(a, mode).await,
    }
}

// ------------------------------------------------------------------------------- new

const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../examples/rotator-template/Cargo.toml"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../examples/rotator-template/.cargo/config.toml"),
    ),
    (
        "plugin.toml",
        include_str!("../../examples/rotator-template/plugin.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../examples/rotator-template/src/lib.rs"),
    ),
    (
        "README.md",
        include_str!("../../examples/rotator-template/README.md"),
    ),
    ("wit/rotator.wit", include_str!("../../wit/rotator.wit")),
    (".gitignore", "/target\n*.wasm\n"),
];

/// The SDK, vendored into a new plugin so it builds without a Coffer checkout. Its
/// `wit_bindgen::generate!` path `../../wit` resolves to the plugin's `wit/`.
const VENDORED_SDK: &[(&str, &str)] = &[
    (
        "vendor/coffer-rotator-sdk/src/lib.rs",
        include_str!("../../plugins/sdk/src/lib.rs"),
    ),
    (
        "vendor/coffer-rotator-sdk/src/http.rs",
        include_str!("../../plugins/sdk/src/http.rs"),
    ),
    (
        "vendor/coffer-rotator-sdk/src/log.rs",
        include_str!("../../plugins/sdk/src/log.rs"),
    ),
    (
        "vendor/coffer-rotator-sdk/src/secret.rs",
        include_str!("../../plugins/sdk/src/secret.rs"),
    ),
    (
        "vendor/coffer-rotator-sdk/src/sql.rs",
        include_str!("../../plugins/sdk/src/sql.rs"),
    ),
    (
        "vendor/coffer-rotator-sdk/Cargo.toml",
        "[package]\nname = \"coffer-rotator-sdk\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\nwit-bindgen = \"=0.63.0\"\n\
         serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n",
    ),
];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn new_plugin(a: NewArgs, mode: OutputMode) -> anyhow::Result<()> {
    if !valid_name(&a.name) {
        bail!(
            "invalid plugin name {:?}: use 1-64 lower-case letters, digits and dashes",
            a.name
        );
    }
    let root = a.dir.join(&a.name);
    if root.exists() {
        bail!(
            "{} already exists; pick another name or --dir",
            root.display()
        );
    }
    let crate_name = format!("coffer_rotator_{}", a.name.replace('-', "_"));
    let sdk_path = match &a.sdk {
        Some(p) => std::fs::canonicalize(p)
            .with_context(|| format!("--sdk {}", p.display()))?
            .display()
            .to_string(),
        None => "vendor/coffer-rotator-sdk".to_string(),
    };
    let mut files: Vec<(&str, &str)> = TEMPLATE.to_vec();
    if a.sdk.is_none() {
        files.extend_from_slice(VENDORED_SDK);
    }
    for (rel, body) in files {
        let text = body
            .replace("{{name}}", &a.name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{sdk_path}}", &sdk_path);
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    output::done(
        mode,
        &format!(
            "created {}: edit src/lib.rs and plugin.toml, then `coffer plugin build {}`",
            root.display(),
            root.display()
        ),
    )
}

// ----------------------------------------------------------------------------- build

/// Builds the crate in `dir` for wasm32-wasip2 (release) and copies the component next to
/// `plugin.toml` under the name the manifest gives. Returns the copied file.
fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::load(&dir.join(MANIFEST_FILE))
        .with_context(|| format!("reading {}", dir.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo}"))?;
    if !out.status.success() {
        bail!(
            "cargo build failed in {} (is the target installed? `rustup target add wasm32-wasip2`)",
            dir.display()
        );
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                wasm = Some(PathBuf::from(f));
            }
        }
    }
    let wasm = wasm.context("cargo built no .wasm: is the crate a cdylib?")?;
    let dest = manifest.wasm_path.clone();
    if wasm != dest {
        std::fs::copy(&wasm, &dest)
            .with_context(|| format!("copying {} to {}", wasm.display(), dest.display()))?;
    }
    Ok(dest)
}

// ------------------------------------------------------------------- install and list

/// A reader for offline commands: only the secrets given on the command line.
struct FileSecrets(BTreeMap<String, Zeroizing<String>>);

#[async_trait::async_trait]
impl PluginSecretReader for FileSecrets {
    async fn read_for_plugin(
        &self,
        _plugin: &str,
        _region: &str,
        name: &str,
    ) -> Result<Zeroizing<String>, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("secret {name:?} was not given with --grant-secret"))
    }
}

async fn host(
    dirs: Vec<PathBuf>,
    cache: PathBuf,
    secrets: FileSecrets,
) -> anyhow::Result<PluginHost> {
    tokio::task::spawn_blocking(move || {
        PluginHost::new(
            PluginHostConfig {
                dirs,
                cache_dir: cache,
            },
            Arc::new(secrets),
        )
    })
    .await?
    .context("starting the plugin host")
}

fn print_infos(mode: OutputMode, infos: &[PluginInfo]) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = infos
        .iter()
        .map(|i| {
            serde_json::json!({
                "name": i.name, "version": i.version, "description": i.description,
                "wit": i.wit, "dir": i.dir, "capabilities": i.capabilities,
                "loaded": i.error.is_none(), "error": i.error,
            })
        })
        .collect();
    output::emit(mode, &rows, |out| {
        let mut table = vec![vec![
            "NAME".to_string(),
            "VERSION".into(),
            "WIT".into(),
            "STATUS".into(),
            "CAPABILITIES".into(),
        ]];
        for i in infos {
            table.push(vec![
                i.name.clone(),
                i.version.clone(),
                i.wit.clone(),
                i.error
                    .as_ref()
                    .map_or("loaded".into(), |e| format!("BROKEN: {e}")),
                i.capabilities.clone(),
            ]);
        }
        output::write_table(out, &table)
    })
}

async fn install(a: InstallArgs, mode: OutputMode) -> anyhow::Result<()> {
    if !a.no_build && a.dir.join("Cargo.toml").exists() {
        build(&a.dir)?;
    }
    let dest = a.dirs.installed();
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let h = host(vec![], a.dirs.cache(), FileSecrets(BTreeMap::new())).await?;
    let src = a.dir.clone();
    let info = tokio::task::spawn_blocking(move || h.install(&src, &dest)).await??;
    if mode == OutputMode::Json {
        print_infos(mode, std::slice::from_ref(&info))
    } else {
        output::done(
            mode,
            &format!(
                "installed {} {} into {} (restart the server to load it)",
                info.name,
                info.version,
                info.dir.display()
            ),
        )
    }
}

async fn list(a: ListArgs, mode: OutputMode) -> anyhow::Result<()> {
    let h = host(a.dirs.all(), a.dirs.cache(), FileSecrets(BTreeMap::new())).await?;
    print_infos(mode, &h.list())
}

// -------------------------------------------------------------------------------- run

fn read_value(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

async fn run_steps(a: RunArgs, mode: OutputMode) -> anyhow::Result<()> {
    let manifest = Manifest::load(&a.plugin.join(MANIFEST_FILE))
        .with_context(|| format!("reading the plugin in {}", a.plugin.display()))?;
    let plugin_dir = std::fs::canonicalize(&a.plugin)?;
    let parent = plugin_dir
        .parent()
        .context("the plugin directory has no parent")?
        .to_path_buf();
    let mut granted = BTreeMap::new();
    for KeyValue { key, value } in &a.grants {
        granted.insert(key.clone(), read_value(Path::new(value))?);
    }
    let grant_names: Vec<String> = granted.keys().cloned().collect();
    let cache = std::env::temp_dir().join("coffer-plugin-run-cache");
    let h = host(vec![parent], cache, FileSecrets(granted)).await?;
    if let Some(err) = h
        .list()
        .into_iter()
        .find(|i| i.name == manifest.name)
        .and_then(|i| i.error)
    {
        bail!("plugin {} does not load: {err}", manifest.name);
    }
    let current = read_value(&a.secret_json)?;
    let mut pending = match &a.pending_json {
        Some(p) => Some(read_value(p)?),
        None => None,
    };
    let token = uuid::Uuid::new_v4().to_string();
    let steps: Vec<RotationStep> = match a.step {
        StepChoice::Create => vec![RotationStep::Create],
        StepChoice::Set => vec![RotationStep::Set],
        StepChoice::Test => vec![RotationStep::Test],
        StepChoice::Finish => vec![RotationStep::Finish],
        StepChoice::All => RotationStep::ALL.to_vec(),
    };
    let config = key_value::into_map(a.config, "--config")?;
    let mut report = Vec::new();
    for step in steps {
        if step != RotationStep::Create && pending.is_none() {
            bail!("step {step} needs the PENDING value: pass --pending-json FILE");
        }
        let req = StepRequest {
            plugin: manifest.name.clone(),
            step,
            region: "local".into(),
            secret_name: a.name.clone(),
            token: token.clone(),
            current: RotationVersion {
                id: "current".into(),
                value: current.clone(),
            },
            pending: pending.as_ref().map(|v| RotationVersion {
                id: token.clone(),
                value: v.clone(),
            }),
            previous: None,
            config: config.clone(),
            granted_secrets: grant_names.clone(),
        };
        let started = std::time::Instant::now();
        let result = h.run_step(req).await;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(outcome) => {
                for t in &outcome.trail {
                    eprintln!("  {step}: {} {}", t.kind, t.detail);
                }
                eprintln!("{step}: ok ({ms:.1} ms)");
                report.push(serde_json::json!({"step": step.as_str(), "ok": true, "ms": ms, "trail": outcome.trail}));
                if let Some(v) = outcome.value {
                    pending = Some(v);
                }
            }
            Err(f) => {
                for t in &f.trail {
                    eprintln!("  {step}: {} {}", t.kind, t.detail);
                }
                bail!("{step} failed after {ms:.1} ms: {f}");
            }
        }
    }
    if a.step == StepChoice::Create || a.step == StepChoice::All {
        // The new value is the point of a dry run; it goes to stdout only.
        let value = pending.as_ref().map(|v| v.as_str()).unwrap_or_default();
        if mode == OutputMode::Json {
            output::json(&serde_json::json!({"steps": report, "pending_value": value}))?;
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{value}")?;
        }
    } else if mode == OutputMode::Json {
        output::json(&serde_json::json!({"steps": report}))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_checked() {
        assert!(valid_name("postgres"));
        assert!(valid_name("my-api-2"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("Upper"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn scaffold_substitutes_every_placeholder() {
        let tmp = tempfile::tempdir().unwrap();
        new_plugin(
            NewArgs {
                name: "acme-db".into(),
                dir: tmp.path().to_path_buf(),
                sdk: None,
            },
            OutputMode::Json,
        )
        .unwrap();
        let root = tmp.path().join("acme-db");
        for rel in ["Cargo.toml", "plugin.toml", "src/lib.rs", "README.md"] {
            let text = std::fs::read_to_string(root.join(rel)).unwrap();
            assert!(!text.contains("{{"), "{rel} still has a placeholder");
        }
        let m =
            Manifest::load(&root.join(MANIFEST_FILE)).expect("the scaffolded manifest is valid");
        assert_eq!(m.name, "acme-db");
        assert!(m.wasm_path.ends_with("coffer_rotator_acme_db.wasm"));
        assert!(root.join("vendor/coffer-rotator-sdk/src/lib.rs").exists());
        assert!(root.join("wit/rotator.wit").exists());
        let err = new_plugin(
            NewArgs {
                name: "acme-db".into(),
                dir: tmp.path().to_path_buf(),
                sdk: None,
            },
            OutputMode::Json,
        )
        .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
