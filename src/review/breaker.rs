//! The circuit breaker: a recommendation kind whose AI outputs misbehave is switched to manual
//! review (every item needs a manager) until an admin resets it.
//!
//! Capabilities report each checked output with [`observe`] (did it pass schema validation
//! and grounding?) and the quote model reports its calibration on recent outcomes with
//! [`observe_calibration`]; the breaker trips inside the same transaction.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::json;
use sqlx::AnyConnection;

use super::Kind;
use super::audit::{self, NewEvent};
use super::rules::Rules;
use crate::error::{Error, Result};
use crate::store::{Db, new_id, now_ms};

/// A kind switched to manual.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Tripped {
    pub kind: Kind,
    pub tripped_at: i64,
    pub reason: String,
}

/// Every kind currently switched to manual.
pub async fn tripped(db: &Db) -> Result<Vec<Tripped>> {
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT kind, tripped_at, reason FROM review_breakers ORDER BY kind")
            .fetch_all(db.pool())
            .await?;
    rows.into_iter()
        .map(|(kind, tripped_at, reason)| {
            Ok(Tripped {
                kind: Kind::parse(&kind)?,
                tripped_at,
                reason,
            })
        })
        .collect()
}

pub(super) async fn tripped_kinds(db: &Db) -> Result<HashSet<Kind>> {
    Ok(tripped(db).await?.into_iter().map(|t| t.kind).collect())
}

/// Records checked outputs of `kind` (`passed` of them passed, `failed` did not) and trips the
/// breaker when, over the last `window` outputs, the failure rate exceeds the rules' bound.
/// Returns whether the kind is (now) switched to manual.
pub async fn observe(
    conn: &mut AnyConnection,
    rules: &Rules,
    kind: Kind,
    passed: usize,
    failed: usize,
) -> Result<bool> {
    let now = now_ms();
    for ok in std::iter::repeat_n(1_i64, passed).chain(std::iter::repeat_n(0, failed)) {
        sqlx::query("INSERT INTO ai_output_checks (id, kind, passed, at) VALUES ($1, $2, $3, $4)")
            .bind(new_id())
            .bind(kind.as_str())
            .bind(ok)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    let window = rules.breaker.window;
    let recent: Vec<i64> = sqlx::query_scalar(
        "SELECT passed FROM ai_output_checks WHERE kind = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(kind.as_str())
    .bind(window as i64)
    .fetch_all(&mut *conn)
    .await?;
    if recent.len() < window {
        return is_tripped(conn, kind).await;
    }
    let failures = recent.iter().filter(|&&p| p == 0).count();
    let rate = failures as f64 / recent.len() as f64;
    if rate > rules.breaker.max_failure_rate {
        trip(
            conn,
            kind,
            &format!(
                "{failures} of the last {window} outputs failed validation or grounding \
                 ({:.0}% > {:.0}%)",
                rate * 100.0,
                rules.breaker.max_failure_rate * 100.0
            ),
        )
        .await?;
    }
    is_tripped(conn, kind).await
}

/// Trips the quote kind when the model's calibration error on recent outcomes exceeds the
/// rules' bound. Returns whether quotes are (now) manual.
pub async fn observe_calibration(
    conn: &mut AnyConnection,
    rules: &Rules,
    ece: f64,
) -> Result<bool> {
    if ece > rules.breaker.max_quote_ece {
        trip(
            conn,
            Kind::Quote,
            &format!(
                "the quote model's calibration error on recent outcomes is {ece:.3} (> {:.3})",
                rules.breaker.max_quote_ece
            ),
        )
        .await?;
    }
    is_tripped(conn, Kind::Quote).await
}

async fn is_tripped(conn: &mut AnyConnection, kind: Kind) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT kind FROM review_breakers WHERE kind = $1")
            .bind(kind.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

async fn trip(conn: &mut AnyConnection, kind: Kind, reason: &str) -> Result<()> {
    if is_tripped(conn, kind).await? {
        return Ok(());
    }
    sqlx::query("INSERT INTO review_breakers (kind, tripped_at, reason) VALUES ($1, $2, $3)")
        .bind(kind.as_str())
        .bind(now_ms())
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    tracing::warn!(
        kind = kind.as_str(),
        reason,
        "review breaker tripped: switched to manual"
    );
    audit::append(
        conn,
        NewEvent {
            action: "breaker.tripped",
            subject: format!("kind:{}", kind.as_str()),
            details: Some(json!({"reason": reason})),
            ..NewEvent::default()
        },
    )
    .await?;
    Ok(())
}

/// Re-enables a kind (admins only; the HTTP and CLI layers check the role). The failure
/// history of the kind is cleared so the breaker judges fresh outputs only.
pub async fn reset(db: &Db, actor_id: Option<&str>, kind: Kind) -> Result<()> {
    let mut tx = db.begin().await?;
    let removed = sqlx::query("DELETE FROM review_breakers WHERE kind = $1")
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(Error::NotFound(format!(
            "{} is not switched to manual; nothing to reset",
            kind.as_str()
        )));
    }
    sqlx::query("DELETE FROM ai_output_checks WHERE kind = $1")
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        NewEvent {
            actor_id,
            action: "breaker.reset",
            subject: format!("kind:{}", kind.as_str()),
            ..NewEvent::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
