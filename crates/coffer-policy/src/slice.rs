//! Per-request work: the Cedar request, its context, and the small entity slice
//! (principal with its teams, the action, the resource, the encryption context).

use std::collections::{BTreeMap, HashSet};

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityUid, Request, RestrictedExpression, Schema,
};

use crate::{ActionInfo, AuthzRequest, PolicyEngine, Resource};

/// Id of the per-request `Coffer::EncryptionContext` entity. Only its tags matter.
const ENCRYPTION_CONTEXT_ID: &str = "request";

/// The pieces of one Cedar request, before they are assembled.
pub(crate) struct Parts {
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Context,
    entities: Vec<Entity>,
}

impl Parts {
    /// Assemble the request and the entity slice. With a schema, both are checked
    /// against it (used at load time to prove that what [`build`] makes conforms);
    /// on the hot path `schema` is `None`.
    pub(crate) fn into_request(
        self,
        schema: Option<&Schema>,
    ) -> Result<(Request, Entities), String> {
        let request = Request::new(
            self.principal,
            self.action,
            self.resource,
            self.context,
            schema,
        )
        .map_err(|e| error_chain(&e))?;
        let entities =
            Entities::from_entities(self.entities, schema).map_err(|e| error_chain(&e))?;
        Ok((request, entities))
    }
}

/// An error and its causes, as one line.
pub(crate) fn error_chain<E: std::error::Error + ?Sized>(error: &E) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = error.source();
    }
    message
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn tags(
    tags: &BTreeMap<String, String>,
) -> impl Iterator<Item = (String, RestrictedExpression)> + '_ {
    tags.iter().map(|(k, v)| (k.clone(), string(v)))
}

/// The prefixes of `name` that end right before a `/`:
/// `prod/database/password` gives `prod`, `prod/database`.
pub(crate) fn path_prefixes(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/')
        .filter(|(i, _)| *i > 0)
        .map(move |(i, _)| &name[..i])
}

/// Build the request parts for `req` (whose action is `action`).
pub(crate) fn build(
    engine: &PolicyEngine,
    req: &AuthzRequest<'_>,
    action: &ActionInfo,
) -> Result<Parts, String> {
    let types = &engine.types;
    let mut entities = Vec::with_capacity(6);

    // Principal: as listed in entities.json (with its teams), or a bare user.
    let principal =
        EntityUid::from_type_name_and_id(types.user.clone(), EntityId::new(req.principal));
    match engine.entities.get(&principal) {
        Some(user) => {
            entities.push(user.clone());
            if let Some(ancestors) = engine.entities.ancestors(&principal) {
                entities.extend(
                    ancestors
                        .filter_map(|uid| engine.entities.get(uid))
                        .cloned(),
                );
            }
        }
        None => entities.push(Entity::new_no_attrs(principal.clone(), HashSet::new())),
    }

    entities.push(action.entity.clone());

    let resource = match req.resource {
        Resource::Secret {
            region,
            name,
            tags: secret_tags,
        } => {
            let uid = EntityUid::from_type_name_and_id(
                types.secret.clone(),
                EntityId::new(format!("{region}/{name}")),
            );
            let attrs = [
                ("name".to_owned(), string(name)),
                ("region".to_owned(), string(region)),
                (
                    "path".to_owned(),
                    RestrictedExpression::new_set(path_prefixes(name).map(string)),
                ),
            ];
            let entity = Entity::new_with_tags(uid.clone(), attrs, [], tags(secret_tags))
                .map_err(|e| error_chain(&e))?;
            entities.push(entity);
            uid
        }
        Resource::Key {
            region,
            key_id,
            aliases,
            tags: key_tags,
        } => {
            let uid = EntityUid::from_type_name_and_id(
                types.key.clone(),
                EntityId::new(format!("{region}/{key_id}")),
            );
            let attrs = [
                ("id".to_owned(), string(key_id)),
                ("region".to_owned(), string(region)),
                (
                    "aliases".to_owned(),
                    RestrictedExpression::new_set(aliases.iter().map(|a| string(a))),
                ),
            ];
            let entity = Entity::new_with_tags(uid.clone(), attrs, [], tags(key_tags))
                .map_err(|e| error_chain(&e))?;
            entities.push(entity);
            uid
        }
        Resource::Account { region } => {
            let uid =
                EntityUid::from_type_name_and_id(types.account.clone(), EntityId::new(region));
            entities.push(Entity::new_no_attrs(uid.clone(), HashSet::new()));
            uid
        }
    };

    let ctx = &req.context;
    let time = format_datetime(ctx.time_unix)
        .ok_or_else(|| format!("request time {} is outside years 0000-9999", ctx.time_unix))?;
    let mut pairs = Vec::with_capacity(6);
    pairs.push(("region".to_owned(), string(ctx.region)));
    pairs.push(("time".to_owned(), RestrictedExpression::new_datetime(time)));
    pairs.push((
        "time_unix".to_owned(),
        RestrictedExpression::new_long(ctx.time_unix),
    ));
    pairs.push(("api".to_owned(), string(ctx.api)));
    if let Some(ip) = ctx.source_ip {
        pairs.push((
            "source_ip".to_owned(),
            RestrictedExpression::new_ip(ip.to_canonical().to_string()),
        ));
    }
    if let Some(encryption_context) = ctx.encryption_context {
        let uid = EntityUid::from_type_name_and_id(
            types.encryption_context.clone(),
            EntityId::new(ENCRYPTION_CONTEXT_ID),
        );
        let entity = Entity::new_with_tags(uid.clone(), [], [], tags(encryption_context))
            .map_err(|e| error_chain(&e))?;
        entities.push(entity);
        pairs.push((
            "encryption_context".to_owned(),
            RestrictedExpression::new_entity_uid(uid),
        ));
    }
    let context = Context::from_pairs(pairs).map_err(|e| error_chain(&e))?;

    Ok(Parts {
        principal,
        action: action.uid.clone(),
        resource,
        context,
        entities,
    })
}

/// Unix seconds as a Cedar `datetime` literal (`YYYY-MM-DDThh:mm:ssZ`), or `None`
/// outside the years Cedar accepts (0000–9999).
pub(crate) fn format_datetime(unix: i64) -> Option<String> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    ))
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
