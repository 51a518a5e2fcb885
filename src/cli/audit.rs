//! `coffer audit …`: read and verify the audit log.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use coffer_client::api::{AuditQuery, AuditRecord, VerifyAuditResponse};

use super::output::{self, OutputMode};
use super::{ClientOptions, Context, GlobalOptions};

/// Records `tail` shows unless told otherwise.
const DEFAULT_TAIL: usize = 20;
/// Records `query` shows unless told otherwise.
const DEFAULT_QUERY_LIMIT: usize = 100;
/// Largest page the server returns.
const MAX_PAGE: usize = 1000;
/// How often `tail --follow` polls.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// `coffer audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub connection: ClientOptions,
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The audit commands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The newest records, oldest of them first; with --follow, keep printing new ones.
    Tail(TailArgs),
    /// Records matching filters, newest first unless --order asc.
    Query(QueryArgs),
    /// Walk the hash chain; exit non-zero naming the first record that was altered,
    /// removed, reordered or whose link breaks.
    Verify(VerifyArgs),
}

/// Filters shared by `tail` and `query`; they combine with AND.
#[derive(Args, Debug, Default)]
pub struct FilterArgs {
    /// Only this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Only this operation, e.g. GetSecretValue.
    #[arg(long)]
    pub action: Option<String>,
    /// Only resources starting with this, e.g. secret:local/prod/.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only this decision.
    #[arg(long, value_enum)]
    pub decision: Option<Decision>,
    /// Only records at or after this time (RFC 3339, e.g. 2025-01-31T12:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// A decision to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied by policy.
    Deny,
    /// No valid token.
    Unauthenticated,
    /// Failed before authorization.
    NotEvaluated,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Unauthenticated => "unauthenticated",
            Decision::NotEvaluated => "not-evaluated",
        }
    }
}

/// Record order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// `coffer audit tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// How many of the newest records to show.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = DEFAULT_TAIL)]
    pub lines: usize,
    /// Keep polling and print new records as they are written (Ctrl-C to stop). The
    /// polling requests themselves are not printed. With --output json, one JSON record
    /// per line.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
}

/// `coffer audit query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Order of the records.
    #[arg(long, value_enum, default_value_t = Order::Desc)]
    pub order: Order,
    /// Most records to print.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_QUERY_LIMIT)]
    pub limit: usize,
}

/// `coffer audit verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Verify the store in this data directory directly, without a server (the server
    /// must be stopped: it locks the store). Without it, the server verifies its store.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl FilterArgs {
    fn query(&self) -> AuditQuery {
        AuditQuery {
            principal: self.principal.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            decision: self.decision.map(|d| d.as_str().to_owned()),
            since: self.since.clone(),
            until: self.until.clone(),
            ..AuditQuery::default()
        }
    }
}

/// Runs a `coffer audit` command. `verify --data-dir` needs no server and no token.
pub async fn run(args: AuditArgs, global: GlobalOptions) -> anyhow::Result<()> {
    if let AuditCommand::Verify(VerifyArgs {
        data_dir: Some(dir),
    }) = &args.command
    {
        let mode = args.connection.output.unwrap_or(global.output);
        let report = coffer_server::verify_audit_data_dir(dir)?;
        return report_verification(mode, &report);
    }
    let ctx = Context::new(global, args.connection)?;
    match args.command {
        AuditCommand::Tail(a) => tail(a, &ctx).await,
        AuditCommand::Query(a) => query(a, &ctx).await,
        AuditCommand::Verify(_) => {
            let report = ctx.client.verify_audit().await?;
            report_verification(ctx.output, &report)
        }
    }
}

