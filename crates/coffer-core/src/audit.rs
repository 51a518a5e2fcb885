//! The tamper-evident audit log: the record format, its canonical encoding, the hash
//! chain, durable appends, queries and verification. No HTTP: the server builds an
//! [`AuditEntry`] per request and hands batches of them to [`Coffer::append_audit`].
//!
//! # Storage
//! The records are the lines of the store's append-only [`LineLog`](coffer_store::LineLog)
//! (`<data-dir>/audit/<first seq>.jsonl`, one JSON record per line, position = `seq`). A
//! batch of records is one write and one `fdatasync` (group commit); nothing else is
//! touched on the hot path. Two keys in the keyspace pin the log:
//! ```text
//! meta/audit-head   AuditHead {seq, hash}: a record known to be durable (moved at most
//!                   every CHECKPOINT_EVERY, and at shutdown): the log must reach it
//! meta/audit-base   AuditBase {seq, hash, removed_at}: the newest record retention
//!                   removed; the oldest record kept must chain to it
//! ```
//!
//! # Chain
//! Record `n` holds `prev_hash` = the `hash` of record `n-1` (64 zeros for record 1) and
//! `hash` = hex SHA-256 of its [canonical encoding](canonical_encoding), which covers every
//! field but `hash` itself, `seq` and `prev_hash` included. Altering a field breaks the
//! record's own hash; removing or reordering records breaks the sequence; replacing a
//! record together with its hash breaks the next record's link (or the head's).
//!
//! The chain is not keyed: it proves the log was not changed *after the fact* by someone
//! who did not also rewrite every later record and the checkpoint. Records newer than the
//! checkpoint can be cut off unnoticed; a clean stop writes a checkpoint. Ship the
//! JSON-lines mirror (or the head hash) off the machine to pin it.
//!
//! ```
//! use coffer_core::audit::{self, AuditDecision, AuditEntry};
//! # async fn demo() -> Result<(), coffer_core::CoreError> {
//! let store = std::sync::Arc::new(coffer_store::SledStore::temporary()?);
//! let entry = AuditEntry::new("GetSecretValue", "req-1", time::OffsetDateTime::now_utc());
//! let records = audit::append(store.as_ref(), &[entry])?; // durable on return
//! assert_eq!(records[0].seq, 1);
//! assert_eq!(records[0].decision, AuditDecision::NotEvaluated);
//! assert!(audit::verify(store.as_ref())?.ok);
//! # Ok(()) }
//! ```

use std::ops::ControlFlow;

use coffer_api::{AuditKeyUse, AuditQuery, ListAuditResponse, VerifyAuditResponse};
use coffer_store::{Batch, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::records::{decode, encode};
use crate::rotation_api::TrailEntry;
use crate::{Coffer, CoreError, Result};

/// Key of the checkpoint: a record known to be durable, which the log must reach.
pub const HEAD_KEY: &[u8] = b"meta/audit-head";
/// Key of the retention base: the newest record retention removed.
pub const BASE_KEY: &[u8] = b"meta/audit-base";
/// How often the checkpoint follows the log's end (it is also written at shutdown).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// First line of the canonical encoding; names its version.
const CANONICAL_MAGIC: &str = "coffer-audit-record v1\n";
/// Largest page of `GET /v1/audit`.
pub const MAX_QUERY_RESULTS: usize = 1000;
/// Default page of `GET /v1/audit`.
const DEFAULT_QUERY_RESULTS: usize = 100;
/// Records one query call examines at most (so a rare filter cannot scan a huge log in
/// one request); the caller continues with `next_token`.
const QUERY_SCAN_BUDGET: usize = 20_000;
/// Records read per log read.
const SCAN_PAGE: u64 = 1000;

/// The outcome of authorization for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditDecision {
    /// Every authorization the request needed was allowed.
    Allow,
    /// An authorization was denied.
    Deny,
    /// No valid token: the request never reached authorization.
    Unauthenticated,
    /// The request failed before authorization (bad region, malformed input, unknown
    /// route, store down).
    #[default]
    NotEvaluated,
}

impl AuditDecision {
    /// The wire spelling: `allow`, `deny`, `unauthenticated`, `not-evaluated`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::Unauthenticated => "unauthenticated",
            AuditDecision::NotEvaluated => "not-evaluated",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            AuditDecision::Allow,
            AuditDecision::Deny,
            AuditDecision::Unauthenticated,
            AuditDecision::NotEvaluated,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A KMS key version used by a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUse {
    /// Key id.
    pub key_id: String,
    /// Key version.
    pub key_version: u32,
}

/// What one request contributes to the log, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the request arrived.
    pub time: OffsetDateTime,
    /// Request id.
    pub request_id: String,
    /// Authenticated principal.
    pub principal: Option<String>,
    /// Token id (never the token).
    pub token_id: Option<String>,
    /// Operation name.
    pub action: String,
    /// First resource authorized.
    pub resource: Option<String>,
    /// Further distinct resources authorized.
    pub extra_resources: Vec<String>,
    /// Region.
    pub region: Option<String>,
    /// Decision.
    pub decision: AuditDecision,
    /// Determining policy ids.
    pub policies: Vec<String>,
    /// Denial / authentication failure reason, policy evaluation errors.
    pub reason: Option<String>,
    /// HTTP status.
    pub status: u16,
    /// Error code.
    pub error_code: Option<String>,
    /// Source address.
    pub source_ip: Option<String>,
    /// KMS key versions used.
    pub keys: Vec<KeyUse>,
    /// What a rotator plugin did during a rotation step (redacted by the runner); empty
    /// for API requests.
    pub trail: Vec<TrailEntry>,
}

impl AuditEntry {
    /// An entry with only the operation, request id and time set (decision
    /// `not-evaluated`, status 0).
    pub fn new(action: &str, request_id: &str, time: OffsetDateTime) -> Self {
        AuditEntry {
            time,
            request_id: request_id.to_string(),
            principal: None,
            token_id: None,
            action: action.to_string(),
            resource: None,
            extra_resources: Vec::new(),
            region: None,
            decision: AuditDecision::NotEvaluated,
            policies: Vec::new(),
            reason: None,
            status: 0,
            error_code: None,
            source_ip: None,
            keys: Vec::new(),
            trail: Vec::new(),
        }
    }
}

/// A stored, chained record. The JSON of this type is what the store and the JSON-lines
/// mirror hold; unknown fields are refused, so nothing can hide in a record unhashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    /// Request id.
    pub request_id: String,
    /// Principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Operation.
    pub action: String,
    /// First resource authorized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Further resources authorized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_resources: Vec<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Decision.
    pub decision: AuditDecision,
    /// Determining policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HTTP status.
    pub status: u16,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// KMS key versions used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyUse>,
    /// What a rotator plugin did during a rotation step (absent on API records, so
    /// records written before this field existed read and hash the same).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trail: Vec<TrailEntry>,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// Hash of this record's canonical encoding.
    pub hash: String,
}

