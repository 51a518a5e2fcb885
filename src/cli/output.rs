//! Printing results: pretty JSON in `--output json`, readable lines in text mode, and raw
//! bytes for values that must come out exactly as stored.

use std::io::{self, Write};

use clap::ValueEnum;
use serde::Serialize;

/// The `--output` format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputMode {
    /// Readable text; values and tokens bare, so they can be captured by scripts.
    #[default]
    Text,
    /// The response body as pretty JSON.
    Json,
}

/// Writes to stdout: `value` as JSON in json mode, otherwise what `text` writes.
pub fn emit<T, F>(mode: OutputMode, value: &T, text: F) -> anyhow::Result<()>
where
    T: Serialize + ?Sized,
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    match mode {
        OutputMode::Json => json(value),
        OutputMode::Text => write_stdout(text),
    }
}

/// Writes `value` as pretty JSON to stdout, whatever the mode.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    write_stdout(|out| write_json(out, value))
}

/// For operations without a response body: `{}` in json mode, otherwise `message`.
pub fn done(mode: OutputMode, message: &str) -> anyhow::Result<()> {
    emit(mode, &serde_json::json!({}), |out| {
        writeln!(out, "{message}")
    })
}

/// Writes `bytes` to stdout exactly, with nothing added.
pub fn raw(bytes: &[u8]) -> anyhow::Result<()> {
    write_stdout(|out| out.write_all(bytes))
}

/// Runs `write` against a locked stdout and flushes it.
pub fn write_stdout<F>(write: F) -> anyhow::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let stdout = io::stdout();
    let mut out = stdout.lock();
    write(&mut out)?;
    out.flush()?;
    Ok(())
}

/// Pretty JSON and a newline.
pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// `Label: value` lines with the values aligned; lines of a multi-line value are indented
/// under the first. Rows with an empty value are left out.
pub fn write_fields(out: &mut dyn Write, rows: &[(&str, String)]) -> io::Result<()> {
    let rows: Vec<_> = rows.iter().filter(|(_, value)| !value.is_empty()).collect();
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0);
    for (label, value) in rows {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or_default();
        writeln!(out, "{:<width$} {first}", format!("{label}:"))?;
        for line in lines {
            writeln!(out, "{:<width$} {line}", "")?;
        }
    }
    Ok(())
}

/// One line per row, columns aligned with two spaces between them; the last column is not
/// padded. No header line, so the output stays easy to `cut` and `awk`.
pub fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `k=v, k=v` for tags and contexts; empty for none.
pub fn join_pairs<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `err` comes from writing to a closed pipe (`coffer secret list | head -1`),
/// which is not worth an error message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
        let mut buf = Vec::new();
        write(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn fields_align_and_skip_empty_values() {
        let text = render(|out| {
            write_fields(
                out,
                &[
                    ("Name", "prod/db".into()),
                    ("Description", String::new()),
                    ("Versions", "v1: AWSCURRENT\nv0: AWSPREVIOUS".into()),
                ],
            )
        });
        assert_eq!(
            text,
            "Name:     prod/db\nVersions: v1: AWSCURRENT\n          v0: AWSPREVIOUS\n"
        );
    }

    #[test]
    fn table_aligns_all_but_the_last_column() {
        let text = render(|out| {
            write_table(
                out,
                &[
                    vec!["a".into(), "2025".into(), "first".into()],
                    vec!["prod/db".into(), "2024".into(), String::new()],
                ],
            )
        });
        assert_eq!(text, "a        2025  first\nprod/db  2024\n");
    }

    #[test]
    fn json_is_pretty_with_a_newline() {
        let text = render(|out| write_json(out, &serde_json::json!({"a": 1})));
        assert_eq!(text, "{\n  \"a\": 1\n}\n");
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing output");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
