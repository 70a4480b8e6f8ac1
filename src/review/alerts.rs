//! Alerts: rules in `rules.toml` that watch the AI's track record and post to a webhook once
//! per breach (again only after the condition cleared and broke again).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rules::Rules;
use crate::error::Result;
use crate::store::{Db, now_ms};

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Open commitment tasks past their due date, across all reps.
    OverdueCommitments,
    /// Overridden / decided recommendations over the last `days`.
    OverrideRate,
    /// Percentage points the win rate of closed deals fell: the last `days` against the
    /// `days` before them.
    WinRateDropPoints,
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub name: String,
    pub metric: Metric,
    /// Fires when the metric is above this.
    pub above: f64,
    /// The window, in days.
    #[serde(default = "default_days")]
    pub days: u32,
}

fn default_days() -> u32 {
    14
}

/// An alert that posted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fired {
    pub alert: String,
    pub value: f64,
}

const DAY_MS: i64 = 86_400_000;

async fn value(db: &Db, alert: &Alert, now: i64) -> Result<Option<f64>> {
    let window = i64::from(alert.days) * DAY_MS;
    match alert.metric {
        Metric::OverdueCommitments => {
            let reps = super::metrics::commitments(db, None).await?;
            Ok(Some(reps.iter().map(|r| r.overdue).sum::<i64>() as f64))
        }
        Metric::OverrideRate => {
            let (overridden, decided): (i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN state = 'overridden' THEN 1 ELSE 0 END), 0), \
                 COUNT(*) FROM recommendations WHERE state <> 'proposed' AND decided_at >= $1",
            )
            .bind(now - window)
            .fetch_one(db.pool())
            .await?;
            Ok((decided > 0).then(|| overridden as f64 / decided as f64))
        }
        Metric::WinRateDropPoints => {
            let recent = win_rate(db, now - window, now + 1).await?;
            let before = win_rate(db, now - 2 * window, now - window).await?;
            Ok(recent.zip(before).map(|(r, b)| (b - r) * 100.0))
        }
    }
}

/// The share of deals closed in `[from, to)` that were won.
async fn win_rate(db: &Db, from: i64, to: i64) -> Result<Option<f64>> {
    let (won, closed): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN outcome = 'won' THEN 1 ELSE 0 END), 0), \
                     COUNT(*) FROM deals WHERE outcome IN ('won', 'lost') \
                     AND updated_at >= $1 AND updated_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(db.pool())
    .await?;
    Ok((closed > 0).then(|| won as f64 / closed as f64))
}

/// An alert rule and where its metric stands now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertState {
    pub alert: Alert,
    /// `None`: nothing to judge yet (no decisions, no closed deals in the windows).
    pub value: Option<f64>,
    pub breached: bool,
    /// When the current breach was posted (by the background check), if it was.
    pub fired_at: Option<i64>,
}

/// Every alert of `rules` with its metric's current value, breached ones first.
pub async fn states(db: &Db, rules: &Rules) -> Result<Vec<AlertState>> {
    let now = now_ms();
    let mut out = Vec::new();
    for alert in &rules.alerts {
        let value = value(db, alert, now).await?;
        let fired_at: Option<i64> =
            sqlx::query_scalar("SELECT fired_at FROM alert_firings WHERE alert = $1")
                .bind(&alert.name)
                .fetch_optional(db.pool())
                .await?;
        out.push(AlertState {
            breached: value.is_some_and(|v| v > alert.above),
            alert: alert.clone(),
            value,
            fired_at,
        });
    }
    out.sort_by_key(|s| !s.breached);
    Ok(out)
}

