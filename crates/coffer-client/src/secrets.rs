//! Secrets: create, read, write, list, version labels, tags, deletion; random passwords.

use coffer_api::{
    BatchGetRequest, BatchGetResponse, CreateSecretRequest, DeleteSecretResponse, ListSecretsQuery,
    ListSecretsResponse, ListVersionsResponse, PutSecretValueRequest, RandomPasswordRequest,
    RandomPasswordResponse, RotateSecretRequest, RotationResponse, SecretDescription, SecretValue,
    SecretVersionRef, TagRequest, UntagRequest, UpdateSecretRequest, UpdateStageRequest,
};
use reqwest::Method;

use crate::endpoint::segment;
use crate::{fetch, Client, ClientError};

/// The query of `GET /v1/secrets` as (name, value) pairs; only what is set is sent.
fn list_query_pairs(q: &ListSecretsQuery) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(n) = q.max_results {
        pairs.push(("max_results", n.to_string()));
    }
    let texts = [
        ("next_token", &q.next_token),
        ("name_prefix", &q.name_prefix),
        ("description", &q.description),
        ("tag_key", &q.tag_key),
        ("tag_value", &q.tag_value),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            pairs.push((name, value.clone()));
        }
    }
    if q.include_deleted {
        pairs.push(("include_deleted", "true".to_owned()));
    }
    pairs
}

fn wait_query(wait: bool) -> Vec<(&'static str, String)> {
    if wait {
        vec![("wait", "true".to_owned())]
    } else {
        Vec::new()
    }
}

fn secret_path(id: &str, rest: &str) -> Result<String, ClientError> {
    Ok(format!("/v1/secrets/{}{rest}", segment("secret id", id)?))
}

