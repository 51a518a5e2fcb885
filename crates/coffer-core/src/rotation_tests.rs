//! Unit tests of the rotation state machine, with a fake runner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use coffer_api::{CreateSecretRequest, RotateSecretRequest, SecretDescription};
use coffer_crypto::MemoryRootKey;
use coffer_store::{SledStore, Store};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::audit::AuditRecord;
use crate::rotation::{parse_window, RotationOutcome, RotationSchedule};
use crate::rotation_api::{
    RotationRunner, RotationStep, StepErrorKind, StepFailure, StepOutcome, StepRequest, TrailEntry,
};
use crate::{Clock, Coffer, CoreConfig, CoreError, AWSCURRENT, AWSPENDING, AWSPREVIOUS};

const R: &str = "local";
const PLUGIN: &str = "fake";

#[derive(Clone)]
struct TestClock(Arc<Mutex<OffsetDateTime>>);

impl TestClock {
    fn new() -> Self {
        // Wednesday 2023-11-15 00:00:00 UTC.
        let t = OffsetDateTime::from_unix_timestamp(1_700_006_400).expect("time");
        TestClock(Arc::new(Mutex::new(t)))
    }
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock")
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().expect("clock") += d;
    }
    fn as_clock(&self) -> Clock {
        let t = self.0.clone();
        Arc::new(move || *t.lock().expect("clock"))
    }
}

/// What the fake runner saw of one call.
#[derive(Debug, Clone)]
struct Call {
    step: RotationStep,
    token: String,
    current: String,
    pending: Option<String>,
    previous: Option<String>,
}

/// A runner whose `create` returns `new-<n>` and whose steps fail as told.
#[derive(Default)]
struct FakeRunner {
    calls: Mutex<Vec<Call>>,
    fail: Mutex<HashMap<RotationStep, StepErrorKind>>,
    /// Steps that never return (a crash in the middle of a step).
    hang: Mutex<Option<RotationStep>>,
    n: AtomicU32,
}

impl FakeRunner {
    fn fail_at(&self, step: RotationStep, kind: StepErrorKind) {
        self.fail.lock().expect("lock").insert(step, kind);
    }
    fn heal(&self) {
        self.fail.lock().expect("lock").clear();
    }
    fn steps(&self) -> Vec<RotationStep> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.step)
            .collect()
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl RotationRunner for FakeRunner {
    fn has_plugin(&self, name: &str) -> bool {
        name == PLUGIN
    }

    async fn run_step(&self, req: StepRequest) -> Result<StepOutcome, StepFailure> {
        self.calls.lock().expect("lock").push(Call {
            step: req.step,
            token: req.token.clone(),
            current: req.current.value.to_string(),
            pending: req.pending.as_ref().map(|p| p.value.to_string()),
            previous: req.previous.as_ref().map(|p| p.value.to_string()),
        });
        if *self.hang.lock().expect("lock") == Some(req.step) {
            std::future::pending::<()>().await;
        }
        let trail = vec![TrailEntry {
            kind: "sql".into(),
            detail: format!("ALTER ROLE app PASSWORD <redacted> ({})", req.step),
        }];
        if let Some(kind) = self.fail.lock().expect("lock").get(&req.step) {
            return Err(StepFailure {
                kind: *kind,
                message: format!("{} failed on purpose", req.step),
                trail,
            });
        }
        let value = (req.step == RotationStep::Create)
            .then(|| Zeroizing::new(format!("new-{}", self.n.fetch_add(1, Ordering::SeqCst))));
        Ok(StepOutcome { value, trail })
    }
}

struct Env {
    coffer: Coffer,
    store: Arc<SledStore>,
    root: Arc<MemoryRootKey>,
    clock: TestClock,
    runner: FakeRunner,
}

fn config(clock: &TestClock) -> CoreConfig {
    CoreConfig {
        clock: clock.as_clock(),
        ..CoreConfig::default()
    }
}

fn env() -> Env {
    let clock = TestClock::new();
    let store = Arc::new(SledStore::temporary().expect("store"));
    let root = Arc::new(MemoryRootKey::generate());
    let coffer = Coffer::new(store.clone(), root.clone(), config(&clock)).expect("coffer");
    Env {
        coffer,
        store,
        root,
        clock,
        runner: FakeRunner::default(),
    }
}

