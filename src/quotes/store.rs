//! The quote recommender's tables: deals with their outcomes (`deals`) and the versioned
//! fitted models (`quote_models`).

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::deals::{Followed, NewDeal, OutcomeUpdate, check_date, resolve_discount};
use super::model::QuoteModel;
use super::recommend::{DealInput, PastDeal};
use crate::error::{Error, Result};
use crate::review::{self, Kind, Subject};
use crate::store::{Db, new_id, now_ms};

/// A recorded deal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deal {
    pub id: String,
    pub external_id: Option<String>,
    pub region: Option<String>,
    pub segment: Option<String>,
    #[schema(value_type = Object)]
    pub features: Map<String, Value>,
    pub list_price: Option<f64>,
    pub quoted_price: Option<f64>,
    pub discount: Option<f64>,
    pub cost: Option<f64>,
    /// won | lost; absent while open.
    pub outcome: Option<String>,
    pub close_date: Option<String>,
    pub followed_recommendation: Option<String>,
    pub created_at: i64,
}

const DEAL_COLUMNS: &str = "id, external_id, region, segment, features, list_price, quoted_price, \
     discount, cost, outcome, close_date, followed_recommendation, created_at";

fn deal_from_row(row: &AnyRow) -> Result<Deal> {
    let features: String = row.try_get("features")?;
    Ok(Deal {
        id: row.try_get("id")?,
        external_id: row.try_get("external_id")?,
        region: row.try_get("region")?,
        segment: row.try_get("segment")?,
        features: serde_json::from_str(&features)
            .map_err(|e| Error::Internal(format!("deal features are not JSON: {e}")))?,
        list_price: row.try_get("list_price")?,
        quoted_price: row.try_get("quoted_price")?,
        discount: row.try_get("discount")?,
        cost: row.try_get("cost")?,
        outcome: row.try_get("outcome")?,
        close_date: row.try_get("close_date")?,
        followed_recommendation: row.try_get("followed_recommendation")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts one checked deal inside `tx` and returns its id.
pub async fn insert_deal(
    tx: &mut Transaction<'static, Any>,
    owner: Option<&str>,
    default_region: &str,
    deal: &NewDeal,
) -> Result<String> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO deals (id, owner_id, region, segment, features, list_price, quoted_price, \
         discount, outcome, close_date, followed_recommendation, created_at, updated_at, \
         external_id, cost) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
    )
    .bind(&id)
    .bind(owner)
    .bind(deal.region.as_deref().unwrap_or(default_region))
    .bind(deal.segment.as_deref())
    .bind(Value::Object(deal.features.clone()).to_string())
    .bind(deal.list_price)
    .bind(deal.quoted_price)
    .bind(deal.discount)
    .bind(deal.outcome.map(|o| o.as_str()))
    .bind(deal.close_date.as_deref())
    .bind(deal.followed_recommendation.map(|f| f.as_str()))
    .bind(now)
    .bind(deal.external_id.as_deref())
    .bind(deal.cost)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Inserts checked deals in one transaction: all of them or none.
pub async fn insert_deals(
    db: &Db,
    owner: Option<&str>,
    default_region: &str,
    deals: &[NewDeal],
) -> Result<Vec<String>> {
    let mut tx = db.begin().await?;
    let mut ids = Vec::with_capacity(deals.len());
    for deal in deals {
        ids.push(insert_deal(&mut tx, owner, default_region, deal).await?);
    }
    tx.commit().await?;
    Ok(ids)
}

/// One deal; `region` limits it to a region (a non-admin caller's scope).
pub async fn get_deal(db: &Db, id: &str, region: Option<&str>) -> Result<Deal> {
    let row = sqlx::query(&format!("SELECT {DEAL_COLUMNS} FROM deals WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let deal = row.as_ref().map(deal_from_row).transpose()?;
    match deal {
        Some(d) if region.is_none() || d.region.as_deref() == region => Ok(d),
        _ => Err(Error::NotFound(format!(
            "no deal {id} in your scope; check the id, or record the deal with POST /deals"
        ))),
    }
}

/// Records the outcome of an open deal.
pub async fn record_outcome(
    db: &Db,
    id: &str,
    region: Option<&str>,
    update: &OutcomeUpdate,
) -> Result<Deal> {
    let deal = get_deal(db, id, region).await?;
    if let Some(outcome) = &deal.outcome {
        return Err(Error::Conflict(format!(
            "deal {id} is already closed as {outcome}; outcomes are recorded once"
        )));
    }
    check_date(update.close_date.as_deref())?;
    let quoted = update.quoted_price.or(deal.quoted_price);
    let discount = resolve_discount(
        deal.list_price,
        quoted,
        update.discount.or(if update.quoted_price.is_some() {
            None
        } else {
            deal.discount
        }),
    )?;
    // Unless the caller says otherwise, whether the quote followed the model is what the
    // reviewer decided on the deal's quote recommendation.
    let reviewed = review::latest_decision(db, Kind::Quote, Subject::Deal, id)
        .await?
        .and_then(|state| match state.as_str() {
            "approved" => Some(Followed::Followed.as_str()),
            "overridden" => Some(Followed::Overrode.as_str()),
            _ => None,
        });
    let updated = sqlx::query(
        "UPDATE deals SET outcome = $1, quoted_price = $2, discount = $3, close_date = $4, \
         followed_recommendation = $5, updated_at = $6 WHERE id = $7 AND outcome IS NULL",
    )
    .bind(update.outcome.as_str())
    .bind(quoted)
    .bind(discount)
    .bind(update.close_date.as_deref())
    .bind(
        update
            .followed_recommendation
            .map(|f| f.as_str())
            .or(deal.followed_recommendation.as_deref())
            .or(reviewed),
    )
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::Conflict(format!("deal {id} was closed meanwhile")));
    }
    get_deal(db, id, None).await
}

/// Every closed deal, oldest first, as training data.
pub async fn closed_deals(db: &Db) -> Result<Vec<PastDeal>> {
    closed_deals_since(db, i64::MIN).await
}

/// Deals whose outcome was recorded after `since_ms`.
pub async fn closed_deals_since(db: &Db, since_ms: i64) -> Result<Vec<PastDeal>> {
    let rows = sqlx::query(&format!(
        "SELECT {DEAL_COLUMNS} FROM deals WHERE outcome IS NOT NULL AND updated_at > $1 \
         ORDER BY id"
    ))
    .bind(since_ms)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let d = deal_from_row(row)?;
            Ok(PastDeal {
                won: d.outcome.as_deref() == Some("won"),
                discount: d.discount,
                input: DealInput {
                    deal_id: Some(d.id.clone()),
                    region: d.region,
                    segment: d.segment,
                    list_price: d.list_price.unwrap_or(0.0),
                    cost: d.cost,
                    features: d.features,
                },
                id: d.id,
            })
        })
        .collect()
}

