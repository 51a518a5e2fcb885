//! `coffer policy …`: policy-as-code tooling that works offline, on a policy directory,
//! without a server. The work is done by [`coffer_policy_tools`]; this module parses
//! arguments, prints reports and picks exit codes.
//!
//! Exit codes: 0 success; 1 a problem (invalid set, unformatted file, failing test, or
//! an error); 2 `diff --fail-on` found what it was told to fail on.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use coffer_policy_tools::{
    CofferRequest, ConcreteOptions, ConcreteReport, Direction, SymbolicReport, Target, ToolError,
    Verdict,
};

use super::output::{self, OutputMode};

/// `coffer policy`.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Output format [default: text].
    #[arg(
        id = "policy_output",
        long = "output",
        global = true,
        value_enum,
        value_name = "FORMAT"
    )]
    pub output: Option<OutputMode>,
    /// What to do.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// The policy commands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Load a policy directory as the server would (strict; warnings are errors) and
    /// report every problem as file:line: message.
    Validate {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Format every *.cedar file canonically (comments are kept).
    Fmt {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Change nothing; list the files that are not formatted, with a diff, and exit 1
        /// if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Run the expectation files DIR/tests/*.json; report policies no test exercised.
    Test {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Decide one request and show the policies that decided it, with file:line.
    Explain(ExplainArgs),
    /// Show what a policy change does: the decisions that flip (concrete), or a proof
    /// per request environment (--symbolic).
    Diff(DiffArgs),
}

/// `coffer policy explain`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("resource").required(true).args(["secret", "key", "account"])))]
pub struct ExplainArgs {
    /// Policy directory.
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
    /// User name.
    #[arg(long)]
    pub principal: String,
    /// Operation, e.g. GetSecretValue.
    #[arg(long)]
    pub action: String,
    /// A secret, by name.
    #[arg(long, value_name = "NAME")]
    pub secret: Option<String>,
    /// A KMS key, by id.
    #[arg(long, value_name = "ID")]
    pub key: Option<String>,
    /// The region as a whole (List*, CreateKey, admin operations).
    #[arg(long)]
    pub account: bool,
    /// A tag of the secret or key (repeatable).
    #[arg(long = "tag", value_name = "K=V")]
    pub tags: Vec<String>,
    /// An alias of the key (repeatable), e.g. alias/payments.
    #[arg(long = "alias", value_name = "ALIAS", requires = "key")]
    pub aliases: Vec<String>,
    /// Request time, RFC 3339 [default: now].
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// Context (repeatable): region=R, api=native|aws, source_ip=IP, encryption_context.K=V.
    #[arg(long = "context", value_name = "K=V")]
    pub context: Vec<String>,
}

/// What `--fail-on` fails on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Some request goes from deny to allow (some environment is more permissive or
    /// incomparable).
    Widen,
    /// Any decision flips (any environment is not equivalent).
    Change,
}

/// `coffer policy diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The base: a directory, or a git revision (origin/main) of DIR.
    #[arg(long, value_name = "GIT-REV|DIR")]
    pub base: String,
    /// Policy directory (the new side).
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
    /// Prove, per request environment, whether the new set is equivalent, more or less
    /// permissive, or incomparable, for any data (needs the cvc5 solver).
    #[arg(long)]
    pub symbolic: bool,
    /// Exit 2 when the diff widens access (widen) or changes anything (change).
    #[arg(long, value_enum, value_name = "widen|change")]
    pub fail_on: Option<FailOn>,
}

/// Flush what was printed and leave with `code`.
fn exit(code: i32) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    std::process::exit(code)
}

/// Runs a `coffer policy` command.
pub async fn run(args: PolicyArgs, global_output: OutputMode) -> anyhow::Result<()> {
    let mode = args.output.unwrap_or(global_output);
    match args.command {
        PolicyCommand::Validate { dir } => validate(&dir, mode),
        PolicyCommand::Fmt { dir, check } => fmt(&dir, check, mode),
        PolicyCommand::Test { dir } => test(&dir, mode),
        PolicyCommand::Explain(args) => explain(args, mode),
        PolicyCommand::Diff(args) => diff(args, mode).await,
    }
}

