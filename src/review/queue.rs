//! Triage and the review queue: the rules route each proposal, people decide.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Kind;
use super::audit::{self, NewEvent};
use super::breaker;
use super::rules::{Facts, Route, Rules};
use crate::error::{Error, Result};
use crate::store::{Db, now_ms};
use crate::users::{Role, User};

/// A stored recommendation with its review state.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Recommendation {
    pub id: String,
    pub kind: Kind,
    pub subject_kind: String,
    pub subject_id: String,
    pub region: String,
    pub owner_id: Option<String>,
    pub model_id: String,
    pub model_version: String,
    pub prompt_version: Option<String>,
    pub input_sha256: String,
    #[schema(value_type = Object)]
    pub output: Value,
    pub explanation: Option<String>,
    pub confidence: Option<f64>,
    pub discount: Option<f64>,
    pub deal_value: Option<f64>,
    /// proposed | approved | overridden | rejected
    pub state: String,
    /// Who must decide (from the rules): auto | owner | manager; `None` until triaged.
    pub route: Option<String>,
    /// The rule that chose the route (`None`: the default route).
    pub rule: Option<String>,
    pub escalated_at: Option<i64>,
    /// The deciding user; `None` with state `approved` means the rules approved it.
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    /// What stands after review: the output, or the reviewer's replacement.
    #[schema(value_type = Option<Object>)]
    pub final_output: Option<Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn json_column(row: &AnyRow, column: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| Error::Internal(format!("recommendation {column} is not JSON: {e}")))
    })
    .transpose()
}