/// Evaluates every alert: a new breach claims its firing row (so one process posts it) and is
/// posted to `webhook`; a cleared one is forgotten, so its next breach fires again. A failed
/// post releases the claim and is retried at the next check.
pub async fn check(
    db: &Db,
    rules: &Rules,
    webhook: Option<&str>,
    http: &reqwest::Client,
) -> Result<Vec<Fired>> {
    let now = now_ms();
    let mut fired = Vec::new();
    for alert in &rules.alerts {
        let value = value(db, alert, now).await?;
        let breached = value.is_some_and(|v| v > alert.above);
        if !breached {
            sqlx::query("DELETE FROM alert_firings WHERE alert = $1")
                .bind(&alert.name)
                .execute(db.pool())
                .await?;
            continue;
        }
        let value = value.unwrap_or_default();
        let claimed = sqlx::query(
            "INSERT INTO alert_firings (alert, breach, fired_at) VALUES ($1, 'active', $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&alert.name)
        .bind(now)
        .execute(db.pool())
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            continue;
        }
        let body = json!({
            "alert": alert.name,
            "metric": alert.metric,
            "value": value,
            "above": alert.above,
            "days": alert.days,
            "at_ms": now,
        });
        tracing::warn!(alert = %alert.name, value, above = alert.above, "alert fired");
        if let Some(url) = webhook {
            let posted = http
                .post(url)
                .json(&body)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if let Err(e) = posted {
                tracing::error!(alert = %alert.name, error = %e, "alert webhook failed; retrying");
                sqlx::query("DELETE FROM alert_firings WHERE alert = $1")
                    .bind(&alert.name)
                    .execute(db.pool())
                    .await?;
                continue;
            }
        }
        fired.push(Fired {
            alert: alert.name.clone(),
            value,
        });
    }
    Ok(fired)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::review::tests_support::{World, proposal, propose_one};
    use crate::review::{Decision, Kind, decide, triage};

    /// A local webhook receiver that records what it is sent.
    async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let sink = sink.clone();
                async move { sink.lock().unwrap().push(v) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, got)
    }

    #[tokio::test]
    async fn an_alert_fires_once_per_breach_and_again_after_it_cleared() {
        let w = World::new().await;
        let (url, got) = receiver().await;
        let http = reqwest::Client::new();
        let mut rules = Rules::builtin();
        rules.alerts = vec![Alert {
            name: "too many overrides".into(),
            metric: Metric::OverrideRate,
            above: 0.5,
            days: 14,
        }];
        let check = || check(&w.db, &rules, Some(&url), &http);
        assert!(
            check().await.unwrap().is_empty(),
            "no decisions yet: nothing to judge"
        );
        let before = states(&w.db, &rules).await.unwrap();
        assert_eq!((before[0].value, before[0].breached), (None, false));

        let id = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
        triage(&w.db, &rules).await.unwrap();
        let over = Decision::Override {
            replacement: json!({"action": "call back"}),
            reason: "wrong action".into(),
        };
        decide(&w.db, &w.manager, &id, &over).await.unwrap();
        let fired = check().await.unwrap();
        assert_eq!(
            fired,
            [Fired {
                alert: "too many overrides".into(),
                value: 1.0
            }]
        );
        assert!(check().await.unwrap().is_empty(), "still the same breach");
        let now = states(&w.db, &rules).await.unwrap();
        assert_eq!((now[0].value, now[0].breached), (Some(1.0), true));
        assert!(now[0].fired_at.is_some());
        assert_eq!(got.lock().unwrap().len(), 1);
        assert_eq!(got.lock().unwrap()[0]["alert"], "too many overrides");

        // Two approvals bring the rate to 1/3: cleared. One more override: a new breach.
        for _ in 0..2 {
            let id = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
            triage(&w.db, &rules).await.unwrap();
            decide(&w.db, &w.rep, &id, &Decision::Approve { note: None })
                .await
                .unwrap();
        }
        assert!(check().await.unwrap().is_empty());
        for _ in 0..2 {
            let id = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
            triage(&w.db, &rules).await.unwrap();
            decide(&w.db, &w.manager, &id, &over).await.unwrap();
        }
        assert_eq!(check().await.unwrap().len(), 1);
        assert_eq!(got.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_failed_post_is_retried_at_the_next_check() {
        let w = World::new().await;
        let http = reqwest::Client::new();
        let mut rules = Rules::builtin();
        rules.alerts = vec![Alert {
            name: "overrides".into(),
            metric: Metric::OverrideRate,
            above: 0.0,
            days: 1,
        }];
        let id = propose_one(&w.db, &proposal(Kind::Commitment, &w.rep)).await;
        triage(&w.db, &rules).await.unwrap();
        let reject = Decision::Override {
            replacement: json!({}),
            reason: "no".into(),
        };
        decide(&w.db, &w.manager, &id, &reject).await.unwrap();
        // Nothing listens on port 9 (discard): the post fails and nothing is recorded.
        let dead = "http://127.0.0.1:9/hook";
        assert!(
            check(&w.db, &rules, Some(dead), &http)
                .await
                .unwrap()
                .is_empty()
        );
        let (url, got) = receiver().await;
        assert_eq!(
            check(&w.db, &rules, Some(&url), &http).await.unwrap().len(),
            1
        );
        assert_eq!(got.lock().unwrap().len(), 1);
    }
}
