//! The rotation state machine (AWS Secrets Manager semantics) over the
//! [`RotationRunner`] seam.
//!
//! A secret's rotation config names a plugin, an optional schedule and window, non-secret
//! parameters and the other secrets the plugin may read. A rotation runs AWS's four steps
//! — create, set, test, finish — and its progress lives in a *journal* on the secret
//! record:
//!
//! - the journal's `token` is the version id of the PENDING value, stable across retries;
//! - `create` stores the plugin's value as version `token` labelled `AWSPENDING` **and**
//!   advances the journal in one atomic store batch, so a crash can never leave a target
//!   holding a password that no stored version knows;
//! - every later step persists its progress before the next starts; `finish` moves
//!   `AWSCURRENT` to `token`, `AWSPREVIOUS` to the old current version, removes
//!   `AWSPENDING` and clears the journal in one batch;
//! - a failure records `last_error` (a message, never a value) and keeps the journal: a
//!   transient failure is retried automatically with exponential backoff, a permanent one
//!   waits for a manual `rotate`, which resumes at the failed step with the same pending
//!   value. `AWSCURRENT` never moves on failure;
//! - one node runs a rotation at a time: it holds a lease (owner + expiry) in the record,
//!   taken and renewed with compare-and-swap writes; a crashed owner's lease expires and
//!   the scheduler takes the rotation over.
//!
//! AWS refuses `RotateSecret` while `AWSPENDING` sits on a version other than
//! `AWSCURRENT`; Coffer resumes the journal instead and says so in the response.
//!
//! The scheduler finds work through a small index (`rot/<region>/<uid>` → due time)
//! written in the same batches as the record, so [`Coffer::due_rotations`] never scans all
//! secrets.

use std::collections::BTreeMap;
use std::str::FromStr;

use coffer_api::{
    RotateSecretRequest, RotationError, RotationInfo, RotationProgress, RotationRules,
    SecretDescription,
};
use coffer_crypto::Plaintext;
use coffer_store::{Batch, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::audit::{AuditDecision, AuditEntry};
use crate::names::SecretName;
use crate::records::{decode, encode, version_key, SecretRecord, ValueKind};
use crate::rotation_api::{
    RotationRunner, RotationStep, RotationVersion, StepErrorKind, StepFailure, StepRequest,
};
use crate::secrets::Value;
use crate::{
    fmt_time, Coffer, CoreError, Result, AWSCURRENT, AWSPENDING, AWSPREVIOUS,
    MAX_SECRET_VALUE_BYTES,
};

/// Most entries of a rotation config map.
const MAX_CONFIG_ENTRIES: usize = 64;
/// Longest config key / value.
const MAX_CONFIG_KEY: usize = 128;
const MAX_CONFIG_VALUE: usize = 2048;
/// Most granted secrets.
const MAX_GRANTED: usize = 20;
/// Longest error message kept in `last_error`.
const MAX_ERROR_MESSAGE: usize = 1024;

// ---------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------

/// A parsed rotation schedule: AWS `rate(N days|hours)` or `cron(min hour dom month dow
/// year)`.
#[derive(Debug, Clone)]
pub enum RotationSchedule {
    /// Every `every`.
    Rate {
        /// Interval.
        every: time::Duration,
        /// `Some(N)` for `rate(N days)` (AWS `AutomaticallyAfterDays`).
        days: Option<u32>,
    },
    /// At the times of a cron expression (UTC).
    Cron(Box<cron::Schedule>),
}

impl RotationSchedule {
    /// Parses an AWS schedule expression. AWS cron has six fields (minute, hour,
    /// day-of-month, month, day-of-week, year); exactly one of day-of-month and
    /// day-of-week must be `?`; day-of-week counts 1 = SUN … 7 = SAT (names work too).
    /// `L`, `W` and `#` are not supported.
    pub fn parse(expr: &str) -> Result<Self> {
        let e = expr.trim();
        let bad = |why: &str| {
            CoreError::InvalidParameter(format!(
                "invalid rotation schedule {expr:?}: {why}; use rate(N days), rate(N hours) or cron(min hour day-of-month month day-of-week year), e.g. cron(0 3 ? * 1 *)"
            ))
        };
        if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let mut parts = inner.split_whitespace();
            let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("a rate is a number and a unit"));
            };
            let n: u32 = n
                .parse()
                .map_err(|_| bad("the rate must be a whole number"))?;
            return match unit {
                "day" | "days" if (1..=1000).contains(&n) => Ok(RotationSchedule::Rate {
                    every: time::Duration::days(i64::from(n)),
                    days: Some(n),
                }),
                "day" | "days" => Err(bad("days must be 1–1000")),
                "hour" | "hours" if (4..=23).contains(&n) => Ok(RotationSchedule::Rate {
                    every: time::Duration::hours(i64::from(n)),
                    days: None,
                }),
                "hour" | "hours" => Err(bad("hours must be 4–23 (as AWS); use days beyond")),
                _ => Err(bad("the unit must be days or hours")),
            };
        }
        if let Some(inner) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let fields: Vec<&str> = inner.split_whitespace().collect();
            if fields.len() != 6 {
                return Err(bad(
                    "AWS cron has 6 fields: min hour day-of-month month day-of-week year",
                ));
            }
            let (dom, dow) = (fields[2], fields[4]);
            let dow_last = dow.contains('L') && dow.starts_with(|c: char| c.is_ascii_digit());
            if dom.contains(['L', 'W']) || dow.contains('#') || dow_last {
                return Err(bad("L, W and # are not supported"));
            }
            match (dom == "?", dow == "?") {
                (true, true) => {
                    return Err(bad("only one of day-of-month and day-of-week may be ?"))
                }
                (false, false) => {
                    return Err(bad(
                        "one of day-of-month and day-of-week must be ? (as AWS)",
                    ))
                }
                _ => {}
            }
            let q = |f: &str| {
                if f == "?" {
                    "*".to_string()
                } else {
                    f.to_string()
                }
            };
            let quartz = format!(
                "0 {} {} {} {} {} {}",
                fields[0],
                fields[1],
                q(dom),
                fields[3],
                q(dow),
                fields[5]
            );
            let schedule =
                cron::Schedule::from_str(&quartz).map_err(|err| bad(&err.to_string()))?;
            return Ok(RotationSchedule::Cron(Box::new(schedule)));
        }
        Err(bad("unknown form"))
    }

    /// The first scheduled time strictly after `t` (`None` if a cron expression has no
    /// further occurrence, e.g. a past year).
    pub fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            RotationSchedule::Rate { every, .. } => Some(t + *every),
            RotationSchedule::Cron(s) => {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp(t.unix_timestamp(), 0)?;
                let next = s.after(&at).next()?;
                OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
            }
        }
    }

    /// `Some(N)` for `rate(N days)`.
    pub fn days(&self) -> Option<u32> {
        match self {
            RotationSchedule::Rate { days, .. } => *days,
            RotationSchedule::Cron(_) => None,
        }
    }
}

