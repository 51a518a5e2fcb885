//! `coffer key …`: KMS keys, their aliases, and the cryptographic operations.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};
use coffer_client::api::{
    CreateAliasRequest, CreateKeyRequest, DecryptRequest, EncryptRequest, GenerateDataKeyRequest,
    GenerateRandomRequest, KeyMetadata, KeyRotationPolicyRequest, ReEncryptRequest,
    ScheduleKeyDeletionRequest, TagRequest, UntagRequest, UpdateAliasRequest, UpdateKeyRequest,
};
use coffer_client::ListKeysQuery;
use zeroize::{Zeroize as _, Zeroizing};

use super::key_value::{self, KeyValue};
use super::output::{self, OutputMode};
use super::{check_progress, plaintext, ClientOptions, Context};

/// `coffer key`.
#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(flatten)]
    pub connection: ClientOptions,
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// The key commands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a symmetric key and print its id.
    Create(CreateKeyArgs),
    /// List all keys: id, state, aliases, description.
    List,
    /// Show a key's metadata.
    Describe(KeyArg),
    /// Change a key's description.
    Update(UpdateKeyArgs),
    /// Enable a key.
    Enable(KeyArg),
    /// Disable a key: it can neither encrypt nor decrypt until enabled.
    Disable(KeyArg),
    /// Rotate a key now (new material; old versions still decrypt).
    Rotate(KeyArg),
    /// List a key's past rotations.
    Rotations(KeyArg),
    /// Turn automatic rotation on or off.
    Rotation(RotationArgs),
    /// Schedule a key for deletion.
    ScheduleDeletion(ScheduleDeletionArgs),
    /// Cancel a scheduled deletion (the key comes back disabled).
    CancelDeletion(KeyArg),
    /// Add or overwrite tags.
    Tag(TagKeyArgs),
    /// Remove tags.
    Untag(UntagKeyArgs),
    /// Manage aliases (`alias/name` → key).
    Alias(AliasArgs),
    /// Encrypt up to 4 KiB and print the base64 ciphertext blob.
    Encrypt(EncryptArgs),
    /// Decrypt a ciphertext blob and write the plaintext bytes, exactly, to stdout.
    Decrypt(DecryptArgs),
    /// Generate a data key; prints JSON (plaintext and ciphertext_blob, base64).
    DataKey(DataKeyArgs),
    /// Decrypt and encrypt again (other key or context) without exposing the plaintext.
    ReEncrypt(ReEncryptArgs),
    /// Print random bytes from the server, base64.
    Random(RandomArgs),
}

/// Just a key.
#[derive(Args, Debug)]
pub struct KeyArg {
    /// Key id, ARN or alias/name.
    pub key: String,
}

/// `coffer key create`.
#[derive(Args, Debug)]
pub struct CreateKeyArgs {
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// A tag; repeat for several.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub tags: Vec<KeyValue>,
}

/// `coffer key update`.
#[derive(Args, Debug)]
pub struct UpdateKeyArgs {
    /// Key id, ARN or alias/name.
    pub key: String,
    /// New description.
    #[arg(long)]
    pub description: String,
}

/// `coffer key rotation`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("switch").required(true).args(["enable", "disable"])))]
pub struct RotationArgs {
    /// Key id, ARN or alias/name.
    pub key: String,
    /// Turn automatic rotation on.
    #[arg(long)]
    pub enable: bool,
    /// Turn automatic rotation off.
    #[arg(long)]
    pub disable: bool,
    /// Days between rotations, 90–2560 (server default 365).
    #[arg(long, value_name = "N", conflicts_with = "disable")]
    pub period_days: Option<u32>,
}

/// `coffer key schedule-deletion`.
#[derive(Args, Debug)]
pub struct ScheduleDeletionArgs {
    /// Key id, ARN or alias/name.
    pub key: String,
    /// Days until deletion, 7–30 (server default 30).
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
}

/// `coffer key tag`.
#[derive(Args, Debug)]
pub struct TagKeyArgs {
    /// Key id, ARN or alias/name.
    pub key: String,
    /// Tags to add or overwrite.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub tags: Vec<KeyValue>,
}

/// `coffer key untag`.
#[derive(Args, Debug)]
pub struct UntagKeyArgs {
    /// Key id, ARN or alias/name.
    pub key: String,
    /// Tag keys to remove.
    #[arg(required = true, value_name = "TAG_KEY")]
    pub tag_keys: Vec<String>,
}

