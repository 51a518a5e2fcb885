//! The route table: every route is registered together with its documentation, so the
//! OpenAPI document is generated from the same list that builds the router and cannot
//! forget a route.

use std::sync::Arc;

use axum::routing::MethodRouter;
use axum::Router;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::OpenApi;

use crate::state::AppState;

/// Documentation of one route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// HTTP method.
    pub method: &'static str,
    /// Path template (axum syntax, `{param}`).
    pub path: &'static str,
    /// Operation name (also the Cedar action, when one applies).
    pub operation: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Request body schema name.
    pub request: Option<&'static str>,
    /// Success response schema name (None = no body).
    pub response: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Whether a bearer token is required.
    pub auth: bool,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
}

/// Builder pairing the router with its documentation.
pub struct RouteTable {
    router: Router<Arc<AppState>>,
    docs: Vec<RouteDoc>,
}

impl RouteTable {
    /// Empty table.
    pub fn new() -> Self {
        RouteTable {
            router: Router::new(),
            docs: Vec::new(),
        }
    }

    /// Adds a route and its documentation.
    pub fn add(mut self, doc: RouteDoc, handler: MethodRouter<Arc<AppState>>) -> Self {
        self.router = self.router.route(doc.path, handler);
        self.docs.push(doc);
        self
    }

    /// The router and the docs.
    pub fn finish(self) -> (Router<Arc<AppState>>, Vec<RouteDoc>) {
        (self.router, self.docs)
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Coffer",
        description = "Self-hosted secrets vault and key manager (native REST API v1)."
    ),
    components(schemas(
        coffer_api::ErrorResponse,
        coffer_api::ErrorBody,
        coffer_api::CreateSecretRequest,
        coffer_api::SecretVersionRef,
        coffer_api::PutSecretValueRequest,
        coffer_api::SecretValue,
        coffer_api::UpdateSecretRequest,
        coffer_api::VersionInfo,
        coffer_api::SecretDescription,
        coffer_api::RotationRules,
        coffer_api::RotationError,
        coffer_api::RotationProgress,
        coffer_api::RotationInfo,
        coffer_api::RotateSecretRequest,
        coffer_api::RotationResponse,
        coffer_api::ListSecretsResponse,
        coffer_api::ListVersionsResponse,
        coffer_api::UpdateStageRequest,
        coffer_api::DeleteSecretResponse,
        coffer_api::TagRequest,
        coffer_api::UntagRequest,
        coffer_api::BatchGetRequest,
        coffer_api::BatchGetError,
        coffer_api::BatchGetResponse,
        coffer_api::RandomPasswordRequest,
        coffer_api::RandomPasswordResponse,
        coffer_api::CreateKeyRequest,
        coffer_api::KeyMetadata,
        coffer_api::ListKeysResponse,
        coffer_api::UpdateKeyRequest,
        coffer_api::KeyRotationPolicyRequest,
        coffer_api::KeyRotation,
        coffer_api::ListKeyRotationsResponse,
        coffer_api::ScheduleKeyDeletionRequest,
        coffer_api::EncryptRequest,
        coffer_api::EncryptResponse,
        coffer_api::DecryptRequest,
        coffer_api::DecryptResponse,
        coffer_api::GenerateDataKeyRequest,
        coffer_api::GenerateDataKeyResponse,
        coffer_api::ReEncryptRequest,
        coffer_api::ReEncryptResponse,
        coffer_api::GenerateRandomRequest,
        coffer_api::GenerateRandomResponse,
        coffer_api::AliasEntry,
        coffer_api::CreateAliasRequest,
        coffer_api::UpdateAliasRequest,
        coffer_api::ListAliasesResponse,
        coffer_api::CreateTokenRequest,
        coffer_api::TokenInfo,
        coffer_api::CreateTokenResponse,
        coffer_api::ListTokensResponse,
        coffer_api::HealthResponse,
        coffer_api::AuditQuery,
        coffer_api::AuditKeyUse,
        coffer_api::AuditRecord,
        coffer_api::ListAuditResponse,
        coffer_api::VerifyAuditResponse,
        coffer_api::PolicyInfo,
    ))
)]
struct ApiDoc;

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Options,
    }
}

/// Renders the OpenAPI 3.1 document for the routes.
pub fn openapi(docs: &[RouteDoc]) -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    if let Some(c) = api.components.as_mut() {
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
    let json = |schema: &str| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build()
    };
    for d in docs {
        let tag = d
            .path
            .trim_start_matches("/v1/")
            .split('/')
            .next()
            .unwrap_or("system")
            .trim_start_matches('/');
        let mut op = OperationBuilder::new()
            .operation_id(Some(d.operation))
            .summary(Some(d.summary))
            .tag(if d.path.starts_with("/v1/") {
                tag
            } else {
                "system"
            });
        for seg in d.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some("percent-encoded as one path segment")),
                );
            }
        }
        for (name, desc) in d.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*desc)),
            );
        }
        op = op.parameter(
            ParameterBuilder::new()
                .name("X-Coffer-Region")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "region of the request (default: the server's first region)",
                )),
        );
        if let Some(req) = d.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(req))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(resp) = d.response {
            ok = ok.content("application/json", json(resp));
        }
        op = op.response(d.status.to_string(), ok.build()).response(
            "default",
            ResponseBuilder::new()
                .description("error: {\"error\":{\"code\",\"message\"}}")
                .content("application/json", json("ErrorResponse"))
                .build(),
        );
        if d.auth {
            op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        api.paths
            .add_path_operation(d.path, vec![method(d.method)], op.build());
    }
    api
}
