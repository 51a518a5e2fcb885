//! The policy tools on fixture policy sets with known answers.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_policy_tools::{
    concrete_diff, format_dir, materialize_base, run_tests, symbolic_diff, validate, ChangeKind,
    CofferRequest, ConcreteOptions, Direction, Target, ToolError, Verdict,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A fixture in a temporary directory, with the repository's schema.
fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join(name), dir.path());
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/schema.cedarschema"),
        dir.path().join("schema.cedarschema"),
    )
    .unwrap();
    dir
}

#[test]
fn test_runner_passes_the_team_fixture_and_reports_the_untested_policy() {
    let dir = fixture("teams");
    let report = run_tests(dir.path()).unwrap();
    for r in &report.results {
        assert!(r.passed, "{}: {:?}", r.name, r.failure);
    }
    assert_eq!(report.results.len(), 9);
    assert_eq!(report.files, ["tests/keys.json", "tests/secrets.json"]);
    let untested: Vec<&str> = report.unexercised.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(untested, ["ops-rotate-prod"]);
    assert_eq!(report.unexercised[0].location(), "secrets.cedar:17");
    assert!(report.success());
}

#[test]
fn a_wrong_expectation_fails_and_names_the_determining_policy() {
    let dir = fixture("failing");
    let report = run_tests(dir.path()).unwrap();
    assert_eq!((report.passed(), report.failed()), (1, 1));
    let failed = report.results.iter().find(|r| !r.passed).unwrap();
    assert_eq!(failed.name, "admin deletes prod at 14:00");
    assert_eq!(
        failed.failure.as_deref(),
        Some("expected allow, got deny (determined by: no-prod-delete-outside-window)")
    );
    assert!(!report.success());
}

#[test]
fn a_typo_in_a_test_is_a_failure_not_a_deny() {
    let dir = fixture("failing");
    fs::write(
        dir.path().join("tests/wrong.json"),
        r#"[{"name": "typo", "decision": "deny",
             "request": {"principal": "olga", "action": "GetSecretValu", "secret": {"name": "x"}}}]"#,
    )
    .unwrap();
    let report = run_tests(dir.path()).unwrap();
    let failure = report.results[0].failure.as_deref().unwrap();
    assert!(failure.starts_with("invalid test: "), "{failure}");
    assert!(failure.contains("unknown action"), "{failure}");
}

#[test]
fn concrete_diff_flips_exactly_one_decision() {
    let (base, new) = (fixture("diff-base"), fixture("diff-new"));
    let report = concrete_diff(base.path(), new.path(), &ConcreteOptions::default()).unwrap();
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.changed[0].id, "deployer-reads-db-password");
    assert_eq!(report.changed[0].kind, ChangeKind::Added);
    assert_eq!(report.flips.len(), 1, "{:#?}", report.flips);
    let flip = &report.flips[0];
    assert_eq!(flip.direction, Direction::Widen);
    assert_eq!(flip.principal, "deployer");
    assert_eq!(flip.action, "GetSecretValue");
    assert_eq!(
        flip.resource.target,
        Target::Secret {
            name: "prod/db/password".into(),
            tags: Default::default()
        }
    );
    assert_eq!(flip.context, "api aws");
    assert!(!flip.base.allowed && flip.new.allowed);
    assert_eq!(
        flip.new.determining_policies,
        ["deployer-reads-db-password"]
    );
    assert!(report.widens());
    assert_eq!(report.stats.evaluated, 1, "the probe leaves one request");
    assert_eq!(report.summary.len(), 1);
    assert_eq!(
        report.summary[0].text,
        "1 user in no team gains GetSecretValue on 1 secret under prod/ \
         (via policy deployer-reads-db-password) [only in context: api aws]"
    );
}

#[test]
fn concrete_diff_the_other_way_narrows() {
    let (base, new) = (fixture("diff-new"), fixture("diff-base"));
    let report = concrete_diff(base.path(), new.path(), &ConcreteOptions::default()).unwrap();
    assert_eq!(report.flips.len(), 1);
    assert_eq!(report.flips[0].direction, Direction::Narrow);
    assert!(!report.widens());
}

#[test]
fn concrete_diff_of_identical_sets_has_no_flips() {
    let (base, new) = (fixture("diff-base"), fixture("diff-base"));
    let report = concrete_diff(base.path(), new.path(), &ConcreteOptions::default()).unwrap();
    assert!(report.changed.is_empty());
    assert!(report.flips.is_empty());
    assert_eq!(report.stats.evaluated, 0);
    assert!(report.stats.requests > 0);
}