/// `coffer key alias`.
#[derive(Args, Debug)]
pub struct AliasArgs {
    #[command(subcommand)]
    pub command: AliasCommand,
}

/// The alias commands.
#[derive(Subcommand, Debug)]
pub enum AliasCommand {
    /// Point a new alias at a key.
    Create(AliasTargetArgs),
    /// Point an existing alias at another key.
    Update(AliasTargetArgs),
    /// Remove an alias (the key stays).
    Delete(AliasNameArg),
    /// List aliases: name, target key.
    List,
}

/// Alias and the key it points at.
#[derive(Args, Debug)]
pub struct AliasTargetArgs {
    /// `alias/NAME`.
    pub alias: String,
    /// Key id or ARN.
    pub key: String,
}

/// Just an alias.
#[derive(Args, Debug)]
pub struct AliasNameArg {
    /// `alias/NAME`.
    pub alias: String,
}

/// `coffer key encrypt`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["plaintext", "plaintext_file"])))]
pub struct EncryptArgs {
    /// Key id, ARN or alias/name.
    pub key: String,
    /// The plaintext as text (visible in the process list; prefer --plaintext-file).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub plaintext: Option<String>,
    /// Read the plaintext bytes from a file; `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub plaintext_file: Option<PathBuf>,
    /// Encryption context entry; repeat for several. Decrypt needs the same ones.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub context: Vec<KeyValue>,
}

/// `coffer key decrypt`.
#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// Base64 ciphertext blob, or `-` to read it from standard input.
    pub blob: String,
    /// Encryption context entry given to encrypt; repeat for several.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub context: Vec<KeyValue>,
    /// Fail unless the blob was made by this key.
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
}

/// `coffer key data-key`.
#[derive(Args, Debug)]
pub struct DataKeyArgs {
    /// Key id, ARN or alias/name that wraps the data key.
    pub key: String,
    /// Length of the data key in bytes, 1–1024.
    #[arg(long, value_name = "N", conflicts_with = "spec")]
    pub bytes: Option<u32>,
    /// Key spec: AES_256 (default) or AES_128.
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<String>,
    /// Encryption context entry; repeat for several.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub context: Vec<KeyValue>,
    /// Return only the wrapped key (no plaintext).
    #[arg(long)]
    pub without_plaintext: bool,
}

/// `coffer key re-encrypt`.
#[derive(Args, Debug)]
pub struct ReEncryptArgs {
    /// Base64 ciphertext blob, or `-` to read it from standard input.
    pub blob: String,
    /// Key for the new blob (default: the source key, newest version).
    #[arg(long, value_name = "KEY")]
    pub destination_key: Option<String>,
    /// Context the blob was encrypted with; repeat for several.
    #[arg(long = "source-context", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub source_context: Vec<KeyValue>,
    /// Context for the new blob (default: the source context); repeat for several.
    #[arg(long = "destination-context", value_name = "KEY=VALUE", value_parser = key_value::parse)]
    pub destination_context: Vec<KeyValue>,
}

/// `coffer key random`.
#[derive(Args, Debug)]
pub struct RandomArgs {
    /// How many bytes, 1–1024.
    #[arg(long, value_name = "N")]
    pub bytes: u32,
}