/// Parses a rotation window: `2h`, `30m`, `1d`, `1h30m` (1 minute – 24 hours).
pub fn parse_window(s: &str) -> Result<time::Duration> {
    let bad = |why: &str| {
        CoreError::InvalidParameter(format!(
            "invalid rotation window {s:?}: {why}; use e.g. 2h, 30m, 1h30m or 1d (at most 24h)"
        ))
    };
    let mut total = time::Duration::ZERO;
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num
            .parse()
            .map_err(|_| bad("a number must precede each unit"))?;
        num.clear();
        total += match c {
            'd' => time::Duration::days(n),
            'h' => time::Duration::hours(n),
            'm' => time::Duration::minutes(n),
            _ => return Err(bad("units are d, h and m")),
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad("every number needs a unit"));
    }
    if total < time::Duration::minutes(1) || total > time::Duration::days(1) {
        return Err(bad("out of range"));
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------
// Persisted state
// ---------------------------------------------------------------------------------------

/// The last failure, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LastError {
    #[serde(with = "time::serde::timestamp")]
    pub time: OffsetDateTime,
    pub step: RotationStep,
    pub kind: StepErrorKind,
    pub message: String,
}

/// A rotation in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// Version id of the PENDING value.
    pub token: String,
    /// The plugin running it.
    pub plugin: String,
    pub next_step: RotationStep,
    #[serde(default)]
    pub attempts: u32,
    /// When the scheduler should (re)run it; `None` after a permanent failure.
    #[serde(default, with = "time::serde::timestamp::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub lease_owner: Option<String>,
    #[serde(default, with = "time::serde::timestamp::option")]
    pub lease_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::timestamp")]
    pub started: OffsetDateTime,
}

impl Journal {
    fn leased_by_other(&self, owner: &str, now: OffsetDateTime) -> Option<&str> {
        match (&self.lease_owner, self.lease_until) {
            (Some(o), Some(until)) if o != owner && until > now => Some(o.as_str()),
            _ => None,
        }
    }
}

/// Rotation config and state of a secret (on the secret record).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RotationState {
    pub plugin: String,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub granted_secrets: Vec<String>,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, with = "time::serde::timestamp::option")]
    pub last_rotated: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::timestamp::option")]
    pub next_rotation: Option<OffsetDateTime>,
    #[serde(default)]
    pub last_error: Option<LastError>,
    #[serde(default)]
    pub journal: Option<Journal>,
}

impl RotationState {
    fn schedule(&self) -> Option<RotationSchedule> {
        self.schedule
            .as_deref()
            .and_then(|s| RotationSchedule::parse(s).ok())
    }

    /// When the scheduler should look at this secret next (the index entry).
    fn due(&self) -> Option<OffsetDateTime> {
        match &self.journal {
            Some(j) => match (&j.lease_owner, j.lease_until) {
                (Some(_), Some(until)) => Some(until),
                _ => j.next_attempt_at,
            },
            None if self.enabled => self.next_rotation,
            None => None,
        }
    }
}

/// Index entry `rot/<region>/<uid>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    name: String,
    #[serde(with = "time::serde::timestamp")]
    due: OffsetDateTime,
}

fn index_key(region: &str, uid: &str) -> Vec<u8> {
    format!("rot/{region}/{uid}").into_bytes()
}

const INDEX_PREFIX: &[u8] = b"rot/";

/// Writes the index entry of `rec` into `b` (or removes it when nothing is due).
fn index_update(region: &str, rec: &SecretRecord, b: &mut Batch) -> Result<()> {
    let key = index_key(region, &rec.uid);
    match rec.rotation.as_ref().and_then(RotationState::due) {
        Some(due) => {
            b.put(
                &key,
                &encode(&IndexEntry {
                    name: rec.name.clone(),
                    due,
                })?,
            );
        }
        None => {
            b.delete(&key);
        }
    }
    Ok(())
}

