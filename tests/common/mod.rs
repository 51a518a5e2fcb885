//! Test harness: starts the real `coffer` binary on a free loopback port with its own
//! data directory, and stops it when dropped.
#![allow(dead_code)]

pub mod db;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

/// Path of the `coffer` binary under test.
pub fn coffer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffer")
}

/// The repository's policy directory.
pub fn repo_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub token: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: Client,
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Opts {
    pub dev: bool,
    pub data_dir: Option<PathBuf>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Policy directory (default: the repository's `policies/`).
    pub policy_dir: Option<PathBuf>,
}

impl Server {
    /// A persistent server with a fresh temporary data directory.
    pub fn start() -> Server {
        Self::start_with(Opts::default())
    }

    /// A dev-mode server.
    pub fn start_dev() -> Server {
        Self::start_with(Opts {
            dev: true,
            ..Opts::default()
        })
    }

    /// Starts with options; a given data_dir is reused (for restarts).
    pub fn start_with(opts: Opts) -> Server {
        let (tmp, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let mut cmd = Command::new(coffer_bin());
        cmd.arg("server")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--policy-dir")
            .arg(opts.policy_dir.clone().unwrap_or_else(repo_policies));
        if opts.dev {
            cmd.arg("--dev");
        } else {
            cmd.arg("--data-dir").arg(&data_dir);
        }
        cmd.args(&opts.extra_args);
        for (k, _) in std::env::vars() {
            if k.starts_with("COFFER_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("COFFER_LOG_LEVEL", "warn");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn coffer server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not report its address within 60 s");
            }
        };
        let token = if opts.dev {
            "cft_dev_coffer-dev-root-token".to_string()
        } else {
            std::fs::read_to_string(data_dir.join("admin-token"))
                .expect("admin-token file")
                .trim()
                .to_string()
        };
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let s = Server {
            child,
            base,
            token,
            data_dir,
            _tmp: tmp,
            http,
        };
        s.wait_ready();
        s
    }

    /// Restarts on the same data directory, keeping the admin token. The temporary
    /// directory (if any) moves to the new server.
    pub fn restart_after<F: FnOnce(&mut Child)>(mut self, stop: F) -> Server {
        stop(&mut self.child);
        let _ = self.child.wait();
        let tmp = self._tmp.take();
        let token = self.token.clone();
        let data_dir = self.data_dir.clone();
        let mut s = Server::start_with(Opts {
            data_dir: Some(data_dir),
            ..Opts::default()
        });
        s.token = token;
        s._tmp = tmp;
        s
    }

    /// Restarts on the same data directory with other options (the admin token and the
    /// temporary directory move to the new server).
    pub fn restart_with<F: FnOnce(&mut Child)>(mut self, stop: F, mut opts: Opts) -> Server {
        stop(&mut self.child);
        let _ = self.child.wait();
        let tmp = self._tmp.take();
        let token = self.token.clone();
        opts.data_dir = Some(self.data_dir.clone());
        let mut s = Server::start_with(opts);
        s.token = token;
        s._tmp = tmp;
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server not ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the admin token.
    pub fn req(&self, method: &str, path: &str) -> RequestBuilder {
        self.req_as(&self.token, method, path)
    }

    /// A request with another token.
    pub fn req_as(&self, token: &str, method: &str, path: &str) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.http.request(m, self.url(path)).bearer_auth(token)
    }

    /// Sends a JSON request with the admin token; returns (status, body as JSON or Null).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        split(r.send().expect("send"))
    }

    /// Sends SIGTERM and waits for exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a response into status and JSON body (Null when empty or not JSON).
pub fn split(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Percent-encodes one path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Runs the CLI with COFFER_ADDR/COFFER_TOKEN of `s`; returns (exit code, stdout, stderr).
pub fn cli(s: &Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(coffer_bin())
        .args(args)
        .env("COFFER_ADDR", &s.base)
        .env("COFFER_TOKEN", &s.token)
        .env_remove("COFFER_REGION")
        .output()
        .expect("run coffer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
