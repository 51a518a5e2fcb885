//! The requests a concrete diff considers: users, representative secrets and keys, and
//! representative contexts, generated from what the policies and tests mention.
//!
//! The policies' literals are read from their JSON form and sorted by what they are
//! compared with: `resource.name` and `resource.path` give secret names and folders,
//! `resource.getTag("k") == "v"` gives tags, `resource.aliases` gives key aliases,
//! `context.api`, `ip(..)`, `duration(..)`, `datetime(..)` and `context.time_unix` give
//! contexts. This is a heuristic: the concrete diff shows what happens to these
//! requests; the symbolic diff covers every request.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cedar_policy::EntityUid;
use coffer_policy::PolicyEngine;
use serde_json::Value;

use crate::case::{Target, DEFAULT_REGION, DEFAULT_TIME_UNIX};

/// The principal that stands for any user not listed in `entities.json`.
pub(crate) const UNLISTED_USER: &str = "~unlisted";

type Tags = BTreeMap<String, String>;

/// What the policies mention.
#[derive(Debug, Default)]
struct Hints {
    names: BTreeSet<String>,
    folders: BTreeSet<String>,
    key_ids: BTreeSet<String>,
    aliases: BTreeSet<String>,
    tag_values: BTreeMap<String, BTreeSet<String>>,
    tag_combos: BTreeSet<Tags>,
    ec_values: BTreeMap<String, BTreeSet<String>>,
    ec_combos: BTreeSet<Tags>,
    regions: BTreeSet<String>,
    apis: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
    /// Times of day, in seconds since midnight.
    times_of_day: BTreeSet<i64>,
    /// Instants, Unix seconds.
    instants: BTreeSet<i64>,
    users: BTreeSet<String>,
}

/// What an expression is, when it is something literals are compared with.
enum Slot {
    ResourceAttr(String),
    ContextAttr(String),
    ResourceTag(String),
    EncryptionTag(String),
}

fn is_var(e: &Value, var: &str) -> bool {
    e.get("Var").and_then(Value::as_str) == Some(var)
}

fn string_literal(e: &Value) -> Option<&str> {
    e.get("Value").and_then(Value::as_str)
}

fn slot(e: &Value) -> Option<Slot> {
    if let Some(get) = e.get(".") {
        let attr = get.get("attr")?.as_str()?.to_owned();
        let left = get.get("left")?;
        if is_var(left, "resource") {
            return Some(Slot::ResourceAttr(attr));
        }
        if is_var(left, "context") {
            return Some(Slot::ContextAttr(attr));
        }
        return None;
    }
    if let Some(get) = e.get("getTag") {
        let key = string_literal(get.get("right")?)?.to_owned();
        let left = get.get("left")?;
        if is_var(left, "resource") {
            return Some(Slot::ResourceTag(key));
        }
        if matches!(slot(left), Some(Slot::ContextAttr(a)) if a == "encryption_context") {
            return Some(Slot::EncryptionTag(key));
        }
    }
    None
}

/// String and long literals in an expression that a slot is compared with (a literal,
/// a set of literals).
fn literals(e: &Value) -> (Vec<String>, Vec<i64>) {
    let mut strings = Vec::new();
    let mut longs = Vec::new();
    let mut add = |v: &Value| match v {
        Value::String(s) => strings.push(s.clone()),
        Value::Number(n) => longs.extend(n.as_i64()),
        _ => {}
    };
    if let Some(v) = e.get("Value") {
        match v {
            Value::Array(items) => items.iter().for_each(&mut add),
            other => add(other),
        }
    } else if let Some(Value::Array(items)) = e.get("Set") {
        for item in items {
            if let Some(v) = item.get("Value") {
                add(v);
            }
        }
    }
    (strings, longs)
}

/// Cedar duration text (`2h`, `1h30m`, `-1d`, `90s`, `500ms`) in whole seconds.
fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let mut millis: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let unit = match rest.chars().next()? {
                'd' => 86_400_000,
                'h' => 3_600_000,
                'm' => 60_000,
                's' => 1_000,
                _ => return None,
            };
            (unit, 1)
        };
        millis = millis.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[len..];
    }
    Some(if negative { -millis } else { millis } / 1000)
}