impl AuditRecord {
    /// Chains `entry` as record `seq` after a record whose hash is `prev_hash`.
    pub fn seal(entry: &AuditEntry, seq: u64, prev_hash: &str) -> AuditRecord {
        Self::seal_owned(entry.clone(), seq, prev_hash)
    }

    /// [`AuditRecord::seal`], taking the entry's fields instead of copying them (the audit
    /// writer's path: one allocation less per field and record).
    pub fn seal_owned(entry: AuditEntry, seq: u64, prev_hash: &str) -> AuditRecord {
        let mut r = Self::unhashed(entry, seq, prev_hash);
        r.hash = r.compute_hash();
        r
    }

    /// The record of `entry` with an empty `hash`.
    fn unhashed(entry: AuditEntry, seq: u64, prev_hash: &str) -> AuditRecord {
        AuditRecord {
            seq,
            time: fmt_nanos(entry.time),
            request_id: entry.request_id,
            principal: entry.principal,
            token_id: entry.token_id,
            action: entry.action,
            resource: entry.resource,
            extra_resources: entry.extra_resources,
            region: entry.region,
            decision: entry.decision,
            policies: entry.policies,
            reason: entry.reason,
            status: entry.status,
            error_code: entry.error_code,
            source_ip: entry.source_ip,
            keys: entry.keys,
            trail: entry.trail,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        }
    }

    /// Hex SHA-256 of [`canonical_encoding`].
    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(canonical_encoding(self)))
    }

    /// The wire shape of `GET /v1/audit`.
    pub fn to_api(&self) -> coffer_api::AuditRecord {
        coffer_api::AuditRecord {
            seq: self.seq,
            time: self.time.clone(),
            request_id: self.request_id.clone(),
            principal: self.principal.clone(),
            token_id: self.token_id.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            extra_resources: self.extra_resources.clone(),
            region: self.region.clone(),
            decision: self.decision.as_str().to_string(),
            policies: self.policies.clone(),
            reason: self.reason.clone(),
            status: self.status,
            error_code: self.error_code.clone(),
            source_ip: self.source_ip.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| AuditKeyUse {
                    key_id: k.key_id.clone(),
                    key_version: k.key_version,
                })
                .collect(),
            trail: self
                .trail
                .iter()
                .map(|t| coffer_api::AuditTrailEntry {
                    kind: t.kind.clone(),
                    detail: t.detail.clone(),
                })
                .collect(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }

    /// One line of the JSON-lines mirror (no trailing newline).
    pub fn to_json_line(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| CoreError::Internal(format!("encode audit record: {e}")))
    }
}

// The canonical encoding's pieces, written byte by byte rather than with `format!`: they
// run for every record on the audit path. `canonical_encoding_is_stable` pins the output.
fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
fn val(out: &mut Vec<u8>, name: &str, v: &[u8]) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(decimal(v.len() as u64, &mut buf));
    out.push(b':');
    out.extend_from_slice(v);
    out.push(b'\n');
}
fn num(out: &mut Vec<u8>, name: &str, n: u64) {
    let mut buf = [0u8; 20];
    let digits = decimal(n, &mut buf);
    val(out, name, digits);
}
fn opt(out: &mut Vec<u8>, name: &str, v: Option<&str>) {
    match v {
        Some(v) => val(out, name, v.as_bytes()),
        None => {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"~\n");
        }
    }
}
fn count(out: &mut Vec<u8>, name: &str, n: usize) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(name.as_bytes());
    out.push(b'#');
    out.extend_from_slice(decimal(n as u64, &mut buf));
    out.push(b'\n');
}
fn list(out: &mut Vec<u8>, name: &str, items: &[String]) {
    count(out, name, items.len());
    for i in items {
        val(out, "-", i.as_bytes());
    }
}

/// The start of the canonical encoding: the magic line, `seq` and `prev_hash`.
fn canonical_head(out: &mut Vec<u8>, seq: u64, prev_hash: &[u8]) {
    out.extend_from_slice(CANONICAL_MAGIC.as_bytes());
    num(out, "seq", seq);
    val(out, "prev_hash", prev_hash);
}

/// The canonical encoding that a record's hash covers: the line
/// `coffer-audit-record v1`, then every field but `hash`, in this order, one per line:
///
/// ```text
/// seq prev_hash time request_id principal token_id action resource extra_resources region
/// decision policies reason status error_code source_ip keys [trail]
/// ```
///
/// `trail` (rotation step records only) is written only when it is not empty, as
/// `trail#<count>\n` followed by each entry's `kind` and `detail` values, so records
/// without one (every record written before it existed) encode exactly as before.
///
/// A present value is `name=<byte length>:<bytes>\n` (numbers in decimal, the decision in
/// its wire spelling); an absent optional value is `name~\n`; a list is `name#<count>\n`
/// followed by its items (`-=<len>:<bytes>\n`; a key is its `key_id` and `key_version`).
/// Lengths make the encoding unambiguous whatever bytes a value holds.
pub fn canonical_encoding(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    canonical_head(&mut out, r.seq, r.prev_hash.as_bytes());
    canonical_body(&mut out, r);
    out
}

/// The fields of [`canonical_encoding`] after its head ([`canonical_head`]: the magic
/// line, `seq` and `prev_hash`), appended to `out`.
fn canonical_body(out: &mut Vec<u8>, r: &AuditRecord) {
    val(out, "time", r.time.as_bytes());
    val(out, "request_id", r.request_id.as_bytes());
    opt(out, "principal", r.principal.as_deref());
    opt(out, "token_id", r.token_id.as_deref());
    val(out, "action", r.action.as_bytes());
    opt(out, "resource", r.resource.as_deref());
    list(out, "extra_resources", &r.extra_resources);
    opt(out, "region", r.region.as_deref());
    val(out, "decision", r.decision.as_str().as_bytes());
    list(out, "policies", &r.policies);
    opt(out, "reason", r.reason.as_deref());
    num(out, "status", u64::from(r.status));
    opt(out, "error_code", r.error_code.as_deref());
    opt(out, "source_ip", r.source_ip.as_deref());
    count(out, "keys", r.keys.len());
    for k in &r.keys {
        val(out, "key_id", k.key_id.as_bytes());
        num(out, "key_version", u64::from(k.key_version));
    }
    if !r.trail.is_empty() {
        count(out, "trail", r.trail.len());
        for t in &r.trail {
            val(out, "kind", t.kind.as_bytes());
            val(out, "detail", t.detail.as_bytes());
        }
    }
}

/// A record's position and hash: the checkpoint (`meta/audit-head`) and the start of a
/// walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// The record's sequence number (0 = before the first record).
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

