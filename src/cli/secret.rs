//! `coffer secret …` and `coffer random-password`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand};
use coffer_client::api::{
    BatchGetRequest, CreateSecretRequest, PutSecretValueRequest, RandomPasswordRequest,
    RotateSecretRequest, RotationResponse, SecretDescription, SecretValue, TagRequest,
    UntagRequest, UpdateSecretRequest, UpdateStageRequest,
};
use coffer_client::ListSecretsQuery;
use zeroize::Zeroize as _;

use super::key_value::{self, KeyValue};
use super::output::{self, OutputMode};
use super::{check_progress, plaintext, ClientOptions, Context};

/// `coffer secret`.
#[derive(Args, Debug)]
pub struct SecretArgs {
    #[command(flatten)]
    pub connection: ClientOptions,
    #[command(subcommand)]
    pub command: SecretCommand,
}

/// The secret commands.
#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a secret, with its first value if one is given.
    Create(CreateArgs),
    /// Print a secret's value (the CURRENT version unless --stage or --version-id).
    Get(GetArgs),
    /// Store a new value as a new version (labelled CURRENT unless --stage is given).
    Put(PutArgs),
    /// Show a secret's metadata; never the value.
    Describe(NameArg),
    /// List secrets: name, last changed, description.
    List(ListArgs),
    /// List a secret's versions: id, labels, created.
    Versions(VersionsArgs),
    /// Change a secret's description or the KMS key of its future versions.
    Update(UpdateArgs),
    /// Move or remove a staging label.
    Stage(StageArgs),
    /// Schedule a secret for deletion (or delete it now with --force).
    Delete(DeleteArgs),
    /// Cancel a scheduled deletion.
    Restore(NameArg),
    /// Add or overwrite tags.
    Tag(TagArgs),
    /// Remove tags.
    Untag(UntagArgs),
    /// Print the current values of several secrets (exit code 1 if any cannot be read).
    BatchGet(BatchGetArgs),
    /// Rotate a secret with a rotator plugin: with --plugin, configure rotation and
    /// rotate now; without, rotate now with the stored config (resuming a rotation in
    /// progress); --cancel stops rotation. Waits for the result unless --no-wait; a
    /// failed rotation exits non-zero naming the step and error kind.
    Rotate(RotateArgs),
}

/// `coffer secret rotate`.
#[derive(Args, Debug)]
pub struct RotateArgs {
    /// Secret name or ARN.
    pub name: String,
    /// Rotator plugin (configures rotation).
    #[arg(long, value_name = "PLUGIN")]
    pub plugin: Option<String>,
    /// Schedule: `rate(30 days)`, `rate(12 hours)` or AWS `cron(0 3 ? * 1 *)`
    /// (day-of-week 1 = SUN). Without one, rotation happens only when asked.
    #[arg(long, value_name = "EXPR", requires = "plugin")]
    pub schedule: Option<String>,
    /// Rotation window after each scheduled time: `2h`, `30m`, `1d`.
    #[arg(long, value_name = "DURATION", requires = "schedule")]
    pub window: Option<String>,
    /// A non-secret plugin parameter, e.g. `strategy=alternating-users`; repeat for several.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value::parse, requires = "plugin")]
    pub config: Vec<KeyValue>,
    /// Another secret the plugin may read (e.g. a master user); repeat for several.
    #[arg(long = "grant-secret", value_name = "NAME", requires = "plugin")]
    pub grant_secrets: Vec<String>,
    /// Only configure; do not start a rotation now.
    #[arg(long, requires = "plugin")]
    pub no_rotate_now: bool,
    /// Start the rotation and return at once (it runs on the server).
    #[arg(long)]
    pub no_wait: bool,
    /// Cancel rotation: disable it and drop the rotation in progress (its pending
    /// version is kept, without a label).
    #[arg(long, conflicts_with_all = ["plugin", "no_wait"])]
    pub cancel: bool,
}

/// Just a secret name.
#[derive(Args, Debug)]
pub struct NameArg {
    /// Secret name or ARN.
    pub name: String,
}

/// Where a new value comes from; at most one.
#[derive(Args, Debug, Default)]
#[group(id = "value_source", multiple = false)]
pub struct ValueArgs {
    /// The value as text (visible in the process list and shell history; prefer
    /// --value-file for real secrets).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Read a text value from a file, exactly as stored (a trailing newline is kept);
    /// `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub value_file: Option<PathBuf>,
    /// Read a binary value from a file; `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub binary_file: Option<PathBuf>,
}