/// Runs a `coffer key` command.
pub async fn run(command: KeyCommand, ctx: &Context) -> anyhow::Result<()> {
    let client = &ctx.client;
    match command {
        KeyCommand::Create(args) => {
            let request = CreateKeyRequest {
                description: args.description,
                tags: key_value::into_optional_map(args.tags, "tag")?,
                key_spec: None,
            };
            let key = client.create_key(&request).await?;
            output::emit(ctx.output, &key, |out| writeln!(out, "{}", key.key_id))
        }
        KeyCommand::List => list(ctx).await,
        KeyCommand::Describe(args) => {
            let key = client.describe_key(&args.key).await?;
            output::emit(ctx.output, &key, |out| write_metadata(out, &key))
        }
        KeyCommand::Update(args) => {
            let request = UpdateKeyRequest {
                description: args.description,
            };
            let key = client.update_key(&args.key, &request).await?;
            confirm(ctx.output, &key, "Updated the description of key")
        }
        KeyCommand::Enable(args) => {
            let key = client.enable_key(&args.key).await?;
            confirm(ctx.output, &key, "Enabled key")
        }
        KeyCommand::Disable(args) => {
            let key = client.disable_key(&args.key).await?;
            confirm(ctx.output, &key, "Disabled key")
        }
        KeyCommand::Rotate(args) => {
            let key = client.rotate_key(&args.key).await?;
            output::emit(ctx.output, &key, |out| {
                writeln!(
                    out,
                    "Rotated key {}; current key version {}",
                    key.key_id, key.current_key_version
                )
            })
        }
        KeyCommand::Rotations(args) => {
            let list = client.list_key_rotations(&args.key).await?;
            output::emit(ctx.output, &list, |out| {
                let rows: Vec<_> = list
                    .rotations
                    .iter()
                    .map(|r| {
                        vec![
                            r.key_version.to_string(),
                            r.rotation_date.clone(),
                            r.rotation_type.clone(),
                        ]
                    })
                    .collect();
                output::write_table(out, &rows)
            })
        }
        KeyCommand::Rotation(args) => {
            let request = KeyRotationPolicyRequest {
                enabled: args.enable,
                rotation_period_days: args.period_days,
            };
            let key = client.set_key_rotation(&args.key, &request).await?;
            output::emit(ctx.output, &key, |out| {
                writeln!(
                    out,
                    "Key {}: automatic rotation {}",
                    key.key_id,
                    rotation(&key)
                )
            })
        }
        KeyCommand::ScheduleDeletion(args) => {
            let request = ScheduleKeyDeletionRequest {
                pending_window_in_days: args.days,
            };
            let key = client.schedule_key_deletion(&args.key, &request).await?;
            output::emit(ctx.output, &key, |out| {
                writeln!(
                    out,
                    "Key {} will be deleted on {} (undo with `coffer key cancel-deletion`)",
                    key.key_id,
                    key.deletion_date
                        .as_deref()
                        .unwrap_or("(date not reported)")
                )
            })
        }
        KeyCommand::CancelDeletion(args) => {
            let key = client.cancel_key_deletion(&args.key).await?;
            output::emit(ctx.output, &key, |out| {
                writeln!(
                    out,
                    "Cancelled the deletion of key {}; it is {}",
                    key.key_id, key.key_state
                )
            })
        }
        KeyCommand::Tag(args) => {
            let request = TagRequest {
                tags: key_value::into_map(args.tags, "tag")?,
            };
            let key = client.tag_key(&args.key, &request).await?;
            confirm(ctx.output, &key, "Tagged key")
        }
        KeyCommand::Untag(args) => {
            let request = UntagRequest {
                tag_keys: args.tag_keys,
            };
            let key = client.untag_key(&args.key, &request).await?;
            confirm(ctx.output, &key, "Untagged key")
        }
        KeyCommand::Alias(args) => alias(args.command, ctx).await,
        KeyCommand::Encrypt(args) => encrypt(args, ctx).await,
        KeyCommand::Decrypt(args) => decrypt(args, ctx).await,
        KeyCommand::DataKey(args) => {
            let request = GenerateDataKeyRequest {
                key_spec: args.spec,
                number_of_bytes: args.bytes,
                encryption_context: key_value::into_optional_map(args.context, "--context")?,
            };
            let mut response = client
                .generate_data_key(&args.key, &request, args.without_plaintext)
                .await?;
            let printed = output::json(&response);
            response.plaintext.zeroize();
            printed
        }
        KeyCommand::ReEncrypt(args) => {
            let request = ReEncryptRequest {
                ciphertext_blob: plaintext::blob_argument(&args.blob)?,
                source_encryption_context: key_value::into_optional_map(
                    args.source_context,
                    "--source-context",
                )?,
                destination_key_id: args.destination_key,
                destination_encryption_context: key_value::into_optional_map(
                    args.destination_context,
                    "--destination-context",
                )?,
            };
            let response = client.re_encrypt(&request).await?;
            output::emit(ctx.output, &response, |out| {
                writeln!(out, "{}", response.ciphertext_blob)
            })
        }
        KeyCommand::Random(args) => {
            let request = GenerateRandomRequest {
                number_of_bytes: args.bytes,
            };
            let mut response = client.generate_random(&request).await?;
            let printed = output::emit(ctx.output, &response, |out| {
                writeln!(out, "{}", response.plaintext)
            });
            response.plaintext.zeroize();
            printed
        }
    }
}

