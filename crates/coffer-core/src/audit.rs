//! The tamper-evident audit log: the record format, its canonical encoding, the hash
//! chain, durable appends, queries and verification. No HTTP: the server builds an
//! [`AuditEntry`] per request and hands batches of them to [`Coffer::append_audit`].
//!
//! # Storage
//! ```text
//! audit/<seq, 20 digits zero-padded>   AuditRecord (JSON)
//! meta/audit-head                      AuditHead {seq, hash} of the newest record
//! ```
//! A batch of records and the new head are applied in one atomic store batch that checks
//! the head is unchanged, then made durable with one sync (group commit).
//!
//! # Chain
//! Record `n` holds `prev_hash` = the `hash` of record `n-1` (64 zeros for record 1) and
//! `hash` = hex SHA-256 of its [canonical encoding](canonical_encoding), which covers every
//! field but `hash` itself, `seq` and `prev_hash` included. Altering a field breaks the
//! record's own hash; removing or reordering records breaks the sequence; replacing a
//! record together with its hash breaks the next record's link (or the head's).
//!
//! The chain is not keyed: it proves the log was not changed *after the fact* by someone
//! who did not also rewrite every later record and the head. Ship the JSON-lines mirror
//! (or the head hash) off the machine to pin it.
//!
//! ```
//! use coffer_core::audit::{self, AuditDecision, AuditEntry};
//! # async fn demo() -> Result<(), coffer_core::CoreError> {
//! let store = std::sync::Arc::new(coffer_store::SledStore::temporary()?);
//! let entry = AuditEntry::new("GetSecretValue", "req-1", time::OffsetDateTime::now_utc());
//! let records = audit::append(store.as_ref(), &[entry])?;
//! assert_eq!(records[0].seq, 1);
//! assert_eq!(records[0].decision, AuditDecision::NotEvaluated);
//! assert!(audit::verify(store.as_ref())?.ok);
//! # Ok(()) }
//! ```

use std::fmt::Write as _;

