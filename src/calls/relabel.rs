//! Relabelling a call's diarized speakers: `{"Speaker 1": "Daniel Okafor"}` maps a label to a
//! participant (`null` unmaps it). The mapping is stored with the transcript, the segments and
//! the stored commitments, objections and tasks are re-attributed from it (owner, side)
//! without running the model again, and the change is audited. An objection whose raiser
//! turns out to be on the seller side is removed, as extraction would have done.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::extract::{Commitment, Objection};
use super::records::{self, Insights};
use super::tasks::side_name;
use super::transcript::{CallTranscript, Side};
use crate::error::{Error, Result};
use crate::review::Kind;
use crate::review::audit::{self, NewEvent};
use crate::store::{Db, now_ms};
use crate::users::User;

/// What a relabelling changed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Relabelled {
    /// Every speaker label of the call and the participant it now maps to.
    pub speakers: BTreeMap<String, Option<String>>,
    /// The call's insights after the change.
    pub insights: Insights,
    /// Objections removed because their raiser is now a seller-side participant.
    pub objections_removed: u32,
}

/// Parses CLI arguments `"Speaker 1=Daniel Okafor"` (an empty name unmaps the label).
pub fn parse_assignments(args: &[String]) -> Result<BTreeMap<String, Option<String>>> {
    args.iter()
        .map(|a| {
            let (label, name) = a.split_once('=').ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{a:?}: write LABEL=NAME, e.g. \"Speaker 1=Daniel Okafor\""
                ))
            })?;
            let name = name.trim();
            Ok((
                label.trim().to_string(),
                (!name.is_empty()).then(|| name.to_string()),
            ))
        })
        .collect()
}