#[test]
fn probe_and_pruning_find_the_same_flips_as_evaluating_everything() {
    let base = fixture("teams");
    let new = fixture("teams");
    // Widen ops to dev secrets, drop the delete window, narrow key use to security.
    let secrets = fs::read_to_string(new.path().join("secrets.cedar")).unwrap();
    let secrets = secrets
        .replace(
            "when { resource.path.contains(\"prod\") };\n\n@id(\"ops-rotate-prod\")",
            "when { resource.path.contains(\"prod\") || resource.path.contains(\"dev\") };\n\n@id(\"ops-rotate-prod\")",
        );
    let secrets = &secrets[..secrets
        .find("@id(\"no-prod-delete-outside-window\")")
        .unwrap()];
    fs::write(new.path().join("secrets.cedar"), secrets).unwrap();
    let keys = fs::read_to_string(new.path().join("keys.cedar")).unwrap();
    let start = keys.find("when").unwrap();
    let end = keys.find("};").unwrap();
    let keys = format!(
        "{}when {{ principal in Coffer::Team::\"security\" {}",
        &keys[..start],
        &keys[end..]
    );
    fs::write(new.path().join("keys.cedar"), keys).unwrap();

    let fast = concrete_diff(base.path(), new.path(), &ConcreteOptions::default()).unwrap();
    let full = concrete_diff(
        base.path(),
        new.path(),
        &ConcreteOptions {
            prune: false,
            probe: false,
        },
    )
    .unwrap();
    let key = |r: &coffer_policy_tools::ConcreteReport| -> BTreeSet<String> {
        r.flips
            .iter()
            .map(|f| {
                format!(
                    "{:?} {} {} {:?} {}",
                    f.direction, f.principal, f.action, f.resource, f.context
                )
            })
            .collect()
    };
    assert!(!fast.flips.is_empty());
    assert_eq!(key(&fast), key(&full));
    assert!(fast.stats.evaluated < full.stats.evaluated);
    assert_eq!(full.stats.evaluated, full.stats.requests);
    let changed: Vec<&str> = fast.changed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        changed,
        [
            "no-prod-delete-outside-window",
            "ops-read-prod",
            "teams-use-keys"
        ]
    );
    assert!(fast.widens());
    assert!(fast.flips.iter().any(|f| f.direction == Direction::Narrow));
    // The summary names teams and policies.
    let text: Vec<&str> = fast.summary.iter().map(|l| l.text.as_str()).collect();
    assert!(
        text.iter().any(|t| t.starts_with(
            "1 user of team ops gains DescribeSecret, GetSecretValue, ListSecretVersionIds on"
        ) && t.contains("(via policy ops-read-prod)")),
        "{text:#?}"
    );
    println!(
        "probe: {} of {} requests decided in full, {:.1} ms; full: {} requests, {:.1} ms",
        fast.stats.evaluated, fast.stats.requests, fast.millis, full.stats.evaluated, full.millis
    );
}

#[test]
fn annotations_and_formatting_are_not_changes() {
    let base = fixture("diff-base");
    let new = fixture("diff-base");
    let text = fs::read_to_string(new.path().join("policies.cedar")).unwrap();
    let text = format!(
        "// a comment\n{}",
        text.replace(
            "@id(\"admin-all\")",
            "@id(\"admin-all\")\n@description(\"now documented\")"
        )
    );
    fs::write(new.path().join("policies.cedar"), text).unwrap();
    let report = concrete_diff(base.path(), new.path(), &ConcreteOptions::default()).unwrap();
    assert!(report.changed.is_empty(), "{:?}", report.changed);
}

fn cvc5_present() -> bool {
    match coffer_policy_tools::find_cvc5() {
        Ok(_) => true,
        Err(e) => {
            println!("SKIPPED: {e}");
            false
        }
    }
}

