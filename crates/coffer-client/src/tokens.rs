//! API tokens: issue, list, revoke.

use coffer_api::{CreateTokenRequest, CreateTokenResponse, ListTokensResponse};
use reqwest::Method;

use crate::endpoint::segment;
use crate::{fetch, fetch_nothing, Client, ClientError};

impl Client {
    /// `POST /v1/tokens`: issues a token for a principal. The response holds the token;
    /// it is shown this once.
    pub async fn create_token(
        &self,
        request: &CreateTokenRequest,
    ) -> Result<CreateTokenResponse, ClientError> {
        fetch(self.request(Method::POST, "/v1/tokens", &[])?.json(request)).await
    }

    /// `GET /v1/tokens`: metadata of all tokens, never the tokens themselves.
    pub async fn list_tokens(&self) -> Result<ListTokensResponse, ClientError> {
        fetch(self.request(Method::GET, "/v1/tokens", &[])?).await
    }

    /// `DELETE /v1/tokens/{token_id}`: the token stops working at once.
    pub async fn revoke_token(&self, token_id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/tokens/{}", segment("token id", token_id)?);
        fetch_nothing(self.request(Method::DELETE, &path, &[])?).await
    }
}
