//! Human in the loop: every AI output that can drive an action is stored as a recommendation
//! that a person approves, overrides or rejects.
//!
//! * [`propose`] — capabilities (calls, bids, quotes) record what they propose, in the same
//!   transaction as the output itself, with an audit event.
//! * [`rules`] — `rules.toml`, edited by operations staff: which proposals are approved
//!   automatically, which the owning rep may accept, which need a manager; escalation.
//! * [`queue`] — triage (apply the rules, escalate what waited too long), the scoped review
//!   queue, and decisions: approve, override (with a replacement and a reason), reject.
//! * [`breaker`] — a kind whose outputs keep failing validation or grounding is switched to
//!   manual review until an admin resets it.
//! * [`audit`] — every step above lands in an append-only hash chain that `verify` checks.

pub mod alerts;
pub mod audit;
pub mod breaker;
pub mod metrics;
pub mod queue;
pub mod rules;
#[cfg(test)]
pub(crate) mod tests_support;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{Db, new_id, now_ms};
use crate::users::{Role, User};

pub use queue::{Decision, Filter, Recommendation, TriageReport, decide, get, list, triage};
pub use rules::{Route, Rules, RulesSource};

/// The rules `[review] rules` names, or the built-in ones.
pub fn rules_source(config: &Config) -> Result<RulesSource> {
    if config.review.rules.is_empty() {
        Ok(RulesSource::builtin())
    } else {
        RulesSource::file(std::path::Path::new(&config.review.rules))
    }
}

/// The server's background governance loop, until `stop` turns true: triage every
/// `review.triage_secs`, alerts every `review.alert_secs`. A failed pass is logged and retried
/// on the next tick.
pub async fn run_governance(
    db: Db,
    rules: RulesSource,
    config: Arc<Config>,
    mut stop: watch::Receiver<bool>,
) {
    let every = |secs: u64| {
        let mut tick = tokio::time::interval(Duration::from_secs(secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    };
    let mut triage_tick = every(config.review.triage_secs);
    let mut alert_tick = every(config.review.alert_secs);
    let webhook = Some(config.review.alert_webhook.as_str()).filter(|u| !u.is_empty());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        tokio::select! {
            _ = triage_tick.tick() => match triage(&db, &rules.current()).await {
                Ok(report) if report != TriageReport::default() => {
                    tracing::info!(?report, "review triage");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "review triage failed; retrying next tick"),
            },
            _ = alert_tick.tick() => {
                if let Err(e) = alerts::check(&db, &rules.current(), webhook, &http).await {
                    tracing::error!(error = %e, "alert check failed; retrying next tick");
                }
            }
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => return,
        }
    }
}

/// The state of the latest decided recommendation of `kind` about a subject (`approved`,
/// `overridden` or `rejected`), if any: how a deal's outcome is tied to whether the quote
/// followed the model.
pub async fn latest_decision(
    db: &Db,
    kind: Kind,
    subject: Subject,
    subject_id: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT state FROM recommendations WHERE kind = $1 AND subject_kind = $2 \
         AND subject_id = $3 AND state <> 'proposed' ORDER BY decided_at DESC, id DESC LIMIT 1",
    )
    .bind(kind.as_str())
    .bind(subject.as_str())
    .bind(subject_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Whether `subject` (`kind:id`, or a recommendation id) has a recommendation in `region`: what
/// lets a manager read its audit events.
pub async fn subject_in_region(db: &Db, subject: &str, region: &str) -> Result<bool> {
    let (kind, id) = subject.split_once(':').unwrap_or(("", subject));
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM recommendations WHERE region = $1 \
         AND (id = $2 OR (subject_kind = $3 AND subject_id = $4)) LIMIT 1",
    )
    .bind(region)
    .bind(subject)
    .bind(kind)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(found.is_some())
}

/// The audit events `user` may read: an admin any subject's (or the latest events without
/// one), a manager those of a subject with a recommendation in their region.
pub async fn audit_scoped(
    db: &Db,
    user: &User,
    subject: Option<&str>,
    limit: i64,
) -> Result<Vec<audit::Event>> {
    if user.role != Role::Admin {
        let subject = subject.ok_or_else(|| {
            Error::InvalidInput("give ?subject=KIND:ID or a recommendation id".into())
        })?;
        if user.role != Role::Manager || !subject_in_region(db, subject, &user.region).await? {
            return Err(Error::NotFound(format!(
                "no audit events for {subject:?} in your region"
            )));
        }
    }
    audit::list(db, subject, limit.clamp(1, 5000)).await
}

/// What kind of output a recommendation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

    pub const ALL: [Kind; 4] = [
        Kind::Commitment,
        Kind::ObjectionAnswer,
        Kind::TenderDraft,
        Kind::Quote,
    ];

    /// Parses a stored or user-given kind name.
    pub fn parse(name: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown recommendation kind {name:?}; use commitment, objection_answer, \
                     tender_draft or quote"
                ))
            })
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
    /// The user who owns the subject (the rep of the call or deal, the author of the draft).
    pub owner_id: Option<String>,
    /// The model's id in the manifest (or the fitted model's id for quotes) and its version.
    pub model_id: String,
    pub model_version: String,
    /// The prompt template's version id, when an LLM wrote it.
    pub prompt_version: Option<String>,
    /// The exact inputs, hashed so a later audit can tell whether they changed.
    pub input: Value,
    pub output: Value,
    pub explanation: Option<String>,
    /// The model's confidence, 0 to 1, when it has one.
    pub confidence: Option<f64>,
    /// A quote's discount as a fraction of list price (rules route on it).
    pub discount: Option<f64>,
    /// The deal or bid value (rules route on it).
    pub deal_value: Option<f64>,
}

