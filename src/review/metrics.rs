//! Numbers that say whether the AI helps: per recommendation kind, how often people accept,
//! override or reject it and how long review takes; for quotes, how deals went when the
//! recommendation was followed versus overridden.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::Kind;
use crate::error::Result;
use crate::store::Db;

/// Review statistics of one recommendation kind over a period.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct KindStats {
    pub kind: String,
    pub proposed: i64,
    /// Approved by a person.
    pub approved: i64,
    /// Approved by the rules.
    pub auto_approved: i64,
    pub overridden: i64,
    pub rejected: i64,
    /// Still waiting.
    pub pending: i64,
    pub escalated: i64,
    /// (approved + auto-approved) / decided.
    pub acceptance_rate: Option<f64>,
    /// overridden / decided.
    pub override_rate: Option<f64>,
    /// Mean and median hours from proposal to a person's decision.
    pub mean_review_hours: Option<f64>,
    pub median_review_hours: Option<f64>,
}

/// Closed deals of one group (quotes that followed or overrode the recommendation).
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DealOutcomes {
    pub deals: i64,
    pub won: i64,
    pub win_rate: Option<f64>,
    pub mean_discount: Option<f64>,
    /// Sum over won deals of quoted price − cost, where both are known.
    pub won_margin: f64,
    pub won_value: f64,
}

/// The AI's track record over a period, within a scope.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AiMetrics {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The region these numbers cover; `None`: every region.
    pub region: Option<String>,
    pub kinds: Vec<KindStats>,
    /// Deals closed in the period whose quote followed the recommendation.
    pub quotes_followed: DealOutcomes,
    /// Deals closed in the period whose quote overrode it.
    pub quotes_overridden: DealOutcomes,
    /// Open and overdue commitments (tasks from calls) per rep, now.
    pub commitments: Vec<RepCommitments>,
}

/// A rep's commitment tasks.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RepCommitments {
    pub rep_id: String,
    pub rep_name: String,
    pub open: i64,
    /// Open with a due date before today (UTC).
    pub overdue: i64,
}

/// Today in UTC as `YYYY-MM-DD` (task due dates are calendar dates).
pub fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

/// Open and overdue commitment tasks per rep, in `region` or everywhere.
pub async fn commitments(db: &Db, region: Option<&str>) -> Result<Vec<RepCommitments>> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT u.id, u.name, COUNT(*), \
         COALESCE(SUM(CASE WHEN t.due_date IS NOT NULL AND t.due_date < $1 THEN 1 ELSE 0 END), 0) \
         FROM tasks t JOIN calls c ON c.id = t.call_id JOIN users u ON u.id = c.owner_id \
         WHERE t.status = 'open' AND ($2 IS NULL OR c.region = $2) \
         GROUP BY u.id, u.name ORDER BY u.name",
    )
    .bind(today())
    .bind(region)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(rep_id, rep_name, open, overdue)| RepCommitments {
            rep_id,
            rep_name,
            open,
            overdue,
        })
        .collect())
}

/// Milliseconds at the start (00:00 UTC) of a `YYYY-MM-DD` date; `what` names the argument in
/// the error.
pub fn date_ms(date: &str, what: &str) -> Result<i64> {
    let parsed: jiff::civil::Date = date.parse().map_err(|e| {
        crate::Error::InvalidInput(format!("{what} {date:?} is not a date YYYY-MM-DD ({e})"))
    })?;
    let zoned = parsed
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| crate::Error::InvalidInput(format!("{what} {date:?}: {e}")))?;
    Ok(zoned.timestamp().as_millisecond())
}

