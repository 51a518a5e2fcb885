//! KMS keys: lifecycle, rotation, deletion and tags. (Aliases and the cryptographic
//! operations have their own modules.)

use coffer_api::{
    CreateKeyRequest, KeyMetadata, KeyRotationPolicyRequest, ListKeyRotationsResponse,
    ListKeysResponse, ScheduleKeyDeletionRequest, TagRequest, UntagRequest, UpdateKeyRequest,
};
use reqwest::Method;

use crate::endpoint::segment;
use crate::{fetch, Client, ClientError};

/// Paging of [`Client::list_keys`] (the query of `GET /v1/keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListKeysQuery {
    /// Page size.
    pub max_results: Option<u32>,
    /// `next_token` of the previous page.
    pub next_token: Option<String>,
}

impl ListKeysQuery {
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(n) = self.max_results {
            pairs.push(("max_results", n.to_string()));
        }
        if let Some(token) = &self.next_token {
            pairs.push(("next_token", token.clone()));
        }
        pairs
    }
}

/// The path of `/v1/keys/{key}{rest}`; `key` is a key id, ARN or `alias/name`.
pub(crate) fn key_path(key: &str, rest: &str) -> Result<String, ClientError> {
    Ok(format!("/v1/keys/{}{rest}", segment("key id", key)?))
}

impl Client {
    /// `POST /v1/keys`: creates a symmetric key.
    pub async fn create_key(&self, request: &CreateKeyRequest) -> Result<KeyMetadata, ClientError> {
        fetch(self.request(Method::POST, "/v1/keys", &[])?.json(request)).await
    }

    /// `GET /v1/keys`: one page of keys.
    pub async fn list_keys(&self, query: &ListKeysQuery) -> Result<ListKeysResponse, ClientError> {
        fetch(self.request(Method::GET, "/v1/keys", &query.to_pairs())?).await
    }

    /// `GET /v1/keys/{key}`: metadata, never key material.
    pub async fn describe_key(&self, key: &str) -> Result<KeyMetadata, ClientError> {
        fetch(self.request(Method::GET, &key_path(key, "")?, &[])?).await
    }

    /// `PATCH /v1/keys/{key}`: changes the description.
    pub async fn update_key(
        &self,
        key: &str,
        request: &UpdateKeyRequest,
    ) -> Result<KeyMetadata, ClientError> {
        fetch(
            self.request(Method::PATCH, &key_path(key, "")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/keys/{key}/enable`.
    pub async fn enable_key(&self, key: &str) -> Result<KeyMetadata, ClientError> {
        fetch(self.request(Method::POST, &key_path(key, "/enable")?, &[])?).await
    }

    /// `POST /v1/keys/{key}/disable`: the key can neither encrypt nor decrypt until enabled.
    pub async fn disable_key(&self, key: &str) -> Result<KeyMetadata, ClientError> {
        fetch(self.request(Method::POST, &key_path(key, "/disable")?, &[])?).await
    }

    /// `POST /v1/keys/{key}/rotate`: new key material now; old versions still decrypt.
    pub async fn rotate_key(&self, key: &str) -> Result<KeyMetadata, ClientError> {
        fetch(self.request(Method::POST, &key_path(key, "/rotate")?, &[])?).await
    }

    /// `GET /v1/keys/{key}/rotations`: past rotations, oldest first.
    pub async fn list_key_rotations(
        &self,
        key: &str,
    ) -> Result<ListKeyRotationsResponse, ClientError> {
        fetch(self.request(Method::GET, &key_path(key, "/rotations")?, &[])?).await
    }

    /// `PUT /v1/keys/{key}/rotation`: turns automatic rotation on or off.
    pub async fn set_key_rotation(
        &self,
        key: &str,
        request: &KeyRotationPolicyRequest,
    ) -> Result<KeyMetadata, ClientError> {
        fetch(
            self.request(Method::PUT, &key_path(key, "/rotation")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/keys/{key}/schedule-deletion`: the key becomes `PendingDeletion`.
    pub async fn schedule_key_deletion(
        &self,
        key: &str,
        request: &ScheduleKeyDeletionRequest,
    ) -> Result<KeyMetadata, ClientError> {
        fetch(
            self.request(Method::POST, &key_path(key, "/schedule-deletion")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/keys/{key}/cancel-deletion`: the key comes back disabled.
    pub async fn cancel_key_deletion(&self, key: &str) -> Result<KeyMetadata, ClientError> {
        fetch(self.request(Method::POST, &key_path(key, "/cancel-deletion")?, &[])?).await
    }

    /// `POST /v1/keys/{key}/tags`: adds or overwrites tags.
    pub async fn tag_key(
        &self,
        key: &str,
        request: &TagRequest,
    ) -> Result<KeyMetadata, ClientError> {
        fetch(
            self.request(Method::POST, &key_path(key, "/tags")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/keys/{key}/untag`: removes tags by key.
    pub async fn untag_key(
        &self,
        key: &str,
        request: &UntagRequest,
    ) -> Result<KeyMetadata, ClientError> {
        fetch(
            self.request(Method::POST, &key_path(key, "/untag")?, &[])?
                .json(request),
        )
        .await
    }
}
