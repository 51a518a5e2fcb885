//! Per-second memoisation of pure per-request work: the Cedar contexts
//! ([`crate::slice`]) and whole decisions ([`DecisionCache`]).
//!
//! Everything an authorization depends on is either fixed for the engine's lifetime (the
//! policies, the entities of users and teams: a reload builds a new engine) or part of the
//! request: principal, action, the resource's facts, and the context. The context holds
//! the request time in whole seconds, so within one second the same request always gets
//! the same decision. A cache keyed by *every* input and emptied when the second changes
//! can therefore never answer one request with another's decision.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{AuthzDecision, AuthzRequest, Resource};

/// Values computed during the current second, by byte key.
#[derive(Debug)]
pub(crate) struct PerSecond<V> {
    /// Most values kept for one second; beyond that, values are computed and not kept.
    capacity: usize,
    inner: Mutex<Second<V>>,
}

#[derive(Debug)]
struct Second<V> {
    time_unix: i64,
    values: HashMap<Box<[u8]>, V>,
}

impl<V: Clone> PerSecond<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        PerSecond {
            capacity,
            inner: Mutex::new(Second {
                time_unix: i64::MIN,
                values: HashMap::new(),
            }),
        }
    }

    /// The value kept for `key` in second `time_unix`.
    pub(crate) fn get(&self, time_unix: i64, key: &[u8]) -> Option<V> {
        let second = self.lock();
        if second.time_unix != time_unix {
            return None;
        }
        second.values.get(key).cloned()
    }

    /// Keeps `value` for `key` in second `time_unix`. A later second starts the cache
    /// over; an earlier one (a request that read the clock just before the second
    /// turned) is not kept.
    pub(crate) fn insert(&self, time_unix: i64, key: &[u8], value: V) {
        let mut second = self.lock();
        if time_unix < second.time_unix {
            return;
        }
        if time_unix > second.time_unix {
            second.time_unix = time_unix;
            second.values.clear();
        }
        if second.values.len() < self.capacity {
            second.values.insert(key.into(), value);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Second<V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An unambiguous byte key: every field is tagged or length-prefixed, so no two
/// different field sequences encode alike.
#[derive(Debug)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Key(Vec::with_capacity(bytes))
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub(crate) fn len(&mut self, n: usize) -> &mut Self {
        self.0
            .extend_from_slice(&u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes());
        self
    }

    pub(crate) fn tag(&mut self, t: u8) -> &mut Self {
        self.0.push(t);
        self
    }

    /// An optional address, canonical (an IPv4-mapped IPv6 address is its IPv4 one, as
    /// in the Cedar context).
    pub(crate) fn ip(&mut self, ip: Option<IpAddr>) -> &mut Self {
        match ip.map(|ip| ip.to_canonical()) {
            None => self.tag(0),
            Some(IpAddr::V4(v4)) => {
                self.tag(4);
                self.0.extend_from_slice(&v4.octets());
                self
            }
            Some(IpAddr::V6(v6)) => {
                self.tag(6);
                self.0.extend_from_slice(&v6.octets());
                self
            }
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Most decisions kept for one second.
const MAX_CACHED_DECISIONS: usize = 4_096;

/// The decisions made during the current second, for requests without an encryption
/// context. Even with the contexts and entity slices cached, an authorization spends
/// ~10 µs in Cedar (building the request's entities, evaluating the candidate policies):
/// a fifth of a GetSecretValue's CPU in the server. Services read the same secret again
/// and again, and a repeat within the second is answered from here (cloned).
#[derive(Debug)]
pub(crate) struct DecisionCache(PerSecond<Arc<AuthzDecision>>);

impl Default for DecisionCache {
    fn default() -> Self {
        DecisionCache(PerSecond::new(MAX_CACHED_DECISIONS))
    }
}

impl DecisionCache {
    /// The decision for `req`, from the cache or from `decide` (then kept). Requests
    /// with an encryption context are always decided afresh.
    pub(crate) fn get_or_decide(
        &self,
        req: &AuthzRequest<'_>,
        decide: impl FnOnce() -> AuthzDecision,
    ) -> AuthzDecision {
        if req.context.encryption_context.is_some() {
            return decide();
        }
        let key = decision_key(req);
        let time = req.context.time_unix;
        if let Some(found) = self.0.get(time, key.bytes()) {
            return (*found).clone();
        }
        let decision = decide();
        self.0.insert(time, key.bytes(), Arc::new(decision.clone()));
        decision
    }
}

/// Every input of a request without an encryption context, except its second (the
/// cache's own).
fn decision_key(req: &AuthzRequest<'_>) -> Key {
    let mut key = Key::with_capacity(256);
    key.str(req.principal).str(req.action);
    match req.resource {
        Resource::Secret { region, name, tags } => {
            key.tag(1).str(region).str(name).len(tags.len());
            for (k, v) in tags {
                key.str(k).str(v);
            }
        }
        Resource::Key {
            region,
            key_id,
            aliases,
            tags,
        } => {
            key.tag(2).str(region).str(key_id).len(aliases.len());
            for a in aliases {
                key.str(a);
            }
            key.len(tags.len());
            for (k, v) in tags {
                key.str(k).str(v);
            }
        }
        Resource::Account { region } => {
            key.tag(3).str(region);
        }
    }
    let ctx = &req.context;
    key.str(ctx.region).str(ctx.api).ip(ctx.source_ip);
    key
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::AuthzContext;

    fn request<'a>(resource: Resource<'a>, context: AuthzContext<'a>) -> AuthzRequest<'a> {
        AuthzRequest {
            principal: "alice",
            action: "GetSecretValue",
            resource,
            context,
        }
    }

    /// Any input that differs gives a different key; fields cannot run into each other.
    #[test]
    fn decision_keys_tell_every_input_apart() {
        let none = BTreeMap::new();
        let ab = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let a_b = BTreeMap::from([("ab".to_owned(), String::new())]);
        let aliases = ["alias/x".to_owned()];
        let ctx = AuthzContext {
            region: "r",
            source_ip: None,
            time_unix: 1,
            encryption_context: None,
            api: "native",
        };
        let secret = |region, name, tags| Resource::Secret { region, name, tags };
        let key = |aliases, tags| Resource::Key {
            region: "r",
            key_id: "k",
            aliases,
            tags,
        };
        let v4 = "10.0.0.1".parse().ok();
        let mapped = "::ffff:10.0.0.1".parse().ok();
        let v6 = "fe80::1".parse().ok();
        let requests = [
            request(secret("r", "x", &none), ctx),
            request(secret("r", "x", &ab), ctx),
            request(secret("r", "x", &a_b), ctx),
            request(secret("r2", "x", &none), ctx),
            request(secret("r", "rx", &none), ctx),
            request(
                secret("r", "x", &none),
                AuthzContext {
                    region: "r2",
                    ..ctx
                },
            ),
            request(secret("r", "x", &none), AuthzContext { api: "aws", ..ctx }),
            request(
                secret("r", "x", &none),
                AuthzContext {
                    source_ip: v4,
                    ..ctx
                },
            ),
            request(
                secret("r", "x", &none),
                AuthzContext {
                    source_ip: v6,
                    ..ctx
                },
            ),
            request(key(&[], &none), ctx),
            request(key(&aliases, &none), ctx),
            request(key(&[], &ab), ctx),
            request(Resource::Account { region: "r" }, ctx),
            AuthzRequest {
                principal: "bob",
                ..request(secret("r", "x", &none), ctx)
            },
            AuthzRequest {
                action: "DescribeSecret",
                ..request(secret("r", "x", &none), ctx)
            },
        ];
        let keys: Vec<Key> = requests.iter().map(decision_key).collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate().skip(i + 1) {
                assert_ne!(a.bytes(), b.bytes(), "requests {i} and {j}");
            }
        }
        // The context holds the canonical address, and so does the key.
        let mapped_key = decision_key(&request(
            secret("r", "x", &none),
            AuthzContext {
                source_ip: mapped,
                ..ctx
            },
        ));
        assert_eq!(mapped_key.bytes(), keys[7].bytes());
    }

    #[test]
    fn a_second_keeps_its_own_values_only() {
        let cache = PerSecond::new(2);
        cache.insert(10, b"a", 1);
        assert_eq!(cache.get(10, b"a"), Some(1));
        assert_eq!(cache.get(11, b"a"), None);
        // An earlier second is neither answered nor kept.
        cache.insert(9, b"b", 2);
        assert_eq!((cache.get(9, b"b"), cache.get(10, b"b")), (None, None));
        // Full: computed values are not kept.
        cache.insert(10, b"b", 2);
        cache.insert(10, b"c", 3);
        assert_eq!(cache.get(10, b"c"), None);
        // A later second starts over.
        cache.insert(11, b"c", 3);
        assert_eq!((cache.get(11, b"c"), cache.get(11, b"a")), (Some(3), None));
    }
}