/// Cedar datetime text (`2026-01-01`, `2026-01-01T03:00:00Z`, with millis or offset).
fn parse_datetime(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

impl Hints {
    fn compared(&mut self, slot: Slot, other: &Value, tags: &mut Tags, ec: &mut Tags) {
        let (strings, longs) = literals(other);
        match slot {
            Slot::ResourceAttr(attr) => match attr.as_str() {
                "name" => self.names.extend(strings),
                "path" => self.folders.extend(strings),
                "id" => self.key_ids.extend(strings),
                "aliases" => self.aliases.extend(strings),
                "region" => self.regions.extend(strings),
                _ => {}
            },
            Slot::ContextAttr(attr) => match attr.as_str() {
                "region" => self.regions.extend(strings),
                "api" => self.apis.extend(strings),
                "time_unix" => self.instants.extend(longs),
                _ => {}
            },
            Slot::ResourceTag(key) => {
                if let Some(first) = strings.first() {
                    tags.entry(key.clone()).or_insert_with(|| first.clone());
                }
                self.tag_values.entry(key).or_default().extend(strings);
            }
            Slot::EncryptionTag(key) => {
                if let Some(first) = strings.first() {
                    ec.entry(key.clone()).or_insert_with(|| first.clone());
                }
                self.ec_values.entry(key).or_default().extend(strings);
            }
        }
    }

    /// Walk one expression of a policy's JSON form.
    fn walk(&mut self, e: &Value, tags: &mut Tags, ec: &mut Tags) {
        let Value::Object(map) = e else {
            if let Value::Array(items) = e {
                for item in items {
                    self.walk(item, tags, ec);
                }
            }
            return;
        };
        if map.len() != 1 {
            for v in map.values() {
                self.walk(v, tags, ec);
            }
            return;
        }
        let Some((op, body)) = map.iter().next() else {
            return;
        };
        match op.as_str() {
            "Value" => {
                if let Some(entity) = body.get("__entity") {
                    if let Ok(uid) = EntityUid::from_json(serde_json::json!({"__entity": entity})) {
                        if uid.type_name().to_string() == "Coffer::User" {
                            self.users.insert(uid.id().unescaped().to_owned());
                        }
                    }
                }
            }
            "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "containsAll" | "containsAny"
            | "in" => {
                let (left, right) = (&body["left"], &body["right"]);
                if let Some(s) = slot(left) {
                    self.compared(s, right, tags, ec);
                }
                if let Some(s) = slot(right) {
                    self.compared(s, left, tags, ec);
                }
                self.walk(left, tags, ec);
                self.walk(right, tags, ec);
            }
            "hasTag" | "getTag" => {
                if let Some(key) = body.get("right").and_then(string_literal) {
                    let left = &body["left"];
                    if is_var(left, "resource") {
                        self.tag_values.entry(key.to_owned()).or_default();
                    } else if matches!(slot(left), Some(Slot::ContextAttr(a)) if a == "encryption_context")
                    {
                        self.ec_values.entry(key.to_owned()).or_default();
                    }
                }
                self.walk(&body["left"], tags, ec);
            }
            "like" => {
                if let Some(s) = slot(&body["left"]) {
                    // One string the pattern matches: wildcards become "x".
                    let sample: String = body["pattern"]
                        .as_array()
                        .map(|elems| {
                            elems
                                .iter()
                                .map(|p| match p.get("Literal").and_then(Value::as_str) {
                                    Some(lit) => lit.to_owned(),
                                    None => "x".to_owned(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    self.compared(s, &serde_json::json!({"Value": sample}), tags, ec);
                }
                self.walk(&body["left"], tags, ec);
            }
            "ip" | "duration" | "datetime" => {
                let arg = body
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(string_literal);
                if let Some(arg) = arg {
                    match op.as_str() {
                        "ip" => {
                            let addr = arg.split('/').next().unwrap_or(arg);
                            if let Ok(ip) = addr.parse() {
                                self.ips.insert(ip);
                            }
                        }
                        "duration" => {
                            if let Some(secs) = parse_duration(arg) {
                                if (0..86_400).contains(&secs) {
                                    self.times_of_day.insert(secs);
                                }
                            }
                        }
                        _ => {
                            if let Some(t) = parse_datetime(arg) {
                                self.instants.insert(t);
                            }
                        }
                    }
                }
                self.walk(body, tags, ec);
            }
            _ => self.walk(body, tags, ec),
        }
    }

    fn policy(&mut self, json: &Value) {
        let mut tags = Tags::new();
        let mut ec = Tags::new();
        for key in ["principal", "action", "resource"] {
            if let Some(scope) = json.get(key) {
                if let Some(entity) = scope.get("entity") {
                    if let Ok(uid) = EntityUid::from_json(entity.clone()) {
                        if uid.type_name().to_string() == "Coffer::User" {
                            self.users.insert(uid.id().unescaped().to_owned());
                        }
                    }
                }
            }
        }
        if let Some(conditions) = json.get("conditions").and_then(Value::as_array) {
            for condition in conditions {
                self.walk(&condition["body"], &mut tags, &mut ec);
            }
        }
        if tags.len() > 1 {
            self.tag_combos.insert(tags);
        }
        if ec.len() > 1 {
            self.ec_combos.insert(ec);
        }
    }
}

/// One representative context.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) label: String,
    pub(crate) time_unix: i64,
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) api: String,
    pub(crate) encryption_context: Option<Tags>,
}

/// The requests of a concrete diff.
#[derive(Debug, Default)]
pub(crate) struct Universe {
    pub(crate) users: Vec<String>,
    pub(crate) regions: Vec<String>,
    pub(crate) secrets: Vec<Target>,
    pub(crate) keys: Vec<Target>,
    pub(crate) contexts: Vec<Ctx>,
}

fn users_of(engine: &PolicyEngine) -> impl Iterator<Item = String> + '_ {
    engine
        .entities()
        .iter()
        .map(|e| e.uid())
        .filter(|uid| uid.type_name().to_string() == "Coffer::User")
        .map(|uid| uid.id().unescaped().to_owned())
}

fn label_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

impl Universe {
    /// Build the universe from both policy sets and the tests' requests.
    pub(crate) fn build(
        engines: [&PolicyEngine; 2],
        tests: &[crate::case::CaseRequest],
    ) -> Universe {
        let mut hints = Hints::default();
        for engine in engines {
            for policy in engine.policy_set().policies() {
                if let Ok(json) = policy.to_json() {
                    hints.policy(&json);
                }
            }
        }

        // Users: everyone listed on either side, named in a policy or a test, and one
        // that stands for any unlisted user.
        let mut users: BTreeSet<String> = engines.iter().flat_map(|e| users_of(e)).collect();
        users.extend(hints.users.iter().cloned());
        users.extend(tests.iter().filter_map(|t| t.user()));
        users.insert(UNLISTED_USER.to_owned());

        let mut regions: BTreeSet<String> = BTreeSet::from([DEFAULT_REGION.to_owned()]);
        regions.extend(hints.regions.iter().cloned());

        // Tag sets: none; each key with each value it is compared with (or "other");
        // the tags one policy compares together.
        let mut tag_sets: BTreeSet<Tags> = BTreeSet::from([Tags::new()]);
        for (key, values) in &hints.tag_values {
            for value in values.iter().map(String::as_str).chain(["other"]) {
                tag_sets.insert(Tags::from([(key.clone(), value.to_owned())]));
            }
        }
        tag_sets.extend(hints.tag_combos.iter().cloned());

        let mut names: BTreeSet<String> = ["prod/example", "dev/example", "example"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        names.extend(hints.names.iter().cloned());
        names.extend(
            hints
                .folders
                .iter()
                .filter(|f| !f.is_empty())
                .map(|f| format!("{f}/example")),
        );
        let mut secrets: BTreeSet<Target> = BTreeSet::new();
        for name in &names {
            for tags in &tag_sets {
                secrets.insert(Target::Secret {
                    name: name.clone(),
                    tags: tags.clone(),
                });
            }
        }

        let mut key_shapes: BTreeSet<(String, Vec<String>)> =
            BTreeSet::from([("example-key".to_owned(), Vec::new())]);
        key_shapes.extend(hints.key_ids.iter().map(|id| (id.clone(), Vec::new())));
        key_shapes.extend(
            hints
                .aliases
                .iter()
                .map(|a| ("example-key".to_owned(), vec![a.clone()])),
        );
        let mut keys: BTreeSet<Target> = BTreeSet::new();
        for (id, aliases) in &key_shapes {
            for tags in &tag_sets {
                keys.insert(Target::Key {
                    id: id.clone(),
                    aliases: aliases.clone(),
                    tags: tags.clone(),
                });
            }
        }

        for test in tests {
            if let Some((region, target)) = test.coffer_target() {
                regions.insert(region);
                match target {
                    t @ Target::Secret { .. } => {
                        secrets.insert(t);
                    }
                    t @ Target::Key { .. } => {
                        keys.insert(t);
                    }
                    Target::Account => {}
                }
            }
        }

        Universe {
            users: users.into_iter().collect(),
            regions: regions.into_iter().collect(),
            secrets: secrets.into_iter().collect(),
            keys: keys.into_iter().collect(),
            contexts: contexts(&hints),
        }
    }
}

/// The default context, and variants that each change one thing.
fn contexts(hints: &Hints) -> Vec<Ctx> {
    let base = Ctx {
        label: format!("default ({}, native API)", label_time(DEFAULT_TIME_UNIX)),
        time_unix: DEFAULT_TIME_UNIX,
        source_ip: None,
        api: "native".to_owned(),
        encryption_context: None,
    };
    let midnight = DEFAULT_TIME_UNIX - DEFAULT_TIME_UNIX.rem_euclid(86_400);
    let mut times: BTreeSet<i64> = BTreeSet::from([
        midnight + 3 * 3600,               // Wednesday 03:00, night
        midnight + 3 * 86_400 + 14 * 3600, // Saturday 14:00
    ]);
    for t in &hints.times_of_day {
        times.insert(midnight + t);
        if *t >= 60 {
            times.insert(midnight + t - 60);
        }
    }
    for t in &hints.instants {
        times.insert(*t);
        times.insert(t - 1);
    }
    times.remove(&DEFAULT_TIME_UNIX);

    let mut out = vec![base.clone()];
    for t in times {
        out.push(Ctx {
            label: format!("time {}", label_time(t)),
            time_unix: t,
            ..base.clone()
        });
    }
    let mut apis = hints.apis.clone();
    apis.insert("aws".to_owned());
    apis.remove("native");
    for api in apis {
        out.push(Ctx {
            label: format!("api {api}"),
            api,
            ..base.clone()
        });
    }
    if !hints.ips.is_empty() {
        let outside: IpAddr = IpAddr::from([203, 0, 113, 7]);
        for ip in hints.ips.iter().copied().chain([outside]) {
            out.push(Ctx {
                label: format!("source_ip {ip}"),
                source_ip: Some(ip),
                ..base.clone()
            });
        }
    }
    if !hints.ec_values.is_empty() {
        let mut sets: BTreeSet<Tags> = BTreeSet::from([Tags::new()]);
        for (key, values) in &hints.ec_values {
            for value in values.iter().map(String::as_str).chain(["other"]) {
                sets.insert(Tags::from([(key.clone(), value.to_owned())]));
            }
        }
        sets.extend(hints.ec_combos.iter().cloned());
        for ec in sets {
            let text = ec
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            out.push(Ctx {
                label: format!("encryption context {{{text}}}"),
                encryption_context: Some(ec),
                ..base.clone()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_to_seconds() {
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("1500ms"), Some(1));
        assert_eq!(parse_duration("-1h"), Some(-3600));
        assert_eq!(parse_duration("h"), None);
    }

    #[test]
    fn datetimes_parse_with_or_without_time() {
        assert_eq!(parse_datetime("1970-01-02"), Some(86_400));
        assert_eq!(parse_datetime("1970-01-01T01:00:00Z"), Some(3600));
    }

    #[test]
    fn hints_sort_literals_by_what_they_are_compared_with() {
        let policy = cedar_policy::Policy::parse(
            None,
            r#"permit (principal == Coffer::User::"bob", action, resource is Coffer::Secret)
               when { resource.path.contains("prod") && resource.name like "team-*/db"
                      && resource.getTag("env") == "live" && resource.hasTag("owner")
                      && context.time.toTime() >= duration("2h")
                      && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
        )
        .unwrap();
        let mut hints = Hints::default();
        hints.policy(&policy.to_json().unwrap());
        assert!(hints.folders.contains("prod"));
        assert!(hints.names.contains("team-x/db"));
        assert_eq!(hints.tag_values["env"], BTreeSet::from(["live".to_owned()]));
        assert!(hints.tag_values.contains_key("owner"));
        assert!(hints.times_of_day.contains(&7200));
        assert!(hints.ips.contains(&IpAddr::from([10, 0, 0, 0])));
        assert!(hints.users.contains("bob"));
    }
}