fn validate(dir: &Path, mode: OutputMode) -> anyhow::Result<()> {
    match coffer_policy_tools::validate(dir) {
        Ok(report) => output::emit(mode, &report, |out| {
            writeln!(
                out,
                "ok: {} policies, {} users and teams, hash {} ({})",
                report.policies,
                report.entities,
                report.hash,
                dir.display()
            )
        }),
        Err(ToolError::Policy { source, .. }) if !source.problems().is_empty() => {
            let problems: Vec<String> = source
                .problems()
                .iter()
                .map(|p| {
                    let file = dir.join(&p.file);
                    match p.line {
                        Some(line) => format!("{}:{line}: {}", file.display(), p.message),
                        None => format!("{}: {}", file.display(), p.message),
                    }
                })
                .collect();
            output::emit(mode, &serde_json::json!({ "problems": problems }), |out| {
                for p in &problems {
                    writeln!(out, "{p}")?;
                }
                Ok(())
            })?;
            eprintln!(
                "error: {} is invalid ({} problem{})",
                dir.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            exit(1)
        }
        Err(e) => Err(e.into()),
    }
}

fn fmt(dir: &Path, check: bool, mode: OutputMode) -> anyhow::Result<()> {
    let report = coffer_policy_tools::format_dir(dir, !check)?;
    let changed: Vec<_> = report.changed().collect();
    output::emit(mode, &report, |out| {
        for file in &changed {
            if check {
                writeln!(out, "would reformat {}", file.path.display())?;
                for line in file.diff.lines() {
                    writeln!(out, "    {line}")?;
                }
            } else {
                writeln!(out, "reformatted {}", file.path.display())?;
            }
        }
        let verb = if check {
            "would be reformatted"
        } else {
            "reformatted"
        };
        writeln!(
            out,
            "{} of {} files {verb}",
            changed.len(),
            report.files.len()
        )
    })?;
    if check && !changed.is_empty() {
        exit(1);
    }
    Ok(())
}

fn test(dir: &Path, mode: OutputMode) -> anyhow::Result<()> {
    let report = coffer_policy_tools::run_tests(dir)?;
    output::emit(mode, &report, |out| {
        writeln!(
            out,
            "running {} tests from {} files in {}",
            report.results.len(),
            report.files.len(),
            dir.join(coffer_policy_tools::TESTS_DIR).display()
        )?;
        for result in &report.results {
            match &result.failure {
                None => writeln!(out, "test {} ... ok", result.name)?,
                Some(failure) => writeln!(
                    out,
                    "test {} ... FAIL: {failure} [{}]",
                    result.name, result.file
                )?,
            }
        }
        if report.unexercised.is_empty() {
            writeln!(out, "every policy decides at least one test")?;
        } else {
            writeln!(
                out,
                "policies no test exercised ({} of {}):",
                report.unexercised.len(),
                report.policies
            )?;
            for p in &report.unexercised {
                writeln!(out, "  {} ({} at {})", p.id, p.effect, p.location())?;
            }
        }
        writeln!(
            out,
            "{} passed, {} failed",
            report.passed(),
            report.failed()
        )
    })?;
    if !report.success() {
        exit(1);
    }
    Ok(())
}

fn pair(text: &str, what: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("{what} {text:?} must look like KEY=VALUE"),
    }
}

