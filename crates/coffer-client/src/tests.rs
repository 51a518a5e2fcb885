//! Request/response tests against a one-shot HTTP responder on a loopback port: what goes
//! on the wire (method, encoded path, query, headers, body) and how answers are read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use coffer_api::{CreateSecretRequest, DecryptRequest};

use super::*;

const TOKEN: &str = "ct_test-token-value";

/// What the responder received.
struct Received {
    /// Request line and headers, header names lower-cased.
    head: String,
    body: String,
}

impl Received {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.eq_ignore_ascii_case(name)).then(|| v.trim())
        })
    }
}

/// Answers exactly one request with `status` (e.g. `"200 OK"`), `headers` and `body`.
fn respond_once(
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = format!("http://{}", listener.local_addr().expect("local addr"));
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("read body");
        let mut stream = reader.into_inner();
        stream
            .write_all(response.as_bytes())
            .expect("write response");
        Received {
            head,
            body: String::from_utf8(body).expect("utf-8 body"),
        }
    });
    (addr, handle)
}

const SECRET_VALUE: &str = r#"{"arn":"arn:coffer:secretsmanager:eu-1:secret:prod/db-AbCdEf","name":"prod/db","version_id":"v1","secret_string":"s3cr3t","version_stages":["AWSPREVIOUS"],"created_date":"2025-01-01T00:00:00Z"}"#;

#[tokio::test]
async fn get_value_sends_token_region_and_one_encoded_segment() {
    let (addr, server) = respond_once("200 OK", &[], SECRET_VALUE);
    let client = Client::new(&addr, TOKEN).unwrap().with_region("eu-1");
    let value = client
        .get_secret_value("prod/db", None, Some("AWSPREVIOUS"))
        .await
        .unwrap();
    assert_eq!(value.secret_string.as_deref(), Some("s3cr3t"));

    let got = server.join().unwrap();
    assert_eq!(
        got.request_line(),
        "GET /v1/secrets/prod%2Fdb/value?version_stage=AWSPREVIOUS HTTP/1.1"
    );
    assert_eq!(
        got.header("authorization"),
        Some("Bearer ct_test-token-value")
    );
    assert_eq!(got.header("x-coffer-region"), Some("eu-1"));
}

#[tokio::test]
async fn no_region_header_without_a_region() {
    let (addr, server) = respond_once("200 OK", &[], SECRET_VALUE);
    let client = Client::new(&addr, TOKEN).unwrap();
    client
        .get_secret_value("prod/db", None, None)
        .await
        .unwrap();
    let got = server.join().unwrap();
    assert_eq!(
        got.request_line(),
        "GET /v1/secrets/prod%2Fdb/value HTTP/1.1"
    );
    assert_eq!(got.header("x-coffer-region"), None);
}

#[tokio::test]
async fn create_sends_the_request_as_json() {
    let (addr, server) = respond_once(
        "201 Created",
        &[],
        r#"{"arn":"arn:x","name":"app/key","version_id":"v1","version_stages":["AWSCURRENT"]}"#,
    );
    let client = Client::new(&addr, TOKEN).unwrap();
    let created = client
        .create_secret(&CreateSecretRequest {
            name: "app/key".into(),
            secret_string: Some("v".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.version_id.as_deref(), Some("v1"));
    let got = server.join().unwrap();
    assert_eq!(got.request_line(), "POST /v1/secrets HTTP/1.1");
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": "app/key", "secret_string": "v"})
    );
}

#[tokio::test]
async fn error_envelope_and_request_id_are_read() {
    let (addr, server) = respond_once(
        "404 Not Found",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "req-42"),
        ],
        r#"{"error":{"code":"ResourceNotFound","message":"secret prod/x not found"}}"#,
    );
    let client = Client::new(&addr, TOKEN).unwrap();
    let err = client.describe_secret("prod/x").await.unwrap_err();
    server.join().unwrap();
    assert_eq!(err.to_string(), "ResourceNotFound: secret prod/x not found");
    assert!(matches!(
        &err,
        ClientError::Api { status: 404, request_id: Some(id), .. } if id == "req-42"
    ));
    assert!(!format!("{err:?}").contains(TOKEN));
}

#[tokio::test]
async fn no_content_answers_are_success() {
    let (addr, server) = respond_once("204 No Content", &[], "");
    let client = Client::new(&addr, TOKEN).unwrap();
    client.delete_alias("alias/app").await.unwrap();
    let got = server.join().unwrap();
    assert_eq!(
        got.request_line(),
        "DELETE /v1/aliases/alias%2Fapp HTTP/1.1"
    );
}