/// Applies `changes` to the call `call_id` as `user` (who must be able to see the call: its
/// rep, a manager of its region, an admin).
pub async fn relabel(
    db: &Db,
    user: &User,
    call_id: &str,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<Relabelled> {
    let call = records::get_scoped(db, user, call_id).await?;
    let mut t = records::transcript(db, &call).await?.ok_or_else(|| {
        Error::Conflict(format!(
            "call {call_id} has no transcript yet (status {}): relabel once it is transcribed",
            call.status
        ))
    })?;
    let before = t.speakers.clone();
    apply(&mut t, changes)?;

    let now = now_ms();
    let mut tx = db.begin().await?;
    // A new `created_at` is the transcript's new revision: the call search index re-reads it.
    sqlx::query(
        "UPDATE transcripts SET segments = $1, speakers = $2, created_at = $3 WHERE call_id = $4",
    )
    .bind(serde_json::to_string(&t.segments).expect("segments serialize"))
    .bind(serde_json::to_string(&t.speakers).expect("speakers serialize"))
    .bind(now)
    .bind(&call.id)
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query("SELECT id, kind, body FROM insights WHERE call_id = $1")
        .bind(&call.id)
        .fetch_all(&mut *tx)
        .await?;
    let (mut commitments, mut objections, mut removed) = (0u32, 0u32, 0u32);
    for row in rows {
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let body: String = row.try_get("body")?;
        let bad = |e: serde_json::Error| Error::Internal(format!("stored insight {id}: {e}"));
        let new_body = if kind == "commitment" {
            let mut c: Commitment = serde_json::from_str(&body).map_err(bad)?;
            let Some((owner, side)) = speaker_at(&t, c.turn) else {
                continue;
            };
            if (c.owner.as_str(), c.side) == (owner.as_str(), side) {
                continue;
            }
            (c.owner, c.side, c.needs_relabel) = (owner, side, side.is_none());
            sqlx::query(
                "UPDATE tasks SET owner = $1, side = $2, updated_at = $3 WHERE insight_id = $4",
            )
            .bind(&c.owner)
            .bind(side_name(c.side))
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            commitments += 1;
            serde_json::to_string(&c).expect("commitment serializes")
        } else {
            let mut o: Objection = serde_json::from_str(&body).map_err(bad)?;
            let Some((raiser, side)) = speaker_at(&t, o.turn) else {
                continue;
            };
            if side == Some(Side::Seller) {
                sqlx::query("DELETE FROM insights WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                removed += 1;
                continue;
            }
            if o.raised_by == raiser {
                continue;
            }
            (o.raised_by, o.needs_relabel) = (raiser, side.is_none());
            objections += 1;
            serde_json::to_string(&o).expect("objection serializes")
        };
        sqlx::query("UPDATE insights SET body = $1 WHERE id = $2")
            .bind(&new_body)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        update_proposals(&mut tx, &call.id, &kind, &new_body, now).await?;
    }
    audit::append(
        &mut tx,
        NewEvent {
            actor_id: Some(&user.id),
            action: "call.speakers_relabelled",
            subject: format!("call:{}", call.id),
            before: Some(serde_json::json!(before)),
            after: Some(serde_json::json!(t.speakers)),
            details: Some(serde_json::json!({
                "commitments_reattributed": commitments,
                "objections_reattributed": objections,
                "objections_removed": removed,
            })),
            ..NewEvent::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Relabelled {
        speakers: t.speakers,
        insights: records::insights(db, &call.id).await?,
        objections_removed: removed,
    })
}

/// Re-attributes the still undecided recommendations of a re-attributed insight (`body`, of
/// `kind` commitment or objection), so a reviewer decides what the call page shows.
async fn update_proposals(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    call_id: &str,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<()> {
    let item: serde_json::Value = serde_json::from_str(body).expect("an insight body is JSON");
    let (Some(turn), Some(quote)) = (
        item.get("turn").and_then(serde_json::Value::as_u64),
        item.get("quote").and_then(serde_json::Value::as_str),
    ) else {
        return Ok(());
    };
    let kind = if kind == "commitment" {
        Kind::Commitment
    } else {
        Kind::ObjectionAnswer
    };
    let rows = sqlx::query(
        "SELECT id, output FROM recommendations WHERE subject_kind = 'call' \
         AND subject_id = $1 AND kind = $2 AND state = 'proposed'",
    )
    .bind(call_id)
    .bind(kind.as_str())
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let id: String = row.try_get("id")?;
        let output: String = row.try_get("output")?;
        let output: serde_json::Value = serde_json::from_str(&output)
            .map_err(|e| Error::Internal(format!("recommendation {id} output: {e}")))?;
        if records::is_output_of(&output, turn as u32, quote) {
            sqlx::query("UPDATE recommendations SET output = $1, updated_at = $2 WHERE id = $3")
                .bind(body)
                .bind(now)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Checks and applies `changes` to the transcript's speaker map and segments.
fn apply(t: &mut CallTranscript, changes: &BTreeMap<String, Option<String>>) -> Result<()> {
    if t.speakers.is_empty() {
        return Err(Error::InvalidInput(
            "this call has no diarized speaker labels (it was imported, or recorded with one \
             party per channel): there is nothing to relabel"
                .into(),
        ));
    }
    if changes.is_empty() {
        return Err(Error::InvalidInput(
            "no labels given: send {\"Speaker 1\": \"<participant name>\", ...}".into(),
        ));
    }
    let labels = || t.speakers.keys().cloned().collect::<Vec<_>>().join(", ");
    let names = || {
        t.participants
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut resolved = Vec::new();
    for (label, name) in changes {
        let Some(key) = t
            .speakers
            .keys()
            .find(|k| super::transcript::same_name(k, label))
            .cloned()
        else {
            return Err(Error::InvalidInput(format!(
                "{label:?} is not a speaker label of this call; its labels are: {}",
                labels()
            )));
        };
        let name = match name {
            Some(n) => Some(
                t.participant(n)
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "{n:?} is not a participant of this call; its participants are: {}",
                            names()
                        ))
                    })?
                    .name
                    .clone(),
            ),
            None => None,
        };
        resolved.push((key, name));
    }
    for (key, name) in resolved {
        t.speakers.insert(key, name);
    }
    t.apply_speakers();
    t.validate()
}

/// The speaker of the segment with id `turn`.
fn speaker_at(t: &CallTranscript, turn: u32) -> Option<(String, Option<Side>)> {
    t.segments
        .iter()
        .find(|s| s.id == turn)
        .and_then(|s| t.speaker_of(s))
}

#[cfg(test)]
mod tests;
