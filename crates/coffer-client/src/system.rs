//! Server-wide operations: health, readiness, the active policy set and its reload,
//! and the dev-mode reset.

use coffer_api::{HealthResponse, PolicyInfo};
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

    /// `GET /v1/sys/policies`: the active policy set (source, hash, number of policies,
    /// when it was loaded). Action `GetPolicyInfo`.
    pub async fn policy_info(&self) -> Result<PolicyInfo, ClientError> {
        fetch(self.request(Method::GET, "/v1/sys/policies", &[])?).await
    }

    /// `POST /v1/sys/policies/reload`: reloads the server's policy directory and returns
    /// the set now active. Action `ReloadPolicies`. An invalid set is refused with an
    /// [`ClientError::Api`] error of status 422 and code `InvalidPolicies` whose message
    /// lists every problem as `file:line: message`; the old set stays active.
    pub async fn reload_policies(&self) -> Result<PolicyInfo, ClientError> {
        fetch(self.request(Method::POST, "/v1/sys/policies/reload", &[])?).await
    }
}