/// Closed deals recorded after `since_ms`.
pub async fn outcomes_since(db: &Db, since_ms: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM deals WHERE outcome IS NOT NULL AND updated_at > $1",
    )
    .bind(since_ms)
    .fetch_one(db.pool())
    .await?)
}

/// The sha256 of the training data: every outcome with its context, in id order.
pub fn training_hash(past: &[PastDeal]) -> String {
    let mut h = Sha256::new();
    for d in past {
        let line = serde_json::json!([d.id, d.won, d.discount, d.input]);
        h.update(line.to_string().as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// A stored model's identity and validation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub id: String,
    pub version: i64,
    /// fit (penalty and calibration selected by validation) or refit (warm update).
    pub kind: String,
    pub training_sha256: String,
    pub rows: i64,
    pub has_price: bool,
    #[schema(value_type = Object)]
    pub metrics: Value,
    pub created_at: i64,
}

/// Stores a fitted model as the next version.
pub async fn save_model(
    db: &Db,
    model: &QuoteModel,
    kind: &str,
    training_sha256: &str,
    created_by: Option<&str>,
) -> Result<ModelInfo> {
    let mut tx = db.begin().await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM quote_models")
        .fetch_one(&mut *tx)
        .await?;
    let mut metrics = serde_json::to_value(&model.validation).expect("validation serializes");
    if let Some(note) = &model.note {
        metrics["note"] = note.clone().into();
    }
    let info = ModelInfo {
        id: new_id(),
        version: last.unwrap_or(0) + 1,
        kind: kind.to_string(),
        training_sha256: training_sha256.to_string(),
        rows: model.validation.rows as i64,
        has_price: model.price.is_some(),
        metrics,
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO quote_models (id, version, kind, training_sha256, rows, has_price, metrics, \
         model, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&info.id)
    .bind(info.version)
    .bind(kind)
    .bind(training_sha256)
    .bind(info.rows)
    .bind(i64::from(info.has_price))
    .bind(info.metrics.to_string())
    .bind(serde_json::to_string(model).expect("model serializes"))
    .bind(created_by)
    .bind(info.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(info)
}

/// The newest model.
pub async fn latest_model(db: &Db) -> Result<Option<(ModelInfo, QuoteModel)>> {
    let row = sqlx::query(
        "SELECT id, version, kind, training_sha256, rows, has_price, metrics, model, created_at \
         FROM quote_models ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let metrics: String = row.try_get("metrics")?;
    let model: String = row.try_get("model")?;
    let has_price: i64 = row.try_get("has_price")?;
    let info = ModelInfo {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        kind: row.try_get("kind")?,
        training_sha256: row.try_get("training_sha256")?,
        rows: row.try_get("rows")?,
        has_price: has_price != 0,
        metrics: serde_json::from_str(&metrics).unwrap_or(Value::Null),
        created_at: row.try_get("created_at")?,
    };
    let model: QuoteModel = serde_json::from_str(&model).map_err(|e| {
        Error::Internal(format!("stored quote model {} is unreadable: {e}", info.id))
    })?;
    Ok(Some((info, model)))
}