impl AuditHead {
    fn empty() -> Self {
        AuditHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// The retention base (`meta/audit-base`): the newest record retention removed, which the
/// oldest record kept must chain to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditBase {
    /// Sequence number of the newest removed record.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// When retention removed it (RFC 3339).
    pub removed_at: String,
}

fn fmt_nanos(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn read_key<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &[u8]) -> Result<Option<T>> {
    store
        .get(key)?
        .map(|raw| decode(&String::from_utf8_lossy(key), &raw))
        .transpose()
}

/// Only the hash of a stored record (what the next record chains to).
#[derive(Deserialize)]
struct HashOnly {
    hash: String,
}

/// An entry encoded by the thread that built it, ready to be chained: its JSON line and
/// its canonical encoding, both without `seq`, `prev_hash` and `hash`. The audit writer
/// then only numbers, hashes and concatenates (see [`Coffer::append_prepared`]), and the
/// entry's strings are freed where they were allocated.
#[derive(Debug, Clone)]
pub struct PreparedEntry {
    /// The JSON fields between `seq` and `prev_hash` (`"time":…,`), then the canonical
    /// encoding's fields after `prev_hash`.
    buf: Vec<u8>,
    /// Where the canonical part starts.
    split: usize,
}

/// How a record with `seq` 0 and empty hashes starts and ends in JSON and in the
/// canonical encoding: what [`PreparedEntry::new`] cuts off.
const JSON_HEAD: &[u8] = b"{\"seq\":0,";
const JSON_TAIL: &[u8] = b"\"prev_hash\":\"\",\"hash\":\"\"}";

impl PreparedEntry {
    /// Encodes `entry`.
    pub fn new(entry: AuditEntry) -> Result<PreparedEntry> {
        let r = AuditRecord::unhashed(entry, 0, "");
        let mut buf = Vec::with_capacity(1024);
        serde_json::to_writer(&mut buf, &r)
            .map_err(|e| CoreError::Internal(format!("encode audit record: {e}")))?;
        let Some(json_len) = buf
            .strip_prefix(JSON_HEAD)
            .and_then(|b| b.strip_suffix(JSON_TAIL))
            .map(<[u8]>::len)
        else {
            return Err(CoreError::Internal(
                "an audit record does not encode in the expected field order".into(),
            ));
        };
        buf.copy_within(JSON_HEAD.len()..JSON_HEAD.len() + json_len, 0);
        buf.truncate(json_len);
        canonical_body(&mut buf, &r);
        Ok(PreparedEntry {
            buf,
            split: json_len,
        })
    }

    /// Appends this entry as record `seq` after `prev_hash` to `out` (its JSON line and
    /// `'\n'`) and returns its hash: the same bytes and hash as
    /// [`AuditRecord::seal_owned`] and `serde_json`.
    fn chain(&self, seq: u64, prev_hash: &str, out: &mut Vec<u8>) -> String {
        let mut head = Vec::with_capacity(128);
        canonical_head(&mut head, seq, prev_hash.as_bytes());
        let digest = Sha256::new()
            .chain_update(&head)
            .chain_update(&self.buf[self.split..])
            .finalize();
        let hash = hex::encode(digest);
        let mut digits = [0u8; 20];
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(decimal(seq, &mut digits));
        out.push(b',');
        out.extend_from_slice(&self.buf[..self.split]);
        out.extend_from_slice(b"\"prev_hash\":\"");
        out.extend_from_slice(prev_hash.as_bytes());
        out.extend_from_slice(b"\",\"hash\":\"");
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(b"\"}\n");
        hash
    }
}

/// What one append wrote.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Position of the first record (the others follow in order).
    pub first_seq: u64,
    /// The newest record.
    pub head: AuditHead,
    /// The records as written: JSON lines, each ending in `'\n'` (what the JSON-lines
    /// mirror appends).
    pub lines: Vec<u8>,
}

impl Appended {
    /// The records, decoded back from [`Appended::lines`].
    pub fn records(&self) -> Result<Vec<AuditRecord>> {
        self.lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l)
                    .map_err(|e| CoreError::Internal(format!("decode audit record: {e}")))
            })
            .collect()
    }
}

/// Chains `entries` after the newest record and appends them to the log in one write,
/// durable when this returns (one `fdatasync` for the batch). Returns the records written,
/// in order.
pub fn append(store: &dyn Store, entries: &[AuditEntry]) -> Result<Vec<AuditRecord>> {
    let prepared = prepare_all(entries.iter().cloned())?;
    records_of(append_prepared(store, &prepared, None)?)
}

/// Encodes `entries` for [`append_prepared`].
fn prepare_all(entries: impl IntoIterator<Item = AuditEntry>) -> Result<Vec<PreparedEntry>> {
    entries.into_iter().map(PreparedEntry::new).collect()
}

/// The records an append wrote, decoded back (none when there was nothing to append).
fn records_of(appended: Option<Appended>) -> Result<Vec<AuditRecord>> {
    appended.map_or_else(|| Ok(Vec::new()), |a| a.records())
}

/// [`append`] of prepared entries. `known` is the newest record this process appended,
/// if it knows it: when it is still the newest in the log, the batch chains to its hash
/// without reading the log's last line back. `None` when there was nothing to append.
fn append_prepared(
    store: &dyn Store,
    entries: &[PreparedEntry],
    known: Option<&AuditHead>,
) -> Result<Option<Appended>> {
    if entries.is_empty() {
        return Ok(None);
    }
    let ((first_seq, head), lines) = store.audit_log().append_joined_with(|tail| {
        let mut prev = match (tail.last, known) {
            (Some(_), Some(k)) if k.seq + 1 == tail.next_seq => k.hash.clone(),
            (Some(line), _) => {
                serde_json::from_slice::<HashOnly>(line)
                    .map_err(|e| {
                        StoreError::Backend(format!(
                            "the newest audit record ({}) cannot be read, so nothing can be chained to it ({e}); run `coffer audit verify`",
                            tail.next_seq - 1
                        ))
                    })?
                    .hash
            }
            // An empty log starts the chain, or continues after what retention removed.
            (None, _) => match read_key::<AuditBase>(store, BASE_KEY) {
                Ok(Some(b)) if b.seq + 1 == tail.next_seq => b.hash,
                Ok(_) => GENESIS_HASH.to_string(),
                Err(e) => return Err(StoreError::Backend(e.to_string())),
            },
        };
        // The hash goes into the line as it is (unescaped): one read back from a damaged
        // log must not break the line apart.
        if !prev.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Backend(format!(
                "the newest audit record ({}) holds a hash that is not hex, so nothing can be chained to it; run `coffer audit verify`",
                tail.next_seq - 1
            )));
        }
        let mut lines =
            Vec::with_capacity(entries.iter().map(|e| e.buf.len() + 200).sum::<usize>());
        let mut seq = tail.next_seq;
        for e in entries {
            prev = e.chain(seq, &prev, &mut lines);
            seq += 1;
        }
        let head = AuditHead {
            seq: seq - 1,
            hash: prev,
        };
        Ok((lines, (tail.next_seq, head)))
    })?;
    Ok(Some(Appended {
        first_seq,
        head,
        lines,
    }))
}