/// A value ready for a request: `(secret_string, secret_binary)` in base64.
type Payload = (Option<String>, Option<String>);

impl ValueArgs {
    fn read(self) -> anyhow::Result<Payload> {
        if let Some(value) = self.value {
            Ok((Some(value), None))
        } else if let Some(path) = self.value_file {
            let text = plaintext::read_text(&path, "--binary-file")?;
            Ok((Some(plaintext::take(text)), None))
        } else if let Some(path) = self.binary_file {
            let bytes = plaintext::read_bytes(&path)?;
            Ok((None, Some(plaintext::take(plaintext::encode(&bytes)))))
        } else {
            Ok((None, None))
        }
    }
}

/// Shorthands for AWS's staging labels: `CURRENT`, `PENDING`, `PREVIOUS` become
/// `AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`; other labels pass through unchanged.
pub fn parse_stage(label: &str) -> Result<String, String> {
    Ok(match label {
        "" => return Err("a staging label cannot be empty".to_owned()),
        "CURRENT" => "AWSCURRENT".to_owned(),
        "PENDING" => "AWSPENDING".to_owned(),
        "PREVIOUS" => "AWSPREVIOUS".to_owned(),
        other => other.to_owned(),
    })
}

/// `coffer secret create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name, e.g. `prod/database/password`.
    pub name: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Free-text description.
    #[arg(long)]
    pub description: Option<String>,
    /// A tag; repeat for several.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub tags: Vec<KeyValue>,
    /// KMS key (id, ARN or alias/name) for this secret; the region's default key if absent.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// Idempotency token; becomes the first version's id.
    #[arg(long, value_name = "TOKEN")]
    pub client_request_token: Option<String>,
}

/// `coffer secret get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Secret name or ARN.
    pub name: String,
    /// Version label: CURRENT, PENDING, PREVIOUS (for AWSCURRENT, …) or a custom label.
    #[arg(long, value_name = "STAGE", value_parser = parse_stage)]
    pub stage: Option<String>,
    /// Version id.
    #[arg(long, value_name = "ID")]
    pub version_id: Option<String>,
}

/// `coffer secret put`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("put_value").required(true).args(["value", "value_file", "binary_file"])
))]
pub struct PutArgs {
    /// Secret name or ARN.
    pub name: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Idempotency token; becomes the version id. Retrying with the same token and value
    /// is harmless.
    #[arg(long, value_name = "TOKEN")]
    pub client_request_token: Option<String>,
    /// Label for the new version (CURRENT, PENDING, PREVIOUS or custom); repeat for
    /// several. Default: CURRENT.
    #[arg(long = "stage", value_name = "STAGE", value_parser = parse_stage)]
    pub stages: Vec<String>,
}

/// `coffer secret list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only names starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only secrets with a tag of this key.
    #[arg(long)]
    pub tag_key: Option<String>,
    /// Only secrets with a tag of this value.
    #[arg(long)]
    pub tag_value: Option<String>,
    /// Only secrets whose description contains this.
    #[arg(long)]
    pub description: Option<String>,
    /// Include secrets scheduled for deletion.
    #[arg(long)]
    pub include_deleted: bool,
    /// Page size.
    #[arg(long, value_name = "N")]
    pub max_results: Option<u32>,
    /// Fetch every page.
    #[arg(long, conflicts_with = "next_token")]
    pub all: bool,
    /// Continue from a previous page.
    #[arg(long, value_name = "TOKEN")]
    pub next_token: Option<String>,
}

/// `coffer secret versions`.
#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// Secret name or ARN.
    pub name: String,
    /// Also list versions that hold no label.
    #[arg(long)]
    pub include_deprecated: bool,
}

/// `coffer secret update`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("changes").required(true).multiple(true).args(["description", "kms_key_id"])
))]
pub struct UpdateArgs {
    /// Secret name or ARN.
    pub name: String,
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
    /// KMS key for future versions.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
}

/// `coffer secret stage`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("move").required(true).multiple(true).args(["move_to", "remove_from"])
))]
pub struct StageArgs {
    /// Secret name or ARN.
    pub name: String,
    /// The label to move: CURRENT, PENDING, PREVIOUS or custom.
    #[arg(long, value_name = "STAGE", value_parser = parse_stage)]
    pub stage: String,
    /// Version that receives the label.
    #[arg(long, value_name = "ID")]
    pub move_to: Option<String>,
    /// Version that holds the label now (required when it is attached somewhere).
    #[arg(long, value_name = "ID")]
    pub remove_from: Option<String>,
}

