//! The audit log: query it, verify its hash chain.

use coffer_api::{AuditQuery, ListAuditResponse, VerifyAuditResponse};
use reqwest::header::HeaderValue;
use reqwest::Method;

use crate::{fetch, Client, ClientError};

/// The query of `GET /v1/audit` as (name, value) pairs; only what is set is sent.
fn audit_query_pairs(q: &AuditQuery) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(n) = q.max_results {
        pairs.push(("max_results", n.to_string()));
    }
    let texts = [
        ("principal", &q.principal),
        ("action", &q.action),
        ("resource", &q.resource),
        ("decision", &q.decision),
        ("since", &q.since),
        ("until", &q.until),
        ("next_token", &q.next_token),
        ("order", &q.order),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            pairs.push((name, value.clone()));
        }
    }
    pairs
}

impl Client {
    /// `GET /v1/audit`: one page of audit records matching `query` (newest first unless
    /// `order` is `asc`). Action `GetAuditLog`.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<ListAuditResponse, ClientError> {
        fetch(self.request(Method::GET, "/v1/audit", &audit_query_pairs(query))?).await
    }

    /// Like [`list_audit`](Self::list_audit), sending `request_id` as the request's
    /// `x-request-id` (which the server keeps and records), so a poller can recognise the
    /// records of its own requests.
    pub async fn list_audit_with_request_id(
        &self,
        query: &AuditQuery,
        request_id: &str,
    ) -> Result<ListAuditResponse, ClientError> {
        let id = HeaderValue::from_str(request_id).map_err(|_| {
            ClientError::InvalidArgument(format!(
                "the request id {request_id:?} is not a valid HTTP header value"
            ))
        })?;
        let request = self
            .request(Method::GET, "/v1/audit", &audit_query_pairs(query))?
            .header(coffer_api::REQUEST_ID_HEADER, id);
        fetch(request).await
    }

    /// `POST /v1/audit/verify`: the server walks the audit hash chain in its store and
    /// reports whether it is intact, or the first record that was altered, removed or
    /// reordered. Action `VerifyAuditLog`.
    pub async fn verify_audit(&self) -> Result<VerifyAuditResponse, ClientError> {
        fetch(self.request(Method::POST, "/v1/audit/verify", &[])?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_filters_are_sent() {
        assert!(audit_query_pairs(&AuditQuery::default()).is_empty());
        let pairs = audit_query_pairs(&AuditQuery {
            principal: Some("alice".into()),
            decision: Some("deny".into()),
            max_results: Some(5),
            order: Some("asc".into()),
            ..Default::default()
        });
        assert_eq!(
            pairs,
            vec![
                ("max_results", "5".to_owned()),
                ("principal", "alice".to_owned()),
                ("decision", "deny".to_owned()),
                ("order", "asc".to_owned()),
            ]
        );
    }
}