/// Every key, following `next_token`.
async fn list(ctx: &Context) -> anyhow::Result<()> {
    let mut query = ListKeysQuery::default();
    let mut page = ctx.client.list_keys(&query).await?;
    let mut keys = std::mem::take(&mut page.keys);
    while let Some(token) = page.next_token.take() {
        check_progress(query.next_token.as_deref(), &token)?;
        query.next_token = Some(token);
        page = ctx.client.list_keys(&query).await?;
        keys.append(&mut page.keys);
    }
    page.keys = keys;
    output::emit(ctx.output, &page, |out| {
        let rows: Vec<_> = page
            .keys
            .iter()
            .map(|k| {
                let mut description = k.description.clone();
                if k.is_default {
                    description = format!("(default) {description}");
                }
                vec![
                    k.key_id.clone(),
                    k.key_state.clone(),
                    k.aliases.join(","),
                    description,
                ]
            })
            .collect();
        output::write_table(out, &rows)
    })
}

async fn alias(command: AliasCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        AliasCommand::Create(args) => {
            let request = CreateAliasRequest {
                alias_name: args.alias,
                target_key_id: args.key,
            };
            let entry = ctx.client.create_alias(&request).await?;
            output::emit(ctx.output, &entry, |out| {
                writeln!(out, "Alias {} -> {}", entry.alias_name, entry.target_key_id)
            })
        }
        AliasCommand::Update(args) => {
            let request = UpdateAliasRequest {
                target_key_id: args.key,
            };
            let entry = ctx.client.update_alias(&args.alias, &request).await?;
            output::emit(ctx.output, &entry, |out| {
                writeln!(out, "Alias {} -> {}", entry.alias_name, entry.target_key_id)
            })
        }
        AliasCommand::Delete(args) => {
            ctx.client.delete_alias(&args.alias).await?;
            output::done(ctx.output, &format!("Deleted alias {}", args.alias))
        }
        AliasCommand::List => {
            let list = ctx.client.list_aliases().await?;
            output::emit(ctx.output, &list, |out| {
                let rows: Vec<_> = list
                    .aliases
                    .iter()
                    .map(|a| vec![a.alias_name.clone(), a.target_key_id.clone()])
                    .collect();
                output::write_table(out, &rows)
            })
        }
    }
}

async fn encrypt(args: EncryptArgs, ctx: &Context) -> anyhow::Result<()> {
    let bytes = match (args.plaintext, &args.plaintext_file) {
        (Some(text), _) => Zeroizing::new(text.into_bytes()),
        (None, Some(path)) => plaintext::read_bytes(path)?,
        (None, None) => anyhow::bail!("give --plaintext or --plaintext-file"),
    };
    let mut request = EncryptRequest {
        plaintext: plaintext::take(plaintext::encode(&bytes)),
        encryption_context: key_value::into_optional_map(args.context, "--context")?,
    };
    drop(bytes);
    let result = ctx.client.encrypt(&args.key, &request).await;
    request.plaintext.zeroize();
    let response = result?;
    output::emit(ctx.output, &response, |out| {
        writeln!(out, "{}", response.ciphertext_blob)
    })
}

async fn decrypt(args: DecryptArgs, ctx: &Context) -> anyhow::Result<()> {
    let request = DecryptRequest {
        ciphertext_blob: plaintext::blob_argument(&args.blob)?,
        encryption_context: key_value::into_optional_map(args.context, "--context")?,
        key_id: args.key_id,
    };
    let mut response = ctx.client.decrypt(&request).await?;
    let printed = match ctx.output {
        OutputMode::Json => output::json(&response),
        OutputMode::Text => plaintext::decode(&response.plaintext, "the decrypted plaintext")
            .and_then(|bytes| output::raw(&bytes)),
    };
    response.plaintext.zeroize();
    printed
}

/// Confirmation line `<what> <key id>` in text mode; the metadata in json mode.
fn confirm(mode: OutputMode, key: &KeyMetadata, what: &str) -> anyhow::Result<()> {
    output::emit(mode, key, |out| writeln!(out, "{what} {}", key.key_id))
}

/// `on, every N days, next …` or `off`.
fn rotation(key: &KeyMetadata) -> String {
    if !key.rotation_enabled {
        return "off".to_owned();
    }
    let mut text = "on".to_owned();
    if let Some(days) = key.rotation_period_days {
        text.push_str(&format!(", every {days} days"));
    }
    if let Some(next) = &key.next_rotation_date {
        text.push_str(&format!(", next {next}"));
    }
    text
}

