//! Policy-as-code tooling for Coffer, all offline: nothing here talks to a server.
//!
//! What a reviewer or a CI job does with a `policies/` directory:
//! * [`validate()`]: load it exactly as the server does ([`coffer_policy::PolicyEngine::load_dir`],
//!   strict, warnings are errors) and report each problem as `file:line: message`;
//! * [`format_dir`]: canonical formatting of every `*.cedar` file with
//!   `cedar-policy-formatter` (comments are kept), or a check that shows what would change;
//! * [`run_tests`]: run the expectation files in `DIR/tests/*.json` (Cedar's `run-tests`
//!   shape, plus requests written in Coffer's own terms, see [`TestCase`]) and report the
//!   policies no test exercised;
//! * [`explain`]: one request, its decision and the policies that decided it, with `file:line`;
//! * [`concrete_diff`]: the decisions that flip between a base set and a new one over a
//!   generated universe of users, actions, secrets, keys and contexts, evaluating in full
//!   only the requests a changed policy can touch;
//! * [`symbolic_diff`]: for every request environment, whether the new set is equivalent,
//!   more permissive, less permissive or incomparable *for any data*, proved with
//!   `cedar-policy-symcc` and the `cvc5` solver, with a counterexample per widening;
//! * [`materialize_base`]: a base policy directory from a git revision.
//!
//! It decides requests through [`coffer_policy::PolicyEngine::authorize`], so what a test
//! or a diff reports is what the server would decide, fail-closed rule included. It knows
//! nothing about HTTP, tokens or the store, and does not print: the CLI (`coffer policy …`)
//! renders the reports.
//!
//! ```
//! use coffer_policy_tools::{explain, CofferRequest, Target};
//!
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("schema.cedarschema"),
//! #     include_str!("../../../policies/schema.cedarschema"))?;
//! # std::fs::write(dir.path().join("admin.cedar"),
//! #     "// The administrator.\n@id(\"admin-all\")\npermit (principal == Coffer::User::\"admin\", action, resource);\n")?;
//! let engine = coffer_policy_tools::load(dir.path())?;
//! let request = CofferRequest {
//!     principal: "admin".into(),
//!     action: "GetSecretValue".into(),
//!     target: Target::Secret { name: "prod/db".into(), tags: Default::default() },
//!     ..CofferRequest::default()
//! };
//! let explanation = explain(&engine, &request)?;
//! assert!(explanation.decision.allowed);
//! assert_eq!(explanation.policies[0].id, "admin-all");
//! assert_eq!(explanation.policies[0].line, Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod case;
mod diff;
mod explain;
mod format;
mod runner;
mod validate;

use std::path::{Path, PathBuf};

pub use case::{
    parse_time, CaseRequest, CedarRequest, CofferRequest, Expected, Target, TestCase,
    DEFAULT_REGION, DEFAULT_TIME,
};
pub use diff::base::{materialize_base, BaseDir};
pub use diff::concrete::{
    concrete_diff, ConcreteOptions, ConcreteReport, Direction, Flip, FlipResource, Outcome,
    SummaryLine, UniverseStats,
};
pub use diff::symbolic::{
    find_cvc5, symbolic_diff, Counterexample, EnvVerdict, SymbolicReport, Verdict,
};
pub use diff::{changed_policies, ChangeKind, PolicyChange};
pub use explain::{explain, Explanation, PolicyRef};
pub use format::{format_dir, format_text, line_diff, FileFormat, FormatReport};
pub use runner::{load_cases, run_tests, run_tests_with, CaseResult, TestReport, TESTS_DIR};
pub use validate::{validate, ValidateReport};

/// Why a tool could not do its job (as opposed to a finding, like a failing test or a
/// widening diff, which is part of the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The policy directory does not load (parse, validation, schema, entities, I/O).
    #[error("{}: {source}", dir.display())]
    Policy {
        /// The directory.
        dir: PathBuf,
        /// What the policy engine said, with `file:line` problems.
        #[source]
        source: coffer_policy::PolicyError,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A test file is malformed: bad JSON, an unknown field, a request that cannot be built.
    #[error("{location}: {message}")]
    TestFile {
        /// `file`, `file:line:column`, or `file: test NAME`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A request given on the command line (or in a test) is malformed.
    #[error("invalid request: {0}")]
    Request(String),
    /// The formatter could not format a file (usually a syntax error).
    #[error("{}: cannot format: {message}", file.display())]
    Format {
        /// The file.
        file: PathBuf,
        /// The formatter's message.
        message: String,
    },
    /// `git` failed while materializing a base revision.
    #[error("git: {0}")]
    Git(String),
    /// The `cvc5` solver is not installed.
    #[error(
        "the symbolic diff needs the cvc5 SMT solver, which was not found ({searched}); \
         install the Debian package `cvc5` (apt-get install cvc5) or set CVC5 to its path"
    )]
    Cvc5Missing {
        /// Where it was looked for.
        searched: String,
    },
    /// The symbolic compiler or the solver failed.
    #[error("symbolic analysis of {environment}: {message}")]
    Symbolic {
        /// The request environment being analysed.
        environment: String,
        /// What went wrong.
        message: String,
    },
}

impl ToolError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ToolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Load a policy directory the way the server does.
pub fn load(dir: &Path) -> Result<coffer_policy::PolicyEngine, ToolError> {
    coffer_policy::PolicyEngine::load_dir(dir).map_err(|source| ToolError::Policy {
        dir: dir.to_path_buf(),
        source,
    })
}