#[tokio::test]
async fn delete_secret_sends_window_and_force_only_when_given() {
    let body = r#"{"arn":"arn:x","name":"a","deletion_date":"2025-01-08T00:00:00Z"}"#;
    let (addr, server) = respond_once("200 OK", &[], body);
    let client = Client::new(&addr, TOKEN).unwrap();
    client.delete_secret("a", Some(7), false).await.unwrap();
    assert_eq!(
        server.join().unwrap().request_line(),
        "DELETE /v1/secrets/a?recovery_window_days=7 HTTP/1.1"
    );

    let (addr, server) = respond_once("200 OK", &[], body);
    let client = Client::new(&addr, TOKEN).unwrap();
    client.delete_secret("a", None, true).await.unwrap();
    assert_eq!(
        server.join().unwrap().request_line(),
        "DELETE /v1/secrets/a?force=true HTTP/1.1"
    );
}

#[tokio::test]
async fn data_key_without_plaintext_uses_its_own_route() {
    let body = r#"{"ciphertext_blob":"Y2I=","key_id":"k1","key_version":1}"#;
    let (addr, server) = respond_once("200 OK", &[], body);
    let client = Client::new(&addr, TOKEN).unwrap();
    let response = client
        .generate_data_key("alias/app", &Default::default(), true)
        .await
        .unwrap();
    assert!(response.plaintext.is_none());
    assert_eq!(
        server.join().unwrap().request_line(),
        "POST /v1/keys/alias%2Fapp/data-key-without-plaintext HTTP/1.1"
    );
}

#[tokio::test]
async fn health_sends_no_token() {
    let (addr, server) = respond_once("200 OK", &[], r#"{"status":"ok","version":"0.1.0"}"#);
    let client = Client::new(&addr, TOKEN).unwrap();
    assert_eq!(client.health().await.unwrap().status, "ok");
    let got = server.join().unwrap();
    assert_eq!(got.request_line(), "GET /healthz HTTP/1.1");
    assert_eq!(got.header("authorization"), None);
}

#[tokio::test]
async fn success_with_an_unreadable_body_is_a_decode_error() {
    let (addr, server) = respond_once("200 OK", &[], r#"{"plaintext":12345}"#);
    let client = Client::new(&addr, TOKEN).unwrap();
    let err = client
        .decrypt(&DecryptRequest {
            ciphertext_blob: "AAAA".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    server.join().unwrap();
    assert!(
        matches!(err, ClientError::Decode { status: 200, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("12345"));
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error_without_the_token() {
    // Bind then drop, so the port is very likely closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("http://127.0.0.1:{port}"), TOKEN).unwrap();
    let err = client.list_tokens().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(TOKEN));
    assert!(!format!("{err:?}").contains(TOKEN));
}

#[tokio::test]
async fn bad_region_is_refused_before_sending() {
    let client = Client::new("http://127.0.0.1:1", TOKEN)
        .unwrap()
        .with_region("eu\n1");
    let err = client.list_aliases().await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err:?}");
}

#[tokio::test]
async fn empty_ids_are_refused_before_sending() {
    let client = Client::new("http://127.0.0.1:1", TOKEN).unwrap();
    let err = client.describe_key("").await.unwrap_err();
    assert_eq!(err.to_string(), "the key id must not be empty");
}

#[test]
fn debug_never_shows_the_token() {
    let client = Client::new("http://127.0.0.1:8330", TOKEN)
        .unwrap()
        .with_region("eu-1");
    let debug = format!("{client:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("<redacted>"));
    assert!(debug.contains("eu-1"));
}

#[test]
fn token_with_a_newline_is_refused_without_echoing_it() {
    let err = Client::new("http://127.0.0.1:8330", format!("{TOKEN}\n")).unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)));
    assert!(!err.to_string().contains(TOKEN));
}

#[test]
fn growing_the_body_buffer_keeps_every_byte() {
    let mut buf = Zeroizing::new(Vec::with_capacity(2));
    for chunk in [&b"ab"[..], b"cde", b"", b"fghijklmnop"] {
        append_wiping(&mut buf, chunk);
    }
    assert_eq!(buf.as_slice(), b"abcdefghijklmnop");
}