/// Fills the rotation fields of a description.
pub(crate) fn describe_into(d: &mut SecretDescription, rec: &SecretRecord) {
    let Some(r) = &rec.rotation else {
        return;
    };
    d.rotation_enabled = r.enabled;
    d.rotation_plugin = Some(r.plugin.clone());
    d.rotation_rules = r.schedule.as_ref().map(|s| RotationRules {
        automatically_after_days: RotationSchedule::parse(s).ok().and_then(|s| s.days()),
        schedule_expression: Some(s.clone()),
        duration: r.window.clone(),
    });
    d.last_rotated_date = r.last_rotated.map(fmt_time);
    d.last_rotation_error = r.last_error.as_ref().map(api_error);
    d.next_rotation_date = if r.enabled {
        r.next_rotation.map(fmt_time)
    } else {
        None
    };
    d.rotation = Some(RotationInfo {
        plugin: r.plugin.clone(),
        schedule: r.schedule.clone(),
        window: r.window.clone(),
        config: r.config.clone(),
        granted_secrets: r.granted_secrets.clone(),
        enabled: r.enabled,
        in_progress: r.journal.as_ref().map(|j| RotationProgress {
            token: j.token.clone(),
            next_step: j.next_step.as_str().to_string(),
            attempts: j.attempts,
            next_attempt_at: j.next_attempt_at.map(fmt_time),
            lease_owner: j.lease_owner.clone(),
            lease_until: j.lease_until.map(fmt_time),
            started: fmt_time(j.started),
        }),
    });
}

