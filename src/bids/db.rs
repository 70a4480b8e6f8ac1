//! The bids' rows in the database: the source of truth the index is built from.

use std::collections::HashMap;

use sqlx::{Any, Transaction};

use super::record::{Bid, Outcome};
use crate::error::{Error, Result};
use crate::store::{Db, changes, new_id, now_ms};

/// The bids' name in the change log (`store::changes`), which keeps every process's index
/// current.
pub const CHANGE_ENTITY: &str = "bid";

/// A bid as stored, with its revision and times.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StoredBid {
    pub bid: Bid,
    pub rev: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Inserts or updates `bid` in `tx`; returns its new revision, or None when the stored
/// document is already identical (a re-import changes nothing).
pub async fn upsert(tx: &mut Transaction<'_, Any>, bid: &Bid, now: i64) -> Result<Option<i64>> {
    let doc = serde_json::to_string(bid).expect("a bid serializes");
    let rev: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO bids (id, title, buyer, sector, region, language, outcome, submitted_on, \
         value, currency, document, created_at, updated_at, rev) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1) \
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, buyer = excluded.buyer, \
         sector = excluded.sector, region = excluded.region, language = excluded.language, \
         outcome = excluded.outcome, submitted_on = excluded.submitted_on, \
         value = excluded.value, currency = excluded.currency, document = excluded.document, \
         updated_at = excluded.updated_at, rev = bids.rev + 1 \
         WHERE bids.document <> excluded.document \
         RETURNING rev",
    )
    .bind(&bid.id)
    .bind(&bid.title)
    .bind(&bid.buyer)
    .bind(&bid.sector)
    .bind(&bid.region)
    .bind(bid.language.as_str())
    .bind(bid.outcome.as_str())
    .bind(bid.submitted_date.as_deref())
    .bind(bid.value)
    .bind(bid.currency.as_deref())
    .bind(doc)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let rev = rev.map(|(r,)| r);
    if rev.is_some() {
        changes::record(tx, CHANGE_ENTITY, &bid.id, rev, now).await?;
    }
    Ok(rev)
}

type Row = (String, i64, i64, i64);

fn stored(row: Row) -> Result<StoredBid> {
    let (doc, rev, created_at, updated_at) = row;
    let bid = serde_json::from_str(&doc)
        .map_err(|e| Error::Internal(format!("a stored bid document is unreadable: {e}")))?;
    Ok(StoredBid {
        bid,
        rev,
        created_at,
        updated_at,
    })
}

/// The bid with `id`.
pub async fn get(db: &Db, id: &str) -> Result<StoredBid> {
    let row: Option<Row> =
        sqlx::query_as("SELECT document, rev, created_at, updated_at FROM bids WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    stored(row.ok_or_else(|| {
        Error::NotFound(format!(
            "no bid {id:?}; import it with POST /bids or `dealdesk bids import`"
        ))
    })?)
}

/// Up to `limit` bids with ids after `after`, in id order (for rebuilding the index).
pub async fn page(db: &Db, after: &str, limit: i64) -> Result<Vec<StoredBid>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT document, rev, created_at, updated_at FROM bids WHERE id > $1 \
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(stored).collect()
}

/// The revision of every bid, by id.
pub async fn revisions(db: &Db) -> Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, rev FROM bids")
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().collect())
}

/// Records a new outcome (and feedback, when given) for bid `id` and logs it.
pub async fn set_outcome(
    db: &Db,
    id: &str,
    outcome: Outcome,
    feedback: Option<&str>,
    actor: Option<&str>,
) -> Result<StoredBid> {
    let mut tx = db.begin().await?;
    let row: Option<(String,)> = sqlx::query_as("SELECT document FROM bids WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let (doc,) = row.ok_or_else(|| Error::NotFound(format!("no bid {id:?}")))?;
    let mut bid: Bid = serde_json::from_str(&doc)
        .map_err(|e| Error::Internal(format!("a stored bid document is unreadable: {e}")))?;
    bid.outcome = outcome;
    if let Some(feedback) = feedback {
        bid.feedback = feedback.to_string();
    }
    let now = now_ms();
    upsert(&mut tx, &bid, now).await?;
    sqlx::query(
        "INSERT INTO bid_outcomes (id, bid_id, outcome, feedback, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(id)
    .bind(outcome.as_str())
    .bind(feedback)
    .bind(actor)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    get(db, id).await
}

/// Deletes bid `id` (and its outcome log).
pub async fn delete(db: &Db, id: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM bid_outcomes WHERE bid_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM bids WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("no bid {id:?}")));
    }
    changes::record(&mut tx, CHANGE_ENTITY, id, None, now_ms()).await?;
    tx.commit().await?;
    Ok(())
}