use coffer_api::{AuditKeyUse, AuditQuery, ListAuditResponse, VerifyAuditResponse};
use coffer_store::{Batch, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::rotation_api::TrailEntry;
use crate::{Coffer, CoreError, Result, MAX_ATTEMPTS};

/// Key prefix of the records.
pub const RECORD_PREFIX: &[u8] = b"audit/";
/// Key of the head pointer.
pub const HEAD_KEY: &[u8] = b"meta/audit-head";
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
/// Records read per store scan.
const SCAN_PAGE: usize = 1000;

/// Store key of record `seq`.
pub fn record_key(seq: u64) -> Vec<u8> {
    format!("audit/{seq:020}").into_bytes()
}

fn seq_of_key(key: &[u8]) -> Option<u64> {
    let digits = key.strip_prefix(RECORD_PREFIX)?;
    if digits.len() != 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

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
        let mut r = AuditRecord {
            seq,
            time: fmt_nanos(entry.time),
            request_id: entry.request_id.clone(),
            principal: entry.principal.clone(),
            token_id: entry.token_id.clone(),
            action: entry.action.clone(),
            resource: entry.resource.clone(),
            extra_resources: entry.extra_resources.clone(),
            region: entry.region.clone(),
            decision: entry.decision,
            policies: entry.policies.clone(),
            reason: entry.reason.clone(),
            status: entry.status,
            error_code: entry.error_code.clone(),
            source_ip: entry.source_ip.clone(),
            keys: entry.keys.clone(),
            trail: entry.trail.clone(),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
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
    fn val(out: &mut String, name: &str, v: &str) {
        let _ = writeln!(out, "{name}={}:{v}", v.len());
    }
    fn opt(out: &mut String, name: &str, v: Option<&str>) {
        match v {
            Some(v) => val(out, name, v),
            None => {
                let _ = writeln!(out, "{name}~");
            }
        }
    }
    fn list(out: &mut String, name: &str, items: &[String]) {
        let _ = writeln!(out, "{name}#{}", items.len());
        for i in items {
            val(out, "-", i);
        }
    }
    let mut out = String::with_capacity(512);
    out.push_str(CANONICAL_MAGIC);
    val(&mut out, "seq", &r.seq.to_string());
    val(&mut out, "prev_hash", &r.prev_hash);
    val(&mut out, "time", &r.time);
    val(&mut out, "request_id", &r.request_id);
    opt(&mut out, "principal", r.principal.as_deref());
    opt(&mut out, "token_id", r.token_id.as_deref());
    val(&mut out, "action", &r.action);
    opt(&mut out, "resource", r.resource.as_deref());
    list(&mut out, "extra_resources", &r.extra_resources);
    opt(&mut out, "region", r.region.as_deref());
    val(&mut out, "decision", r.decision.as_str());
    list(&mut out, "policies", &r.policies);
    opt(&mut out, "reason", r.reason.as_deref());
    val(&mut out, "status", &r.status.to_string());
    opt(&mut out, "error_code", r.error_code.as_deref());
    opt(&mut out, "source_ip", r.source_ip.as_deref());
    let _ = writeln!(out, "keys#{}", r.keys.len());
    for k in &r.keys {
        val(&mut out, "key_id", &k.key_id);
        val(&mut out, "key_version", &k.key_version.to_string());
    }
    if !r.trail.is_empty() {
        let _ = writeln!(out, "trail#{}", r.trail.len());
        for t in &r.trail {
            val(&mut out, "kind", &t.kind);
            val(&mut out, "detail", &t.detail);
        }
    }
    out.into_bytes()
}

/// The head pointer: sequence number and hash of the newest record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Newest record's sequence number (0 = empty log).
    pub seq: u64,
    /// Newest record's hash.
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

fn fmt_nanos(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn encode_json<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| CoreError::Internal(format!("encode {what}: {e}")))
}

/// Reads the head pointer (and its raw bytes, for the optimistic check).
fn read_head(store: &dyn Store) -> Result<(AuditHead, Option<Vec<u8>>)> {
    match store.get(HEAD_KEY)? {
        None => Ok((AuditHead::empty(), None)),
        Some(raw) => {
            let head: AuditHead = serde_json::from_slice(&raw)
                .map_err(|e| CoreError::Internal(format!("corrupt audit head: {e}")))?;
            Ok((head, Some(raw)))
        }
    }
}

/// Chains `entries` after the current head and applies them with the new head in one
/// atomic batch (not yet durable: sync the store before acknowledging). Returns the
/// records written, in order.
pub fn append(store: &dyn Store, entries: &[AuditEntry]) -> Result<Vec<AuditRecord>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    for _ in 0..MAX_ATTEMPTS {
        let (head, raw_head) = read_head(store)?;
        let mut records = Vec::with_capacity(entries.len());
        let mut prev = head.hash.clone();
        let mut seq = head.seq;
        let mut b = Batch::default();
        for e in entries {
            seq += 1;
            let r = AuditRecord::seal(e, seq, &prev);
            b.put(&record_key(seq), &encode_json("audit record", &r)?);
            prev.clone_from(&r.hash);
            records.push(r);
        }
        let new_head = AuditHead { seq, hash: prev };
        b.expect_unchanged(HEAD_KEY, raw_head.as_deref())
            .put(HEAD_KEY, &encode_json("audit head", &new_head)?);
        match store.apply(&b) {
            Ok(()) => return Ok(records),
            // Only a dev-mode reset (or a second writer) moves the head under us.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CoreError::Contention("the audit log head".into()))
}

/// A verification failure: the first bad record and what is wrong with it.
struct Problem {
    seq: u64,
    kind: &'static str,
    message: String,
}

/// Walks the whole chain in `store` and reports whether it is intact, or names the first
/// record that was altered, removed, reordered or whose link breaks. Works on a live
/// store (records appended during the walk are not judged) and offline.
pub fn verify(store: &dyn Store) -> Result<VerifyAuditResponse> {
    let (head, _) = read_head(store)?;
    let mut checked = 0u64;
    let mut prev = AuditHead::empty();
    let mut after: Option<Vec<u8>> = None;
    let outcome = 'walk: loop {
        let rows = store.scan(RECORD_PREFIX, after.as_deref(), SCAN_PAGE)?;
        if rows.is_empty() {
            break 'walk None;
        }
        for (key, raw) in &rows {
            let Some(seq) = seq_of_key(key) else {
                break 'walk Some(Problem {
                    seq: prev.seq + 1,
                    kind: "unreadable",
                    message: format!(
                        "unexpected key {:?} among the audit records",
                        String::from_utf8_lossy(key)
                    ),
                });
            };
            if seq > head.seq {
                // Beyond the head read at the start: appended during the walk, or forged.
                break 'walk None;
            }
            let expected = prev.seq + 1;
            if seq != expected {
                break 'walk Some(Problem {
                    seq: expected,
                    kind: "removed",
                    message: if seq == expected + 1 {
                        format!(
                            "record {expected} is missing: the log goes from {} to {seq}",
                            prev.seq
                        )
                    } else {
                        format!(
                            "records {expected}–{} are missing: the log goes from {} to {seq}",
                            seq - 1,
                            prev.seq
                        )
                    },
                });
            }
            let rec: AuditRecord = match serde_json::from_slice(raw) {
                Ok(r) => r,
                Err(e) => {
                    break 'walk Some(Problem {
                        seq,
                        kind: "unreadable",
                        message: format!("record {seq} cannot be read (altered): {e}"),
                    })
                }
            };
            if rec.seq != seq {
                break 'walk Some(Problem {
                    seq,
                    kind: "reordered",
                    message: format!(
                        "position {seq} holds record {} (records were reordered or moved)",
                        rec.seq
                    ),
                });
            }
            if rec.compute_hash() != rec.hash {
                break 'walk Some(Problem {
                    seq,
                    kind: "altered",
                    message: format!(
                        "record {seq} was altered: its contents do not match its hash"
                    ),
                });
            }
            if rec.prev_hash != prev.hash {
                let (bad, message) = if seq == 1 {
                    (
                        1,
                        "record 1 does not start the chain (its prev_hash is not the genesis hash)"
                            .to_string(),
                    )
                } else {
                    (
                        prev.seq,
                        format!(
                            "the chain breaks between records {} and {seq}: record {} is not the record {seq} was chained to (it was replaced, with its hash recomputed)",
                            prev.seq, prev.seq
                        ),
                    )
                };
                break 'walk Some(Problem {
                    seq: bad,
                    kind: "chain-broken",
                    message,
                });
            }
            checked += 1;
            prev = AuditHead {
                seq,
                hash: rec.hash,
            };
        }
        after = rows.last().map(|(k, _)| k.clone());
    };
    let problem = outcome.or_else(|| {
        if prev.seq < head.seq {
            let first = prev.seq + 1;
            Some(Problem {
                seq: first,
                kind: "removed",
                message: if first == head.seq {
                    format!("record {first} is missing (the head names record {})", head.seq)
                } else {
                    format!(
                        "records {first}–{} are missing (the head names record {})",
                        head.seq, head.seq
                    )
                },
            })
        } else if prev.hash != head.hash {
            Some(Problem {
                seq: prev.seq,
                kind: "head-mismatch",
                message: format!(
                    "record {} does not match the head pointer's hash (it was replaced, with its hash recomputed)",
                    prev.seq
                ),
            })
        } else {
            None
        }
    });
    let problem = problem.or_else(|| beyond_head(store, head.seq).ok().flatten());
    Ok(match problem {
        None => VerifyAuditResponse {
            ok: true,
            records_checked: checked,
            head_seq: head.seq,
            first_bad_seq: None,
            problem_kind: None,
            problem: None,
        },
        Some(p) => VerifyAuditResponse {
            ok: false,
            records_checked: checked,
            head_seq: head.seq,
            first_bad_seq: Some(p.seq),
            problem_kind: Some(p.kind.to_string()),
            problem: Some(p.message),
        },
    })
}