#[tokio::test]
async fn symbolic_diff_finds_the_widening_with_a_counterexample() {
    if !cvc5_present() {
        return;
    }
    let (base, new) = (fixture("diff-base"), fixture("diff-new"));
    let base = coffer_policy_tools::load(base.path()).unwrap();
    let new = coffer_policy_tools::load(new.path()).unwrap();
    let report = symbolic_diff(&base, &new).await.unwrap();
    // One environment per action for users, plus the one the schema opens to rotation
    // plugins (a Plugin may only GetSecretValue).
    let user_envs = report
        .environments
        .iter()
        .filter(|e| e.principal_type == "Coffer::User")
        .count();
    assert_eq!(user_envs, coffer_policy::all_actions().len());
    let others: Vec<_> = report
        .environments
        .iter()
        .filter(|e| e.principal_type != "Coffer::User")
        .map(|e| (e.principal_type.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        others,
        vec![("Coffer::Plugin", "Coffer::Action::\"GetSecretValue\"")]
    );
    let changed: Vec<_> = report
        .environments
        .iter()
        .filter(|e| e.verdict != Verdict::Equivalent)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    let env = changed[0];
    assert_eq!(env.verdict, Verdict::MorePermissive);
    assert_eq!(env.action, "Coffer::Action::\"GetSecretValue\"");
    assert_eq!(env.resource_type, "Coffer::Secret");
    let cex = env.widening.as_ref().unwrap();
    assert!(
        cex.request.contains("Coffer::User::\"deployer\""),
        "{}",
        cex.request
    );
    assert!(cex.request.contains("prod/db/password"), "{}", cex.request);
    assert!(cex.base.starts_with("deny"), "{}", cex.base);
    assert_eq!(cex.new, "allow (permitted by deployer-reads-db-password)");
    assert!(report.widens());
    // Sorted by principal type, then action.
    let actions: Vec<(&str, &str)> = report
        .environments
        .iter()
        .map(|e| (e.principal_type.as_str(), e.action.as_str()))
        .collect();
    let mut sorted = actions.clone();
    sorted.sort();
    assert_eq!(actions, sorted);
    println!(
        "symbolic: {} environments in {:.0} ms",
        report.environments.len(),
        report.millis
    );
}

#[tokio::test]
async fn symbolic_diff_of_identical_sets_is_equivalent() {
    if !cvc5_present() {
        return;
    }
    let base = coffer_policy_tools::load(fixture("teams").path()).unwrap();
    let new = coffer_policy_tools::load(fixture("teams").path()).unwrap();
    let report = symbolic_diff(&base, &new).await.unwrap();
    assert!(!report.environments.is_empty());
    assert!(report
        .environments
        .iter()
        .all(|e| e.verdict == Verdict::Equivalent));
    assert!(!report.widens() && !report.changes());
}

#[tokio::test]
async fn symbolic_diff_without_cvc5_names_the_package() {
    // Point CVC5 at a file that does not exist: the error must say what to install.
    // (Environment changes are process-wide; this is the only test that reads CVC5
    // after setting it, and it restores it.)
    let saved = std::env::var_os("CVC5");
    std::env::set_var("CVC5", "/nonexistent/cvc5");
    let err = coffer_policy_tools::find_cvc5().unwrap_err();
    match saved {
        Some(v) => std::env::set_var("CVC5", v),
        None => std::env::remove_var("CVC5"),
    }
    assert!(matches!(err, ToolError::Cvc5Missing { .. }));
    assert!(err.to_string().contains("apt-get install cvc5"), "{err}");
}

#[test]
fn validate_reports_file_and_line() {
    let dir = fixture("broken");
    let err = validate(dir.path()).unwrap_err();
    let ToolError::Policy { source, .. } = err else {
        panic!("expected a policy error, got {err}");
    };
    let problems = source.problems();
    assert!(!problems.is_empty());
    assert_eq!(problems[0].file, "broken.cedar");
    assert_eq!(problems[0].line, Some(7));
    assert!(
        problems[0].to_string().starts_with("broken.cedar:7: "),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].message.contains("nmae"),
        "{}",
        problems[0].message
    );

    let ok = validate(fixture("teams").path()).unwrap();
    assert_eq!(ok.policies, 7);
    assert_eq!(ok.entities, 6);
}

#[test]
fn fmt_check_flags_the_unformatted_fixture_and_fmt_fixes_it() {
    let dir = fixture("unformatted");
    let before = fs::read_to_string(dir.path().join("admin.cedar")).unwrap();
    let report = format_dir(dir.path(), false).unwrap();
    assert_eq!(report.changed().count(), 1);
    let diff = &report.files[0].diff;
    assert!(diff.contains("-@id(\"admin-all\")   permit"), "{diff}");
    assert!(
        diff.contains("+permit (\n+  principal == Coffer::User::\"admin\",\n"),
        "{diff}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("admin.cedar")).unwrap(),
        before
    );

    let written = format_dir(dir.path(), true).unwrap();
    assert_eq!(written.changed().count(), 1);
    assert_eq!(format_dir(dir.path(), false).unwrap().changed().count(), 0);
    validate(dir.path()).unwrap();

    // The team fixture is written canonically.
    assert_eq!(
        format_dir(fixture("teams").path(), false)
            .unwrap()
            .changed()
            .count(),
        0
    );
}

