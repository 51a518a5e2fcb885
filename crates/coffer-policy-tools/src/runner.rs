//! `coffer policy test`: run the expectation files in `DIR/tests/*.json` against the
//! policy set in `DIR`, and find the policies no test exercised.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use coffer_policy::{AuthzDecision, PolicyEngine};
use serde::Serialize;
use serde_json::Value;

use crate::case::{parse_case, TestCase};
use crate::explain::PolicyRef;
use crate::ToolError;

/// Name of the directory, inside a policy directory, that holds the test files.
pub const TESTS_DIR: &str = "tests";

/// The outcome of one test.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The test file, relative to the policy directory (`tests/teams.json`).
    pub file: String,
    /// The test's name (`#N` when the case has none).
    pub name: String,
    /// Whether the outcome matched the expectation.
    pub passed: bool,
    /// Why it failed: `expected deny, got allow (determined by: a, b)`, or why the test
    /// could not run (`invalid test: …`).
    pub failure: Option<String>,
    /// The decision, when the request could be decided.
    pub decision: Option<AuthzDecision>,
}

/// The outcome of a test run.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Test files read.
    pub files: Vec<String>,
    /// One result per test, in file and then file order.
    pub results: Vec<CaseResult>,
    /// Policies that determined no test's decision, in file and line order.
    pub unexercised: Vec<PolicyRef>,
    /// Number of policies in the set.
    pub policies: usize,
}

impl TestReport {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// Tests that failed (including tests that could not run).
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether every test passed.
    pub fn success(&self) -> bool {
        self.failed() == 0
    }
}

/// A case as read from a file: parsed, or the reason it could not be.
pub(crate) struct LoadedCase {
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) case: Result<TestCase, String>,
}

/// The test files of `dir` (`dir/tests/*.json`, sorted; not recursive, so fixtures can
/// live in subdirectories).
fn test_files(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let tests = dir.join(TESTS_DIR);
    if !tests.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&tests).map_err(|e| ToolError::io(&tests, e))? {
        let entry = entry.map_err(|e| ToolError::io(&tests, e))?;
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// Read every case of every test file. JSON that does not parse, or a file that is not
/// an array, is an error; a malformed case is kept as a failure of that case.
pub(crate) fn read_cases(dir: &Path) -> Result<(Vec<String>, Vec<LoadedCase>), ToolError> {
    let mut files = Vec::new();
    let mut cases = Vec::new();
    for path in test_files(dir)? {
        let file = relative(dir, &path);
        let text = std::fs::read_to_string(&path).map_err(|e| ToolError::io(&path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ToolError::TestFile {
            location: format!("{}:{}:{}", path.display(), e.line(), e.column()),
            message: e.to_string(),
        })?;
        let Value::Array(items) = value else {
            return Err(ToolError::TestFile {
                location: path.display().to_string(),
                message: "a test file is a JSON array of test cases".to_owned(),
            });
        };
        let base = path.parent().unwrap_or(dir);
        for (index, item) in items.into_iter().enumerate() {
            match parse_case(item, base) {
                Ok(case) => cases.push(LoadedCase {
                    file: file.clone(),
                    name: case.name.clone(),
                    case: Ok(case),
                }),
                Err((name, message)) => cases.push(LoadedCase {
                    file: file.clone(),
                    name: name.unwrap_or_else(|| format!("#{}", index + 1)),
                    case: Err(message),
                }),
            }
        }
        files.push(file);
    }
    Ok((files, cases))
}

/// Every test case under `dir/tests`, refusing any malformed one.
pub fn load_cases(dir: &Path) -> Result<Vec<TestCase>, ToolError> {
    let (_, cases) = read_cases(dir)?;
    cases
        .into_iter()
        .map(|c| {
            c.case.map_err(|message| ToolError::TestFile {
                location: format!("{}/{}: test {}", dir.display(), c.file, c.name),
                message,
            })
        })
        .collect()
}

fn ids(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}

fn word(allowed: bool) -> &'static str {
    if allowed {
        "allow"
    } else {
        "deny"
    }
}

/// Compare a decision with what the case expects; `None` when it matches.
fn mismatch(case: &TestCase, decision: &AuthzDecision) -> Option<String> {
    let expected = &case.expected;
    let determined = if decision.determining_policies.is_empty() {
        format!("determined by: none; {}", decision.reason)
    } else {
        format!("determined by: {}", ids(&decision.determining_policies))
    };
    if decision.allowed != expected.allowed {
        return Some(format!(
            "expected {}, got {} ({determined})",
            word(expected.allowed),
            word(decision.allowed)
        ));
    }
    if let Some(reason) = &expected.reason {
        let got: BTreeSet<String> = decision.determining_policies.iter().cloned().collect();
        if *reason != got {
            let want: Vec<String> = reason.iter().cloned().collect();
            return Some(format!(
                "{} as expected, but expected determining policies [{}], got [{}] ({})",
                word(decision.allowed),
                want.join(", "),
                decision.determining_policies.join(", "),
                decision.reason
            ));
        }
    }
    if let Some(n) = expected.num_errors {
        if decision.errors.len() != n {
            return Some(format!(
                "expected {n} evaluation errors, got {}: {}",
                decision.errors.len(),
                decision.errors.join("; ")
            ));
        }
    }
    None
}

/// Run every test in `dir/tests/*.json` against the policy set loaded from `dir`.
pub fn run_tests(dir: &Path) -> Result<TestReport, ToolError> {
    let engine = crate::load(dir)?;
    run_tests_with(&engine, dir)
}

/// Run the tests in `tests_dir/tests/*.json` against an already loaded engine.
pub fn run_tests_with(engine: &PolicyEngine, tests_dir: &Path) -> Result<TestReport, ToolError> {
    let (files, cases) = read_cases(tests_dir)?;
    let mut results = Vec::with_capacity(cases.len());
    let mut exercised: BTreeSet<String> = BTreeSet::new();
    for loaded in cases {
        let outcome = loaded.case.and_then(|case| match case.decide(engine) {
            Ok(decision) => Ok((mismatch(&case, &decision), decision)),
            Err(e) => Err(e.to_string()),
        });
        let result = match outcome {
            Ok((failure, decision)) => {
                exercised.extend(decision.determining_policies.iter().cloned());
                CaseResult {
                    file: loaded.file,
                    name: loaded.name,
                    passed: failure.is_none(),
                    failure,
                    decision: Some(decision),
                }
            }
            Err(message) => CaseResult {
                file: loaded.file,
                name: loaded.name,
                passed: false,
                failure: Some(format!("invalid test: {message}")),
                decision: None,
            },
        };
        results.push(result);
    }
    let mut unexercised: Vec<PolicyRef> = engine
        .policy_set()
        .policies()
        .map(|p| p.id().to_string())
        .filter(|id| !exercised.contains(id))
        .map(|id| PolicyRef::new(engine, &id))
        .collect();
    unexercised.sort_by(|a, b| (&a.file, a.line, &a.id).cmp(&(&b.file, b.line, &b.id)));
    Ok(TestReport {
        files,
        results,
        unexercised,
        policies: engine.policy_set().policies().count(),
    })
}