fn api_error(e: &LastError) -> RotationError {
    RotationError {
        time: fmt_time(e.time),
        step: e.step.as_str().to_string(),
        kind: e.kind.as_str().to_string(),
        message: e.message.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Public results and the audit seam
// ---------------------------------------------------------------------------------------

/// What `configure_rotation` / `rotate_secret` started.
#[derive(Debug, Clone)]
pub struct RotationStart {
    /// The secret after the call.
    pub description: SecretDescription,
    /// Version id of the PENDING value of the rotation started or resumed.
    pub token: Option<String>,
    /// Whether an existing rotation was resumed (same token, same step, same value).
    pub resumed: bool,
}

/// How a `run_rotation` call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// All four steps ran; `AWSCURRENT` is the new version.
    Succeeded,
    /// A step failed; `AWSCURRENT` is unchanged and the journal is kept.
    Failed {
        /// The failed step.
        step: RotationStep,
        /// Classification.
        kind: StepErrorKind,
        /// Message (never a value).
        message: String,
        /// When it is retried automatically (`None`: only by a manual rotate).
        retry_at: Option<String>,
    },
}

/// The result of one `run_rotation` call.
#[derive(Debug, Clone)]
pub struct RotationReport {
    /// Region of the secret.
    pub region: String,
    /// Name of the secret.
    pub name: String,
    /// The plugin that ran.
    pub plugin: String,
    /// Version id of the PENDING value.
    pub token: String,
    /// Steps that ran (with a plugin call) and succeeded, in order.
    pub steps_run: Vec<RotationStep>,
    /// How it ended.
    pub outcome: RotationOutcome,
}

/// Where the state machine writes its audit records (one per step run). The server
/// passes its audit writer; `None` appends straight to the store's chain.
#[async_trait::async_trait]
pub trait RotationAuditSink: Send + Sync {
    /// Records one entry durably.
    async fn record(&self, entry: AuditEntry) -> std::result::Result<(), String>;
}

/// Outcome of a step, before it is persisted.
enum StepResult {
    Done(
        Option<Zeroizing<String>>,
        Vec<crate::rotation_api::TrailEntry>,
    ),
    Failed(StepFailure),
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_MESSAGE {
        let mut cut = MAX_ERROR_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn host_failure(kind: StepErrorKind, message: String) -> StepFailure {
    StepFailure {
        kind,
        message,
        trail: Vec::new(),
    }
}

fn new_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------------------

impl Coffer {
    fn to_time(d: std::time::Duration) -> time::Duration {
        time::Duration::try_from(d).unwrap_or(time::Duration::hours(1))
    }

    fn lease_len(&self) -> time::Duration {
        Self::to_time(self.config.rotation_lease)
    }

    /// Backoff after the `attempts`-th failure (1-based): base · 2^(attempts-1), capped.
    pub(crate) fn backoff(&self, attempts: u32) -> time::Duration {
        let base = self.config.rotation_backoff_base;
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        let d = base
            .checked_mul(factor)
            .unwrap_or(self.config.rotation_backoff_max)
            .min(self.config.rotation_backoff_max);
        Self::to_time(d)
    }

    /// Checks that CURRENT exists and holds a string (what plugins rotate).
    fn ensure_rotatable(&self, region: &str, rec: &SecretRecord) -> Result<()> {
        Self::ensure_not_deleted(rec)?;
        let cur = rec.stages.get(AWSCURRENT).ok_or_else(|| {
            CoreError::InvalidState(format!(
                "secret {} has no AWSCURRENT version; store a value before configuring rotation",
                rec.name
            ))
        })?;
        let raw = self
            .store
            .get(&version_key(region, &rec.uid, cur))?
            .ok_or_else(|| {
                CoreError::Internal(format!(
                    "AWSCURRENT of secret {} names a missing version",
                    rec.name
                ))
            })?;
        let v: crate::records::VersionRecord = decode("version", &raw)?;
        if v.kind != ValueKind::String {
            return Err(CoreError::InvalidState(format!(
                "secret {} holds a binary value; only string secrets can be rotated by plugins",
                rec.name
            )));
        }
        Ok(())
    }

    /// Configures rotation of a secret (RotateSecret with a plugin): validates the plugin
    /// (`runner.has_plugin`), the schedule and window, and that the secret has a string
    /// AWSCURRENT version; computes the next rotation; with `rotate_immediately` also
    /// starts a rotation (or resumes the one in progress). Run it with
    /// [`Coffer::run_rotation`].
    pub async fn configure_rotation(
        &self,
        runner: &dyn RotationRunner,
        region: &str,
        id: &str,
        req: &RotateSecretRequest,
    ) -> Result<RotationStart> {
        if req.plugin.trim().is_empty() {
            return Err(CoreError::InvalidParameter(
                "plugin must name an installed rotator plugin".into(),
            ));
        }
        if !runner.has_plugin(&req.plugin) {
            return Err(CoreError::InvalidParameter(format!(
                "no rotator plugin named {:?} is installed on this server",
                req.plugin
            )));
        }
        let schedule = match &req.schedule {
            Some(s) => Some(RotationSchedule::parse(s)?),
            None => None,
        };
        if let Some(w) = &req.window {
            parse_window(w)?;
            if schedule.is_none() {
                return Err(CoreError::InvalidParameter(
                    "a rotation window needs a schedule".into(),
                ));
            }
        }
        let config = req.config.clone().unwrap_or_default();
        if config.len() > MAX_CONFIG_ENTRIES {
            return Err(CoreError::InvalidParameter(format!(
                "at most {MAX_CONFIG_ENTRIES} config entries"
            )));
        }
        for (k, v) in &config {
            if k.is_empty() || k.len() > MAX_CONFIG_KEY || v.len() > MAX_CONFIG_VALUE {
                return Err(CoreError::InvalidParameter(format!(
                    "config key {k:?}: keys are 1–{MAX_CONFIG_KEY} bytes, values up to {MAX_CONFIG_VALUE}"
                )));
            }
        }
        let granted = req.granted_secrets.clone().unwrap_or_default();
        if granted.len() > MAX_GRANTED {
            return Err(CoreError::InvalidParameter(format!(
                "at most {MAX_GRANTED} granted secrets"
            )));
        }
        for g in &granted {
            SecretName::parse(g)?;
        }
        let now = self.now();
        let grace = self.lease_len();
        let mut started: Option<(String, bool)> = None;
        let rec = self
            .update_secret_record(region, id, |rec, b| {
                self.ensure_rotatable(region, rec)?;
                let previous = rec.rotation.take();
                if let Some(j) = previous.as_ref().and_then(|p| p.journal.as_ref()) {
                    if j.plugin != req.plugin {
                        rec.rotation = previous.clone();
                        return Err(CoreError::InvalidState(format!(
                            "a rotation of secret {} by plugin {} is in progress (token {}, next step {}); finish it with `rotate` or cancel it first",
                            rec.name, j.plugin, j.token, j.next_step
                        )));
                    }
                }
                let mut st = RotationState {
                    plugin: req.plugin.clone(),
                    schedule: req.schedule.clone(),
                    window: req.window.clone(),
                    config: config.clone(),
                    granted_secrets: granted.clone(),
                    enabled: true,
                    last_rotated: previous.as_ref().and_then(|p| p.last_rotated),
                    next_rotation: None,
                    last_error: previous.as_ref().and_then(|p| p.last_error.clone()),
                    journal: previous.and_then(|p| p.journal),
                };
                // A rate counts from the last rotation (a rotation overdue by the new
                // rate is due now); a cron expression from now.
                st.next_rotation = schedule.as_ref().and_then(|s| match s {
                    RotationSchedule::Rate { .. } => s.next_after(st.last_rotated.unwrap_or(now)),
                    RotationSchedule::Cron(_) => s.next_after(now),
                });
                started = None;
                if req.rotate_immediately {
                    started = Some(Self::start_journal(&mut st, now, grace));
                }
                rec.rotation = Some(st);
                rec.last_changed = now;
                index_update(region, rec, b)
            })
            .await?;
        Ok(RotationStart {
            description: self.describe(region, &rec),
            token: started.as_ref().map(|(t, _)| t.clone()),
            resumed: started.is_some_and(|(_, r)| r),
        })
    }

    /// Starts a journal, or marks the existing one runnable; (token, resumed). The
    /// scheduler leaves it alone for `grace` (the caller runs it at once; if that caller
    /// dies before taking the lease, the scheduler picks it up after the grace).
    fn start_journal(
        st: &mut RotationState,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> (String, bool) {
        match st.journal.as_mut() {
            Some(j) => {
                j.next_attempt_at = Some(now + grace);
                (j.token.clone(), true)
            }
            None => {
                let token = new_token();
                st.journal = Some(Journal {
                    token: token.clone(),
                    plugin: st.plugin.clone(),
                    next_step: RotationStep::Create,
                    attempts: 0,
                    next_attempt_at: Some(now + grace),
                    lease_owner: None,
                    lease_until: None,
                    started: now,
                });
                (token, false)
            }
        }
    }

    /// Rotates now with the stored config (RotateSecret without a plugin): starts a
    /// rotation, or resumes the one in progress at its step with its pending value (AWS
    /// would refuse while AWSPENDING is on a non-current version). Re-enables rotation
    /// after a cancel. Run it with [`Coffer::run_rotation`].
    pub async fn rotate_secret(
        &self,
        runner: &dyn RotationRunner,
        region: &str,
        id: &str,
    ) -> Result<RotationStart> {
        let now = self.now();
        let grace = self.lease_len();
        let mut started = (String::new(), false);
        let rec = self
            .update_secret_record(region, id, |rec, b| {
                self.ensure_rotatable(region, rec)?;
                let name = rec.name.clone();
                let st = rec.rotation.as_mut().ok_or_else(|| {
                    CoreError::InvalidState(format!(
                        "secret {name} has no rotation configured; configure it with a plugin first (POST /v1/secrets/{{id}}/rotation)"
                    ))
                })?;
                if !runner.has_plugin(&st.plugin) {
                    return Err(CoreError::InvalidParameter(format!(
                        "no rotator plugin named {:?} is installed on this server",
                        st.plugin
                    )));
                }
                st.enabled = true;
                if st.next_rotation.is_none() {
                    st.next_rotation = st.schedule().and_then(|s| s.next_after(now));
                }
                started = Self::start_journal(st, now, grace);
                index_update(region, rec, b)
            })
            .await?;
        Ok(RotationStart {
            description: self.describe(region, &rec),
            token: Some(started.0),
            resumed: started.1,
        })
    }

    /// Cancels rotation (AWS CancelRotateSecret): disables it, drops the journal and
    /// removes the AWSPENDING label from the pending version (the version itself is
    /// kept). A node running the rotation stops at its next step.
    pub async fn cancel_rotation(&self, region: &str, id: &str) -> Result<SecretDescription> {
        let now = self.now();
        let rec = self
            .update_secret_record(region, id, |rec, b| {
                Self::ensure_not_deleted(rec)?;
                let name = rec.name.clone();
                let st = rec.rotation.as_mut().ok_or_else(|| {
                    CoreError::InvalidState(format!("secret {name} has no rotation configured"))
                })?;
                st.enabled = false;
                st.next_rotation = None;
                let journal = st.journal.take();
                let current = rec.stages.get(AWSCURRENT).cloned();
                if let Some(p) = rec.stages.get(AWSPENDING).cloned() {
                    let ours = journal.as_ref().is_some_and(|j| j.token == p);
                    if ours || current.as_deref() != Some(p.as_str()) {
                        rec.stages.remove(AWSPENDING);
                    }
                }
                rec.last_changed = now;
                index_update(region, rec, b)
            })
            .await?;
        Ok(self.describe(region, &rec))
    }

    /// Secrets whose rotation should run now: scheduled and due (inside the window; a
    /// window missed entirely is skipped to the next occurrence, which is recorded), with
    /// a retry due, or whose owner's lease expired. Reads only the rotation index.
    pub async fn due_rotations(&self, now: OffsetDateTime) -> Result<Vec<(String, String)>> {
        let mut due = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        let mut changed = false;
        loop {
            let rows = self.store.scan(INDEX_PREFIX, after.as_deref(), 256)?;
            if rows.is_empty() {
                break;
            }
            after = rows.last().map(|(k, _)| k.clone());
            for (key, raw) in rows {
                let entry: IndexEntry = decode("rotation index", &raw)?;
                if entry.due > now {
                    continue;
                }
                let key_text = String::from_utf8_lossy(&key).to_string();
                let mut parts = key_text.splitn(3, '/');
                let (_, Some(region), Some(uid)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if self.check_region(region).is_err() {
                    continue;
                }
                let rec = match self.load_secret(region, &entry.name) {
                    Ok((rec, _)) if rec.uid == uid => rec,
                    Ok(_) | Err(CoreError::NotFound(_)) => {
                        // The secret was purged (or re-created): drop the stale entry.
                        let mut b = Batch::default();
                        b.expect(&key, &raw).delete(&key);
                        match self.store.apply(&b) {
                            Ok(()) | Err(StoreError::Conflict) => {}
                            Err(e) => return Err(e.into()),
                        }
                        changed = true;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(region, secret = %entry.name, error = %e, "rotation index entry unreadable");
                        continue;
                    }
                };
                if rec.deletion.is_some() {
                    continue;
                }
                let Some(st) = &rec.rotation else { continue };
                match &st.journal {
                    Some(j) => {
                        let lease_expired = j.lease_until.is_some_and(|u| u <= now);
                        let live_lease = j.lease_until.is_some_and(|u| u > now);
                        let retry_due = j.next_attempt_at.is_some_and(|t| t <= now);
                        if lease_expired || (!live_lease && retry_due) {
                            due.push((region.to_string(), rec.name.clone()));
                        }
                    }
                    None => {
                        let Some(next) = st.next_rotation.filter(|_| st.enabled) else {
                            continue;
                        };
                        if next > now {
                            continue;
                        }
                        let window = st.window.as_deref().and_then(|w| parse_window(w).ok());
                        match window {
                            Some(w) if now > next + w => {
                                self.skip_missed_window(region, &rec.name, now).await?;
                                changed = true;
                            }
                            _ => due.push((region.to_string(), rec.name.clone())),
                        }
                    }
                }
            }
        }
        if changed {
            self.durable().await?;
        }
        Ok(due)
    }

    /// Releases the leases `owner` holds: what a restarted node calls before it runs
    /// rotations again, so the rotations its previous process was running when it
    /// crashed resume at once instead of after the lease. Returns how many.
    pub async fn recover_rotations(&self, owner: &str) -> Result<usize> {
        let now = self.now();
        let mut n = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.store.scan(INDEX_PREFIX, after.as_deref(), 256)?;
            if rows.is_empty() {
                break;
            }
            after = rows.last().map(|(k, _)| k.clone());
            for (key, raw) in rows {
                let entry: IndexEntry = decode("rotation index", &raw)?;
                let key_text = String::from_utf8_lossy(&key).to_string();
                let Some(region) = key_text.split('/').nth(1).map(str::to_string) else {
                    continue;
                };
                let held = match self.load_secret(&region, &entry.name) {
                    Ok((rec, _)) => rec
                        .rotation
                        .as_ref()
                        .and_then(|s| s.journal.as_ref())
                        .is_some_and(|j| j.lease_owner.as_deref() == Some(owner)),
                    Err(_) => false,
                };
                if !held {
                    continue;
                }
                self.update_secret_record(&region, &entry.name, |rec, b| {
                    if let Some(j) = rec.rotation.as_mut().and_then(|s| s.journal.as_mut()) {
                        if j.lease_owner.as_deref() == Some(owner) {
                            j.lease_owner = None;
                            j.lease_until = None;
                            j.next_attempt_at = Some(now);
                        }
                    }
                    index_update(&region, rec, b)
                })
                .await?;
                tracing::info!(region, secret = %entry.name, "resuming a rotation this node was running when it stopped");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records the next occurrence after a missed window.
    async fn skip_missed_window(
        &self,
        region: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.update_secret_record(region, name, |rec, b| {
            if let Some(st) = rec.rotation.as_mut() {
                if st.journal.is_none() {
                    let next = st.schedule().and_then(|s| s.next_after(now));
                    tracing::info!(region, secret = %rec.name, next = ?next.map(fmt_time), "rotation window missed; skipping to the next occurrence");
                    st.next_rotation = next;
                }
            }
            index_update(region, rec, b)
        })
        .await?;
        Ok(())
    }

    /// Takes the lease on the rotation of `id` for `owner`, starting a scheduled rotation
    /// when one is due and none is in progress. Returns (plugin, token).
    async fn acquire_rotation(
        &self,
        region: &str,
        id: &str,
        owner: &str,
    ) -> Result<(SecretRecord, String, String)> {
        let now = self.now();
        let lease = self.lease_len();
        let mut out = (String::new(), String::new());
        let rec = self
            .update_secret_record(region, id, |rec, b| {
                Self::ensure_not_deleted(rec)?;
                let name = rec.name.clone();
                let st = rec.rotation.as_mut().ok_or_else(|| {
                    CoreError::InvalidState(format!("secret {name} has no rotation configured"))
                })?;
                if st.journal.is_none() {
                    let due = st.enabled && st.next_rotation.is_some_and(|n| n <= now);
                    if !due {
                        return Err(CoreError::InvalidState(format!(
                            "no rotation of secret {name} is in progress or due; start one with rotate"
                        )));
                    }
                    Self::start_journal(st, now, time::Duration::ZERO);
                }
                let plugin = st.plugin.clone();
                let j = st
                    .journal
                    .as_mut()
                    .ok_or_else(|| CoreError::Internal("journal vanished".into()))?;
                if let Some(other) = j.leased_by_other(owner, now) {
                    return Err(CoreError::InvalidState(format!(
                        "the rotation of secret {name} is already running on {other}"
                    )));
                }
                if j.plugin != plugin {
                    j.plugin = plugin;
                }
                j.lease_owner = Some(owner.to_string());
                j.lease_until = Some(now + lease);
                out = (j.plugin.clone(), j.token.clone());
                index_update(region, rec, b)
            })
            .await?;
        Ok((rec, out.0, out.1))
    }

    /// Read-modify-write of the record of a rotation this node holds: fails if the
    /// rotation was cancelled, replaced or taken over.
    async fn update_held<F>(
        &self,
        region: &str,
        name: &str,
        owner: &str,
        token: &str,
        mut f: F,
    ) -> Result<SecretRecord>
    where
        F: FnMut(&mut SecretRecord, &mut Batch) -> Result<()>,
    {
        self.update_secret_record(region, name, |rec, b| {
            let held = rec
                .rotation
                .as_ref()
                .and_then(|s| s.journal.as_ref())
                .is_some_and(|j| j.token == token && j.lease_owner.as_deref() == Some(owner));
            if !held {
                return Err(CoreError::InvalidState(format!(
                    "the rotation {token} of secret {} was cancelled or taken over by another node; stopped",
                    rec.name
                )));
            }
            f(rec, b)?;
            index_update(region, rec, b)
        })
        .await
    }

    fn open_string(
        &self,
        region: &str,
        rec: &SecretRecord,
        vid: &str,
    ) -> std::result::Result<RotationVersion, StepFailure> {
        let (_, value) = self.open_version(region, &rec.uid, vid).map_err(|e| {
            host_failure(
                StepErrorKind::InvalidSecret,
                format!("version {vid} of secret {} cannot be read: {e}", rec.name),
            )
        })?;
        if value.kind != ValueKind::String {
            return Err(host_failure(
                StepErrorKind::InvalidSecret,
                format!(
                    "version {vid} of secret {} is binary; plugins rotate string secrets",
                    rec.name
                ),
            ));
        }
        let text = String::from_utf8(value.bytes.as_bytes().to_vec()).map_err(|_| {
            host_failure(
                StepErrorKind::InvalidSecret,
                format!("version {vid} is not UTF-8"),
            )
        })?;
        Ok(RotationVersion {
            id: vid.to_string(),
            value: Zeroizing::new(text),
        })
    }

    /// Builds the request of one step from the record (values decrypted here, never
    /// logged).
    fn step_request(
        &self,
        region: &str,
        rec: &SecretRecord,
        plugin: &str,
        token: &str,
        step: RotationStep,
    ) -> std::result::Result<StepRequest, StepFailure> {
        let st = rec.rotation.as_ref().ok_or_else(|| {
            host_failure(StepErrorKind::Internal, "rotation config vanished".into())
        })?;
        let cur = rec.stages.get(AWSCURRENT).ok_or_else(|| {
            host_failure(
                StepErrorKind::InvalidSecret,
                format!("secret {} has no AWSCURRENT version", rec.name),
            )
        })?;
        let current = self.open_string(region, rec, cur)?;
        let previous = match rec.stages.get(AWSPREVIOUS) {
            Some(p) if p != cur => self.open_string(region, rec, p).ok(),
            _ => None,
        };
        let pending = if step == RotationStep::Create {
            None
        } else {
            Some(self.open_string(region, rec, token)?)
        };
        Ok(StepRequest {
            plugin: plugin.to_string(),
            step,
            region: region.to_string(),
            secret_name: rec.name.clone(),
            token: token.to_string(),
            current,
            pending,
            previous,
            config: st.config.clone(),
            granted_secrets: st.granted_secrets.clone(),
        })
    }

    /// One audit record per step run: principal `Plugin::"<name>"`, the step's trail.
    async fn audit_step(
        &self,
        audit: Option<&dyn RotationAuditSink>,
        run: &RotationReport,
        step: RotationStep,
        result: std::result::Result<(), &StepFailure>,
        trail: Vec<crate::rotation_api::TrailEntry>,
    ) {
        let (region, name, plugin, token) = (
            run.region.as_str(),
            run.name.as_str(),
            run.plugin.as_str(),
            run.token.as_str(),
        );
        let mut e = AuditEntry::new(
            "RotateSecret",
            &format!("rotation:{token}:{step}"),
            self.now(),
        );
        e.principal = Some(format!("Plugin::\"{plugin}\""));
        e.resource = Some(format!("secret:{region}/{name}"));
        e.region = Some(region.to_string());
        e.decision = AuditDecision::NotEvaluated;
        e.trail = trail;
        match result {
            Ok(()) => {
                e.status = 200;
                e.reason = Some(format!("rotation step {step} succeeded"));
            }
            Err(f) => {
                e.status = 502;
                e.error_code = Some(f.kind.as_str().to_string());
                e.reason = Some(truncate(format!(
                    "rotation step {step} failed: {}",
                    f.message
                )));
            }
        }
        let res = match audit {
            Some(sink) => sink.record(e).await,
            None => self
                .append_audit(vec![e])
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(err) = res {
            tracing::error!(region, secret = %name, %step, error = %err, "rotation audit record not written");
        }
    }

    /// Runs the rotation of `id` to completion or to the first failure, as node `owner`
    /// (the lease holder). Starts a scheduled rotation when one is due and none is in
    /// progress. Errors are about the rotation itself (not configured, held by another
    /// node, cancelled meanwhile, store down); a failed step is an `Ok` report with
    /// [`RotationOutcome::Failed`].
    pub async fn run_rotation(
        &self,
        runner: &dyn RotationRunner,
        audit: Option<&dyn RotationAuditSink>,
        region: &str,
        id: &str,
        owner: &str,
    ) -> Result<RotationReport> {
        let (rec, plugin, token) = self.acquire_rotation(region, id, owner).await?;
        let name = rec.name.clone();
        let mut report = RotationReport {
            region: region.to_string(),
            name: name.clone(),
            plugin: plugin.clone(),
            token: token.clone(),
            steps_run: Vec::new(),
            outcome: RotationOutcome::Succeeded,
        };
        loop {
            let (rec, _) = self.load_secret(region, &name)?;
            let journal = rec
                .rotation
                .as_ref()
                .and_then(|s| s.journal.as_ref())
                .filter(|j| j.token == token && j.lease_owner.as_deref() == Some(owner))
                .cloned()
                .ok_or_else(|| {
                    CoreError::InvalidState(format!(
                        "the rotation {token} of secret {name} was cancelled or taken over; stopped"
                    ))
                })?;
            let step = journal.next_step;
            let version_exists = self
                .store
                .get(&version_key(region, &rec.uid, &token))?
                .is_some();
            let result = if step == RotationStep::Create && version_exists {
                // A retry after a crash between storing the value and advancing (cannot
                // happen with one batch, but a value stored by hand is honoured too).
                StepResult::Done(None, Vec::new())
            } else {
                match self.step_request(region, &rec, &plugin, &token, step) {
                    Err(f) => StepResult::Failed(f),
                    Ok(req) => match runner.run_step(req).await {
                        Ok(o) => StepResult::Done(o.value, o.trail),
                        Err(f) => StepResult::Failed(f),
                    },
                }
            };
            let (value, trail) = match result {
                StepResult::Done(v, t) => (v, t),
                StepResult::Failed(f) => {
                    let f = StepFailure {
                        message: truncate(f.message),
                        ..f
                    };
                    let retry_at = self
                        .record_failure(region, &name, owner, &token, step, &f)
                        .await?;
                    let trail = f.trail.clone();
                    self.audit_step(audit, &report, step, Err(&f), trail).await;
                    tracing::warn!(region, secret = %name, %plugin, %step, kind = f.kind.as_str(), retry_at = ?retry_at.map(fmt_time), "rotation step failed");
                    report.outcome = RotationOutcome::Failed {
                        step,
                        kind: f.kind,
                        message: f.message,
                        retry_at: retry_at.map(fmt_time),
                    };
                    return Ok(report);
                }
            };
            let persisted = match step {
                RotationStep::Create if version_exists => {
                    self.advance(region, &name, owner, &token, step).await
                }
                RotationStep::Create => {
                    self.store_pending(region, &name, owner, &token, value)
                        .await
                }
                RotationStep::Set | RotationStep::Test => {
                    self.advance(region, &name, owner, &token, step).await
                }
                RotationStep::Finish => self.finish(region, &name, owner, &token).await,
            };
            if let Err(StepOrCore::Step(f)) = &persisted {
                let retry_at = self
                    .record_failure(region, &name, owner, &token, step, f)
                    .await?;
                self.audit_step(audit, &report, step, Err(f), trail).await;
                report.outcome = RotationOutcome::Failed {
                    step,
                    kind: f.kind,
                    message: f.message.clone(),
                    retry_at: retry_at.map(fmt_time),
                };
                return Ok(report);
            }
            persisted.map_err(StepOrCore::into_core)?;
            report.steps_run.push(step);
            self.audit_step(audit, &report, step, Ok(()), trail).await;
            if self.config.rotation_crash_after == Some(step) {
                tracing::error!(%step, "TEST FAULT INJECTION: aborting the process after the progress of this step was stored (COFFER_TEST_CRASH_AFTER_STEP)");
                std::process::abort();
            }
            if step == RotationStep::Finish {
                tracing::info!(region, secret = %name, %plugin, token = %token, "rotation finished");
                return Ok(report);
            }
        }
    }

    /// Persists `journal.next_step = step.next()` and renews the lease.
    async fn advance(
        &self,
        region: &str,
        name: &str,
        owner: &str,
        token: &str,
        step: RotationStep,
    ) -> std::result::Result<(), StepOrCore> {
        let now = self.now();
        let lease = self.lease_len();
        let next = step.next().unwrap_or(RotationStep::Finish);
        self.update_held(region, name, owner, token, |rec, _| {
            if let Some(j) = rec.rotation.as_mut().and_then(|s| s.journal.as_mut()) {
                j.next_step = next;
                j.attempts = 0;
                j.lease_until = Some(now + lease);
            }
            if step == RotationStep::Create {
                rec.stages.insert(AWSPENDING.to_string(), token.to_string());
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Stores the created value as version `token` labelled AWSPENDING and advances the
    /// journal to `set`, in one batch.
    async fn store_pending(
        &self,
        region: &str,
        name: &str,
        owner: &str,
        token: &str,
        value: Option<Zeroizing<String>>,
    ) -> std::result::Result<(), StepOrCore> {
        let value = value.ok_or_else(|| {
            StepOrCore::Step(host_failure(
                StepErrorKind::PluginCrashed,
                "the plugin's create step returned no value".into(),
            ))
        })?;
        if value.is_empty() || value.len() > MAX_SECRET_VALUE_BYTES {
            return Err(StepOrCore::Step(host_failure(
                StepErrorKind::PluginCrashed,
                format!(
                    "the plugin's create step returned a value of {} bytes; it must be 1–{MAX_SECRET_VALUE_BYTES}",
                    value.len()
                ),
            )));
        }
        let v = Value {
            kind: ValueKind::String,
            bytes: Plaintext::from_slice(value.as_bytes()),
        };
        drop(value);
        let now = self.now();
        let lease = self.lease_len();
        self.update_held(region, name, owner, token, |rec, b| {
            let vk = version_key(region, &rec.uid, token);
            let version = self.seal_version(region, rec, token, &v)?;
            b.expect_absent(&vk).put(&vk, &encode(&version)?);
            rec.stages.insert(AWSPENDING.to_string(), token.to_string());
            rec.version_count += 1;
            self.prune_versions(region, rec, token, b)?;
            if let Some(j) = rec.rotation.as_mut().and_then(|s| s.journal.as_mut()) {
                j.next_step = RotationStep::Set;
                j.attempts = 0;
                j.lease_until = Some(now + lease);
            }
            rec.last_changed = now;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Moves the labels and clears the journal, in one batch.
    async fn finish(
        &self,
        region: &str,
        name: &str,
        owner: &str,
        token: &str,
    ) -> std::result::Result<(), StepOrCore> {
        let now = self.now();
        self.update_held(region, name, owner, token, |rec, b| {
            let vk = version_key(region, &rec.uid, token);
            let raw = self.store.get(&vk)?.ok_or_else(|| {
                CoreError::Internal(format!(
                    "the pending version {token} of secret {} is missing",
                    rec.name
                ))
            })?;
            b.expect(&vk, &raw);
            if let Some(old) = rec.stages.get(AWSCURRENT).cloned() {
                if old != token {
                    rec.stages.insert(AWSPREVIOUS.to_string(), old);
                }
            }
            rec.stages.insert(AWSCURRENT.to_string(), token.to_string());
            if rec.stages.get(AWSPENDING).map(String::as_str) == Some(token) {
                rec.stages.remove(AWSPENDING);
            }
            if let Some(st) = rec.rotation.as_mut() {
                st.journal = None;
                st.last_rotated = Some(now);
                st.next_rotation = st.schedule().and_then(|s| s.next_after(now));
                st.last_error = None;
            }
            rec.last_changed = now;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Records a failed step: last_error, attempts + 1, the next automatic attempt for
    /// transient kinds; releases the lease. Returns when it is retried.
    async fn record_failure(
        &self,
        region: &str,
        name: &str,
        owner: &str,
        token: &str,
        step: RotationStep,
        f: &StepFailure,
    ) -> Result<Option<OffsetDateTime>> {
        let now = self.now();
        let mut retry_at = None;
        self.update_held(region, name, owner, token, |rec, _| {
            retry_at = None;
            if let Some(st) = rec.rotation.as_mut() {
                st.last_error = Some(LastError {
                    time: now,
                    step,
                    kind: f.kind,
                    message: f.message.clone(),
                });
                if let Some(j) = st.journal.as_mut() {
                    j.attempts = j.attempts.saturating_add(1);
                    j.next_attempt_at = if f.kind.is_transient() {
                        Some(now + self.backoff(j.attempts))
                    } else {
                        None
                    };
                    retry_at = j.next_attempt_at;
                    j.lease_owner = None;
                    j.lease_until = None;
                }
            }
            Ok(())
        })
        .await?;
        Ok(retry_at)
    }
}

/// A persistence step that failed either as a step (bad plugin output) or in the store.
enum StepOrCore {
    Step(StepFailure),
    Core(CoreError),
}

impl StepOrCore {
    fn into_core(self) -> CoreError {
        match self {
            StepOrCore::Core(e) => e,
            StepOrCore::Step(f) => CoreError::Internal(f.message),
        }
    }
}

impl From<CoreError> for StepOrCore {
    fn from(e: CoreError) -> Self {
        StepOrCore::Core(e)
    }
}
