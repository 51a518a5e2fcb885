//! The base side of a diff: a directory, or a git revision of the policy directory
//! written out to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ToolError;

/// A base policy directory, kept alive as long as this value (a git revision is written
/// to a temporary directory that is removed on drop).
#[derive(Debug)]
pub struct BaseDir {
    path: PathBuf,
    label: String,
    _temp: Option<tempfile::TempDir>,
}

impl BaseDir {
    /// The directory to load.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the base is, for reports: the directory, or `REV:path`.
    pub fn label(&self) -> &str {
        &self.label
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, ToolError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| ToolError::Git(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(ToolError::Git(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

fn git_text(dir: &Path, args: &[&str]) -> Result<String, ToolError> {
    let out = git(dir, args)?;
    Ok(String::from_utf8_lossy(&out)
        .trim_end_matches('\n')
        .to_owned())
}

/// The base policy directory for a diff of `new_dir`.
///
/// If `base` is an existing directory, it is used as is. Otherwise it is a git revision
/// (`origin/main`, a commit, a tag): the files directly in `new_dir`'s path at that
/// revision (schema, policies, entities, whatever the loader reads) are written to a
/// temporary directory.
pub fn materialize_base(base: &str, new_dir: &Path) -> Result<BaseDir, ToolError> {
    let as_dir = Path::new(base);
    if as_dir.is_dir() {
        return Ok(BaseDir {
            path: as_dir.to_path_buf(),
            label: as_dir.display().to_string(),
            _temp: None,
        });
    }
    if !new_dir.is_dir() {
        return Err(ToolError::io(
            new_dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let top = PathBuf::from(git_text(new_dir, &["rev-parse", "--show-toplevel"])?);
    let prefix = git_text(new_dir, &["rev-parse", "--show-prefix"])?;
    let commit = git_text(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{base}^{{commit}}"),
        ],
    )
    .map_err(|_| {
        ToolError::Git(format!(
            "{base:?} is neither a directory nor a git revision of {}",
            top.display()
        ))
    })?;
    let tree = format!("{commit}:{prefix}");
    let listing = git(&top, &["ls-tree", "-z", &tree]).map_err(|_| {
        ToolError::Git(format!(
            "revision {base} has no directory {:?}",
            if prefix.is_empty() {
                "."
            } else {
                prefix.as_str()
            }
        ))
    })?;
    let temp = tempfile::Builder::new()
        .prefix("coffer-policy-base-")
        .tempdir()
        .map_err(|e| ToolError::io(&std::env::temp_dir(), e))?;
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        // "<mode> <type> <object>\t<name>"
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let mut fields = meta.split(' ');
        let (Some(_mode), Some(kind), Some(object)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if kind != "blob" || name.contains('/') {
            continue;
        }
        let bytes = git(&top, &["cat-file", "blob", object])?;
        let path = temp.path().join(name);
        std::fs::write(&path, bytes).map_err(|e| ToolError::io(&path, e))?;
    }
    let short = &commit[..commit.len().min(12)];
    Ok(BaseDir {
        path: temp.path().to_path_buf(),
        label: format!("{base} ({short}):{prefix}"),
        _temp: Some(temp),
    })
}