fn req(schedule: Option<&str>, now: bool) -> RotateSecretRequest {
    RotateSecretRequest {
        plugin: PLUGIN.into(),
        schedule: schedule.map(str::to_string),
        rotate_immediately: now,
        config: Some([("strategy".to_string(), "single-user".to_string())].into()),
        ..Default::default()
    }
}

impl Env {
    async fn secret(&self, name: &str, value: &str) {
        self.coffer
            .create_secret(
                R,
                &CreateSecretRequest {
                    name: name.into(),
                    secret_string: Some(value.into()),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
    }
    async fn value(&self, name: &str, stage: &str) -> Option<(String, String)> {
        self.coffer
            .get_secret_value(R, name, None, Some(stage))
            .await
            .ok()
            .map(|v| {
                (
                    v.version_id.clone(),
                    v.secret_string.clone().unwrap_or_default(),
                )
            })
    }
    fn describe(&self, name: &str) -> SecretDescription {
        self.coffer.describe_secret(R, name).expect("describe")
    }
    async fn run(&self, name: &str, owner: &str) -> crate::Result<crate::rotation::RotationReport> {
        self.coffer
            .run_rotation(&self.runner, None, R, name, owner)
            .await
    }
}

#[tokio::test]
async fn a_full_rotation_moves_the_labels() {
    let e = env();
    e.secret("db", "old").await;
    let (old_vid, _) = e.value("db", AWSCURRENT).await.expect("current");
    let start = e
        .coffer
        .configure_rotation(&e.runner, R, "db", &req(Some("rate(30 days)"), true))
        .await
        .expect("configure");
    let token = start.token.clone().expect("token");
    assert!(!start.resumed);
    let p = start.description.rotation.as_ref().expect("rotation info");
    assert_eq!(
        p.in_progress.as_ref().map(|j| j.next_step.as_str()),
        Some("create")
    );
    assert_eq!(
        start
            .description
            .rotation_rules
            .as_ref()
            .and_then(|r| r.automatically_after_days),
        Some(30)
    );
    let report = e.run("db", "node-a").await.expect("run");
    assert_eq!(report.outcome, RotationOutcome::Succeeded);
    assert_eq!(report.steps_run, RotationStep::ALL.to_vec());
    assert_eq!(e.runner.steps(), RotationStep::ALL.to_vec());
    let (cur_vid, cur) = e.value("db", AWSCURRENT).await.expect("current");
    assert_eq!((cur_vid.as_str(), cur.as_str()), (token.as_str(), "new-0"));
    assert_eq!(
        e.value("db", AWSPREVIOUS).await,
        Some((old_vid, "old".into()))
    );
    assert!(e.value("db", AWSPENDING).await.is_none());
    for c in &e.runner.calls()[1..] {
        assert_eq!(c.pending.as_deref(), Some("new-0"), "{c:?}");
        assert_eq!(c.current, "old");
        assert_eq!(c.token, token);
    }
    assert_eq!(e.runner.calls()[0].pending, None);
    assert_eq!(e.runner.calls()[0].previous, None);
    let d = e.describe("db");
    assert!(d.rotation_enabled);
    assert_eq!(d.rotation_plugin.as_deref(), Some(PLUGIN));
    assert_eq!(d.last_rotated_date, Some(crate::fmt_time(e.clock.now())));
    assert_eq!(
        d.next_rotation_date,
        Some(crate::fmt_time(e.clock.now() + Duration::days(30)))
    );
    assert!(d.last_rotation_error.is_none());
    let info = d.rotation.expect("info");
    assert!(info.in_progress.is_none());
    assert_eq!(
        info.config.get("strategy").map(String::as_str),
        Some("single-user")
    );

    // The steps are in the audit chain with the plugin as principal and their trail.
    let log = e.store.audit_log();
    let rows = log.read(1, log.last_seq()).expect("read the audit log");
    let recs: Vec<AuditRecord> = rows
        .iter()
        .map(|(_, raw)| serde_json::from_slice(raw).expect("record"))
        .collect();
    let steps: Vec<&AuditRecord> = recs.iter().filter(|r| r.action == "RotateSecret").collect();
    assert_eq!(steps.len(), 4);
    assert!(steps
        .iter()
        .all(|r| r.principal.as_deref() == Some("Plugin::\"fake\"")
            && r.resource.as_deref() == Some("secret:local/db")
            && r.status == 200
            && r.trail.len() == 1
            && !r.trail[0].detail.contains("new-0")));
    assert!(e.coffer.verify_audit().expect("verify").ok);
    // A second rotation makes the first rotated version PREVIOUS.
    e.coffer
        .rotate_secret(&e.runner, R, "db")
        .await
        .expect("rotate");
    e.run("db", "node-a").await.expect("run");
    assert_eq!(
        e.value("db", AWSCURRENT).await.map(|v| v.1),
        Some("new-1".into())
    );
    assert_eq!(
        e.value("db", AWSPREVIOUS).await.map(|v| v.1),
        Some("new-0".into())
    );
}

#[tokio::test]
async fn a_failure_at_any_step_keeps_current_and_a_retry_resumes_there() {
    for failing in RotationStep::ALL {
        let e = env();
        e.secret("db", "old").await;
        let start = e
            .coffer
            .configure_rotation(&e.runner, R, "db", &req(None, true))
            .await
            .expect("configure");
        let token = start.token.expect("token");
        e.runner.fail_at(failing, StepErrorKind::Unreachable);
        let report = e.run("db", "node-a").await.expect("run");
        let RotationOutcome::Failed {
            step,
            kind,
            retry_at,
            ..
        } = &report.outcome
        else {
            panic!("expected a failure at {failing}, got {report:?}");
        };
        assert_eq!((*step, *kind), (failing, StepErrorKind::Unreachable));
        assert_eq!(
            retry_at.as_deref(),
            Some(crate::fmt_time(e.clock.now() + Duration::seconds(30)).as_str())
        );
        assert_eq!(
            e.value("db", AWSCURRENT).await.map(|v| v.1),
            Some("old".into())
        );
        let d = e.describe("db");
        let err = d.last_rotation_error.expect("last error");
        let info = d.rotation.expect("info");
        assert_eq!(
            (err.step.as_str(), err.kind.as_str()),
            (failing.as_str(), "unreachable")
        );
        assert!(!err.message.contains("new-0"));
        let j = info.in_progress.expect("journal kept");
        assert_eq!((j.next_step.as_str(), j.attempts), (failing.as_str(), 1));
        assert_eq!(j.token, token);
        assert!(j.lease_owner.is_none());

        // The retry resumes at the failed step, with the same token and value.
        e.runner.heal();
        let again = e
            .coffer
            .rotate_secret(&e.runner, R, "db")
            .await
            .expect("rotate");
        assert!(again.resumed);
        assert_eq!(again.token.as_deref(), Some(token.as_str()));
        let report = e.run("db", "node-a").await.expect("run");
        assert_eq!(report.outcome, RotationOutcome::Succeeded);
        assert_eq!(report.steps_run.first(), Some(&failing));
        let creates = e
            .runner
            .steps()
            .iter()
            .filter(|s| **s == RotationStep::Create)
            .count();
        assert_eq!(creates, 1 + usize::from(failing == RotationStep::Create));
        // A failed create produced no value, so the one value ever made is new-0.
        let (vid, v) = e.value("db", AWSCURRENT).await.expect("current");
        assert_eq!((vid.as_str(), v.as_str()), (token.as_str(), "new-0"));
        assert!(e.describe("db").last_rotation_error.is_none());
    }
}

#[tokio::test]
async fn transient_failures_back_off_and_permanent_ones_wait_for_a_manual_rotate() {
    let e = env();
    e.secret("a", "old").await;
    e.secret("b", "old").await;
    for n in ["a", "b"] {
        e.coffer
            .configure_rotation(&e.runner, R, n, &req(None, true))
            .await
            .expect("configure");
    }
    // The starter runs a started rotation; the scheduler takes it only if that did not
    // happen within the lease length.
    let now = e.clock.now();
    assert!(e.coffer.due_rotations(now).await.expect("due").is_empty());
    let later = now + Duration::minutes(5);
    assert_eq!(e.coffer.due_rotations(later).await.expect("due").len(), 2);
    e.runner
        .fail_at(RotationStep::Set, StepErrorKind::AuthFailed);
    e.run("a", "n").await.expect("run");
    e.runner
        .fail_at(RotationStep::Set, StepErrorKind::TargetRefused);
    e.run("b", "n").await.expect("run");
    let due = |secs: i64| {
        let c = &e.coffer;
        let t = now + Duration::seconds(secs);
        async move { c.due_rotations(t).await.expect("due") }
    };
    assert!(due(29).await.is_empty());
    assert_eq!(due(30).await, vec![(R.to_string(), "a".to_string())]);
    assert!(e
        .describe("b")
        .rotation
        .expect("info")
        .in_progress
        .expect("kept")
        .next_attempt_at
        .is_none());
    // A second transient failure doubles the delay.
    e.runner
        .fail_at(RotationStep::Set, StepErrorKind::AuthFailed);
    e.clock.advance(Duration::seconds(30));
    e.run("a", "n").await.expect("run");
    let j = e
        .describe("a")
        .rotation
        .expect("info")
        .in_progress
        .expect("kept");
    assert_eq!(j.attempts, 2);
    assert_eq!(
        j.next_attempt_at,
        Some(crate::fmt_time(e.clock.now() + Duration::seconds(60)))
    );
    assert_eq!(e.coffer.backoff(20), Duration::hours(1));
    // Nothing ran b again on its own; a manual rotate resumes it.
    assert!(!due(3600 * 5)
        .await
        .contains(&(R.to_string(), "b".to_string())));
}

#[tokio::test]
async fn a_crashed_rotation_resumes_on_another_node_after_the_lease() {
    let e = env();
    e.secret("db", "old").await;
    e.coffer
        .configure_rotation(&e.runner, R, "db", &req(None, true))
        .await
        .expect("configure");
    *e.runner.hang.lock().expect("lock") = Some(RotationStep::Test);
    // Node A stores create and set, then dies in the middle of test.
    let res =
        tokio::time::timeout(std::time::Duration::from_millis(300), e.run("db", "node-a")).await;
    assert!(res.is_err(), "the hanging step should not finish");
    let Env {
        coffer,
        store,
        root,
        clock,
        runner,
    } = e;
    drop(coffer);
    let b = Coffer::new(store.clone(), root.clone(), config(&clock)).expect("reopen");
    *runner.hang.lock().expect("lock") = None;
    let d = b.describe_secret(R, "db").expect("describe");
    let j = d.rotation.expect("info").in_progress.expect("journal");
    assert_eq!(
        (j.next_step.as_str(), j.lease_owner.as_deref()),
        ("test", Some("node-a"))
    );
    assert_eq!(
        b.get_secret_value(R, "db", None, Some(AWSPENDING))
            .await
            .expect("pending")
            .secret_string
            .as_deref(),
        Some("new-0")
    );
    // The lease keeps node B out while it lasts.
    assert!(b.due_rotations(clock.now()).await.expect("due").is_empty());
    assert!(matches!(
        b.run_rotation(&runner, None, R, "db", "node-b").await,
        Err(CoreError::InvalidState(m)) if m.contains("node-a")
    ));
    clock.advance(Duration::minutes(5));
    assert_eq!(b.due_rotations(clock.now()).await.expect("due").len(), 1);
    let report = b
        .run_rotation(&runner, None, R, "db", "node-b")
        .await
        .expect("run");
    assert_eq!(report.outcome, RotationOutcome::Succeeded);
    assert_eq!(
        report.steps_run,
        vec![RotationStep::Test, RotationStep::Finish]
    );
    let cur = b
        .get_secret_value(R, "db", None, None)
        .await
        .expect("current");
    assert_eq!(cur.secret_string.as_deref(), Some("new-0"));
    assert_eq!(
        runner.steps(),
        vec![
            RotationStep::Create,
            RotationStep::Set,
            RotationStep::Test,
            RotationStep::Test,
            RotationStep::Finish
        ]
    );
    // The old node, if it came back, finds its lease gone.
    assert!(b.due_rotations(clock.now()).await.expect("due").is_empty());
}

#[tokio::test]
async fn a_restarted_node_resumes_its_own_rotations_at_once() {
    let e = env();
    e.secret("db", "old").await;
    e.coffer
        .configure_rotation(&e.runner, R, "db", &req(None, true))
        .await
        .expect("configure");
    *e.runner.hang.lock().expect("lock") = Some(RotationStep::Set);
    let res =
        tokio::time::timeout(std::time::Duration::from_millis(300), e.run("db", "node-a")).await;
    assert!(res.is_err());
    *e.runner.hang.lock().expect("lock") = None;
    let now = e.clock.now();
    assert!(e.coffer.due_rotations(now).await.expect("due").is_empty());
    assert_eq!(
        e.coffer.recover_rotations("node-b").await.expect("recover"),
        0
    );
    assert_eq!(
        e.coffer.recover_rotations("node-a").await.expect("recover"),
        1
    );
    assert_eq!(e.coffer.due_rotations(now).await.expect("due").len(), 1);
    let report = e.run("db", "node-a").await.expect("run");
    assert_eq!(report.outcome, RotationOutcome::Succeeded);
    assert_eq!(report.steps_run.first(), Some(&RotationStep::Set));
}

#[tokio::test]
async fn two_runs_of_one_rotation_do_not_overlap() {
    let e = env();
    e.secret("db", "old").await;
    e.coffer
        .configure_rotation(&e.runner, R, "db", &req(None, true))
        .await
        .expect("configure");
    *e.runner.hang.lock().expect("lock") = Some(RotationStep::Set);
    let first = e.run("db", "node-a");
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        e.run("db", "node-b").await
    };
    let (a, b) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_millis(400), first),
        second
    );
    assert!(a.is_err(), "node-a hangs in set");
    assert!(
        matches!(b, Err(CoreError::InvalidState(m)) if m.contains("already running on node-a"))
    );
    assert_eq!(
        e.runner.steps(),
        vec![RotationStep::Create, RotationStep::Set]
    );
}