/// A record stored past the head that is still past it after re-reading the head (so not
/// a concurrent append) was not written by the log's writer.
fn beyond_head(store: &dyn Store, head_seq: u64) -> Result<Option<Problem>> {
    let rows = store.scan(RECORD_PREFIX, Some(&record_key(head_seq)), 1)?;
    let Some((key, _)) = rows.first() else {
        return Ok(None);
    };
    let (now, _) = read_head(store)?;
    match seq_of_key(key) {
        Some(seq) if seq <= now.seq => Ok(None),
        Some(seq) => Ok(Some(Problem {
            seq,
            kind: "altered",
            message: format!(
                "record {seq} lies beyond the head (record {}): it was added outside the log's writer",
                now.seq
            ),
        })),
        None => Ok(Some(Problem {
            seq: head_seq + 1,
            kind: "unreadable",
            message: format!(
                "unexpected key {:?} among the audit records",
                String::from_utf8_lossy(key)
            ),
        })),
    }
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
    let (head, _) = read_head(store)?;
    let mut out = Vec::new();
    let mut examined = 0usize;
    let decode = |raw: &[u8]| -> Result<AuditRecord> {
        serde_json::from_slice(raw)
            .map_err(|e| CoreError::Internal(format!("corrupt audit record: {e}")))
    };
    let next = if descending {
        // Records are dense (1..=head), so a window of keys below `cur` is one scan.
        let mut cur = start.unwrap_or(head.seq).min(head.seq);
        'pages: while cur >= 1 {
            let lo = cur.saturating_sub(SCAN_PAGE as u64 - 1).max(1);
            let rows = store.scan(
                RECORD_PREFIX,
                Some(&record_key(lo - 1)),
                (cur - lo + 1) as usize,
            )?;
            for (key, raw) in rows.iter().rev() {
                let Some(seq) = seq_of_key(key).filter(|s| *s <= cur) else {
                    continue;
                };
                examined += 1;
                let r = decode(raw)?;
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
        (cur >= 1).then_some(cur)
    } else {
        let mut cur = start.unwrap_or(1);
        'pages: while cur <= head.seq {
            let rows = store.scan(RECORD_PREFIX, Some(&record_key(cur - 1)), SCAN_PAGE)?;
            if rows.is_empty() {
                cur = head.seq + 1;
                break;
            }
            for (key, raw) in &rows {
                let Some(seq) = seq_of_key(key).filter(|s| *s <= head.seq) else {
                    cur = head.seq + 1;
                    break 'pages;
                };
                examined += 1;
                let r = decode(raw)?;
                if filter.matches(&r) {
                    out.push(r.to_api());
                }
                cur = seq + 1;
                if out.len() >= max || examined >= QUERY_SCAN_BUDGET {
                    break 'pages;
                }
            }
        }
        (cur <= head.seq).then_some(cur)
    };
    Ok(ListAuditResponse {
        records: out,
        next_token: next.map(|n| n.to_string()),
    })
}