/// Writes `head` as the checkpoint (applied, durable with the store's next sync).
pub fn checkpoint(store: &dyn Store, head: &AuditHead) -> Result<()> {
    let mut b = Batch::default();
    b.put(HEAD_KEY, &encode(head)?);
    store.apply(&b)?;
    Ok(())
}

/// A verification failure: the first bad record and what is wrong with it.
struct Problem {
    seq: u64,
    kind: &'static str,
    message: String,
}

fn missing(first: u64, last: u64, context: &str) -> Problem {
    Problem {
        seq: first,
        kind: "removed",
        message: if first == last {
            format!("record {first} is missing ({context})")
        } else {
            format!("records {first}–{last} are missing ({context})")
        },
    }
}

/// The chain walk of [`verify`], one line at a time.
struct Walk {
    /// The last good record (or the base / genesis).
    prev: AuditHead,
    /// Where the walk started: the retention base, or genesis.
    start: u64,
    checkpoint: AuditHead,
    checked: u64,
    /// A record found where another was expected, judged by the record after it: a
    /// stranger followed by the expected record's successor (or the expected record
    /// itself) was moved here; one followed by its own successor means records are
    /// missing before it.
    held: Option<AuditRecord>,
    problem: Option<Problem>,
}

impl Walk {
    fn fail(&mut self, p: Problem) -> ControlFlow<()> {
        self.problem = Some(p);
        ControlFlow::Break(())
    }

    fn out_of_place(&self, r: &AuditRecord, next: Option<u64>) -> Problem {
        let expected = self.prev.seq + 1;
        let moved = Problem {
            seq: expected,
            kind: "reordered",
            message: format!(
                "position {expected} holds record {} (records were reordered or moved)",
                r.seq
            ),
        };
        match next {
            Some(n) if n == expected || n == expected + 1 => moved,
            _ if r.seq > expected => missing(
                expected,
                r.seq - 1,
                &format!("the log goes from {} to {}", self.prev.seq, r.seq),
            ),
            _ => moved,
        }
    }

    fn line(&mut self, line: &[u8]) -> ControlFlow<()> {
        let expected = self.prev.seq + 1;
        let parsed = serde_json::from_slice::<AuditRecord>(line);
        if let Some(held) = self.held.take() {
            let p = self.out_of_place(&held, parsed.as_ref().ok().map(|r| r.seq));
            return self.fail(p);
        }
        let rec = match parsed {
            Ok(r) => r,
            Err(e) => {
                return self.fail(Problem {
                    seq: expected,
                    kind: "unreadable",
                    message: format!("record {expected} cannot be read (altered): {e}"),
                })
            }
        };
        let seq = rec.seq;
        if rec.compute_hash() != rec.hash {
            return self.fail(Problem {
                seq: expected,
                kind: "altered",
                message: format!(
                    "record {expected} was altered: its contents do not match its hash"
                ),
            });
        }
        if seq != expected {
            self.held = Some(rec);
            return ControlFlow::Continue(());
        }
        if rec.prev_hash != self.prev.hash {
            let p = if self.prev.seq == self.start {
                Problem {
                    seq,
                    kind: "chain-broken",
                    message: if self.start == 0 {
                        format!("record {seq} does not start the chain (its prev_hash is not the genesis hash)")
                    } else {
                        format!("record {seq} does not chain to record {}, the newest one retention removed", self.start)
                    },
                }
            } else {
                Problem {
                    seq: self.prev.seq,
                    kind: "chain-broken",
                    message: format!(
                        "the chain breaks between records {} and {seq}: record {} is not the record {seq} was chained to (it was replaced, with its hash recomputed)",
                        self.prev.seq, self.prev.seq
                    ),
                }
            };
            return self.fail(p);
        }
        if seq == self.checkpoint.seq && rec.hash != self.checkpoint.hash {
            return self.fail(Problem {
                seq,
                kind: "head-mismatch",
                message: format!(
                    "record {seq} does not match the checkpoint's hash (it was replaced, with its hash recomputed)"
                ),
            });
        }
        self.checked += 1;
        self.prev = AuditHead {
            seq,
            hash: rec.hash,
        };
        ControlFlow::Continue(())
    }

    fn finish(mut self) -> (u64, Option<Problem>) {
        if self.problem.is_none() {
            if let Some(held) = self.held.take() {
                self.problem = Some(self.out_of_place(&held, None));
            } else if self.prev.seq < self.checkpoint.seq {
                self.problem = Some(missing(
                    self.prev.seq + 1,
                    self.checkpoint.seq,
                    &format!("the checkpoint names record {}", self.checkpoint.seq),
                ));
            }
        }
        (self.checked, self.problem)
    }
}

/// Walks the whole chain in `store` and reports whether it is intact, or names the first
/// record that was altered, removed, reordered or whose link breaks. Works on a live
/// store (records appended during the walk are not judged) and offline.
pub fn verify(store: &dyn Store) -> Result<VerifyAuditResponse> {
    let checkpoint = read_key::<AuditHead>(store, HEAD_KEY)?.unwrap_or_else(AuditHead::empty);
    let base = read_key::<AuditBase>(store, BASE_KEY)?;
    let start = base.as_ref().map_or_else(AuditHead::empty, |b| AuditHead {
        seq: b.seq,
        hash: b.hash.clone(),
    });
    let log = store.audit_log();
    let head_seq = log.last_seq();
    let mut walk = Walk {
        start: start.seq,
        prev: start,
        checkpoint,
        checked: 0,
        held: None,
        problem: None,
    };
    log.walk(walk.start + 1, |_, line| walk.line(line))?;
    let (checked, problem) = walk.finish();
    Ok(VerifyAuditResponse {
        ok: problem.is_none(),
        records_checked: checked,
        head_seq,
        first_bad_seq: problem.as_ref().map(|p| p.seq),
        problem_kind: problem.as_ref().map(|p| p.kind.to_string()),
        problem: problem.map(|p| p.message),
        removed_through: base.map(|b| b.seq),
    })
}

/// Parsed and validated filters of a query.
struct Filter {
    principal: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    decision: Option<AuditDecision>,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
}