#[tokio::test]
async fn cancel_removes_pending_and_disables_rotation() {
    let e = env();
    e.secret("db", "old").await;
    let start = e
        .coffer
        .configure_rotation(&e.runner, R, "db", &req(Some("rate(1 day)"), true))
        .await
        .expect("configure");
    e.runner
        .fail_at(RotationStep::Set, StepErrorKind::TargetRefused);
    e.run("db", "n").await.expect("run");
    assert!(e.value("db", AWSPENDING).await.is_some());
    let d = e.coffer.cancel_rotation(R, "db").await.expect("cancel");
    assert!(!d.rotation_enabled && d.next_rotation_date.is_none());
    assert!(d.rotation.as_ref().expect("info").in_progress.is_none());
    assert!(e.value("db", AWSPENDING).await.is_none());
    assert_eq!(
        e.value("db", AWSCURRENT).await.map(|v| v.1),
        Some("old".into())
    );
    // The version is kept, without a label.
    let token = start.token.expect("token");
    let versions = e
        .coffer
        .list_secret_versions(R, "db", true)
        .expect("versions");
    assert!(versions
        .versions
        .iter()
        .any(|v| v.version_id == token && v.version_stages.is_empty()));
    assert!(e
        .coffer
        .due_rotations(e.clock.now() + Duration::days(3))
        .await
        .expect("due")
        .is_empty());
    // Rotating again starts a new rotation with a new token.
    e.runner.heal();
    let again = e
        .coffer
        .rotate_secret(&e.runner, R, "db")
        .await
        .expect("rotate");
    assert!(!again.resumed && again.token.as_deref() != Some(token.as_str()));
    assert!(again.description.rotation_enabled);
    assert_eq!(
        e.run("db", "n").await.expect("run").outcome,
        RotationOutcome::Succeeded
    );
}

