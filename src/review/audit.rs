//! The audit trail: append-only events in a hash chain.
//!
//! Each event's hash covers its own fields and the previous event's hash, so editing or
//! deleting any stored event breaks every hash after it; [`verify`] recomputes the chain and
//! names the first event that does not match. Appends lock the one-row `audit_head` table
//! first, which serializes concurrent writers on SQLite and PostgreSQL alike.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::error::{Error, Result};
use crate::store::{Db, new_id, now_ms};

/// What happened, to be appended.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    /// The user who acted; `None` for the system (the AI proposing, the rules deciding).
    pub actor_id: Option<&'a str>,
    /// A dotted verb, e.g. `recommendation.approved`.
    pub action: &'a str,
    /// What it happened to, as `kind:id` (e.g. `call:0193…`).
    pub subject: String,
    pub recommendation_id: Option<&'a str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Model and prompt versions, reasons: whatever explains the event.
    pub details: Option<Value>,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<String>,
    pub action: String,
    pub subject: String,
    pub recommendation_id: Option<String>,
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    #[schema(value_type = Option<Object>)]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    pub prev_sha256: String,
    pub sha256: String,
}

/// Appends an event inside the caller's transaction and returns its sequence number.
pub async fn append(conn: &mut AnyConnection, event: NewEvent<'_>) -> Result<i64> {
    // Taking the head row's write lock before reading it makes the read-then-write atomic.
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    let head = sqlx::query("SELECT seq, sha256 FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    let prev_seq: i64 = head.try_get("seq")?;
    let prev_sha256: String = head.try_get("sha256")?;
    let mut stored = Event {
        id: new_id(),
        seq: prev_seq + 1,
        at: now_ms(),
        actor_id: event.actor_id.map(str::to_string),
        action: event.action.to_string(),
        subject: event.subject,
        recommendation_id: event.recommendation_id.map(str::to_string),
        before: event.before,
        after: event.after,
        details: event.details,
        prev_sha256,
        sha256: String::new(),
    };
    stored.sha256 = chain_hash(&stored);
    sqlx::query(
        "INSERT INTO audit_events (id, seq, at, actor_id, action, subject, recommendation_id, \
         before_state, after_state, details, prev_sha256, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&stored.id)
    .bind(stored.seq)
    .bind(stored.at)
    .bind(stored.actor_id.as_deref())
    .bind(&stored.action)
    .bind(&stored.subject)
    .bind(stored.recommendation_id.as_deref())
    .bind(stored.before.as_ref().map(Value::to_string))
    .bind(stored.after.as_ref().map(Value::to_string))
    .bind(stored.details.as_ref().map(Value::to_string))
    .bind(&stored.prev_sha256)
    .bind(&stored.sha256)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET seq = $1, sha256 = $2 WHERE id = 1")
        .bind(stored.seq)
        .bind(&stored.sha256)
        .execute(&mut *conn)
        .await?;
    Ok(stored.seq)
}

/// The hash of an event: sha256 over its fields, each length-prefixed so no two different
/// events serialize alike, ending with the previous event's hash.
fn chain_hash(event: &Event) -> String {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let fields: [Option<String>; 11] = [
        Some(event.id.clone()),
        Some(event.seq.to_string()),
        Some(event.at.to_string()),
        event.actor_id.clone(),
        Some(event.action.clone()),
        Some(event.subject.clone()),
        event.recommendation_id.clone(),
        json(&event.before),
        json(&event.after),
        json(&event.details),
        Some(event.prev_sha256.clone()),
    ];
    let mut hasher = Sha256::new();
    for field in fields {
        match field {
            None => hasher.update(b"-"),
            Some(text) => {
                hasher.update(text.len().to_string().as_bytes());
                hasher.update(b":");
                hasher.update(text.as_bytes());
            }
        }
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<Event> {
    let json = |column: &str| -> Result<Option<Value>> {
        let text: Option<String> = row.try_get(column)?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| Error::Internal(format!("audit column {column} is not JSON: {e}")))
        })
        .transpose()
    };
    Ok(Event {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor_id: row.try_get("actor_id")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        recommendation_id: row.try_get("recommendation_id")?,
        before: json("before_state")?,
        after: json("after_state")?,
        details: json("details")?,
        prev_sha256: row.try_get("prev_sha256")?,
        sha256: row.try_get("sha256")?,
    })
}

/// Events about one subject (`kind:id`) or one recommendation, oldest first.
pub async fn list(db: &Db, subject: Option<&str>, limit: i64) -> Result<Vec<Event>> {
    let rows = match subject {
        Some(subject) => {
            sqlx::query(
                "SELECT * FROM audit_events WHERE subject = $1 OR recommendation_id = $1 \
                 ORDER BY seq LIMIT $2",
            )
            .bind(subject)
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query("SELECT * FROM audit_events ORDER BY seq DESC LIMIT $1")
                .bind(limit)
                .fetch_all(db.pool())
                .await?
        }
    };
    rows.iter().map(event_from_row).collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Verification {
    pub events: i64,
    /// The first event whose stored hash, link or sequence does not match; `None` when intact.
    pub first_broken: Option<Broken>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Broken {
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// Recomputes the whole chain in order, streaming in pages so memory stays flat.
pub async fn verify(db: &Db) -> Result<Verification> {
    const PAGE: i64 = 1000;
    let mut expected_seq = 1;
    let mut prev = "0".repeat(64);
    loop {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .bind(expected_seq)
            .bind(PAGE)
            .fetch_all(db.pool())
            .await?;
        for row in &rows {
            let event = event_from_row(row)?;
            let reason = if event.seq != expected_seq {
                Some(format!("event {expected_seq} is missing"))
            } else if event.prev_sha256 != prev {
                Some("its link to the previous event does not match".to_string())
            } else if chain_hash(&event) != event.sha256 {
                Some("its content does not match its hash (edited after it was written)".into())
            } else {
                None
            };
            if let Some(reason) = reason {
                return Ok(Verification {
                    events: expected_seq - 1,
                    first_broken: Some(Broken {
                        seq: event.seq,
                        id: event.id,
                        reason,
                    }),
                });
            }
            prev = event.sha256;
            expected_seq += 1;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    // Deleting the newest events leaves a consistent prefix; the head remembers the end.
    let head: (i64, String) = sqlx::query_as("SELECT seq, sha256 FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    let first_broken = (head.0 != expected_seq - 1 || head.1 != prev).then(|| Broken {
        seq: expected_seq,
        id: String::new(),
        reason: format!(
            "the chain ends at event {} but the head records event {}: events were deleted",
            expected_seq - 1,
            head.0
        ),
    });
    Ok(Verification {
        events: expected_seq - 1,
        first_broken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn append_n(db: &Db, n: usize) {
        for i in 0..n {
            let mut tx = db.begin().await.unwrap();
            append(
                &mut tx,
                NewEvent {
                    actor_id: Some("user-1"),
                    action: "recommendation.approved",
                    subject: format!("deal:{i}"),
                    after: Some(json!({"state": "approved"})),
                    ..NewEvent::default()
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_untouched_chain_verifies() {
        let (_dir, db) = crate::store::temp_db().await;
        append_n(&db, 5).await;
        let report = verify(&db).await.unwrap();
        assert_eq!(report.events, 5);
        assert_eq!(report.first_broken, None);
        assert_eq!(list(&db, Some("deal:3"), 10).await.unwrap().len(), 1);
    }

    /// Prices in a quote's output are floats whose shortest form has 17 digits; read back from
    /// the database they must hash the same (serde_json's exact float parsing).
    #[tokio::test]
    async fn floats_read_back_hash_the_same() {
        let (_dir, db) = crate::store::temp_db().await;
        let mut tx = db.begin().await.unwrap();
        append(
            &mut tx,
            NewEvent {
                action: "recommendation.proposed",
                subject: "deal:1".into(),
                after: Some(json!({"price": 13412.279999999999, "p": 0.5906383191479829})),
                ..NewEvent::default()
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(verify(&db).await.unwrap().first_broken, None);
    }

    #[tokio::test]
    async fn editing_a_row_directly_breaks_the_chain_at_that_row() {
        let (_dir, db) = crate::store::temp_db().await;
        append_n(&db, 5).await;
        sqlx::query(
            "UPDATE audit_events SET after_state = '{\"state\":\"rejected\"}' WHERE seq = 3",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let broken = verify(&db).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("edited"), "{}", broken.reason);
    }

    #[tokio::test]
    async fn deleting_rows_is_detected() {
        let (_dir, db) = crate::store::temp_db().await;
        append_n(&db, 4).await;
        sqlx::query("DELETE FROM audit_events WHERE seq = 2")
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(verify(&db).await.unwrap().first_broken.unwrap().seq, 3);
        sqlx::query("DELETE FROM audit_events WHERE seq >= 3")
            .execute(db.pool())
            .await
            .unwrap();
        let broken = verify(&db).await.unwrap().first_broken.unwrap();
        assert!(broken.reason.contains("deleted"), "{}", broken.reason);
    }

    #[tokio::test]
    async fn concurrent_appends_form_one_chain() {
        let (_dir, db) = crate::store::temp_db().await;
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { append_n(&db, 5).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let report = verify(&db).await.unwrap();
        assert_eq!((report.events, report.first_broken), (20, None));
    }
}