impl Filter {
    fn parse(q: &AuditQuery) -> Result<Filter> {
        let time = |name: &str, v: &Option<String>| -> Result<Option<OffsetDateTime>> {
            v.as_deref()
                .map(|s| {
                    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
                        CoreError::InvalidParameter(format!(
                            "{name} must be an RFC 3339 time such as 2025-01-31T12:00:00Z"
                        ))
                    })
                })
                .transpose()
        };
        let decision = q
            .decision
            .as_deref()
            .map(|d| {
                AuditDecision::parse(d).ok_or_else(|| {
                    CoreError::InvalidParameter(
                        "decision must be allow, deny, unauthenticated or not-evaluated".into(),
                    )
                })
            })
            .transpose()?;
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(Filter {
            principal: nonempty(&q.principal),
            action: nonempty(&q.action),
            resource: nonempty(&q.resource),
            decision,
            since: time("since", &q.since)?,
            until: time("until", &q.until)?,
        })
    }

    fn matches(&self, r: &AuditRecord) -> bool {
        if self
            .principal
            .as_ref()
            .is_some_and(|p| r.principal.as_ref() != Some(p))
        {
            return false;
        }
        if self.action.as_ref().is_some_and(|a| &r.action != a) {
            return false;
        }
        if let Some(prefix) = &self.resource {
            let hit = r
                .resource
                .iter()
                .chain(r.extra_resources.iter())
                .any(|res| res.starts_with(prefix.as_str()));
            if !hit {
                return false;
            }
        }
        if self.decision.is_some_and(|d| d != r.decision) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(t) = OffsetDateTime::parse(&r.time, &Rfc3339) else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }
}

/// Records matching `q`, newest first unless `order=asc`, one page at a time.
pub fn query(store: &dyn Store, q: &AuditQuery) -> Result<ListAuditResponse> {
    let filter = Filter::parse(q)?;
    let max = q.max_results.unwrap_or(DEFAULT_QUERY_RESULTS);
    if !(1..=MAX_QUERY_RESULTS).contains(&max) {
        return Err(CoreError::InvalidParameter(format!(
            "max_results must be 1–{MAX_QUERY_RESULTS}"
        )));
    }
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return Err(CoreError::InvalidParameter(
                "order must be asc or desc".into(),
            ))
        }
    };
    let start = q
        .next_token
        .as_deref()
        .map(|t| {
            t.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                CoreError::InvalidParameter("next_token is not one this server gave".into())
            })
        })
        .transpose()?;
    let log = store.audit_log();
    let (first, last) = (log.first_seq(), log.last_seq());
    let mut out = Vec::new();
    let mut examined = 0usize;
    let parse = |raw: &[u8]| -> Result<AuditRecord> { decode("audit", raw) };
    let next = if descending {
        let mut cur = start.unwrap_or(last).min(last);
        'pages: while cur >= first {
            let lo = cur.saturating_sub(SCAN_PAGE - 1).max(first);
            for (seq, raw) in log.read(lo, cur)?.iter().rev() {
                examined += 1;
                let r = parse(raw)?;
                if filter.matches(&r) {
                    out.push(r.to_api());
                }
                if out.len() >= max || examined >= QUERY_SCAN_BUDGET {
                    cur = seq - 1;
                    break 'pages;
                }
            }
            cur = lo - 1;
        }
        (cur >= first).then_some(cur)
    } else {
        let mut cur = start.unwrap_or(first).max(first);
        'pages: while cur <= last {
            let hi = cur.saturating_add(SCAN_PAGE - 1).min(last);
            for (seq, raw) in log.read(cur, hi)? {
                examined += 1;
                let r = parse(&raw)?;
                if filter.matches(&r) {
                    out.push(r.to_api());
                }
                if out.len() >= max || examined >= QUERY_SCAN_BUDGET {
                    cur = seq + 1;
                    break 'pages;
                }
            }
            cur = hi + 1;
        }
        (cur <= last).then_some(cur)
    };
    Ok(ListAuditResponse {
        records: out,
        next_token: next.map(|n| n.to_string()),
    })
}

/// What one retention run removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Oldest record removed.
    pub first: u64,
    /// Newest record removed (now the retention base).
    pub through: u64,
}

/// Removes the oldest segments of the log whose records are all older than `cutoff`
/// (whole segments only; never the one being written). The retention base is made
/// durable first, so an interrupted run leaves a log that verifies.
pub async fn prune(
    store: &dyn Store,
    cutoff: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<Pruned>> {
    let log = store.audit_log();
    let segments = log.segments();
    let mut through = None;
    for pair in segments.windows(2) {
        // The next segment's first record was written after every record of this one.
        let next = pair[1].first_seq;
        let Some((_, raw)) = log.read(next, next)?.into_iter().next() else {
            break;
        };
        let r: AuditRecord = decode("audit", &raw)?;
        match OffsetDateTime::parse(&r.time, &Rfc3339) {
            Ok(t) if t < cutoff => through = Some(pair[0].last_seq),
            _ => break,
        }
    }
    let Some(through) = through else {
        return Ok(None);
    };
    let first = log.first_seq();
    let Some((_, raw)) = log.read(through, through)?.into_iter().next() else {
        return Ok(None);
    };
    let newest_removed: HashOnly = decode("audit", &raw)?;
    let base = AuditBase {
        seq: through,
        hash: newest_removed.hash,
        removed_at: fmt_nanos(now),
    };
    let mut b = Batch::default();
    b.put(BASE_KEY, &encode(&base)?);
    store.apply(&b)?;
    store.sync().await?;
    log.remove_through(through)?;
    Ok(Some(Pruned { first, through }))
}

impl Coffer {
    /// Appends a batch of entries to the audit log; durable when this returns (one write,
    /// one `fdatasync`). Returns the chained records, in order. Moves the checkpoint at
    /// most every [`CHECKPOINT_EVERY`].
    pub fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditRecord>> {
        let prepared = prepare_all(entries)?;
        records_of(self.append_prepared(&prepared)?)
    }

    /// [`Coffer::append_audit`] of entries prepared on the requests' own threads (the
    /// audit writer's path). `None` when `entries` is empty.
    pub fn append_prepared(&self, entries: &[PreparedEntry]) -> Result<Option<Appended>> {
        let known = self.audit_head();
        let appended = append_prepared(self.store.as_ref(), entries, known.as_ref())?;
        if let Some(a) = &appended {
            let mut tip = self.audit_tip.lock().unwrap_or_else(|p| p.into_inner());
            if tip.head.as_ref().is_none_or(|h| h.seq < a.head.seq) {
                tip.head = Some(a.head.clone());
            }
            if tip.written.is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY) {
                tip.written = Some(std::time::Instant::now());
                if let Some(h) = &tip.head {
                    // The records are durable whatever happens here; a stale checkpoint
                    // only weakens truncation detection.
                    if let Err(e) = checkpoint(self.store.as_ref(), h) {
                        tracing::warn!(error = %e, "audit checkpoint not written");
                    }
                }
            }
        }
        Ok(appended)
    }

    /// The newest record this process appended.
    fn audit_head(&self) -> Option<AuditHead> {
        self.audit_tip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .head
            .clone()
    }

    /// Writes the checkpoint for the newest record this process appended and makes it
    /// durable (at shutdown).
    pub async fn checkpoint_audit(&self) -> Result<()> {
        if let Some(h) = self.audit_head() {
            checkpoint(self.store.as_ref(), &h)?;
            self.durable().await?;
        }
        Ok(())
    }

    /// Removes audit records older than `max_age` (whole segments). See [`prune`].
    pub async fn prune_audit(&self, max_age: time::Duration) -> Result<Option<Pruned>> {
        let now = self.now();
        prune(self.store.as_ref(), now - max_age, now).await
    }

    /// `GET /v1/audit`.
    pub fn query_audit(&self, q: &AuditQuery) -> Result<ListAuditResponse> {
        query(self.store.as_ref(), q)
    }

    /// `POST /v1/audit/verify`: walks the chain in the live store.
    pub fn verify_audit(&self) -> Result<VerifyAuditResponse> {
        verify(self.store.as_ref())
    }
}