impl Client {
    /// `POST /v1/secrets`: creates a secret, with its first value if the request has one.
    pub async fn create_secret(
        &self,
        request: &CreateSecretRequest,
    ) -> Result<SecretVersionRef, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/secrets", &[])?
                .json(request),
        )
        .await
    }

    /// `GET /v1/secrets`: one page of secrets, sorted by name; follow `next_token` for more.
    pub async fn list_secrets(
        &self,
        query: &ListSecretsQuery,
    ) -> Result<ListSecretsResponse, ClientError> {
        fetch(self.request(Method::GET, "/v1/secrets", &list_query_pairs(query))?).await
    }

    /// `POST /v1/secrets/batch-get`: the current values of up to 20 secrets; the ones that
    /// cannot be read are listed in `errors` rather than failing the call.
    pub async fn batch_get_secret_values(
        &self,
        request: &BatchGetRequest,
    ) -> Result<BatchGetResponse, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/secrets/batch-get", &[])?
                .json(request),
        )
        .await
    }

    /// `GET /v1/secrets/{id}`: metadata, never the value.
    pub async fn describe_secret(&self, id: &str) -> Result<SecretDescription, ClientError> {
        fetch(self.request(Method::GET, &secret_path(id, "")?, &[])?).await
    }

    /// `PATCH /v1/secrets/{id}`: changes the description or the KMS key of future versions.
    pub async fn update_secret(
        &self,
        id: &str,
        request: &UpdateSecretRequest,
    ) -> Result<SecretDescription, ClientError> {
        fetch(
            self.request(Method::PATCH, &secret_path(id, "")?, &[])?
                .json(request),
        )
        .await
    }

    /// `DELETE /v1/secrets/{id}`: schedules deletion after `recovery_window_days` (7–30,
    /// server default when `None`), or deletes at once with `force`.
    pub async fn delete_secret(
        &self,
        id: &str,
        recovery_window_days: Option<u32>,
        force: bool,
    ) -> Result<DeleteSecretResponse, ClientError> {
        let mut query = Vec::new();
        if let Some(days) = recovery_window_days {
            query.push(("recovery_window_days", days.to_string()));
        }
        if force {
            query.push(("force", "true".to_owned()));
        }
        fetch(self.request(Method::DELETE, &secret_path(id, "")?, &query)?).await
    }

    /// `POST /v1/secrets/{id}/rotation`: configures rotation (plugin, schedule, window,
    /// config, granted secrets) and, unless `rotate_immediately` is false, starts a
    /// rotation. With `wait` the server runs it before answering and reports
    /// `succeeded` or `failed`; without, it runs in the background (`started`).
    pub async fn configure_rotation(
        &self,
        id: &str,
        request: &RotateSecretRequest,
        wait: bool,
    ) -> Result<RotationResponse, ClientError> {
        fetch(
            self.request(
                Method::POST,
                &secret_path(id, "/rotation")?,
                &wait_query(wait),
            )?
            .json(request),
        )
        .await
    }

    /// `POST /v1/secrets/{id}/rotate`: rotates now with the stored config, resuming a
    /// rotation in progress at its step (same pending value).
    pub async fn rotate_secret(
        &self,
        id: &str,
        wait: bool,
    ) -> Result<RotationResponse, ClientError> {
        fetch(self.request(
            Method::POST,
            &secret_path(id, "/rotate")?,
            &wait_query(wait),
        )?)
        .await
    }

    /// `DELETE /v1/secrets/{id}/rotation`: cancels rotation (disables it, drops the
    /// rotation in progress and its AWSPENDING label; the version is kept).
    pub async fn cancel_rotation(&self, id: &str) -> Result<SecretDescription, ClientError> {
        fetch(self.request(Method::DELETE, &secret_path(id, "/rotation")?, &[])?).await
    }

    /// `POST /v1/secrets/{id}/restore`: cancels a scheduled deletion.
    pub async fn restore_secret(&self, id: &str) -> Result<SecretDescription, ClientError> {
        fetch(self.request(Method::POST, &secret_path(id, "/restore")?, &[])?).await
    }

    /// `GET /v1/secrets/{id}/value`: the value of the version with `version_id` and/or
    /// `version_stage` (e.g. `AWSPREVIOUS`); the `AWSCURRENT` version when both are `None`.
    pub async fn get_secret_value(
        &self,
        id: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<SecretValue, ClientError> {
        let mut query = Vec::new();
        if let Some(version_id) = version_id {
            query.push(("version_id", version_id.to_owned()));
        }
        if let Some(stage) = version_stage {
            query.push(("version_stage", stage.to_owned()));
        }
        fetch(self.request(Method::GET, &secret_path(id, "/value")?, &query)?).await
    }

    /// `PUT /v1/secrets/{id}/value`: stores a new version (labelled `AWSCURRENT` unless the
    /// request names other labels).
    pub async fn put_secret_value(
        &self,
        id: &str,
        request: &PutSecretValueRequest,
    ) -> Result<SecretVersionRef, ClientError> {
        fetch(
            self.request(Method::PUT, &secret_path(id, "/value")?, &[])?
                .json(request),
        )
        .await
    }

    /// `GET /v1/secrets/{id}/versions`: the versions, newest first; versions without a
    /// label only with `include_deprecated`.
    pub async fn list_secret_versions(
        &self,
        id: &str,
        include_deprecated: bool,
    ) -> Result<ListVersionsResponse, ClientError> {
        let query = if include_deprecated {
            vec![("include_deprecated", "true".to_owned())]
        } else {
            Vec::new()
        };
        fetch(self.request(Method::GET, &secret_path(id, "/versions")?, &query)?).await
    }

    /// `POST /v1/secrets/{id}/stages`: moves (or removes) a staging label.
    pub async fn update_secret_version_stage(
        &self,
        id: &str,
        request: &UpdateStageRequest,
    ) -> Result<SecretDescription, ClientError> {
        fetch(
            self.request(Method::POST, &secret_path(id, "/stages")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/secrets/{id}/tags`: adds or overwrites tags.
    pub async fn tag_secret(
        &self,
        id: &str,
        request: &TagRequest,
    ) -> Result<SecretDescription, ClientError> {
        fetch(
            self.request(Method::POST, &secret_path(id, "/tags")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/secrets/{id}/untag`: removes tags by key.
    pub async fn untag_secret(
        &self,
        id: &str,
        request: &UntagRequest,
    ) -> Result<SecretDescription, ClientError> {
        fetch(
            self.request(Method::POST, &secret_path(id, "/untag")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/random-password`: a password generated by the server.
    pub async fn random_password(
        &self,
        request: &RandomPasswordRequest,
    ) -> Result<RandomPasswordResponse, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/random-password", &[])?
                .json(request),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_query_sends_no_parameters() {
        assert!(list_query_pairs(&ListSecretsQuery::default()).is_empty());
    }

    #[test]
    fn list_query_sends_only_what_is_set() {
        let query = ListSecretsQuery {
            max_results: Some(10),
            name_prefix: Some("prod/".into()),
            include_deleted: true,
            ..Default::default()
        };
        assert_eq!(
            list_query_pairs(&query),
            vec![
                ("max_results", "10".to_owned()),
                ("name_prefix", "prod/".to_owned()),
                ("include_deleted", "true".to_owned()),
            ]
        );
    }
}