/// `coffer secret delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Secret name or ARN.
    pub name: String,
    /// Days until the secret is purged, 7–30 (server default otherwise).
    #[arg(long, value_name = "N", conflicts_with = "force")]
    pub recovery_window_days: Option<u32>,
    /// Delete now, without a recovery window. Cannot be undone.
    #[arg(long)]
    pub force: bool,
}

/// `coffer secret tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// Secret name or ARN.
    pub name: String,
    /// Tags to add or overwrite.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub tags: Vec<KeyValue>,
}

/// `coffer secret untag`.
#[derive(Args, Debug)]
pub struct UntagArgs {
    /// Secret name or ARN.
    pub name: String,
    /// Tag keys to remove.
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
}

/// `coffer secret batch-get`.
#[derive(Args, Debug)]
pub struct BatchGetArgs {
    /// Secret names or ARNs (up to 20).
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// `coffer random-password`.
#[derive(Args, Debug)]
pub struct RandomPasswordArgs {
    #[command(flatten)]
    pub connection: ClientOptions,
    #[command(flatten)]
    pub options: PasswordOptions,
}

/// What the password may contain.
#[derive(Args, Debug)]
pub struct PasswordOptions {
    /// Length (server default 32).
    #[arg(long, value_name = "N")]
    pub length: Option<u32>,
    /// Characters never to use.
    #[arg(long, value_name = "CHARS", allow_hyphen_values = true)]
    pub exclude_characters: Option<String>,
    /// No digits.
    #[arg(long)]
    pub exclude_numbers: bool,
    /// No punctuation.
    #[arg(long)]
    pub exclude_punctuation: bool,
    /// No upper-case letters.
    #[arg(long)]
    pub exclude_uppercase: bool,
    /// No lower-case letters.
    #[arg(long)]
    pub exclude_lowercase: bool,
    /// Allow spaces.
    #[arg(long)]
    pub include_space: bool,
    /// Do not insist on one character of every included kind.
    #[arg(long)]
    pub no_require_each_type: bool,
}

/// Runs a `coffer secret` command.
pub async fn run(command: SecretCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        SecretCommand::Create(args) => create(args, ctx).await,
        SecretCommand::Get(args) => get(args, ctx).await,
        SecretCommand::Put(args) => put(args, ctx).await,
        SecretCommand::Describe(args) => {
            let secret = ctx.client.describe_secret(&args.name).await?;
            output::emit(ctx.output, &secret, |out| write_description(out, &secret))
        }
        SecretCommand::List(args) => list(args, ctx).await,
        SecretCommand::Versions(args) => {
            let list = ctx
                .client
                .list_secret_versions(&args.name, args.include_deprecated)
                .await?;
            output::emit(ctx.output, &list, |out| {
                let rows: Vec<_> = list
                    .versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version_id.clone(),
                            labels(&v.version_stages),
                            v.created_date.clone(),
                        ]
                    })
                    .collect();
                output::write_table(out, &rows)
            })
        }
        SecretCommand::Update(args) => {
            let request = UpdateSecretRequest {
                description: args.description,
                kms_key_id: args.kms_key_id,
            };
            let secret = ctx.client.update_secret(&args.name, &request).await?;
            output::emit(ctx.output, &secret, |out| {
                writeln!(out, "Updated secret {}", secret.name)
            })
        }
        SecretCommand::Stage(args) => stage(args, ctx).await,
        SecretCommand::Delete(args) => {
            let deleted = ctx
                .client
                .delete_secret(&args.name, args.recovery_window_days, args.force)
                .await?;
            output::emit(ctx.output, &deleted, |out| {
                if args.force {
                    writeln!(out, "Deleted secret {}", deleted.name)
                } else {
                    writeln!(
                        out,
                        "Secret {} will be deleted on {} (undo with `coffer secret restore`)",
                        deleted.name, deleted.deletion_date
                    )
                }
            })
        }
        SecretCommand::Restore(args) => {
            let secret = ctx.client.restore_secret(&args.name).await?;
            output::emit(ctx.output, &secret, |out| {
                writeln!(out, "Restored secret {}", secret.name)
            })
        }
        SecretCommand::Tag(args) => {
            let request = TagRequest {
                tags: key_value::into_map(args.tags, "tag")?,
            };
            let secret = ctx.client.tag_secret(&args.name, &request).await?;
            output::emit(ctx.output, &secret, |out| {
                writeln!(out, "Tagged secret {}", secret.name)
            })
        }
        SecretCommand::Untag(args) => {
            let request = UntagRequest {
                tag_keys: args.keys,
            };
            let secret = ctx.client.untag_secret(&args.name, &request).await?;
            output::emit(ctx.output, &secret, |out| {
                writeln!(out, "Untagged secret {}", secret.name)
            })
        }
        SecretCommand::BatchGet(args) => batch_get(args, ctx).await,
        SecretCommand::Rotate(args) => rotate(args, ctx).await,
    }
}