/// The newest record this process appended, and when the checkpoint was last written.
#[derive(Debug, Default)]
pub(crate) struct AuditTip {
    head: Option<AuditHead>,
    written: Option<std::time::Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::SledStore;

    fn entry(i: usize) -> AuditEntry {
        let mut e = AuditEntry::new(
            if matches!(i % 2, 0) {
                "GetSecretValue"
            } else {
                "Encrypt"
            },
            &format!("req-{i}"),
            OffsetDateTime::from_unix_timestamp(1_700_000_000 + i as i64).expect("time"),
        );
        e.principal = Some(if matches!(i % 3, 0) { "alice" } else { "bob" }.to_string());
        e.token_id = Some("t1".into());
        e.resource = Some(format!("secret:local/app/{i}"));
        e.decision = if matches!(i % 5, 0) {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        };
        e.status = if matches!(i % 5, 0) { 403 } else { 200 };
        e.keys = vec![KeyUse {
            key_id: "k1".into(),
            key_version: 1,
        }];
        e
    }

    /// A store in a directory (so tests can stop it, edit its files and reopen it)
    /// holding `n` records appended in batches of 7.
    fn store_with(n: usize) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SledStore::open(dir.path()).expect("store");
        let entries: Vec<_> = (1..=n).map(entry).collect();
        // Several batches, so chaining across batches is exercised.
        for chunk in entries.chunks(7) {
            append(&s, chunk).expect("append");
        }
        if let Some(last) = raw_opt(&s, n as u64) {
            let r: AuditRecord = serde_json::from_slice(&last).unwrap();
            checkpoint(
                &s,
                &AuditHead {
                    seq: r.seq,
                    hash: r.hash,
                },
            )
            .unwrap();
        }
        (dir, s)
    }

    fn raw_opt(s: &SledStore, seq: u64) -> Option<Vec<u8>> {
        s.audit_log().read(seq, seq).unwrap().pop().map(|(_, l)| l)
    }

    fn raw(s: &SledStore, seq: u64) -> Vec<u8> {
        raw_opt(s, seq).expect("record")
    }

    /// Closes the store, lets `change` edit the log's lines (all in one segment here),
    /// reopens it.
    fn tamper(
        dir: &tempfile::TempDir,
        s: SledStore,
        change: impl FnOnce(&mut Vec<Vec<u8>>),
    ) -> SledStore {
        let seg = s.audit_log().segments();
        assert_eq!(seg.len(), 1);
        let path = seg[0].path.clone();
        drop(s);
        let text = std::fs::read(&path).unwrap();
        let mut lines: Vec<Vec<u8>> = text
            .strip_suffix(b"\n")
            .unwrap()
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        change(&mut lines);
        let mut out = lines.join(&b'\n');
        out.push(b'\n');
        std::fs::write(&path, out).unwrap();
        SledStore::open(dir.path()).unwrap()
    }

    fn bad(s: &SledStore) -> (u64, String) {
        let v = verify(s).expect("verify");
        assert!(!v.ok, "verification should fail: {v:?}");
        (
            v.first_bad_seq.expect("first bad"),
            v.problem_kind.expect("kind"),
        )
    }

    #[test]
    fn records_chain_across_batches_and_verify() {
        let (_d, s) = store_with(30);
        let v = verify(&s).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.records_checked, v.head_seq), (30, 30));
        let r1: AuditRecord = serde_json::from_slice(&raw(&s, 1)).unwrap();
        assert_eq!(r1.prev_hash, GENESIS_HASH);
        for seq in 2..=30 {
            let a: AuditRecord = serde_json::from_slice(&raw(&s, seq - 1)).unwrap();
            let b: AuditRecord = serde_json::from_slice(&raw(&s, seq)).unwrap();
            assert_eq!(b.seq, seq);
            assert_eq!(b.prev_hash, a.hash);
        }
    }

    #[test]
    fn empty_log_verifies() {
        let s = SledStore::temporary().unwrap();
        let v = verify(&s).unwrap();
        assert!(v.ok);
        assert_eq!(v.head_seq, 0);
    }

    /// A record with every field set, and one with none of the optional ones.
    fn golden_records() -> [AuditRecord; 2] {
        golden_entries().map(|(e, seq, prev)| AuditRecord::seal(&e, seq, &prev))
    }

    /// The entries of [`golden_records`], with their `seq` and `prev_hash`.
    fn golden_entries() -> [(AuditEntry, u64, String); 2] {
        let mut e = entry(3);
        e.region = Some("eu-west-1".into());
        e.extra_resources = vec!["key:local/k2".into(), "secret:local/ünïcode\n".into()];
        e.policies = vec!["p1".into(), "team-read".into()];
        e.reason = Some("denied: \"quoted\"".into());
        e.error_code = Some("AccessDenied".into());
        e.source_ip = Some("::1".into());
        e.keys.push(KeyUse {
            key_id: "k2".into(),
            key_version: 17,
        });
        e.trail = vec![TrailEntry {
            kind: "sql".into(),
            detail: "ALTER ROLE x PASSWORD <redacted>".into(),
        }];
        let bare = AuditEntry::new("UnknownOperation", "-", OffsetDateTime::UNIX_EPOCH);
        [
            (e, 42, "ab".repeat(32)),
            (bare, 1, GENESIS_HASH.to_string()),
        ]
    }

    /// The writer's path (entries prepared on the requests' threads, chained by
    /// concatenation) writes exactly the line and hash of a sealed record.
    #[test]
    fn a_prepared_entry_chains_to_the_sealed_record() {
        let mut cases: Vec<(AuditEntry, u64, String)> = golden_entries().into();
        for i in 0..12 {
            cases.push((
                entry(i),
                [1, 9, 10, 99_999, u64::MAX][i % 5],
                "cd".repeat(32),
            ));
        }
        for (e, seq, prev) in cases {
            let sealed = AuditRecord::seal(&e, seq, &prev);
            let mut line = Vec::new();
            let hash = PreparedEntry::new(e)
                .expect("prepare")
                .chain(seq, &prev, &mut line);
            assert_eq!(hash, sealed.hash);
            let mut want = serde_json::to_vec(&sealed).expect("json");
            want.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&want)
            );
        }
    }

    /// The encoding is a stored format: every hash already in a log depends on it, so it
    /// must never change by accident (e.g. when it is optimized).
    #[test]
    fn canonical_encoding_is_stable() {
        let [full, bare] = golden_records();
        assert_eq!(
            full.hash,
            "4d108fe1f6cdb5a5a7efad05efb6045760bcb3da09c2aa2c4c2b350e0db29e56"
        );
        assert_eq!(
            bare.hash,
            "9c3727c379ff084919a92fc57bab1c149eb7587a3ac12d820813431e36a646b4"
        );
    }

    #[test]
    fn canonical_encoding_is_unambiguous() {
        let mut a = AuditRecord::seal(&entry(1), 1, GENESIS_HASH);
        let mut b = a.clone();
        // Moving bytes between adjacent fields must change the encoding.
        a.principal = Some("ab".into());
        a.token_id = Some("c".into());
        b.principal = Some("a".into());
        b.token_id = Some("bc".into());
        assert_ne!(canonical_encoding(&a), canonical_encoding(&b));
        // Absent and empty differ.
        a.reason = None;
        b = a.clone();
        b.reason = Some(String::new());
        assert_ne!(canonical_encoding(&a), canonical_encoding(&b));
        // Every field is covered.
        let base = AuditRecord::seal(&entry(2), 2, GENESIS_HASH);
        let h = base.compute_hash();
        type Mutation = Box<dyn Fn(&mut AuditRecord)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|r| r.seq += 1),
            Box::new(|r| r.prev_hash = "1".repeat(64)),
            Box::new(|r| r.time.push('x')),
            Box::new(|r| r.request_id.push('x')),
            Box::new(|r| r.principal = None),
            Box::new(|r| r.token_id = None),
            Box::new(|r| r.action.push('x')),
            Box::new(|r| r.resource = None),
            Box::new(|r| r.extra_resources.push("x".into())),
            Box::new(|r| r.region = Some("x".into())),
            Box::new(|r| r.decision = AuditDecision::Unauthenticated),
            Box::new(|r| r.policies.push("p".into())),
            Box::new(|r| r.reason = Some("r".into())),
            Box::new(|r| r.status += 1),
            Box::new(|r| r.error_code = Some("E".into())),
            Box::new(|r| r.source_ip = Some("127.0.0.1".into())),
            Box::new(|r| r.keys[0].key_version += 1),
            Box::new(|r| r.keys[0].key_id.push('x')),
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut r = base.clone();
            m(&mut r);
            assert_ne!(
                r.compute_hash(),
                h,
                "mutation {i} is not covered by the hash"
            );
        }
    }

    fn json(line: &[u8]) -> serde_json::Value {
        serde_json::from_slice(line).unwrap()
    }

    #[test]
    fn an_altered_field_names_its_record() {
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| {
            let mut v = json(&l[4]);
            v["decision"] = "allow".into();
            v["principal"] = "mallory".into();
            l[4] = serde_json::to_vec(&v).unwrap();
        });
        assert_eq!(bad(&s), (5, "altered".into()));
    }

    #[test]
    fn an_added_field_is_refused() {
        let (d, s) = store_with(4);
        let s = tamper(&d, s, |l| {
            let mut v = json(&l[1]);
            v["note"] = "hidden".into();
            l[1] = serde_json::to_vec(&v).unwrap();
        });
        assert_eq!(bad(&s), (2, "unreadable".into()));
    }

    #[test]
    fn a_removed_record_names_the_gap() {
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| {
            l.remove(6);
        });
        assert_eq!(bad(&s), (7, "removed".into()));
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| {
            l.drain(3..6);
        });
        let v = verify(&s).unwrap();
        assert_eq!(v.first_bad_seq, Some(4));
        assert!(v.problem.unwrap().contains("records 4–6 are missing"));
    }

    #[test]
    fn removing_the_newest_records_is_caught_by_the_checkpoint() {
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| {
            l.truncate(10);
        });
        assert_eq!(bad(&s), (11, "removed".into()));
    }

    #[test]
    fn swapped_records_name_the_first_position() {
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| l.swap(3, 8));
        assert_eq!(bad(&s), (4, "reordered".into()));
        // Neighbours, and the last two.
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| l.swap(5, 6));
        assert_eq!(bad(&s), (6, "reordered".into()));
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| l.swap(10, 11));
        assert_eq!(bad(&s), (11, "reordered".into()));
    }

    #[test]
    fn a_replaced_record_with_recomputed_hash_breaks_the_next_link() {
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| {
            let mut r: AuditRecord = serde_json::from_slice(&l[5]).unwrap();
            r.principal = Some("mallory".into());
            r.hash = r.compute_hash();
            l[5] = serde_json::to_vec(&r).unwrap();
        });
        assert_eq!(bad(&s), (6, "chain-broken".into()));
        // The newest record: the checkpoint pins it.
        let (d, s) = store_with(12);
        let s = tamper(&d, s, |l| {
            let mut r: AuditRecord = serde_json::from_slice(&l[11]).unwrap();
            r.request_id = "req-forged".into();
            r.hash = r.compute_hash();
            l[11] = serde_json::to_vec(&r).unwrap();
        });
        assert_eq!(bad(&s), (12, "head-mismatch".into()));
    }

    #[test]
    fn the_writer_chains_to_its_own_last_record_and_to_one_appended_elsewhere() {
        let store = std::sync::Arc::new(SledStore::temporary().unwrap());
        let core = Coffer::new(
            store.clone(),
            std::sync::Arc::new(coffer_crypto::MemoryRootKey::generate()),
            crate::CoreConfig::default(),
        )
        .unwrap();
        core.append_audit(vec![entry(1), entry(2)]).unwrap();
        // Chains to the hash it remembers.
        core.append_audit(vec![entry(3)]).unwrap();
        // Someone else appended: what it remembers is no longer the newest record.
        append(store.as_ref(), &[entry(4)]).unwrap();
        let r = core.append_audit(vec![entry(5), entry(6)]).unwrap();
        assert_eq!(r[0].prev_hash, json(&raw(store.as_ref(), 4))["hash"]);
        let v = verify(store.as_ref()).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records_checked, 6);
        for seq in 2..=6 {
            let prev = json(&raw(store.as_ref(), seq - 1));
            assert_eq!(json(&raw(store.as_ref(), seq))["prev_hash"], prev["hash"]);
        }
    }

    #[test]
    fn a_damaged_newest_record_stops_appends_but_not_verify() {
        let (d, s) = store_with(3);
        let s = tamper(&d, s, |l| l[2].truncate(10));
        assert_eq!(bad(&s), (3, "unreadable".into()));
        let err = append(&s, &[entry(4)]).unwrap_err().to_string();
        assert!(
            err.contains("newest audit record (3) cannot be read"),
            "{err}"
        );
        assert_eq!(s.audit_log().last_seq(), 3);
    }

    /// The writer puts the previous hash into the new line unescaped, so a newest record
    /// whose hash was edited into something else (here: a quote and a newline escape)
    /// stops appends instead of producing a broken line.
    #[test]
    fn a_newest_record_with_a_non_hex_hash_stops_appends() {
        let (d, s) = store_with(3);
        let s = tamper(&d, s, |l| {
            let mut r = json(&l[2]);
            r["hash"] = serde_json::Value::String("ab\"\n".into());
            l[2] = serde_json::to_vec(&r).unwrap();
        });
        let err = append(&s, &[entry(4)]).unwrap_err().to_string();
        assert!(err.contains("holds a hash that is not hex"), "{err}");
        assert_eq!(s.audit_log().last_seq(), 3);
    }

    #[test]
    fn the_log_survives_a_reopen_and_continues_the_chain() {
        let (d, s) = store_with(5);
        drop(s);
        let s = SledStore::open(d.path()).unwrap();
        let r = append(&s, &[entry(6)]).unwrap();
        assert_eq!(r[0].seq, 6);
        assert_eq!(r[0].prev_hash, json(&raw(&s, 5))["hash"]);
        assert!(verify(&s).unwrap().ok);
    }

    #[tokio::test]
    async fn retention_removes_old_segments_and_the_rest_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let s = small_segment_store(dir.path());
        for day in 0..6i64 {
            let mut batch: Vec<_> = (0..3).map(|i| entry(day as usize * 3 + i + 1)).collect();
            for e in &mut batch {
                e.time = OffsetDateTime::from_unix_timestamp(1_700_000_000 + day * 86_400).unwrap();
            }
            append(&s, &batch).unwrap();
        }
        assert_eq!(s.audit_log().segments().len(), 6);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000 + 6 * 86_400).unwrap();
        // Keep 3.5 days. Days 0 and 1 go (segments 1–2). Day 2 is older than that too,
        // but a segment counts as old only once the next one starts before the cutoff.
        let cutoff = now - time::Duration::hours(84);
        let p = prune(&s, cutoff, now).await.unwrap().expect("pruned");
        assert_eq!((p.first, p.through), (1, 6));
        assert_eq!(s.audit_log().first_seq(), 7);
        let v = verify(&s).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.records_checked, v.removed_through), (12, Some(6)));
        // Nothing more to remove; appends continue the chain.
        assert_eq!(prune(&s, cutoff, now).await.unwrap(), None);
        append(&s, &[entry(19)]).unwrap();
        assert!(verify(&s).unwrap().ok);
        // A kept record whose link to the base is forged is caught.
        let mut b = Batch::default();
        b.put(
            BASE_KEY,
            &serde_json::to_vec(&AuditBase {
                seq: 6,
                hash: "f".repeat(64),
                removed_at: "x".into(),
            })
            .unwrap(),
        );
        s.apply(&b).unwrap();
        assert_eq!(bad(&s), (7, "chain-broken".into()));
    }

    /// A store whose audit log starts a new segment for every append.
    fn small_segment_store(dir: &std::path::Path) -> SledStore {
        SledStore::open_with_segment_bytes(dir, coffer_store::DEFAULT_CACHE_BYTES, 1).unwrap()
    }

    #[test]
    fn query_filters_orders_and_pages() {
        let (_d, s) = store_with(40);
        let all = |q: AuditQuery| -> Vec<u64> {
            let mut q = q;
            let mut seqs = Vec::new();
            loop {
                let page = query(&s, &q).unwrap();
                seqs.extend(page.records.iter().map(|r| r.seq));
                match page.next_token {
                    Some(t) => q.next_token = Some(t),
                    None => return seqs,
                }
            }
        };
        let desc = all(AuditQuery {
            max_results: Some(7),
            ..Default::default()
        });
        assert_eq!(desc, (1..=40).rev().collect::<Vec<_>>());
        let asc = all(AuditQuery {
            max_results: Some(6),
            order: Some("asc".into()),
            ..Default::default()
        });
        assert_eq!(asc, (1..=40).collect::<Vec<_>>());
        let denied = all(AuditQuery {
            decision: Some("deny".into()),
            order: Some("asc".into()),
            max_results: Some(3),
            ..Default::default()
        });
        assert_eq!(denied, vec![5, 10, 15, 20, 25, 30, 35, 40]);
        let alice_enc = all(AuditQuery {
            principal: Some("alice".into()),
            action: Some("Encrypt".into()),
            ..Default::default()
        });
        assert_eq!(alice_enc, vec![39, 33, 27, 21, 15, 9, 3]);
        let by_resource = all(AuditQuery {
            resource: Some("secret:local/app/1".into()),
            order: Some("asc".into()),
            ..Default::default()
        });
        assert_eq!(by_resource, vec![1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
        let window = all(AuditQuery {
            since: Some("2023-11-14T22:13:25Z".into()), // 1_700_000_005
            until: Some("2023-11-14T22:13:27Z".into()),
            order: Some("asc".into()),
            ..Default::default()
        });
        assert_eq!(window, vec![5, 6, 7]);
        let first = query(
            &s,
            &AuditQuery {
                max_results: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(first.records[0].seq, 40);
        assert_eq!(first.next_token.as_deref(), Some("39"));
    }

    #[test]
    fn bad_query_parameters_are_refused() {
        let (_d, s) = store_with(1);
        for q in [
            AuditQuery {
                max_results: Some(0),
                ..Default::default()
            },
            AuditQuery {
                max_results: Some(1001),
                ..Default::default()
            },
            AuditQuery {
                order: Some("up".into()),
                ..Default::default()
            },
            AuditQuery {
                decision: Some("maybe".into()),
                ..Default::default()
            },
            AuditQuery {
                since: Some("yesterday".into()),
                ..Default::default()
            },
            AuditQuery {
                next_token: Some("x".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(query(&s, &q), Err(CoreError::InvalidParameter(_))),
                "{q:?}"
            );
        }
    }

    #[test]
    fn a_reset_keeps_the_audit_log() {
        let (_d, s) = store_with(3);
        s.clear().unwrap();
        assert_eq!(s.audit_log().last_seq(), 3);
        let r = append(&s, &[entry(4)]).unwrap();
        assert_eq!(r[0].seq, 4);
        assert!(verify(&s).unwrap().ok);
    }
}
