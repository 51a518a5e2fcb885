//! Authentication (bearer tokens) and the single authorization call every request
//! passes through.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use coffer_api::REGION_HEADER;
use coffer_core::Authenticated;
use coffer_policy::{AuthzContext, AuthzRequest, Resource};

use crate::audit::AuditDraft;
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a `/v1` request, with the region it addresses.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Principal (user name).
    pub principal: String,
    /// Token id (for logs and audit; never the token).
    pub token_id: String,
    /// Region of the request.
    pub region: String,
    /// Peer address.
    pub source_ip: Option<IpAddr>,
    /// The request's audit draft: authentication, decisions and keys used are recorded
    /// in it.
    pub audit: AuditDraft,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let audit = AuditDraft::of(&parts.extensions);
        let who = match bearer_identity(parts, state) {
            Ok(who) => who,
            Err(e) => {
                if e.status == StatusCode::UNAUTHORIZED {
                    audit.unauthenticated(&e.message);
                }
                return Err(e);
            }
        };
        audit.authenticated(&who.principal, &who.token_id);
        let region = match parts.headers.get(REGION_HEADER) {
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::bad_request("X-Coffer-Region is not valid text"))?
                .to_string(),
            None => state.core.default_region().to_string(),
        };
        state.core.check_region(&region)?;
        audit.region(&region);
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        tracing::Span::current().record("principal", who.principal.as_str());
        Ok(Caller {
            principal: who.principal,
            token_id: who.token_id,
            region,
            source_ip,
            audit,
        })
    }
}

/// Who the bearer token names; 401 when it is missing, malformed, unknown, revoked or
/// expired.
fn bearer_identity(parts: &Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    let header_value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated(
            "missing Authorization header; send `Authorization: Bearer <token>`",
        )
    })?;
    let value = header_value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("Authorization header is not valid text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthenticated("Authorization header must be `Bearer <token>`"))?
        .trim();
    state
        .core
        .authenticate(token)?
        .ok_or_else(|| ApiError::unauthenticated("invalid, expired or revoked token"))
}

/// What a request acts on, for authorization.
pub enum Target<'a> {
    /// A secret (by name) with its tags.
    Secret {
        /// Name.
        name: &'a str,
        /// Tags.
        tags: &'a BTreeMap<String, String>,
    },
    /// A KMS key.
    Key {
        /// Key id (or the reference given, when the key does not exist).
        key_id: &'a str,
        /// Aliases.
        aliases: &'a [String],
        /// Tags.
        tags: &'a BTreeMap<String, String>,
    },
    /// The region as a whole.
    Account,
}

impl AppState {
    /// Asks the policy engine whether `caller` may do `action` on `target`; 403 names the
    /// action and resource, never anything about a secret's contents.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        target: Target<'_>,
        encryption_context: Option<&BTreeMap<String, String>>,
    ) -> Result<(), ApiError> {
        let region = caller.region.as_str();
        let (resource, shown) = match target {
            Target::Secret { name, tags } => (
                Resource::Secret { region, name, tags },
                format!("secret {name}"),
            ),
            Target::Key {
                key_id,
                aliases,
                tags,
            } => (
                Resource::Key {
                    region,
                    key_id,
                    aliases,
                    tags,
                },
                format!("key {key_id}"),
            ),
            Target::Account => (Resource::Account { region }, format!("region {region}")),
        };
        let engine = self.policy();
        let audited_resource = resource;
        let decision = engine.authorize(&AuthzRequest {
            principal: &caller.principal,
            action,
            resource,
            context: AuthzContext {
                region,
                source_ip: caller.source_ip,
                time_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
                encryption_context,
                api: "native",
            },
        });
        caller.audit.authorization(&audited_resource, &decision);
        if decision.allowed {
            Ok(())
        } else {
            tracing::info!(
                principal = %caller.principal,
                action,
                resource = %shown,
                reason = %decision.reason,
                "access denied"
            );
            Err(ApiError::forbidden(format!(
                "{} is not allowed to {action} on {shown} ({})",
                caller.principal, decision.reason
            )))
        }
    }
}