fn explain_request(args: &ExplainArgs) -> anyhow::Result<CofferRequest> {
    let tags: BTreeMap<String, String> = args
        .tags
        .iter()
        .map(|t| pair(t, "--tag"))
        .collect::<anyhow::Result<_>>()?;
    let target = match (&args.secret, &args.key, args.account) {
        (Some(name), None, false) => Target::Secret {
            name: name.clone(),
            tags,
        },
        (None, Some(id), false) => Target::Key {
            id: id.clone(),
            aliases: args.aliases.clone(),
            tags,
        },
        (None, None, true) if tags.is_empty() => Target::Account,
        (None, None, true) => bail!("--tag applies to a secret or a key, not to --account"),
        _ => bail!("give exactly one of --secret, --key, --account"),
    };
    let time_unix = match &args.time {
        Some(t) => coffer_policy_tools::parse_time(t)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    };
    let mut request = CofferRequest {
        principal: args.principal.clone(),
        action: args.action.clone(),
        target,
        time_unix,
        ..CofferRequest::default()
    };
    for item in &args.context {
        let (key, value) = pair(item, "--context")?;
        let ec_key = key
            .strip_prefix("encryption_context.")
            .or_else(|| key.strip_prefix("ec."));
        match (key.as_str(), ec_key) {
            (_, Some(k)) => {
                request
                    .encryption_context
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k.to_owned(), value);
            }
            ("region", _) => request.region = value,
            ("api", _) => request.api = value,
            ("source_ip", _) => {
                request.source_ip = Some(
                    value
                        .parse()
                        .with_context(|| format!("source_ip {value:?} is not an IP address"))?,
                )
            }
            ("time", _) => request.time_unix = coffer_policy_tools::parse_time(&value)?,
            _ => bail!(
                "unknown context key {key:?} (expected region, api, source_ip, time or \
                 encryption_context.KEY)"
            ),
        }
    }
    Ok(request)
}

fn explain(args: ExplainArgs, mode: OutputMode) -> anyhow::Result<()> {
    let request = explain_request(&args)?;
    let engine = coffer_policy_tools::load(&args.dir)?;
    let explanation = coffer_policy_tools::explain(&engine, &request)?;
    output::emit(mode, &explanation, |out| {
        let d = &explanation.decision;
        let policies = explanation
            .policies
            .iter()
            .map(|p| format!("{} ({} at {})", p.id, p.effect, p.location()))
            .collect::<Vec<_>>()
            .join("\n");
        output::write_fields(
            out,
            &[
                (
                    "decision",
                    if d.allowed { "allow" } else { "deny" }.to_owned(),
                ),
                ("reason", d.reason.clone()),
                (
                    "policies",
                    if policies.is_empty() {
                        "(none)".to_owned()
                    } else {
                        policies
                    },
                ),
                ("errors", d.errors.join("\n")),
            ],
        )
    })
}

async fn diff(args: DiffArgs, mode: OutputMode) -> anyhow::Result<()> {
    let base = coffer_policy_tools::materialize_base(&args.base, &args.dir)?;
    let failed = if args.symbolic {
        let base_engine = coffer_policy_tools::load(base.path())?;
        let new_engine = coffer_policy_tools::load(&args.dir)?;
        let report = coffer_policy_tools::symbolic_diff(&base_engine, &new_engine).await?;
        output::emit(
            mode,
            &serde_json::json!({ "base": base.label(), "symbolic": &report }),
            |out| print_symbolic(out, base.label(), &args.dir, &report),
        )?;
        match args.fail_on {
            Some(FailOn::Widen) => report.widens(),
            Some(FailOn::Change) => report.changes(),
            None => false,
        }
    } else {
        let report = coffer_policy_tools::concrete_diff(
            base.path(),
            &args.dir,
            &ConcreteOptions::default(),
        )?;
        output::emit(
            mode,
            &serde_json::json!({ "base": base.label(), "concrete": &report }),
            |out| print_concrete(out, base.label(), &args.dir, &report),
        )?;
        match args.fail_on {
            Some(FailOn::Widen) => report.widens(),
            Some(FailOn::Change) => !report.flips.is_empty(),
            None => false,
        }
    };
    if failed {
        eprintln!(
            "error: the policy change {} (--fail-on {})",
            match args.fail_on {
                Some(FailOn::Widen) => "widens access",
                _ => "changes decisions",
            },
            match args.fail_on {
                Some(FailOn::Widen) => "widen",
                _ => "change",
            }
        );
        exit(2);
    }
    Ok(())
}