impl Coffer {
    /// Appends a batch of entries to the audit log and makes it durable (one store batch,
    /// one sync). Returns the chained records, in order.
    pub async fn append_audit(&self, entries: &[AuditEntry]) -> Result<Vec<AuditRecord>> {
        let records = append(self.store.as_ref(), entries)?;
        self.durable().await?;
        Ok(records)
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

    fn store_with(n: usize) -> SledStore {
        let s = SledStore::temporary().expect("store");
        let entries: Vec<_> = (1..=n).map(entry).collect();
        // Several batches, so chaining across batches is exercised.
        for chunk in entries.chunks(7) {
            append(&s, chunk).expect("append");
        }
        s
    }

    fn raw(s: &SledStore, seq: u64) -> Vec<u8> {
        s.get(&record_key(seq)).expect("get").expect("record")
    }

    fn put(s: &SledStore, key: &[u8], value: &[u8]) {
        let mut b = Batch::default();
        b.put(key, value);
        s.apply(&b).expect("apply");
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
        let s = store_with(30);
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

    #[test]
    fn an_altered_field_names_its_record() {
        let s = store_with(12);
        let mut v: serde_json::Value = serde_json::from_slice(&raw(&s, 5)).unwrap();
        v["decision"] = "allow".into();
        v["principal"] = "mallory".into();
        put(&s, &record_key(5), &serde_json::to_vec(&v).unwrap());
        assert_eq!(bad(&s), (5, "altered".into()));
    }

    #[test]
    fn an_added_field_is_refused() {
        let s = store_with(4);
        let mut v: serde_json::Value = serde_json::from_slice(&raw(&s, 2)).unwrap();
        v["note"] = "hidden".into();
        put(&s, &record_key(2), &serde_json::to_vec(&v).unwrap());
        assert_eq!(bad(&s), (2, "unreadable".into()));
    }

    #[test]
    fn a_removed_record_names_the_gap() {
        let s = store_with(12);
        let mut b = Batch::default();
        b.delete(&record_key(7));
        s.apply(&b).unwrap();
        assert_eq!(bad(&s), (7, "removed".into()));
    }

    #[test]
    fn removing_the_newest_records_is_caught_by_the_head() {
        let s = store_with(12);
        let mut b = Batch::default();
        b.delete(&record_key(11)).delete(&record_key(12));
        s.apply(&b).unwrap();
        assert_eq!(bad(&s), (11, "removed".into()));
    }

    #[test]
    fn swapped_records_name_the_first_position() {
        let s = store_with(12);
        let (a, b) = (raw(&s, 4), raw(&s, 9));
        put(&s, &record_key(4), &b);
        put(&s, &record_key(9), &a);
        assert_eq!(bad(&s), (4, "reordered".into()));
    }

    #[test]
    fn a_replaced_record_with_recomputed_hash_breaks_the_next_link() {
        let s = store_with(12);
        let mut r: AuditRecord = serde_json::from_slice(&raw(&s, 6)).unwrap();
        r.principal = Some("mallory".into());
        r.hash = r.compute_hash();
        put(&s, &record_key(6), &serde_json::to_vec(&r).unwrap());
        assert_eq!(bad(&s), (6, "chain-broken".into()));
        // The newest record: the head pins it.
        let s = store_with(12);
        let mut r: AuditRecord = serde_json::from_slice(&raw(&s, 12)).unwrap();
        r.request_id = "req-forged".into();
        r.hash = r.compute_hash();
        put(&s, &record_key(12), &serde_json::to_vec(&r).unwrap());
        assert_eq!(bad(&s), (12, "head-mismatch".into()));
    }

    #[test]
    fn a_forged_record_past_the_head_is_caught() {
        let s = store_with(3);
        let r4 = AuditRecord::seal(
            &entry(4),
            4,
            &serde_json::from_slice::<AuditRecord>(&raw(&s, 3))
                .unwrap()
                .hash,
        );
        put(&s, &record_key(4), &serde_json::to_vec(&r4).unwrap());
        assert_eq!(bad(&s), (4, "altered".into()));
    }

    #[test]
    fn query_filters_orders_and_pages() {
        let s = store_with(40);
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
        let s = store_with(1);
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
    fn append_retries_when_the_head_moves() {
        let s = store_with(3);
        // A reset wipes the log; the next append starts a new chain at 1.
        s.clear().unwrap();
        let r = append(&s, &[entry(1)]).unwrap();
        assert_eq!(r[0].seq, 1);
        assert_eq!(r[0].prev_hash, GENESIS_HASH);
        assert!(verify(&s).unwrap().ok);
    }
}