/// Prints the report; an error (non-zero exit) naming the first bad record when the chain
/// is broken.
fn report_verification(mode: OutputMode, r: &VerifyAuditResponse) -> anyhow::Result<()> {
    output::emit(mode, r, |out| {
        if r.ok {
            writeln!(
                out,
                "OK: {} records, chain intact (head: record {})",
                r.records_checked, r.head_seq
            )?;
            match r.removed_through {
                Some(n) => writeln!(
                    out,
                    "records 1–{n} were removed by retention; the chain was checked from record {}",
                    n + 1
                ),
                None => Ok(()),
            }
        } else {
            writeln!(
                out,
                "FAILED: {} records verified before the first bad one (head: record {})",
                r.records_checked, r.head_seq
            )
        }
    })?;
    if !r.ok {
        bail!(
            "audit log verification failed at record {} ({}): {}",
            r.first_bad_seq
                .map_or_else(|| "?".to_owned(), |s| s.to_string()),
            r.problem_kind.as_deref().unwrap_or("unknown"),
            r.problem.as_deref().unwrap_or("no details")
        );
    }
    Ok(())
}

/// One record as one line: seq, time, decision, status, principal, action, resource, and
/// what else is set.
pub fn record_line(r: &AuditRecord) -> String {
    let mut line = format!(
        "{}  {}  {}  {}  {}  {}  {}",
        r.seq,
        r.time,
        r.decision,
        r.status,
        r.principal.as_deref().unwrap_or("-"),
        r.action,
        r.resource.as_deref().unwrap_or("-"),
    );
    for extra in &r.extra_resources {
        line.push_str(&format!(" +{extra}"));
    }
    if !r.keys.is_empty() {
        let keys: Vec<String> = r
            .keys
            .iter()
            .map(|k| format!("{}#{}", k.key_id, k.key_version))
            .collect();
        line.push_str(&format!("  keys={}", keys.join(",")));
    }
    if let Some(code) = &r.error_code {
        line.push_str(&format!("  code={code}"));
    }
    if !r.policies.is_empty() {
        line.push_str(&format!("  policies={}", r.policies.join(",")));
    }
    if let Some(ip) = &r.source_ip {
        line.push_str(&format!("  ip={ip}"));
    }
    line.push_str(&format!("  req={}", r.request_id));
    line
}

fn print_records(mode: OutputMode, records: &[AuditRecord]) -> anyhow::Result<()> {
    output::emit(mode, records, |out| {
        for r in records {
            writeln!(out, "{}", record_line(r))?;
        }
        Ok(())
    })
}

