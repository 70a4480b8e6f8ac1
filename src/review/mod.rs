//! Human in the loop: every AI output that can drive an action is stored as a recommendation
//! that a person approves, overrides or rejects.
//!
//! Capabilities (calls, bids, quotes) record what they propose with [`propose`]; the review
//! queue, the rules that decide what needs a manager, and the audit trail build on these rows.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Any, Executor};

use crate::error::Result;
use crate::store::{new_id, now_ms};

/// What kind of output a recommendation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Commitment,
    ObjectionAnswer,
    TenderDraft,
    Quote,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Commitment => "commitment",
            Kind::ObjectionAnswer => "objection_answer",
            Kind::TenderDraft => "tender_draft",
            Kind::Quote => "quote",
        }
    }
}

/// What a recommendation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Call,
    Bid,
    Deal,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Call => "call",
            Subject::Bid => "bid",
            Subject::Deal => "deal",
        }
    }
}

/// An AI output to put in front of a person, with what is needed to explain and reproduce it.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub kind: Kind,
    pub subject: Subject,
    pub subject_id: String,
    /// The region that scopes who may review it.
    pub region: String,
    /// The model's id in the manifest (or the fitted model's id for quotes) and its version.
    pub model_id: String,
    pub model_version: String,
    /// The prompt template's version id, when an LLM wrote it.
    pub prompt_version: Option<String>,
    /// The exact inputs, hashed so a later audit can tell whether they changed.
    pub input: Value,
    pub output: Value,
    pub explanation: Option<String>,
    pub confidence: Option<f64>,
}

/// Records a proposal in state `proposed` inside the caller's transaction (so it lands
/// together with the output it belongs to) and returns its id.
pub async fn propose<'c, E>(executor: E, proposal: &Proposal) -> Result<String>
where
    E: Executor<'c, Database = Any>,
{
    let id = new_id();
    let now = now_ms();
    let input_sha256 = hex::encode(Sha256::digest(proposal.input.to_string().as_bytes()));
    sqlx::query(
        "INSERT INTO recommendations (id, kind, subject_kind, subject_id, region, model_id, \
         model_version, prompt_version, input_sha256, output, explanation, confidence, state, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'proposed', $13, $13)",
    )
    .bind(&id)
    .bind(proposal.kind.as_str())
    .bind(proposal.subject.as_str())
    .bind(&proposal.subject_id)
    .bind(&proposal.region)
    .bind(&proposal.model_id)
    .bind(&proposal.model_version)
    .bind(proposal.prompt_version.as_deref())
    .bind(input_sha256)
    .bind(proposal.output.to_string())
    .bind(proposal.explanation.as_deref())
    .bind(proposal.confidence)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;
    use serde_json::json;

    #[tokio::test]
    async fn a_proposal_is_stored_as_proposed_with_its_input_hash() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let db = Db::connect(&url, 2).await.unwrap();
        let proposal = Proposal {
            kind: Kind::Quote,
            subject: Subject::Deal,
            subject_id: "deal-1".into(),
            region: "emea".into(),
            model_id: "quotes-logit".into(),
            model_version: "v1".into(),
            prompt_version: None,
            input: json!({"discount": 0.1}),
            output: json!({"discount": 0.12}),
            explanation: Some("segment and size".into()),
            confidence: Some(0.8),
        };
        let id = propose(db.pool(), &proposal).await.unwrap();
        let (state, kind, hash): (String, String, String) =
            sqlx::query_as("SELECT state, kind, input_sha256 FROM recommendations WHERE id = $1")
                .bind(&id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(state, "proposed");
        assert_eq!(kind, "quote");
        assert_eq!(
            hash,
            hex::encode(Sha256::digest(
                json!({"discount": 0.1}).to_string().as_bytes()
            ))
        );
    }
}
