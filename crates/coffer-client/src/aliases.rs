//! Key aliases: `alias/name` → key id.

use coffer_api::{AliasEntry, CreateAliasRequest, ListAliasesResponse, UpdateAliasRequest};
use reqwest::Method;

use crate::endpoint::segment;
use crate::{fetch, fetch_nothing, Client, ClientError};

fn alias_path(alias: &str) -> Result<String, ClientError> {
    Ok(format!("/v1/aliases/{}", segment("alias name", alias)?))
}

impl Client {
    /// `GET /v1/aliases`: all aliases of the region, sorted by name.
    pub async fn list_aliases(&self) -> Result<ListAliasesResponse, ClientError> {
        fetch(self.request(Method::GET, "/v1/aliases", &[])?).await
    }

    /// `POST /v1/aliases`: points a new alias at a key.
    pub async fn create_alias(
        &self,
        request: &CreateAliasRequest,
    ) -> Result<AliasEntry, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/aliases", &[])?
                .json(request),
        )
        .await
    }

    /// `PUT /v1/aliases/{alias}`: points an existing alias (`alias/name`) at another key.
    pub async fn update_alias(
        &self,
        alias: &str,
        request: &UpdateAliasRequest,
    ) -> Result<AliasEntry, ClientError> {
        fetch(
            self.request(Method::PUT, &alias_path(alias)?, &[])?
                .json(request),
        )
        .await
    }

    /// `DELETE /v1/aliases/{alias}`: removes an alias (`alias/name`); the key stays.
    pub async fn delete_alias(&self, alias: &str) -> Result<(), ClientError> {
        fetch_nothing(self.request(Method::DELETE, &alias_path(alias)?, &[])?).await
    }
}