async fn rotate(args: RotateArgs, ctx: &Context) -> anyhow::Result<()> {
    if args.cancel {
        let secret = ctx.client.cancel_rotation(&args.name).await?;
        return output::emit(ctx.output, &secret, |out| {
            writeln!(out, "Cancelled rotation of secret {}", secret.name)
        });
    }
    let wait = !args.no_wait;
    let response = match args.plugin {
        Some(plugin) => {
            let request = RotateSecretRequest {
                plugin,
                schedule: args.schedule,
                window: args.window,
                config: key_value::into_optional_map(args.config, "config")?,
                granted_secrets: (!args.grant_secrets.is_empty()).then_some(args.grant_secrets),
                rotate_immediately: !args.no_rotate_now,
            };
            ctx.client
                .configure_rotation(&args.name, &request, wait)
                .await?
        }
        None => ctx.client.rotate_secret(&args.name, wait).await?,
    };
    // A failed rotation (with waiting) is an error response: the client reports it and
    // the exit code is non-zero.
    output::emit(ctx.output, &response, |out| write_rotation(out, &response))
}

/// The text form of a rotation response.
pub fn write_rotation(
    out: &mut dyn std::io::Write,
    response: &RotationResponse,
) -> std::io::Result<()> {
    let name = &response.secret.name;
    let token = response.rotation_token.as_deref().unwrap_or("-");
    match response.rotation_status.as_str() {
        "succeeded" => writeln!(
            out,
            "Rotated secret {name}: version {token} is now AWSCURRENT"
        ),
        "started" => writeln!(
            out,
            "Rotation of secret {name} {} (version {token}); `coffer secret describe {name}` shows its progress",
            if response.rotation_resumed { "resumed" } else { "started" }
        ),
        _ => writeln!(out, "Configured rotation of secret {name}"),
    }
}

async fn create(args: CreateArgs, ctx: &Context) -> anyhow::Result<()> {
    let (secret_string, secret_binary) = args.value.read()?;
    let mut request = CreateSecretRequest {
        name: args.name,
        secret_string,
        secret_binary,
        description: args.description,
        tags: key_value::into_optional_map(args.tags, "tag")?,
        kms_key_id: args.kms_key_id,
        client_request_token: args.client_request_token,
    };
    let result = ctx.client.create_secret(&request).await;
    request.secret_string.zeroize();
    request.secret_binary.zeroize();
    let created = result?;
    output::emit(ctx.output, &created, |out| match &created.version_id {
        Some(version) => writeln!(out, "Created secret {} (version {version})", created.name),
        None => writeln!(out, "Created secret {} (no value yet)", created.name),
    })
}

async fn get(args: GetArgs, ctx: &Context) -> anyhow::Result<()> {
    let mut value = ctx
        .client
        .get_secret_value(
            &args.name,
            args.version_id.as_deref(),
            args.stage.as_deref(),
        )
        .await?;
    let printed = print_value(&value, ctx.output);
    value.secret_string.zeroize();
    value.secret_binary.zeroize();
    printed
}

/// Text: a string value and a newline, or a binary value's raw bytes. JSON: the response.
fn print_value(value: &SecretValue, mode: OutputMode) -> anyhow::Result<()> {
    if mode == OutputMode::Json {
        return output::json(value);
    }
    if let Some(text) = &value.secret_string {
        output::write_stdout(|out| {
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")
        })
    } else if let Some(binary) = &value.secret_binary {
        let bytes = plaintext::decode(binary, "the secret's binary value")?;
        output::raw(&bytes)
    } else {
        bail!(
            "version {} of secret {} holds no value",
            value.version_id,
            value.name
        )
    }
}

async fn put(args: PutArgs, ctx: &Context) -> anyhow::Result<()> {
    let (secret_string, secret_binary) = args.value.read()?;
    let mut request = PutSecretValueRequest {
        secret_string,
        secret_binary,
        client_request_token: args.client_request_token,
        version_stages: (!args.stages.is_empty()).then_some(args.stages),
    };
    let result = ctx.client.put_secret_value(&args.name, &request).await;
    request.secret_string.zeroize();
    request.secret_binary.zeroize();
    let stored = result?;
    output::emit(ctx.output, &stored, |out| {
        writeln!(
            out,
            "Stored version {} of secret {} ({})",
            stored.version_id.as_deref().unwrap_or("?"),
            stored.name,
            labels(&stored.version_stages)
        )
    })
}

