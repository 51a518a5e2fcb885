//! Per-request work: the Cedar request, its context, and the small entity slice
//! (principal with its teams, the action, the resource, the encryption context).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityUid, Request, RestrictedExpression, Schema,
};

use crate::cache::{Key, PerSecond};
use crate::{ActionInfo, AuthzRequest, PolicyEngine, Resource};

/// Id of the per-request `Coffer::EncryptionContext` entity. Only its tags matter.
const ENCRYPTION_CONTEXT_ID: &str = "request";

/// The pieces of one Cedar request, before they are assembled.
pub(crate) struct Parts {
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Context,
    /// The principal (with its teams) and the action, closed transitively.
    base: Entities,
    /// The resource and the encryption context: entities without parents.
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
        let entities = match schema {
            // Checked in full: every entity of the slice against the schema.
            Some(schema) => Entities::from_entities(
                self.base.iter().cloned().chain(self.entities),
                Some(schema),
            ),
            // The added entities have no parents, so only they need their closure
            // computed (Cedar repairs the closure of what was added).
            None => self.base.add_entities(self.entities, None),
        }
        .map_err(|e| error_chain(&e))?;
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
    let mut entities = Vec::with_capacity(2);
    let principal =
        EntityUid::from_type_name_and_id(types.user.clone(), EntityId::new(req.principal));
    let base = engine.slices.get_or_build(req.principal, req.action, || {
        principal_and_action(engine, &principal, action)
    })?;

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
    let context = match ctx.encryption_context {
        None => engine.contexts.get_or_build(ctx)?,
        Some(encryption_context) => {
            let uid = EntityUid::from_type_name_and_id(
                types.encryption_context.clone(),
                EntityId::new(ENCRYPTION_CONTEXT_ID),
            );
            let entity = Entity::new_with_tags(uid.clone(), [], [], tags(encryption_context))
                .map_err(|e| error_chain(&e))?;
            entities.push(entity);
            build_context(ctx, Some(uid))?
        }
    };

    Ok(Parts {
        principal,
        action: action.uid.clone(),
        resource,
        context,
        base,
        entities,
    })
}

/// The principal (as listed in entities.json, with its teams, or a bare user) and the
/// action, with the transitive closure computed.
fn principal_and_action(
    engine: &PolicyEngine,
    principal: &EntityUid,
    action: &ActionInfo,
) -> Result<Entities, String> {
    let mut entities = Vec::with_capacity(4);
    match engine.entities.get(principal) {
        Some(user) => {
            entities.push(user.clone());
            if let Some(ancestors) = engine.entities.ancestors(principal) {
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
    Entities::from_entities(entities, None).map_err(|e| error_chain(&e))
}

/// Most (principal, action) slices kept; the cache starts over when it is full.
const MAX_CACHED_SLICES: usize = 4_096;

/// The entity slices of (principal, action) pairs already asked about. Cedar computes
/// the transitive closure of every entity set it is given, with hash maps keyed by
/// entity uids: for the five or so entities of a slice that was a sixth of an
/// authorization. The principal's part never changes while this policy set is loaded
/// (entities are reloaded with the policies, and a reload makes a new engine), so it is
/// closed once and each request adds only its resource.
#[derive(Debug, Default)]
pub(crate) struct SliceCache(Mutex<SliceMap>);

#[derive(Debug, Default)]
struct SliceMap {
    /// Principal id → action name → slice.
    by_principal: HashMap<String, HashMap<String, Entities>>,
    len: usize,
}

impl SliceCache {
    fn get_or_build(
        &self,
        principal: &str,
        action: &str,
        build: impl FnOnce() -> Result<Entities, String>,
    ) -> Result<Entities, String> {
        if let Some(found) = self
            .lock()
            .by_principal
            .get(principal)
            .and_then(|m| m.get(action))
        {
            return Ok(found.clone());
        }
        let slice = build()?;
        let mut map = self.lock();
        if map.len >= MAX_CACHED_SLICES {
            map.by_principal.clear();
            map.len = 0;
        }
        let previous = map
            .by_principal
            .entry(principal.to_owned())
            .or_default()
            .insert(action.to_owned(), slice.clone());
        if previous.is_none() {
            map.len += 1;
        }
        Ok(slice)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SliceMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The Cedar context of `ctx`; `encryption_context` is the uid of the entity that
/// carries its encryption context, when it has one.
fn build_context(
    ctx: &crate::AuthzContext<'_>,
    encryption_context: Option<EntityUid>,
) -> Result<Context, String> {
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
    if let Some(uid) = encryption_context {
        pairs.push((
            "encryption_context".to_owned(),
            RestrictedExpression::new_entity_uid(uid),
        ));
    }
    Context::from_pairs(pairs).map_err(|e| error_chain(&e))
}

/// Most contexts kept for one second (distinct region, API and source address).
const MAX_CACHED_CONTEXTS: usize = 4_096;

/// The contexts built during the current second, for requests without an encryption
/// context. Building one evaluates Cedar's `datetime` and `ip` constructors, and
/// cedar-policy parses each constructor's name with its full grammar every time (a
/// fresh lexer, so a fresh regex cache): measured here, that was about a fifth of an
/// authorization. Within one second the context of a (region, API, source address) is
/// always the same value, so it is built once and cloned (an `Arc`).
#[derive(Debug)]
pub(crate) struct ContextCache(PerSecond<Context>);

impl Default for ContextCache {
    fn default() -> Self {
        ContextCache(PerSecond::new(MAX_CACHED_CONTEXTS))
    }
}

impl ContextCache {
    fn get_or_build(&self, ctx: &crate::AuthzContext<'_>) -> Result<Context, String> {
        let mut key = Key::with_capacity(64);
        key.str(ctx.region).str(ctx.api).ip(ctx.source_ip);
        if let Some(context) = self.0.get(ctx.time_unix, key.bytes()) {
            return Ok(context);
        }
        let context = build_context(ctx, None)?;
        self.0.insert(ctx.time_unix, key.bytes(), context.clone());
        Ok(context)
    }
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