fn print_changes(
    out: &mut dyn Write,
    changed: &[coffer_policy_tools::PolicyChange],
) -> io::Result<()> {
    if changed.is_empty() {
        return writeln!(out, "no policy changed");
    }
    writeln!(out, "changed policies ({}):", changed.len())?;
    for c in changed {
        let (kind, at) = match c.kind {
            coffer_policy_tools::ChangeKind::Added => ("added   ", c.new.as_ref()),
            coffer_policy_tools::ChangeKind::Removed => ("removed ", c.base.as_ref()),
            coffer_policy_tools::ChangeKind::Modified => ("modified", c.new.as_ref()),
        };
        let at = at
            .map(|p| format!(" ({})", p.location()))
            .unwrap_or_default();
        writeln!(out, "  {kind} {}{at}", c.id)?;
    }
    Ok(())
}

fn print_concrete(
    out: &mut dyn Write,
    base: &str,
    dir: &Path,
    report: &ConcreteReport,
) -> io::Result<()> {
    writeln!(out, "base: {base}")?;
    writeln!(out, "new:  {}", dir.display())?;
    print_changes(out, &report.changed)?;
    if report.support_files_changed {
        writeln!(
            out,
            "schema or entities changed: every request was evaluated in full"
        )?;
    }
    let s = &report.stats;
    writeln!(
        out,
        "concrete diff: {} users, {} secrets, {} keys, {} regions, {} contexts: {} requests, \
         {} in scope, {} decided in full by both sets, {} flips ({:.0} ms)",
        s.users,
        s.secrets,
        s.keys,
        s.regions,
        s.contexts,
        s.requests,
        s.in_scope,
        s.evaluated,
        report.flips.len(),
        report.millis
    )?;
    for line in &report.summary {
        let sign = match line.direction {
            Direction::Widen => '+',
            Direction::Narrow => '-',
        };
        writeln!(out, "  {sign} {}", line.text)?;
    }
    if !report.flips.is_empty() {
        writeln!(out, "(every flip: --output json)")?;
    }
    Ok(())
}

fn print_symbolic(
    out: &mut dyn Write,
    base: &str,
    dir: &Path,
    report: &SymbolicReport,
) -> io::Result<()> {
    writeln!(out, "base: {base}")?;
    writeln!(out, "new:  {}", dir.display())?;
    let count = |v: Verdict| {
        report
            .environments
            .iter()
            .filter(|e| e.verdict == v)
            .count()
    };
    writeln!(
        out,
        "symbolic diff with {}: {} request environments: {} equivalent, {} more permissive, \
         {} less permissive, {} incomparable ({:.0} ms)",
        report.cvc5.display(),
        report.environments.len(),
        count(Verdict::Equivalent),
        count(Verdict::MorePermissive),
        count(Verdict::LessPermissive),
        count(Verdict::Incomparable),
        report.millis
    )?;
    let rows: Vec<Vec<String>> = report
        .environments
        .iter()
        .map(|e| {
            vec![
                format!("  {}", e.principal_type),
                e.action.clone(),
                e.resource_type.clone(),
                e.verdict.text().to_owned(),
            ]
        })
        .collect();
    output::write_table(out, &rows)?;
    for e in &report.environments {
        for (what, cex) in [("widening", &e.widening), ("narrowing", &e.narrowing)] {
            let Some(cex) = cex else {
                continue;
            };
            writeln!(
                out,
                "{what} in ({}, {}, {}), for example:",
                e.principal_type, e.action, e.resource_type
            )?;
            for line in cex.request.lines() {
                writeln!(out, "    {line}")?;
            }
            writeln!(out, "  base: {}", cex.base)?;
            writeln!(out, "  new:  {}", cex.new)?;
        }
    }
    Ok(())
}