async fn list(args: ListArgs, ctx: &Context) -> anyhow::Result<()> {
    let mut query = ListSecretsQuery {
        max_results: args.max_results.map(|n| n as usize),
        next_token: args.next_token,
        name_prefix: args.prefix,
        description: args.description,
        tag_key: args.tag_key,
        tag_value: args.tag_value,
        include_deleted: args.include_deleted,
    };
    let mut page = ctx.client.list_secrets(&query).await?;
    if args.all {
        let mut secrets = std::mem::take(&mut page.secrets);
        while let Some(token) = page.next_token.take() {
            check_progress(query.next_token.as_deref(), &token)?;
            query.next_token = Some(token);
            page = ctx.client.list_secrets(&query).await?;
            secrets.append(&mut page.secrets);
        }
        page.secrets = secrets;
    }
    output::emit(ctx.output, &page, |out| {
        let rows: Vec<_> = page
            .secrets
            .iter()
            .map(|s| {
                let mut description = s.description.clone().unwrap_or_default();
                if let Some(date) = &s.deleted_date {
                    description = format!("(deleted, purged {date}) {description}");
                }
                vec![s.name.clone(), s.last_changed_date.clone(), description]
            })
            .collect();
        output::write_table(out, &rows)
    })?;
    if let (OutputMode::Text, Some(token)) = (ctx.output, &page.next_token) {
        eprintln!("(more secrets: add --all, or --next-token {token})");
    }
    Ok(())
}

async fn stage(args: StageArgs, ctx: &Context) -> anyhow::Result<()> {
    let request = UpdateStageRequest {
        version_stage: args.stage,
        move_to_version_id: args.move_to,
        remove_from_version_id: args.remove_from,
    };
    let secret = ctx
        .client
        .update_secret_version_stage(&args.name, &request)
        .await?;
    output::emit(ctx.output, &secret, |out| {
        let holder = secret
            .version_ids_to_stages
            .iter()
            .find(|(_, stages)| stages.contains(&request.version_stage));
        match holder {
            Some((version, _)) => writeln!(
                out,
                "Label {} of secret {} is on version {version}",
                request.version_stage, secret.name
            ),
            None => writeln!(
                out,
                "Label {} removed from secret {}",
                request.version_stage, secret.name
            ),
        }
    })
}

async fn batch_get(args: BatchGetArgs, ctx: &Context) -> anyhow::Result<()> {
    let requested = args.names.len();
    let request = BatchGetRequest {
        secret_ids: args.names,
    };
    let mut response = ctx.client.batch_get_secret_values(&request).await?;
    let printed = output::emit(ctx.output, &response, |out| {
        for value in &response.secret_values {
            match (&value.secret_string, &value.secret_binary) {
                (Some(text), _) => writeln!(out, "{}\t{text}", value.name)?,
                (None, Some(binary)) => writeln!(out, "{}\tbase64:{binary}", value.name)?,
                (None, None) => writeln!(out, "{}\t", value.name)?,
            }
        }
        Ok(())
    });
    for value in &mut response.secret_values {
        value.secret_string.zeroize();
        value.secret_binary.zeroize();
    }
    printed?;
    if !response.errors.is_empty() {
        if ctx.output == OutputMode::Text {
            for error in &response.errors {
                eprintln!(
                    "error: {}: {}: {}",
                    error.secret_id, error.code, error.message
                );
            }
        }
        bail!(
            "{} of {requested} secrets could not be read",
            response.errors.len()
        );
    }
    Ok(())
}

/// Runs `coffer random-password`.
pub async fn random_password(options: PasswordOptions, ctx: &Context) -> anyhow::Result<()> {
    let request = RandomPasswordRequest {
        password_length: options.length,
        exclude_characters: options.exclude_characters,
        exclude_numbers: options.exclude_numbers,
        exclude_punctuation: options.exclude_punctuation,
        exclude_uppercase: options.exclude_uppercase,
        exclude_lowercase: options.exclude_lowercase,
        include_space: options.include_space,
        require_each_included_type: options.no_require_each_type.then_some(false),
    };
    let mut response = ctx.client.random_password(&request).await?;
    let printed = output::emit(ctx.output, &response, |out| {
        out.write_all(response.random_password.as_bytes())?;
        out.write_all(b"\n")
    });
    response.random_password.zeroize();
    printed
}