/// Records a proposal in state `proposed`, with its audit event, inside the caller's
/// transaction (so it lands together with the output it belongs to), and returns its id. The
/// rules route it at the next [`triage`].
pub async fn propose(conn: &mut AnyConnection, proposal: &Proposal) -> Result<String> {
    let id = new_id();
    let now = now_ms();
    let input_sha256 = hex::encode(Sha256::digest(proposal.input.to_string().as_bytes()));
    sqlx::query(
        "INSERT INTO recommendations (id, kind, subject_kind, subject_id, region, owner_id, \
         model_id, model_version, prompt_version, input_sha256, output, explanation, \
         confidence, discount, deal_value, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'proposed', \
         $16, $16)",
    )
    .bind(&id)
    .bind(proposal.kind.as_str())
    .bind(proposal.subject.as_str())
    .bind(&proposal.subject_id)
    .bind(&proposal.region)
    .bind(proposal.owner_id.as_deref())
    .bind(&proposal.model_id)
    .bind(&proposal.model_version)
    .bind(proposal.prompt_version.as_deref())
    .bind(&input_sha256)
    .bind(proposal.output.to_string())
    .bind(proposal.explanation.as_deref())
    .bind(proposal.confidence)
    .bind(proposal.discount)
    .bind(proposal.deal_value)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::append(
        conn,
        audit::NewEvent {
            action: "recommendation.proposed",
            subject: format!("{}:{}", proposal.subject.as_str(), proposal.subject_id),
            recommendation_id: Some(&id),
            after: Some(json!({"state": "proposed", "output": proposal.output})),
            details: Some(json!({
                "kind": proposal.kind.as_str(),
                "model_id": proposal.model_id,
                "model_version": proposal.model_version,
                "prompt_version": proposal.prompt_version,
                "input_sha256": input_sha256,
            })),
            ..audit::NewEvent::default()
        },
    )
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::tests_support::{World, proposal, propose_one};
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_proposal_is_stored_as_proposed_with_its_input_hash_and_audited() {
        let w = World::new().await;
        let id = propose_one(&w.db, &proposal(Kind::Quote, &w.rep)).await;
        let rec = get(&w.db, &w.rep, &id).await.unwrap();
        assert_eq!(
            (rec.state.as_str(), rec.kind, rec.route),
            ("proposed", Kind::Quote, None)
        );
        assert_eq!(
            rec.input_sha256,
            hex::encode(Sha256::digest(
                json!({"discount": 0.1}).to_string().as_bytes()
            ))
        );
        let events = audit::list(&w.db, Some(&id), 10).await.unwrap();
        assert_eq!(events[0].action, "recommendation.proposed");
        assert_eq!(events[0].details.as_ref().unwrap()["model_version"], "v1");
    }

    #[tokio::test]
    async fn rules_route_people_decide_within_their_scope_and_everything_is_audited() {
        let w = World::new().await;
        let rules = Rules::builtin();
        let big_discount = propose_one(
            &w.db,
            &Proposal {
                discount: Some(0.25),
                ..proposal(Kind::Quote, &w.rep)
            },
        )
        .await;
        let small_discount = propose_one(
            &w.db,
            &Proposal {
                discount: Some(0.05),
                ..proposal(Kind::Quote, &w.rep)
            },
        )
        .await;
        let commitment = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
        let report = triage(&w.db, &rules).await.unwrap();
        assert_eq!((report.routed, report.auto_approved), (3, 1));
        // Idempotent.
        assert_eq!(
            triage(&w.db, &rules).await.unwrap(),
            TriageReport::default()
        );

        let auto = get(&w.db, &w.admin, &small_discount).await.unwrap();
        assert_eq!((auto.state.as_str(), auto.decided_by), ("approved", None));

        // The rep may accept their own routine item, not one that needs a manager.
        let approve = Decision::Approve { note: None };
        let accepted = decide(&w.db, &w.rep, &commitment, &approve).await.unwrap();
        assert_eq!(accepted.decided_by.as_deref(), Some(w.rep.id.as_str()));
        let err = decide(&w.db, &w.rep, &big_discount, &approve)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err}");
        // Another rep and another region's manager cannot even see it.
        for outsider in [&w.other_rep, &w.other_manager] {
            let err = decide(&w.db, outsider, &big_discount, &approve)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NotFound(_)), "{err}");
        }
        // An override needs a reason; then it stands, once.
        let no_reason = Decision::Override {
            replacement: json!({"discount": 0.18}),
            reason: " ".into(),
        };
        let err = decide(&w.db, &w.manager, &big_discount, &no_reason)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert_eq!(
            latest_decision(&w.db, Kind::Quote, Subject::Deal, "deal-1")
                .await
                .unwrap(),
            Some("approved".into()),
            "the automatic approval of the small discount"
        );
        let overridden = decide(
            &w.db,
            &w.manager,
            &big_discount,
            &Decision::Override {
                replacement: json!({"discount": 0.18}),
                reason: "strategic account".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(overridden.state, "overridden");
        assert_eq!(overridden.final_output, Some(json!({"discount": 0.18})));
        let err = decide(&w.db, &w.admin, &big_discount, &approve)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");

        // Scoped lists: the rep sees their own, the other region's manager nothing.
        let all = Filter::default();
        assert_eq!(list(&w.db, &w.rep, &all).await.unwrap().len(), 3);
        assert_eq!(list(&w.db, &w.other_rep, &all).await.unwrap().len(), 0);
        assert_eq!(list(&w.db, &w.other_manager, &all).await.unwrap().len(), 0);
        assert_eq!(list(&w.db, &w.manager, &all).await.unwrap().len(), 3);
        let overridden_only = Filter {
            state: Some("overridden".into()),
            ..Filter::default()
        };
        assert_eq!(
            list(&w.db, &w.admin, &overridden_only).await.unwrap().len(),
            1
        );

        let actions: Vec<String> = audit::list(&w.db, Some(&big_discount), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            ["recommendation.proposed", "recommendation.overridden"]
        );
        assert_eq!(audit::verify(&w.db).await.unwrap().first_broken, None);
    }

    #[tokio::test]
    async fn waiting_too_long_escalates_past_the_owner_to_the_top_of_the_queue() {
        let w = World::new().await;
        let mut rules = Rules::builtin();
        let first = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
        let late = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
        sqlx::query("UPDATE recommendations SET created_at = created_at - 7200000 WHERE id = $1")
            .bind(&late)
            .execute(w.db.pool())
            .await
            .unwrap();
        rules.escalation.after_hours = 1.0;
        assert_eq!(triage(&w.db, &rules).await.unwrap().escalated, 1);
        let queue = list(&w.db, &w.manager, &Filter::default()).await.unwrap();
        assert_eq!(queue[0].id, late);
        assert!(queue[0].escalated_at.is_some());
        assert_eq!(queue[1].id, first);
        let err = decide(&w.db, &w.rep, &late, &Decision::Approve { note: None })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err}");
    }

    #[tokio::test]
    async fn the_breaker_trips_on_failures_switches_the_kind_to_manual_and_resets() {
        let w = World::new().await;
        let mut rules = Rules::builtin();
        rules.breaker.window = 10;
        let mut tx = w.db.begin().await.unwrap();
        assert!(
            !breaker::observe(&mut tx, &rules, Kind::Commitment, 8, 2)
                .await
                .unwrap()
        );
        assert!(
            breaker::observe(&mut tx, &rules, Kind::Commitment, 0, 3)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();

        let id = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
        triage(&w.db, &rules).await.unwrap();
        let rec = get(&w.db, &w.manager, &id).await.unwrap();
        assert_eq!(rec.route.as_deref(), Some("manager"));
        assert!(rec.rule.unwrap().starts_with("breaker"));

        breaker::reset(&w.db, Some(&w.admin.id), Kind::Commitment)
            .await
            .unwrap();
        assert!(breaker::tripped(&w.db).await.unwrap().is_empty());
        triage(&w.db, &rules).await.unwrap();
        let rec = get(&w.db, &w.manager, &id).await.unwrap();
        assert_eq!(rec.route.as_deref(), Some("owner"));
        let err = breaker::reset(&w.db, None, Kind::Commitment)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));

        let mut tx = w.db.begin().await.unwrap();
        assert!(
            !breaker::observe_calibration(&mut tx, &rules, 0.02)
                .await
                .unwrap()
        );
        assert!(
            breaker::observe_calibration(&mut tx, &rules, 0.2)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        assert_eq!(audit::verify(&w.db).await.unwrap().first_broken, None);
    }
}