#[test]
fn explain_names_the_policy_and_its_line() {
    let engine = coffer_policy_tools::load(fixture("teams").path()).unwrap();
    let request = CofferRequest {
        principal: "admin".into(),
        action: "DeleteSecret".into(),
        target: Target::Secret {
            name: "prod/db".into(),
            tags: Default::default(),
        },
        ..CofferRequest::default()
    };
    let e = coffer_policy_tools::explain(&engine, &request).unwrap();
    assert!(!e.decision.allowed);
    assert_eq!(e.policies.len(), 1);
    assert_eq!(e.policies[0].id, "no-prod-delete-outside-window");
    assert_eq!(e.policies[0].effect, "forbid");
    assert_eq!(e.policies[0].location(), "secrets.cedar:25");
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(status.status.success(), "git {args:?}: {status:?}");
}

#[test]
fn a_git_revision_becomes_a_base_directory() {
    let repo = tempfile::tempdir().unwrap();
    let policies = repo.path().join("policies");
    copy_dir(fixture("diff-base").path(), &policies);
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    fs::copy(
        fixtures().join("diff-new/deployer.cedar"),
        policies.join("deployer.cedar"),
    )
    .unwrap();

    let base = materialize_base("HEAD", &policies).unwrap();
    assert!(base.label().starts_with("HEAD ("), "{}", base.label());
    assert!(base.label().ends_with(":policies/"), "{}", base.label());
    let mut names: Vec<String> = fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["entities.json", "policies.cedar", "schema.cedarschema"]
    );
    let report = concrete_diff(base.path(), &policies, &ConcreteOptions::default()).unwrap();
    assert_eq!(report.flips.len(), 1);

    let err = materialize_base("no-such-rev", &policies).unwrap_err();
    assert!(
        err.to_string()
            .contains("neither a directory nor a git revision"),
        "{err}"
    );
    // A directory base is used as is.
    let dir_base = materialize_base(policies.to_str().unwrap(), &policies).unwrap();
    assert_eq!(dir_base.path(), policies);
}

/// Speed at scale (not run by default): 2,000 users in 50 teams, 501 policies, one
/// widened team grant. Run with
/// `cargo test --release -p coffer-policy-tools --test tools -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, several seconds"]
fn concrete_diff_at_scale() {
    let base = fixture("diff-base");
    let mut entities = vec![serde_json::json!(
        {"uid": {"type": "Coffer::User", "id": "deployer"}, "attrs": {}, "parents": []}
    )];
    let mut policies = String::from(
        "@id(\"admin-all\")\npermit (principal == Coffer::User::\"admin\", action, resource);\n",
    );
    for t in 0..50 {
        entities.push(serde_json::json!(
            {"uid": {"type": "Coffer::Team", "id": format!("t{t}")}, "attrs": {}, "parents": []}
        ));
        for u in 0..40 {
            entities.push(serde_json::json!({
                "uid": {"type": "Coffer::User", "id": format!("u{t}-{u}")}, "attrs": {},
                "parents": [{"type": "Coffer::Team", "id": format!("t{t}")}]
            }));
        }
        for p in 0..10 {
            policies.push_str(&format!(
                "@id(\"t{t}-read-{p}\")\npermit (principal in Coffer::Team::\"t{t}\", \
                 action in Coffer::Action::\"ReadSecret\", resource is Coffer::Secret)\n\
                 when {{ resource.path.contains(\"t{t}/app{p}\") }};\n"
            ));
        }
    }
    fs::write(
        base.path().join("entities.json"),
        serde_json::to_string(&entities).unwrap(),
    )
    .unwrap();
    fs::write(base.path().join("policies.cedar"), &policies).unwrap();
    let new = tempfile::tempdir().unwrap();
    copy_dir(base.path(), new.path());
    // Team t5 may now read app0 secrets of every team's staging folder.
    let widened = policies.replace(
        "when { resource.path.contains(\"t5/app0\") }",
        "when { resource.path.contains(\"t5/app0\") || resource.path.contains(\"staging\") }",
    );
    assert_ne!(widened, policies);
    fs::write(new.path().join("policies.cedar"), widened).unwrap();

    let report = concrete_diff(base.path(), new.path(), &ConcreteOptions::default()).unwrap();
    let s = &report.stats;
    println!(
        "scale: {} users, {} secrets, {} contexts, {} requests; {} in scope after pruning, \
         {} decided in full; {} flips; {:.0} ms",
        s.users,
        s.secrets,
        s.contexts,
        s.requests,
        s.in_scope,
        s.evaluated,
        report.flips.len(),
        report.millis
    );
    for line in &report.summary {
        println!("  {}", line.text);
    }
    assert!(report.widens());
    assert!(report.flips.iter().all(|f| f.teams == ["t5"]));
}