fn from_row(row: &AnyRow) -> Result<Recommendation> {
    let kind: String = row.try_get("kind")?;
    Ok(Recommendation {
        id: row.try_get("id")?,
        kind: Kind::parse(&kind)?,
        subject_kind: row.try_get("subject_kind")?,
        subject_id: row.try_get("subject_id")?,
        region: row.try_get("region")?,
        owner_id: row.try_get("owner_id")?,
        model_id: row.try_get("model_id")?,
        model_version: row.try_get("model_version")?,
        prompt_version: row.try_get("prompt_version")?,
        input_sha256: row.try_get("input_sha256")?,
        output: json_column(row, "output")?.unwrap_or(Value::Null),
        explanation: row.try_get("explanation")?,
        confidence: row.try_get("confidence")?,
        discount: row.try_get("discount")?,
        deal_value: row.try_get("deal_value")?,
        state: row.try_get("state")?,
        route: row.try_get("route")?,
        rule: row.try_get("rule")?,
        escalated_at: row.try_get("escalated_at")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        final_output: json_column(row, "final_output")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Recommendation {
    fn subject(&self) -> String {
        format!("{}:{}", self.subject_kind, self.subject_id)
    }

    /// Whether `user` may see it: admins everything, managers their region, others their own.
    pub fn visible_to(&self, user: &User) -> bool {
        match user.role {
            Role::Admin => true,
            Role::Manager => self.region == user.region,
            Role::Rep | Role::Bid => self.owner_id.as_deref() == Some(user.id.as_str()),
        }
    }

    /// Whether `user` may decide it now: managers in its region and admins always; the owner
    /// only while its route is `owner` and it has not been escalated.
    pub fn decidable_by(&self, user: &User) -> bool {
        match user.role {
            Role::Admin => true,
            Role::Manager => self.region == user.region,
            Role::Rep | Role::Bid => {
                self.owner_id.as_deref() == Some(user.id.as_str())
                    && self.route.as_deref() == Some(Route::Owner.as_str())
                    && self.escalated_at.is_none()
            }
        }
    }
}

/// Which recommendations to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct Filter {
    /// proposed | approved | overridden | rejected; all when absent.
    pub state: Option<String>,
    pub kind: Option<Kind>,
    pub region: Option<String>,
    /// The owning user's id.
    pub owner: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// The recommendations `user` may see that match `filter`: escalated first, then oldest first.
pub async fn list(db: &Db, user: &User, filter: &Filter) -> Result<Vec<Recommendation>> {
    if let Some(state) = &filter.state
        && !matches!(
            state.as_str(),
            "proposed" | "approved" | "overridden" | "rejected"
        )
    {
        return Err(Error::InvalidInput(format!(
            "unknown state {state:?}; use proposed, approved, overridden or rejected"
        )));
    }
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    // Scope in SQL, so a page is never filled with rows the caller may not see.
    let (scope_sql, scope_value): (&str, Option<&str>) = match user.role {
        Role::Admin => ("$1 = $1", None),
        Role::Manager => ("region = $1", Some(&user.region)),
        Role::Rep | Role::Bid => ("owner_id = $1", Some(&user.id)),
    };
    let sql = format!(
        "SELECT * FROM recommendations WHERE {scope_sql} \
         AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR kind = $3) \
         AND ($4 IS NULL OR region = $4) AND ($5 IS NULL OR owner_id = $5) \
         ORDER BY CASE WHEN escalated_at IS NULL THEN 1 ELSE 0 END, created_at, id LIMIT $6"
    );
    let rows = sqlx::query(&sql)
        .bind(scope_value.unwrap_or(""))
        .bind(filter.state.as_deref())
        .bind(filter.kind.map(Kind::as_str))
        .bind(filter.region.as_deref())
        .bind(filter.owner.as_deref())
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// One recommendation, if `user` may see it (else `NotFound`, so ids do not leak).
pub async fn get(db: &Db, user: &User, id: &str) -> Result<Recommendation> {
    let not_found = || Error::NotFound(format!("no recommendation {id:?} that you can see"));
    let row = sqlx::query("SELECT * FROM recommendations WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(not_found)?;
    let rec = from_row(&row)?;
    if rec.visible_to(user) {
        Ok(rec)
    } else {
        Err(not_found())
    }
}

/// The recommendations about one subject (`call`, `id`) that `user` may see, oldest first.
pub async fn for_subject(
    db: &Db,
    user: &User,
    subject_kind: &str,
    subject_id: &str,
) -> Result<Vec<Recommendation>> {
    let rows = sqlx::query(
        "SELECT * FROM recommendations WHERE subject_kind = $1 AND subject_id = $2 \
         ORDER BY created_at, id",
    )
    .bind(subject_kind)
    .bind(subject_id)
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::new();
    for row in &rows {
        let rec = from_row(row)?;
        if rec.visible_to(user) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// A person's decision on a proposal.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "lowercase")]
#[schema(example = json!({"action": "approve", "note": "matches the call"}))]
pub enum Decision {
    Approve {
        #[serde(default)]
        note: Option<String>,
    },
    Override {
        /// The value that replaces the AI's output.
        #[schema(value_type = Object)]
        replacement: Value,
        reason: String,
    },
    Reject {
        reason: String,
    },
}

/// Applies `decision` by `user`: checks scope and route, moves the state once (a second
/// decision gets `Conflict`), stores the review and its audit event in one transaction.
pub async fn decide(db: &Db, user: &User, id: &str, decision: &Decision) -> Result<Recommendation> {
    let rec = get(db, user, id).await?;
    if !rec.decidable_by(user) {
        return Err(Error::Forbidden(format!(
            "recommendation {id} needs a manager of region {:?}{}",
            rec.region,
            rec.rule
                .as_deref()
                .map(|r| format!(" (rule: {r})"))
                .unwrap_or_default()
        )));
    }
    let required = |reason: &str, what: &str| {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 2000 {
            Err(Error::InvalidInput(format!(
                "{what} needs a reason of 1 to 2000 characters"
            )))
        } else {
            Ok(reason.to_string())
        }
    };
    let (state, action, replacement, reason, final_output) = match decision {
        Decision::Approve { note } => (
            "approved",
            "approve",
            None,
            note.clone(),
            rec.output.clone(),
        ),
        Decision::Override {
            replacement,
            reason,
        } => (
            "overridden",
            "override",
            Some(replacement.clone()),
            Some(required(reason, "an override")?),
            replacement.clone(),
        ),
        Decision::Reject { reason } => (
            "rejected",
            "reject",
            None,
            Some(required(reason, "a rejection")?),
            Value::Null,
        ),
    };
    let now = now_ms();
    let mut tx = db.begin().await?;
    let updated = sqlx::query(
        "UPDATE recommendations SET state = $1, decided_by = $2, decided_at = $3, \
         final_output = $4, updated_at = $3 WHERE id = $5 AND state = 'proposed'",
    )
    .bind(state)
    .bind(&user.id)
    .bind(now)
    .bind((!final_output.is_null()).then(|| final_output.to_string()))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "recommendation {id} was already decided; reload it to see the decision"
        )));
    }
    sqlx::query(
        "INSERT INTO reviews (id, recommendation_id, reviewer_id, action, replacement, reason, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(crate::store::new_id())
    .bind(id)
    .bind(&user.id)
    .bind(action)
    .bind(replacement.as_ref().map(Value::to_string))
    .bind(reason.as_deref())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // A commitment's task follows the decision, so lists and exports show what stands.
    if rec.kind == Kind::Commitment && state != "approved" {
        let decided = (state == "overridden").then_some(&final_output);
        crate::calls::tasks::follow_decision(&mut tx, &rec.subject_id, &rec.output, decided)
            .await?;
    }
    audit::append(
        &mut tx,
        NewEvent {
            actor_id: Some(&user.id),
            action: &format!("recommendation.{state}"),
            subject: rec.subject(),
            recommendation_id: Some(id),
            before: Some(json!({"state": rec.state, "output": rec.output})),
            after: Some(json!({"state": state, "output": final_output})),
            details: Some(json!({
                "reason": reason,
                "model_id": rec.model_id,
                "model_version": rec.model_version,
                "prompt_version": rec.prompt_version,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, user, id).await
}

/// What a [`triage`] pass did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TriageReport {
    /// Proposals whose route was set or changed.
    pub routed: usize,
    pub auto_approved: usize,
    pub escalated: usize,
}

/// Applies the rules in force to every undecided proposal: sets its route (kinds switched to
/// manual by the breaker need a manager), approves the `auto` ones, and escalates those
/// waiting longer than the rules allow. Idempotent; the server runs it every few seconds and
/// before listing the queue, so an edit of the rules applies to what is waiting.
pub async fn triage(db: &Db, rules: &Rules) -> Result<TriageReport> {
    let manual = breaker::tripped_kinds(db).await?;
    let rows = sqlx::query("SELECT * FROM recommendations WHERE state = 'proposed'")
        .fetch_all(db.pool())
        .await?;
    let escalate_before = now_ms() - (rules.escalation.after_hours * 3_600_000.0) as i64;
    let mut report = TriageReport::default();
    for row in &rows {
        let rec = from_row(row)?;
        let mut decision = rules.route(&Facts {
            kind: rec.kind,
            region: &rec.region,
            discount: rec.discount,
            deal_value: rec.deal_value,
            confidence: rec.confidence,
        });
        if manual.contains(&rec.kind) {
            decision.route = Route::Manager;
            decision.rule = Some(format!("breaker: {} switched to manual", rec.kind.as_str()));
        }
        let route = decision.route.as_str();
        let reroute = rec.route.as_deref() != Some(route) || rec.rule != decision.rule;
        let escalate = rec.escalated_at.is_none() && rec.created_at < escalate_before;
        if !reroute && decision.route != Route::Auto && !escalate {
            // Nothing changes: no transaction, so a long queue costs one read per pass.
            continue;
        }
        let mut tx = db.begin().await?;
        if reroute {
            sqlx::query(
                "UPDATE recommendations SET route = $1, rule = $2 WHERE id = $3 AND state = 'proposed'",
            )
            .bind(route)
            .bind(decision.rule.as_deref())
            .bind(&rec.id)
            .execute(&mut *tx)
            .await?;
            report.routed += 1;
        }
        if decision.route == Route::Auto {
            let now = now_ms();
            let done = sqlx::query(
                "UPDATE recommendations SET state = 'approved', decided_at = $1, \
                 final_output = output, updated_at = $1 WHERE id = $2 AND state = 'proposed'",
            )
            .bind(now)
            .bind(&rec.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                audit::append(
                    &mut tx,
                    NewEvent {
                        action: "recommendation.auto_approved",
                        subject: rec.subject(),
                        recommendation_id: Some(&rec.id),
                        before: Some(json!({"state": "proposed"})),
                        after: Some(json!({"state": "approved", "output": rec.output})),
                        details: Some(json!({"rule": decision.rule})),
                        ..NewEvent::default()
                    },
                )
                .await?;
                report.auto_approved += 1;
            }
        } else if escalate {
            sqlx::query("UPDATE recommendations SET escalated_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(&rec.id)
                .execute(&mut *tx)
                .await?;
            audit::append(
                &mut tx,
                NewEvent {
                    action: "recommendation.escalated",
                    subject: rec.subject(),
                    recommendation_id: Some(&rec.id),
                    details: Some(json!({"after_hours": rules.escalation.after_hours})),
                    ..NewEvent::default()
                },
            )
            .await?;
            report.escalated += 1;
        }
        tx.commit().await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::Subject;
    use super::super::tests_support::{World, proposal, propose_one};
    use super::*;

    #[tokio::test]
    async fn a_subjects_recommendations_are_listed_within_the_callers_scope() {
        let w = World::new().await;
        let call = |subject_id: &str| super::super::Proposal {
            subject: Subject::Call,
            subject_id: subject_id.into(),
            ..proposal(Kind::Commitment, &w.rep)
        };
        let first = propose_one(&w.db, &call("call-1")).await;
        let second = propose_one(&w.db, &call("call-1")).await;
        propose_one(&w.db, &call("call-2")).await;
        let ids = |recs: Vec<Recommendation>| recs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let mine = for_subject(&w.db, &w.rep, "call", "call-1").await.unwrap();
        assert_eq!(ids(mine), [first.clone(), second.clone()]);
        let manager = for_subject(&w.db, &w.manager, "call", "call-1")
            .await
            .unwrap();
        assert_eq!(ids(manager), [first, second]);
        for stranger in [&w.other_rep, &w.other_manager] {
            let seen = for_subject(&w.db, stranger, "call", "call-1")
                .await
                .unwrap();
            assert!(seen.is_empty());
        }
        assert!(
            for_subject(&w.db, &w.admin, "deal", "call-1")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
