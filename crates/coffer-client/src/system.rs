//! Server-wide operations: health, readiness, and the dev-mode reset.

use coffer_api::HealthResponse;
use reqwest::Method;

use crate::{fetch, fetch_nothing, Client, ClientError};

impl Client {
    /// `GET /healthz`: whether the process is up. Needs no token.
    pub async fn health(&self) -> Result<HealthResponse, ClientError> {
        fetch(self.http.get(self.base.join("/healthz", &[]))).await
    }

    /// `GET /readyz`: whether the server can serve requests (store open, keys unsealed).
    /// Needs no token; a server that is not ready answers with an [`ClientError::Api`]
    /// error.
    pub async fn ready(&self) -> Result<HealthResponse, ClientError> {
        fetch(self.http.get(self.base.join("/readyz", &[]))).await
    }

    /// `POST /v1/sys/reset`: wipes all state of the server. Only a server in dev mode
    /// accepts it.
    pub async fn reset(&self) -> Result<(), ClientError> {
        fetch_nothing(self.request(Method::POST, "/v1/sys/reset", &[])?).await
    }
}