/// Metrics of recommendations created in `[from_ms, to_ms)` (and deals closed then), in
/// `region` or everywhere.
pub async fn ai_metrics(
    db: &Db,
    region: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<AiMetrics> {
    let rows = sqlx::query(
        "SELECT kind, state, decided_by, decided_at, escalated_at, created_at \
         FROM recommendations WHERE created_at >= $1 AND created_at < $2 \
         AND ($3 IS NULL OR region = $3)",
    )
    .bind(from_ms)
    .bind(to_ms)
    .bind(region)
    .fetch_all(db.pool())
    .await?;
    let mut stats: BTreeMap<String, KindStats> = Kind::ALL
        .iter()
        .map(|k| {
            let name = k.as_str().to_string();
            (
                name.clone(),
                KindStats {
                    kind: name,
                    ..KindStats::default()
                },
            )
        })
        .collect();
    let mut review_hours: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let state: String = row.try_get("state")?;
        let decided_by: Option<String> = row.try_get("decided_by")?;
        let decided_at: Option<i64> = row.try_get("decided_at")?;
        let escalated_at: Option<i64> = row.try_get("escalated_at")?;
        let created_at: i64 = row.try_get("created_at")?;
        let s = stats.entry(kind.clone()).or_insert_with(|| KindStats {
            kind: kind.clone(),
            ..KindStats::default()
        });
        s.proposed += 1;
        s.escalated += i64::from(escalated_at.is_some());
        match (state.as_str(), decided_by.is_some()) {
            ("approved", false) => s.auto_approved += 1,
            ("approved", true) => s.approved += 1,
            ("overridden", _) => s.overridden += 1,
            ("rejected", _) => s.rejected += 1,
            _ => s.pending += 1,
        }
        if let (Some(_), Some(at)) = (decided_by, decided_at) {
            review_hours
                .entry(kind)
                .or_default()
                .push((at - created_at) as f64 / 3_600_000.0);
        }
    }
    for s in stats.values_mut() {
        let decided = s.approved + s.auto_approved + s.overridden + s.rejected;
        if decided > 0 {
            s.acceptance_rate = Some((s.approved + s.auto_approved) as f64 / decided as f64);
            s.override_rate = Some(s.overridden as f64 / decided as f64);
        }
        if let Some(hours) = review_hours.get_mut(&s.kind) {
            hours.sort_by(f64::total_cmp);
            s.mean_review_hours = Some(hours.iter().sum::<f64>() / hours.len() as f64);
            s.median_review_hours = Some(median(hours));
        }
    }
    Ok(AiMetrics {
        from_ms,
        to_ms,
        region: region.map(str::to_string),
        kinds: stats.into_values().collect(),
        quotes_followed: deal_outcomes(db, region, from_ms, to_ms, "followed").await?,
        quotes_overridden: deal_outcomes(db, region, from_ms, to_ms, "overrode").await?,
        commitments: commitments(db, region).await?,
    })
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

async fn deal_outcomes(
    db: &Db,
    region: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    followed: &str,
) -> Result<DealOutcomes> {
    let rows = sqlx::query(
        "SELECT outcome, discount, quoted_price, cost FROM deals \
         WHERE followed_recommendation = $1 AND outcome IN ('won', 'lost') \
         AND updated_at >= $2 AND updated_at < $3 AND ($4 IS NULL OR region = $4)",
    )
    .bind(followed)
    .bind(from_ms)
    .bind(to_ms)
    .bind(region)
    .fetch_all(db.pool())
    .await?;
    let mut out = DealOutcomes::default();
    let mut discounts = Vec::new();
    for row in &rows {
        let outcome: String = row.try_get("outcome")?;
        let discount: Option<f64> = row.try_get("discount")?;
        let quoted: Option<f64> = row.try_get("quoted_price")?;
        let cost: Option<f64> = row.try_get("cost")?;
        out.deals += 1;
        discounts.extend(discount);
        if outcome == "won" {
            out.won += 1;
            out.won_value += quoted.unwrap_or(0.0);
            if let (Some(q), Some(c)) = (quoted, cost) {
                out.won_margin += q - c;
            }
        }
    }
    if out.deals > 0 {
        out.win_rate = Some(out.won as f64 / out.deals as f64);
    }
    if !discounts.is_empty() {
        out.mean_discount = Some(discounts.iter().sum::<f64>() / discounts.len() as f64);
    }
    Ok(out)
}

/// The Prometheus text exposition of dealdesk's state, computed at scrape time from the
/// database: recommendations by kind and state, jobs by state, kinds switched to manual, and
/// the audit chain's length.
pub async fn exposition(db: &Db) -> Result<String> {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    type Labels = Vec<(String, String)>;
    let mut registry = Registry::with_prefix("dealdesk");

    let recommendations = Family::<Labels, Gauge>::default();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT kind, state, COUNT(*) FROM recommendations GROUP BY kind, state")
            .fetch_all(db.pool())
            .await?;
    for (kind, state, n) in rows {
        recommendations
            .get_or_create(&vec![("kind".into(), kind), ("state".into(), state)])
            .set(n);
    }
    registry.register(
        "recommendations",
        "AI recommendations by kind and review state",
        recommendations,
    );

    let jobs = Family::<Labels, Gauge>::default();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
            .fetch_all(db.pool())
            .await?;
    for (kind, state, n) in rows {
        jobs.get_or_create(&vec![("kind".into(), kind), ("state".into(), state)])
            .set(n);
    }
    registry.register("jobs", "Background jobs by kind and state", jobs);

    let manual = Family::<Labels, Gauge>::default();
    let tripped = super::breaker::tripped(db).await?;
    for kind in Kind::ALL {
        let on = tripped.iter().any(|t| t.kind == kind);
        manual
            .get_or_create(&vec![("kind".into(), kind.as_str().into())])
            .set(i64::from(on));
    }
    registry.register(
        "review_manual",
        "1 when the circuit breaker switched a recommendation kind to manual review",
        manual,
    );

    let audit_events = Gauge::<i64>::default();
    let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    audit_events.set(seq);
    registry.register("audit_events", "Events in the audit chain", audit_events);

    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::tests_support::{World, proposal, propose_one};
    use crate::review::{Decision, Rules, decide, triage};

    #[tokio::test]
    async fn acceptance_override_and_quote_outcomes_are_counted_in_scope() {
        let w = World::new().await;
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await);
        }
        propose_one(&w.db, &proposal(Kind::Commitment, &w.other_manager)).await;
        triage(&w.db, &Rules::builtin()).await.unwrap();
        let approve = Decision::Approve { note: None };
        decide(&w.db, &w.rep, &ids[0], &approve).await.unwrap();
        decide(&w.db, &w.rep, &ids[1], &approve).await.unwrap();
        let over = Decision::Override {
            replacement: serde_json::json!({"action": "send the quote"}),
            reason: "wrong owner".into(),
        };
        decide(&w.db, &w.manager, &ids[2], &over).await.unwrap();
        for (i, (followed, outcome, discount)) in [
            ("followed", "won", 0.10),
            ("followed", "won", 0.12),
            ("followed", "lost", 0.08),
            ("overrode", "lost", 0.25),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO deals (id, region, features, list_price, quoted_price, discount, \
                 outcome, followed_recommendation, created_at, updated_at) \
                 VALUES ($1, 'emea', '{}', 100, $2, $3, $4, $5, $6, $6)",
            )
            .bind(format!("d{i}"))
            .bind(100.0 * (1.0 - discount))
            .bind(discount)
            .bind(outcome)
            .bind(followed)
            .bind(crate::store::now_ms())
            .execute(w.db.pool())
            .await
            .unwrap();
        }
        let m = ai_metrics(&w.db, Some("emea"), 0, i64::MAX).await.unwrap();
        let c = m.kinds.iter().find(|k| k.kind == "commitment").unwrap();
        assert_eq!(
            (c.proposed, c.approved, c.overridden, c.pending),
            (4, 2, 1, 1)
        );
        assert_eq!(c.acceptance_rate, Some(2.0 / 3.0));
        assert_eq!(c.override_rate, Some(1.0 / 3.0));
        assert!(c.median_review_hours.unwrap() >= 0.0);
        assert_eq!(m.quotes_followed.deals, 3);
        assert_eq!(m.quotes_followed.win_rate, Some(2.0 / 3.0));
        assert_eq!(m.quotes_overridden.win_rate, Some(0.0));
        assert!((m.quotes_followed.won_value - 178.0).abs() < 1e-9);
        let everywhere = ai_metrics(&w.db, None, 0, i64::MAX).await.unwrap();
        let c = everywhere
            .kinds
            .iter()
            .find(|k| k.kind == "commitment")
            .unwrap();
        assert_eq!(c.proposed, 5);

        // Commitment tasks of the rep's call: one overdue, one due later, one done.
        sqlx::query(
            "INSERT INTO calls (id, owner_id, region, title, participants, status, created_at) \
             VALUES ('call-1', $1, 'emea', 'demo', '[]', 'done', 0)",
        )
        .bind(&w.rep.id)
        .execute(w.db.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO insights (id, call_id, kind, body, quote, created_at) \
             VALUES ('i-1', 'call-1', 'commitment', '{}', 'I will send it', 0)",
        )
        .execute(w.db.pool())
        .await
        .unwrap();
        for (id, due, status) in [
            ("t1", "2020-01-01", "open"),
            ("t2", "2999-01-01", "open"),
            ("t3", "2020-01-01", "done"),
        ] {
            sqlx::query(
                "INSERT INTO tasks (id, call_id, insight_id, owner, side, action, due_date, \
                 status, quote, created_at, updated_at) \
                 VALUES ($1, 'call-1', 'i-1', 'Rita', 'seller', 'send it', $2, $3, 'q', 0, 0)",
            )
            .bind(id)
            .bind(due)
            .bind(status)
            .execute(w.db.pool())
            .await
            .unwrap();
        }
        let m = ai_metrics(&w.db, Some("emea"), 0, i64::MAX).await.unwrap();
        assert_eq!(m.commitments.len(), 1);
        assert_eq!((m.commitments[0].open, m.commitments[0].overdue), (2, 1));
        assert!(
            ai_metrics(&w.db, Some("apac"), 0, 1)
                .await
                .unwrap()
                .commitments
                .is_empty()
        );

        let text = exposition(&w.db).await.unwrap();
        assert!(
            text.contains("dealdesk_recommendations{kind=\"commitment\",state=\"overridden\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dealdesk_review_manual{kind=\"quote\"} 0"),
            "{text}"
        );
    }
}