/// Up to `limit` records of `base` in `order`, across pages.
async fn collect(
    ctx: &Context,
    base: AuditQuery,
    order: Order,
    limit: usize,
    request_id: Option<&str>,
) -> anyhow::Result<Vec<AuditRecord>> {
    let mut q = base;
    q.order = Some(if order == Order::Asc { "asc" } else { "desc" }.to_owned());
    let mut out = Vec::new();
    while out.len() < limit {
        q.max_results = Some((limit - out.len()).min(MAX_PAGE));
        let page = match request_id {
            Some(id) => ctx.client.list_audit_with_request_id(&q, id).await?,
            None => ctx.client.list_audit(&q).await?,
        };
        out.extend(page.records);
        match page.next_token {
            Some(t) => {
                super::check_progress(q.next_token.as_deref(), &t)?;
                q.next_token = Some(t);
            }
            None => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

async fn query(args: QueryArgs, ctx: &Context) -> anyhow::Result<()> {
    let records = collect(ctx, args.filters.query(), args.order, args.limit, None).await?;
    print_records(ctx.output, &records)
}

async fn tail(args: TailArgs, ctx: &Context) -> anyhow::Result<()> {
    // In follow mode every request carries an id with this prefix, so the records of the
    // polls themselves can be left out.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix = format!("coffer-audit-follow-{}-{nanos}-", std::process::id());
    let mut polls = 0u64;
    let mut next_id = || {
        polls += 1;
        format!("{prefix}{polls}")
    };
    let base = args.filters.query();
    let own = |r: &AuditRecord| args.follow && r.request_id.starts_with(&prefix);

    let first_id = next_id();
    let mut newest = collect(
        ctx,
        base.clone(),
        Order::Desc,
        args.lines,
        args.follow.then_some(first_id.as_str()),
    )
    .await?;
    newest.reverse();
    let mut cursor = newest.last().map_or(0, |r| r.seq) + 1;
    if !args.follow {
        return print_records(ctx.output, &newest);
    }
    if newest.is_empty() {
        // Start after the newest record: one unfiltered record, newest first.
        let head = ctx
            .client
            .list_audit_with_request_id(
                &AuditQuery {
                    max_results: Some(1),
                    ..AuditQuery::default()
                },
                &next_id(),
            )
            .await?;
        cursor = head.records.first().map_or(0, |r| r.seq) + 1;
    }
    print_stream(ctx.output, newest.iter().filter(|r| !own(r)))?;
    loop {
        let mut q = base.clone();
        q.order = Some("asc".to_owned());
        q.max_results = Some(MAX_PAGE);
        q.next_token = Some(cursor.to_string());
        let page = ctx
            .client
            .list_audit_with_request_id(&q, &next_id())
            .await?;
        print_stream(ctx.output, page.records.iter().filter(|r| !own(r)))?;
        if let Some(last) = page.records.last() {
            cursor = last.seq + 1;
        }
        match page.next_token.and_then(|t| t.parse::<u64>().ok()) {
            Some(t) if t > cursor => cursor = t,
            Some(_) => {}
            None => tokio::time::sleep(FOLLOW_EVERY).await,
        }
    }
}

/// Follow mode: a line per record (or a JSON object per line), flushed at once.
fn print_stream<'a>(
    mode: OutputMode,
    records: impl Iterator<Item = &'a AuditRecord>,
) -> anyhow::Result<()> {
    output::write_stdout(|out| {
        for r in records {
            match mode {
                OutputMode::Text => writeln!(out, "{}", record_line(r))?,
                OutputMode::Json => {
                    serde_json::to_writer(&mut *out, r)?;
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::parse;
    use crate::cli::Command;
    use coffer_client::api::AuditKeyUse;

    #[test]
    fn commands_parse() {
        let Command::Audit(AuditArgs {
            command: AuditCommand::Tail(t),
            ..
        }) = parse(&["audit", "tail", "-n", "5", "--follow"])
            .unwrap()
            .command
        else {
            panic!("expected audit tail");
        };
        assert_eq!((t.lines, t.follow), (5, true));
        let Command::Audit(AuditArgs {
            command: AuditCommand::Query(q),
            ..
        }) = parse(&[
            "audit",
            "query",
            "--principal",
            "alice",
            "--decision",
            "deny",
            "--since",
            "2025-01-01T00:00:00Z",
            "--output",
            "json",
        ])
        .unwrap()
        .command
        else {
            panic!("expected audit query");
        };
        let query = q.filters.query();
        assert_eq!(query.principal.as_deref(), Some("alice"));
        assert_eq!(query.decision.as_deref(), Some("deny"));
        assert_eq!(q.order, Order::Desc);
        let Command::Audit(AuditArgs {
            command: AuditCommand::Verify(v),
            ..
        }) = parse(&["audit", "verify", "--data-dir", "/tmp/x"])
            .unwrap()
            .command
        else {
            panic!("expected audit verify");
        };
        assert_eq!(v.data_dir, Some(PathBuf::from("/tmp/x")));
        assert!(parse(&["audit", "query", "--decision", "maybe"]).is_err());
    }

    #[test]
    fn a_record_is_one_line() {
        let r = AuditRecord {
            seq: 7,
            time: "2025-01-01T00:00:00Z".into(),
            request_id: "r1".into(),
            principal: Some("alice".into()),
            token_id: Some("t1".into()),
            action: "GetSecretValue".into(),
            resource: Some("secret:local/prod/db".into()),
            extra_resources: vec![],
            region: Some("local".into()),
            decision: "allow".into(),
            policies: vec!["admin-all".into()],
            reason: None,
            status: 200,
            error_code: None,
            source_ip: Some("127.0.0.1".into()),
            keys: vec![AuditKeyUse {
                key_id: "k1".into(),
                key_version: 2,
            }],
            trail: vec![],
            prev_hash: "0".repeat(64),
            hash: "1".repeat(64),
        };
        assert_eq!(
            record_line(&r),
            "7  2025-01-01T00:00:00Z  allow  200  alice  GetSecretValue  secret:local/prod/db  keys=k1#2  policies=admin-all  ip=127.0.0.1  req=r1"
        );
    }
}
