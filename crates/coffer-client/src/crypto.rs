//! The key manager's cryptographic operations: encrypt, decrypt, data keys, re-encrypt and
//! random bytes. Plaintext and blobs travel base64-encoded, as in the wire types.

use coffer_api::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, GenerateDataKeyRequest,
    GenerateDataKeyResponse, GenerateRandomRequest, GenerateRandomResponse, ReEncryptRequest,
    ReEncryptResponse,
};
use reqwest::Method;

use crate::keys::key_path;
use crate::{fetch, Client, ClientError};

impl Client {
    /// `POST /v1/keys/{key}/encrypt`: encrypts up to 4 KiB under `key` (id, ARN or
    /// `alias/name`).
    pub async fn encrypt(
        &self,
        key: &str,
        request: &EncryptRequest,
    ) -> Result<EncryptResponse, ClientError> {
        fetch(
            self.request(Method::POST, &key_path(key, "/encrypt")?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/kms/decrypt`: the blob names its key, so none is needed (give
    /// `key_id` in the request to insist on one).
    pub async fn decrypt(&self, request: &DecryptRequest) -> Result<DecryptResponse, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/kms/decrypt", &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/keys/{key}/data-key`, or `/data-key-without-plaintext` when
    /// `without_plaintext` (the response then has no `plaintext`).
    pub async fn generate_data_key(
        &self,
        key: &str,
        request: &GenerateDataKeyRequest,
        without_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse, ClientError> {
        let rest = if without_plaintext {
            "/data-key-without-plaintext"
        } else {
            "/data-key"
        };
        fetch(
            self.request(Method::POST, &key_path(key, rest)?, &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/kms/re-encrypt`: decrypts and encrypts again (under another key or
    /// context) without the plaintext leaving the server.
    pub async fn re_encrypt(
        &self,
        request: &ReEncryptRequest,
    ) -> Result<ReEncryptResponse, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/kms/re-encrypt", &[])?
                .json(request),
        )
        .await
    }

    /// `POST /v1/kms/random`: 1–1024 random bytes from the server.
    pub async fn generate_random(
        &self,
        request: &GenerateRandomRequest,
    ) -> Result<GenerateRandomResponse, ClientError> {
        fetch(
            self.request(Method::POST, "/v1/kms/random", &[])?
                .json(request),
        )
        .await
    }
}