/// `Name: value` summary of a secret's metadata.
pub fn write_description(
    out: &mut dyn std::io::Write,
    secret: &SecretDescription,
) -> std::io::Result<()> {
    let versions = secret
        .version_ids_to_stages
        .iter()
        .map(|(id, stages)| format!("{id}: {}", labels(stages)))
        .collect::<Vec<_>>()
        .join("\n");
    output::write_fields(
        out,
        &[
            ("Name", secret.name.clone()),
            ("ARN", secret.arn.clone()),
            ("Region", secret.region.clone()),
            (
                "Description",
                secret.description.clone().unwrap_or_default(),
            ),
            (
                "KMS key",
                secret
                    .kms_key_id
                    .clone()
                    .unwrap_or_else(|| "(region default)".to_owned()),
            ),
            ("Created", secret.created_date.clone()),
            ("Last changed", secret.last_changed_date.clone()),
            (
                "Last accessed",
                secret.last_accessed_date.clone().unwrap_or_default(),
            ),
            (
                "Deletion date",
                secret.deleted_date.clone().unwrap_or_default(),
            ),
            ("Tags", output::join_pairs(&secret.tags)),
            ("Rotation", rotation_summary(secret)),
            (
                "Schedule",
                secret
                    .rotation_rules
                    .as_ref()
                    .and_then(|r| r.schedule_expression.clone())
                    .map(|s| {
                        match secret
                            .rotation_rules
                            .as_ref()
                            .and_then(|r| r.duration.as_ref())
                        {
                            Some(w) => format!("{s}, window {w}"),
                            None => s,
                        }
                    })
                    .unwrap_or_default(),
            ),
            (
                "Last rotated",
                secret.last_rotated_date.clone().unwrap_or_default(),
            ),
            (
                "Next rotation",
                secret.next_rotation_date.clone().unwrap_or_default(),
            ),
            ("Rotating", rotation_progress(secret)),
            ("Rotation error", rotation_error(secret)),
            ("Versions", versions),
        ],
    )
}

/// `enabled, plugin postgres, config strategy=…, grants a/b` (empty without rotation).
fn rotation_summary(secret: &SecretDescription) -> String {
    let Some(r) = &secret.rotation else {
        return String::new();
    };
    let mut parts = vec![
        if r.enabled { "enabled" } else { "disabled" }.to_owned(),
        format!("plugin {}", r.plugin),
    ];
    if !r.config.is_empty() {
        parts.push(format!("config {}", output::join_pairs(&r.config)));
    }
    if !r.granted_secrets.is_empty() {
        parts.push(format!("may read {}", r.granted_secrets.join(", ")));
    }
    parts.join("; ")
}

fn rotation_progress(secret: &SecretDescription) -> String {
    let Some(p) = secret
        .rotation
        .as_ref()
        .and_then(|r| r.in_progress.as_ref())
    else {
        return String::new();
    };
    let mut s = format!("version {}, next step {}", p.token, p.next_step);
    if p.attempts > 0 {
        s.push_str(&format!(", {} failed attempt(s)", p.attempts));
    }
    if let Some(t) = &p.next_attempt_at {
        s.push_str(&format!(", next attempt {t}"));
    }
    if let Some(o) = &p.lease_owner {
        s.push_str(&format!(", running on {o}"));
    }
    s
}

fn rotation_error(secret: &SecretDescription) -> String {
    secret
        .last_rotation_error
        .as_ref()
        .map(|e| format!("{} at step {} ({}): {}", e.time, e.step, e.kind, e.message))
        .unwrap_or_default()
}