/// `Name: value` summary of a key.
pub fn write_metadata(out: &mut dyn std::io::Write, key: &KeyMetadata) -> std::io::Result<()> {
    output::write_fields(
        out,
        &[
            ("Key ID", key.key_id.clone()),
            ("ARN", key.arn.clone()),
            ("Region", key.region.clone()),
            ("Description", key.description.clone()),
            ("State", key.key_state.clone()),
            ("Spec", key.key_spec.clone()),
            ("Usage", key.key_usage.clone()),
            ("Created", key.creation_date.clone()),
            (
                "Deletion date",
                key.deletion_date.clone().unwrap_or_default(),
            ),
            ("Key version", key.current_key_version.to_string()),
            ("Aliases", key.aliases.join(", ")),
            ("Tags", output::join_pairs(&key.tags)),
            ("Rotation", rotation(key)),
            (
                "Default key",
                if key.is_default { "yes" } else { "no" }.to_owned(),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::parse;
    use crate::cli::Command;
    use clap::error::ErrorKind;

    fn key_command(args: &[&str]) -> KeyCommand {
        match parse(args).unwrap().command {
            Command::Key(key) => key.command,
            other => panic!("expected a key command, got {other:?}"),
        }
    }

    #[test]
    fn repeated_context_is_collected_in_order() {
        let KeyCommand::Encrypt(args) = key_command(&[
            "key",
            "encrypt",
            "alias/app",
            "--plaintext",
            "hi",
            "--context",
            "app=web",
            "--context",
            "env=prod",
        ]) else {
            panic!("expected encrypt");
        };
        let map = key_value::into_map(args.context, "--context").unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["app"], "web");
        assert_eq!(map["env"], "prod");
    }

    #[test]
    fn context_without_equals_is_a_usage_error() {
        let err = parse(&["key", "decrypt", "AAAA", "--context", "app"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("expected KEY=VALUE"), "{err}");
    }

    #[test]
    fn encrypt_needs_exactly_one_plaintext_source() {
        let err = parse(&["key", "encrypt", "k"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&[
            "key",
            "encrypt",
            "k",
            "--plaintext",
            "a",
            "--plaintext-file",
            "f",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn rotation_is_enable_or_disable() {
        let KeyCommand::Rotation(args) =
            key_command(&["key", "rotation", "k", "--enable", "--period-days", "180"])
        else {
            panic!("expected rotation");
        };
        assert!(args.enable && !args.disable);
        assert_eq!(args.period_days, Some(180));

        let err = parse(&["key", "rotation", "k", "--enable", "--disable"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let err = parse(&["key", "rotation", "k"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&["key", "rotation", "k", "--disable", "--period-days", "90"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn data_key_bytes_and_spec_conflict() {
        let err =
            parse(&["key", "data-key", "k", "--bytes", "32", "--spec", "AES_256"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let KeyCommand::DataKey(args) = key_command(&[
            "key",
            "data-key",
            "k",
            "--spec",
            "AES_128",
            "--without-plaintext",
        ]) else {
            panic!("expected data-key");
        };
        assert!(args.without_plaintext);
    }

    #[test]
    fn alias_commands_take_alias_then_key() {
        let KeyCommand::Alias(AliasArgs {
            command: AliasCommand::Create(args),
        }) = key_command(&["key", "alias", "create", "alias/app", "1234"])
        else {
            panic!("expected alias create");
        };
        assert_eq!(
            (args.alias.as_str(), args.key.as_str()),
            ("alias/app", "1234")
        );
        assert!(matches!(
            key_command(&["key", "alias", "list"]),
            KeyCommand::Alias(AliasArgs {
                command: AliasCommand::List
            })
        ));
    }

    #[test]
    fn re_encrypt_contexts_are_separate() {
        let KeyCommand::ReEncrypt(args) = key_command(&[
            "key",
            "re-encrypt",
            "-",
            "--destination-key",
            "alias/new",
            "--source-context",
            "a=1",
            "--destination-context",
            "b=2",
        ]) else {
            panic!("expected re-encrypt");
        };
        assert_eq!(args.blob, "-");
        assert_eq!(args.source_context.len(), 1);
        assert_eq!(args.destination_context[0].key, "b");
    }

    #[test]
    fn random_needs_bytes() {
        let err = parse(&["key", "random"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }
}
