//! `coffer policy validate`: load a directory exactly as the server does.

use std::path::Path;

use serde::Serialize;

use crate::ToolError;

/// A policy set that loaded.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// Number of policies.
    pub policies: usize,
    /// The set's hash (what the server reports for its active set).
    pub hash: String,
    /// Number of users and teams in the entities file.
    pub entities: usize,
}

/// Load `dir` strictly (validator warnings are errors). On failure the error carries
/// every problem as `file:line: message` ([`coffer_policy::PolicyError::problems`]).
pub fn validate(dir: &Path) -> Result<ValidateReport, ToolError> {
    let engine = crate::load(dir)?;
    let entities = engine
        .entities()
        .iter()
        .filter(|e| e.uid().type_name().to_string() != "Coffer::Action")
        .count();
    Ok(ValidateReport {
        policies: engine.policy_set().policies().count(),
        hash: engine.hash().to_owned(),
        entities,
    })
}