/// Labels joined with `,`, or `-` for none.
fn labels(stages: &[String]) -> String {
    if stages.is_empty() {
        "-".to_owned()
    } else {
        stages.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::parse;
    use crate::cli::Command;
    use clap::error::ErrorKind;

    fn secret_command(args: &[&str]) -> SecretCommand {
        match parse(args).unwrap().command {
            Command::Secret(secret) => secret.command,
            other => panic!("expected a secret command, got {other:?}"),
        }
    }

    #[test]
    fn rotate_configures_rotates_or_cancels() {
        let SecretCommand::Rotate(r) = secret_command(&[
            "secret",
            "rotate",
            "prod/db",
            "--plugin",
            "postgres",
            "--schedule",
            "rate(30 days)",
            "--window",
            "2h",
            "--config",
            "strategy=alternating-users",
            "--grant-secret",
            "prod/db/master",
            "--no-wait",
        ]) else {
            panic!("expected rotate");
        };
        assert_eq!(r.plugin.as_deref(), Some("postgres"));
        assert_eq!(r.schedule.as_deref(), Some("rate(30 days)"));
        assert_eq!(r.window.as_deref(), Some("2h"));
        assert_eq!(r.config[0].key, "strategy");
        assert_eq!(r.grant_secrets, ["prod/db/master"]);
        assert!(r.no_wait && !r.no_rotate_now && !r.cancel);
        let SecretCommand::Rotate(r) = secret_command(&["secret", "rotate", "db"]) else {
            panic!("expected rotate");
        };
        assert!(r.plugin.is_none() && !r.cancel && !r.no_wait);
        let SecretCommand::Rotate(r) = secret_command(&["secret", "rotate", "db", "--cancel"])
        else {
            panic!("expected rotate");
        };
        assert!(r.cancel);
        assert!(parse(&["secret", "rotate", "db", "--schedule", "rate(1 day)"]).is_err());
        assert!(parse(&["secret", "rotate", "db", "--cancel", "--plugin", "p"]).is_err());
    }

    #[test]
    fn description_text_shows_rotation() {
        use coffer_client::api::{RotationError, RotationInfo, RotationProgress, RotationRules};
        let secret = SecretDescription {
            name: "prod/db".into(),
            rotation_enabled: true,
            rotation_plugin: Some("postgres".into()),
            rotation_rules: Some(RotationRules {
                automatically_after_days: Some(30),
                schedule_expression: Some("rate(30 days)".into()),
                duration: Some("2h".into()),
            }),
            next_rotation_date: Some("2025-02-01T00:00:00Z".into()),
            last_rotation_error: Some(RotationError {
                time: "2025-01-01T00:00:00Z".into(),
                step: "set".into(),
                kind: "unreachable".into(),
                message: "connection refused".into(),
            }),
            rotation: Some(RotationInfo {
                plugin: "postgres".into(),
                schedule: Some("rate(30 days)".into()),
                window: Some("2h".into()),
                config: [("strategy".to_owned(), "single-user".to_owned())].into(),
                granted_secrets: vec![],
                enabled: true,
                in_progress: Some(RotationProgress {
                    token: "t1".into(),
                    next_step: "set".into(),
                    attempts: 1,
                    next_attempt_at: Some("2025-01-01T00:00:30Z".into()),
                    lease_owner: None,
                    lease_until: None,
                    started: "2025-01-01T00:00:00Z".into(),
                }),
            }),
            ..Default::default()
        };
        let mut buf = Vec::new();
        write_description(&mut buf, &secret).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains(
                "Rotation:       enabled; plugin postgres; config strategy=single-user\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Schedule:       rate(30 days), window 2h\n"),
            "{text}"
        );
        assert!(
            text.contains("Rotating:       version t1, next step set, 1 failed attempt(s), next attempt 2025-01-01T00:00:30Z\n"),
            "{text}"
        );
        assert!(
            text.contains("Rotation error: 2025-01-01T00:00:00Z at step set (unreachable): connection refused\n"),
            "{text}"
        );
    }

    #[test]
    fn stage_shorthands_expand_and_custom_labels_pass() {
        let SecretCommand::Get(get) =
            secret_command(&["secret", "get", "db", "--stage", "PREVIOUS"])
        else {
            panic!("expected get");
        };
        assert_eq!(get.stage.as_deref(), Some("AWSPREVIOUS"));

        let SecretCommand::Get(get) = secret_command(&[
            "secret",
            "get",
            "db",
            "--stage",
            "blue",
            "--version-id",
            "v1",
        ]) else {
            panic!("expected get");
        };
        assert_eq!(get.stage.as_deref(), Some("blue"));
        assert_eq!(get.version_id.as_deref(), Some("v1"));

        assert_eq!(parse_stage("CURRENT").unwrap(), "AWSCURRENT");
        assert_eq!(parse_stage("PENDING").unwrap(), "AWSPENDING");
        assert_eq!(parse_stage("AWSPREVIOUS").unwrap(), "AWSPREVIOUS");
        assert_eq!(parse_stage("current").unwrap(), "current");
    }

    #[test]
    fn put_takes_repeated_stages_and_needs_a_value() {
        let SecretCommand::Put(put) = secret_command(&[
            "secret", "put", "db", "--value", "v", "--stage", "PENDING", "--stage", "blue",
        ]) else {
            panic!("expected put");
        };
        assert_eq!(put.stages, ["AWSPENDING", "blue"]);
        assert_eq!(put.value.value.as_deref(), Some("v"));

        let SecretCommand::Put(put) = secret_command(&["secret", "put", "db", "--value", "-x9!"])
        else {
            panic!("expected put");
        };
        assert_eq!(
            put.value.value.as_deref(),
            Some("-x9!"),
            "values may start with '-'"
        );

        let err = parse(&["secret", "put", "db"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn value_sources_are_exclusive_and_optional_on_create() {
        let err = parse(&[
            "secret",
            "create",
            "db",
            "--value",
            "a",
            "--value-file",
            "f",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);

        let SecretCommand::Create(create) = secret_command(&[
            "secret",
            "create",
            "db",
            "--tag",
            "env=prod",
            "--tag",
            "team=core",
        ]) else {
            panic!("expected create");
        };
        assert!(create.value.value.is_none());
        assert_eq!(create.tags.len(), 2);
    }

    #[test]
    fn tag_without_equals_is_a_usage_error() {
        let err = parse(&["secret", "create", "db", "--tag", "prod"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("expected KEY=VALUE"), "{err}");

        let err = parse(&["secret", "tag", "db", "a=1", "oops"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);

        let err = parse(&["secret", "tag", "db"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn delete_force_and_window_conflict() {
        let err = parse(&[
            "secret",
            "delete",
            "db",
            "--force",
            "--recovery-window-days",
            "7",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn update_and_stage_need_something_to_do() {
        let err = parse(&["secret", "update", "db"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&["secret", "stage", "db", "--stage", "CURRENT"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let SecretCommand::Stage(stage) = secret_command(&[
            "secret",
            "stage",
            "db",
            "--stage",
            "CURRENT",
            "--move-to",
            "v2",
            "--remove-from",
            "v1",
        ]) else {
            panic!("expected stage");
        };
        assert_eq!(stage.stage, "AWSCURRENT");
    }

    #[test]
    fn list_all_and_next_token_conflict() {
        let err = parse(&["secret", "list", "--all", "--next-token", "t"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let SecretCommand::List(list) = secret_command(&[
            "secret",
            "list",
            "--prefix",
            "prod/",
            "--include-deleted",
            "--max-results",
            "5",
            "--all",
        ]) else {
            panic!("expected list");
        };
        assert!(list.all && list.include_deleted);
        assert_eq!(list.max_results, Some(5));
    }

    #[test]
    fn batch_get_takes_several_names() {
        let SecretCommand::BatchGet(batch) = secret_command(&["secret", "batch-get", "a", "b/c"])
        else {
            panic!("expected batch-get");
        };
        assert_eq!(batch.names, ["a", "b/c"]);
    }

    #[test]
    fn random_password_flags() {
        let Command::RandomPassword(args) = parse(&[
            "random-password",
            "--length",
            "20",
            "--exclude-punctuation",
            "--no-require-each-type",
            "--exclude-characters",
            "-/",
        ])
        .unwrap()
        .command
        else {
            panic!("expected random-password");
        };
        assert_eq!(args.options.length, Some(20));
        assert!(args.options.exclude_punctuation && args.options.no_require_each_type);
        assert_eq!(args.options.exclude_characters.as_deref(), Some("-/"));
    }

    #[test]
    fn description_text_lists_versions_and_tags() {
        let secret = SecretDescription {
            arn: "arn:coffer:secretsmanager:local:secret:prod/db-AbCdEf".into(),
            name: "prod/db".into(),
            region: "local".into(),
            description: None,
            kms_key_id: None,
            tags: [("env".to_owned(), "prod".to_owned())].into(),
            created_date: "2025-01-01T00:00:00Z".into(),
            last_changed_date: "2025-01-02T00:00:00Z".into(),
            last_accessed_date: None,
            deleted_date: None,
            version_ids_to_stages: [
                ("v1".to_owned(), vec!["AWSPREVIOUS".to_owned()]),
                ("v2".to_owned(), vec!["AWSCURRENT".to_owned()]),
            ]
            .into(),
            ..Default::default()
        };
        let mut buf = Vec::new();
        write_description(&mut buf, &secret).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("Name:         prod/db\n"), "{text}");
        assert!(text.contains("KMS key:      (region default)\n"), "{text}");
        assert!(text.contains("Tags:         env=prod\n"), "{text}");
        assert!(
            text.ends_with("Versions:     v1: AWSPREVIOUS\n              v2: AWSCURRENT\n"),
            "{text}"
        );
        assert!(!text.contains("Description"), "{text}");
    }
}