#[tokio::test]
async fn configure_validates_plugin_schedule_and_secret() {
    let e = env();
    e.secret("db", "old").await;
    let mut bad = req(None, false);
    bad.plugin = "nope".into();
    assert!(matches!(
        e.coffer.configure_rotation(&e.runner, R, "db", &bad).await,
        Err(CoreError::InvalidParameter(m)) if m.contains("\"nope\"")
    ));
    assert!(matches!(
        e.coffer
            .configure_rotation(&e.runner, R, "db", &req(Some("rate(2 hours)"), false))
            .await,
        Err(CoreError::InvalidParameter(_))
    ));
    let mut w = req(Some("rate(1 day)"), false);
    w.window = Some("25h".into());
    assert!(matches!(
        e.coffer.configure_rotation(&e.runner, R, "db", &w).await,
        Err(CoreError::InvalidParameter(_))
    ));
    // Binary secrets and secrets without a value cannot be rotated.
    e.coffer
        .create_secret(
            R,
            &CreateSecretRequest {
                name: "bin".into(),
                secret_binary: Some("AAEC".into()),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    e.coffer
        .create_secret(
            R,
            &CreateSecretRequest {
                name: "empty".into(),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    for n in ["bin", "empty"] {
        assert!(matches!(
            e.coffer
                .configure_rotation(&e.runner, R, n, &req(None, false))
                .await,
            Err(CoreError::InvalidState(_))
        ));
    }
    // Without rotate_immediately nothing starts; rotate without config is refused.
    assert!(matches!(
        e.coffer.rotate_secret(&e.runner, R, "db").await,
        Err(CoreError::InvalidState(_))
    ));
    let s = e
        .coffer
        .configure_rotation(&e.runner, R, "db", &req(Some("rate(10 days)"), false))
        .await
        .expect("configure");
    assert!(s.token.is_none());
    assert_eq!(
        s.description.next_rotation_date,
        Some(crate::fmt_time(e.clock.now() + Duration::days(10)))
    );
    assert!(matches!(
        e.run("db", "n").await,
        Err(CoreError::InvalidState(_))
    ));
}

#[tokio::test]
async fn a_different_plugin_conflicts_with_a_rotation_in_progress() {
    struct Two(FakeRunner);
    #[async_trait::async_trait]
    impl RotationRunner for Two {
        fn has_plugin(&self, _: &str) -> bool {
            true
        }
        async fn run_step(&self, req: StepRequest) -> Result<StepOutcome, StepFailure> {
            self.0.run_step(req).await
        }
    }
    let e = env();
    let two = Two(FakeRunner::default());
    e.secret("db", "old").await;
    e.coffer
        .configure_rotation(&two, R, "db", &req(None, true))
        .await
        .expect("configure");
    let mut other = req(None, true);
    other.plugin = "other".into();
    assert!(matches!(
        e.coffer.configure_rotation(&two, R, "db", &other).await,
        Err(CoreError::InvalidState(m)) if m.contains("in progress")
    ));
    // The same plugin with a new schedule is fine and resumes.
    let again = e
        .coffer
        .configure_rotation(&two, R, "db", &req(Some("rate(7 days)"), true))
        .await
        .expect("reconfigure");
    assert!(again.resumed);
}

#[tokio::test]
async fn scheduled_rotations_run_inside_their_window_or_skip_ahead() {
    let e = env();
    e.secret("db", "old").await;
    let mut r = req(Some("rate(1 day)"), false);
    r.window = Some("2h".into());
    e.coffer
        .configure_rotation(&e.runner, R, "db", &r)
        .await
        .expect("configure");
    let t0 = e.clock.now();
    assert!(e.coffer.due_rotations(t0).await.expect("due").is_empty());
    let due = e
        .coffer
        .due_rotations(t0 + Duration::days(1) + Duration::hours(1))
        .await
        .expect("due");
    assert_eq!(due, vec![(R.to_string(), "db".to_string())]);
    // Missed the whole window: skip to the next occurrence, recorded.
    let late = t0 + Duration::days(1) + Duration::hours(3);
    assert!(e.coffer.due_rotations(late).await.expect("due").is_empty());
    assert_eq!(
        e.describe("db").next_rotation_date,
        Some(crate::fmt_time(late + Duration::days(1)))
    );
    // Inside the next window the scheduler starts the rotation itself.
    e.clock
        .advance(Duration::days(2) + Duration::hours(3) + Duration::minutes(30));
    assert_eq!(
        e.coffer
            .due_rotations(e.clock.now())
            .await
            .expect("due")
            .len(),
        1
    );
    let report = e.run("db", "scheduler").await.expect("run");
    assert_eq!(report.outcome, RotationOutcome::Succeeded);
    assert_eq!(
        e.describe("db").next_rotation_date,
        Some(crate::fmt_time(e.clock.now() + Duration::days(1)))
    );
}

#[test]
fn schedules_parse_like_aws() {
    let t = OffsetDateTime::from_unix_timestamp(1_700_006_400).expect("time"); // Wed 2023-11-15
    let rate = RotationSchedule::parse("rate(30 days)").expect("rate");
    assert_eq!(rate.days(), Some(30));
    assert_eq!(rate.next_after(t), Some(t + Duration::days(30)));
    assert_eq!(
        RotationSchedule::parse("rate(1 day)")
            .expect("1 day")
            .days(),
        Some(1)
    );
    let hours = RotationSchedule::parse("rate(4 hours)").expect("hours");
    assert_eq!(
        (hours.days(), hours.next_after(t)),
        (None, Some(t + Duration::hours(4)))
    );
    for bad in [
        "rate(0 days)",
        "rate(3 hours)",
        "rate(5 weeks)",
        "rate(days)",
        "cron(0 3 * * * *)",
        "cron(0 3 ? * ? *)",
        "cron(0 3 * * ?)",
        "cron(0 3 L * ? *)",
        "cron(0 3 ? * 6#3 *)",
        "every day",
    ] {
        assert!(RotationSchedule::parse(bad).is_err(), "{bad}");
    }
    // AWS day-of-week: 1 = SUN … 7 = SAT. From Wednesday, "1" is the next Sunday (the
    // 19th), "7" the next Saturday (the 18th), "MON-FRI" Thursday the 16th.
    let at = |expr: &str| {
        RotationSchedule::parse(expr)
            .expect(expr)
            .next_after(t)
            .expect("next")
    };
    let day = |d: u8, h: u8| {
        time::PrimitiveDateTime::new(
            time::Date::from_calendar_date(2023, time::Month::November, d).expect("date"),
            time::Time::from_hms(h, 0, 0).expect("time"),
        )
        .assume_utc()
    };
    assert_eq!(at("cron(0 3 ? * 1 *)"), day(19, 3));
    assert_eq!(at("cron(0 3 ? * SUN *)"), day(19, 3));
    assert_eq!(at("cron(0 3 ? * 7 *)"), day(18, 3));
    assert_eq!(at("cron(0 3 ? * MON-FRI *)"), day(15, 3));
    assert_eq!(at("cron(0 3 ? * 2-6 *)"), day(15, 3));
    assert_eq!(at("cron(0 0 ? * 5 *)"), day(16, 0));
    assert_eq!(at("cron(0 16 1,15 * ? *)"), day(15, 16));
    assert_eq!(at("cron(0 4 20 * ? *)"), day(20, 4));
    assert!(RotationSchedule::parse("cron(0 3 ? * 1 2020)")
        .expect("past year parses")
        .next_after(t)
        .is_none());
}

#[test]
fn windows_parse() {
    assert_eq!(parse_window("2h").expect("2h"), Duration::hours(2));
    assert_eq!(parse_window("30m").expect("30m"), Duration::minutes(30));
    assert_eq!(parse_window("1d").expect("1d"), Duration::days(1));
    assert_eq!(parse_window("1h30m").expect("1h30m"), Duration::minutes(90));
    for bad in ["", "2", "h", "25h", "0m", "2x", "-1h"] {
        assert!(parse_window(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn old_secret_records_without_rotation_still_load() {
    let e = env();
    e.secret("db", "old").await;
    let key = b"r/local/secret/db";
    let raw = e.store.get(key).expect("get").expect("record");
    let mut v: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    assert!(
        v.get("rotation").is_none(),
        "no rotation field unless configured"
    );
    v.as_object_mut().expect("object").remove("rotation");
    let d = e.describe("db");
    assert!(!d.rotation_enabled && d.rotation.is_none());
}
