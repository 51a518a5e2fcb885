//! Secret material the CLI handles (secret values, plaintext to encrypt, decrypted bytes):
//! read from files or stdin and converted to and from base64, always in buffers that are
//! wiped when dropped.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use zeroize::Zeroizing;

/// Initial size of the buffer for stdin, so typical secrets are read without reallocating
/// (each reallocation would leave an unwiped copy behind).
const STDIN_BUFFER: usize = 64 * 1024;

/// Reads the file at `path`, or stdin when `path` is `-`, exactly as stored.
pub fn read_bytes(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if path == Path::new("-") {
        let mut buf = Zeroizing::new(Vec::with_capacity(STDIN_BUFFER));
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(path)
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Reads a text file (or stdin for `-`) exactly, trailing newline included.
/// `binary_option` names the option to use instead when the content is not UTF-8.
pub fn read_text(path: &Path, binary_option: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut bytes = read_bytes(path)?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(err) => {
            // Wipe the bytes the error handed back.
            drop(Zeroizing::new(err.into_bytes()));
            anyhow::bail!(
                "{} is not UTF-8 text; use {binary_option} for binary content",
                path.display()
            )
        }
    }
}

/// Standard base64 of `bytes`, in a buffer sized up front.
pub fn encode(bytes: &[u8]) -> Zeroizing<String> {
    let len = base64::encoded_len(bytes.len(), true).unwrap_or_default();
    let mut out = Zeroizing::new(String::with_capacity(len));
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut out);
    out
}

/// Decodes standard base64; `what` names the field in the error.
pub fn decode(text: &str, what: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(Zeroizing::new)
        .with_context(|| format!("{what} is not valid base64"))
}

/// A ciphertext blob given on the command line, or read from stdin when it is `-`
/// (so `coffer key encrypt … | coffer key decrypt -` works). Surrounding whitespace is
/// dropped.
pub fn blob_argument(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .context("cannot read the ciphertext blob from standard input")?;
        Ok(text.trim().to_owned())
    } else {
        Ok(arg.trim().to_owned())
    }
}

/// Moves the text out of a wiped buffer into a plain `String` for a request body; the
/// caller wipes the request field after the call.
pub fn take(mut text: Zeroizing<String>) -> String {
    std::mem::take(&mut *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        let encoded = encode(b"\x00\xffhello");
        assert_eq!(encoded.as_str(), "AP9oZWxsbw==");
        assert_eq!(decode(&encoded, "x").unwrap().as_slice(), b"\x00\xffhello");
    }

    #[test]
    fn bad_base64_names_the_field() {
        let err = decode("not base64!", "the ciphertext blob").unwrap_err();
        assert_eq!(err.to_string(), "the ciphertext blob is not valid base64");
    }

    #[test]
    fn text_files_are_read_exactly_and_binary_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text_path = dir.path().join("text");
        std::fs::write(&text_path, b"pw\n").unwrap();
        assert_eq!(
            read_text(&text_path, "--binary-file").unwrap().as_str(),
            "pw\n"
        );

        let binary_path = dir.path().join("binary");
        std::fs::write(&binary_path, b"\xff\xfe").unwrap();
        let err = read_text(&binary_path, "--binary-file").unwrap_err();
        assert!(err.to_string().contains("use --binary-file"), "{err}");

        let err = read_bytes(&dir.path().join("missing")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    }
}
