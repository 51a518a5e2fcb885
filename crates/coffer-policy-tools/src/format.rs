//! `coffer policy fmt`: canonical formatting of `*.cedar` files with
//! `cedar-policy-formatter` (comments are kept; the formatter checks that the policies
//! it prints parse to the same policies).

use std::path::{Path, PathBuf};

use cedar_policy_formatter::{policies_str_to_pretty, Config};
use serde::Serialize;

use crate::ToolError;

/// Line width of the canonical format.
pub const LINE_WIDTH: usize = 80;
/// Indent of the canonical format.
pub const INDENT_WIDTH: isize = 2;

/// One file's formatting.
#[derive(Debug, Clone, Serialize)]
pub struct FileFormat {
    /// The file.
    pub path: PathBuf,
    /// Whether its text differs from the canonical format.
    pub changed: bool,
    /// A unified-style diff from the current text to the canonical one (empty when
    /// unchanged).
    pub diff: String,
}

/// The formatting of a directory.
#[derive(Debug, Clone, Serialize)]
pub struct FormatReport {
    /// Every `*.cedar` file, sorted by name.
    pub files: Vec<FileFormat>,
    /// Whether changed files were rewritten.
    pub written: bool,
}

impl FormatReport {
    /// The files whose text is (or was) not canonical.
    pub fn changed(&self) -> impl Iterator<Item = &FileFormat> {
        self.files.iter().filter(|f| f.changed)
    }
}

/// The canonical text of one policy file.
pub fn format_text(text: &str) -> Result<String, String> {
    let config = Config {
        line_width: LINE_WIDTH,
        indent_width: INDENT_WIDTH,
    };
    policies_str_to_pretty(text, &config).map_err(|report| {
        report
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ")
    })
}

/// Format every `*.cedar` file directly in `dir` (the files the server loads). With
/// `write`, files that change are rewritten in place; otherwise nothing is touched.
pub fn format_dir(dir: &Path, write: bool) -> Result<FormatReport, ToolError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ToolError::io(dir, e))? {
        let entry = entry.map_err(|e| ToolError::io(dir, e))?;
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "cedar") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| ToolError::io(&path, e))?;
        let formatted = format_text(&text).map_err(|message| ToolError::Format {
            file: path.clone(),
            message,
        })?;
        let changed = formatted != text;
        let diff = if changed {
            line_diff(&text, &formatted)
        } else {
            String::new()
        };
        if changed && write {
            std::fs::write(&path, &formatted).map_err(|e| ToolError::io(&path, e))?;
        }
        files.push(FileFormat {
            path,
            changed,
            diff,
        });
    }
    Ok(FormatReport {
        files,
        written: write,
    })
}

/// Largest `old lines × new lines` the diff is computed for; past it, a one-line note.
const MAX_DIFF_CELLS: usize = 4_000_000;
/// Unchanged lines shown around each change.
const CONTEXT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// A unified-style diff (`@@ -a,b +c,d @@`, `-`/`+`/` ` lines) of two texts, by longest
/// common subsequence of lines.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().saturating_mul(b.len()) > MAX_DIFF_CELLS {
        return format!(
            "(diff not shown: {} lines would become {} lines)\n",
            a.len(),
            b.len()
        );
    }
    // lcs[i][j] = LCS length of a[i..] and b[j..].
    let width = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * width];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * width + j] = if a[i] == b[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    // The edit script: (op, old index, new index).
    let mut script = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            script.push((Op::Same, i, j));
            i += 1;
            j += 1;
        } else if i < a.len()
            && (j == b.len() || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
        {
            script.push((Op::Del, i, j));
            i += 1;
        } else {
            script.push((Op::Add, i, j));
            j += 1;
        }
    }
    // Group changes into hunks with CONTEXT lines around them; changes closer than
    // 2 × CONTEXT unchanged lines share a hunk.
    let changes: Vec<usize> = script
        .iter()
        .enumerate()
        .filter(|(_, s)| s.0 != Op::Same)
        .map(|(k, _)| k)
        .collect();
    let mut out = String::new();
    let mut next = 0;
    while next < changes.len() {
        let first = changes[next];
        let mut last = first;
        next += 1;
        while next < changes.len() && changes[next] - last - 1 <= 2 * CONTEXT {
            last = changes[next];
            next += 1;
        }
        let start = first.saturating_sub(CONTEXT);
        let end = (last + CONTEXT + 1).min(script.len());
        let hunk = &script[start..end];
        let old_start = hunk.first().map_or(0, |s| s.1);
        let new_start = hunk.first().map_or(0, |s| s.2);
        let old_len = hunk.iter().filter(|s| s.0 != Op::Add).count();
        let new_len = hunk.iter().filter(|s| s.0 != Op::Del).count();
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            old_start + 1,
            new_start + 1
        ));
        for (op, i, j) in hunk {
            match op {
                Op::Same => out.push_str(&format!(" {}\n", a[*i])),
                Op::Del => out.push_str(&format!("-{}\n", a[*i])),
                Op::Add => out.push_str(&format!("+{}\n", b[*j])),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_of_equal_texts_is_empty() {
        assert_eq!(line_diff("a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            line_diff(old, new),
            "@@ -3,5 +3,5 @@\n 3\n 4\n-5\n+five\n 6\n 7\n"
        );
    }

    #[test]
    fn distant_changes_make_two_hunks() {
        let old = "a\n1\n2\n3\n4\n5\n6\nb\n";
        let new = "A\n1\n2\n3\n4\n5\n6\nB\n";
        let diff = line_diff(old, new);
        assert_eq!(diff.matches("@@ -").count(), 2, "{diff}");
        assert!(
            diff.starts_with("@@ -1,3 +1,3 @@\n-a\n+A\n 1\n 2\n"),
            "{diff}"
        );
    }

    #[test]
    fn formatting_keeps_comments_and_is_idempotent() {
        let text = "// who may read\n@id(\"r\") permit(principal,action,resource)  ;\n";
        let once = format_text(text).unwrap();
        assert!(once.contains("// who may read"), "{once}");
        assert_eq!(format_text(&once).unwrap(), once);
    }
}
