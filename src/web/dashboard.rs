//! The manager dashboard: how the AI's recommendations fare in review (acceptance, override,
//! time to review per kind), how quotes did when the recommendation was followed or overridden,
//! objection categories per week as a stacked-bar SVG chart, open and overdue commitments per
//! rep, active alerts and tripped circuit breakers, and the quote model's fairness report.
//!
//! Scope is that of the JSON APIs: a manager sees their region (`/metrics/ai`,
//! `/analytics/calls`), an admin every region or one they pick; alerts, breakers and the
//! fairness report are organisation-wide, as in `/reviews`, `/quotes/fairness`.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::pages::when;
use super::svg::{Axis, count_scale};
use super::{Page, Tr, render};
use crate::calls::analytics::{self, ObjectionTrend};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::quotes::fairness::FairnessReport;
use crate::quotes::service;
use crate::review::alerts::{self, AlertState, Metric};
use crate::review::breaker::{self, Tripped};
use crate::review::metrics::{self, AiMetrics, DealOutcomes, KindStats, RepCommitments};
use crate::users::Role;

const DAY_MS: i64 = 86_400_000;

/// Weeks the dashboard covers unless the user picks a range (this week included).
const DEFAULT_WEEKS: i64 = 12;

#[derive(Deserialize, Default)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    /// Admins only; managers always see their own region.
    region: Option<String>,
}

/// A share as a percentage, `–` when there is nothing to divide.
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

/// Review time in minutes below an hour, else hours.
fn duration(t: Tr, hours: Option<f64>) -> String {
    match hours {
        None => "–".into(),
        Some(h) if h < 1.0 => format!("{:.0} {}", h * 60.0, t.s("dashboard.minutes")),
        Some(h) => format!("{h:.1} {}", t.s("dashboard.hours")),
    }
}

struct KindRow {
    label: String,
    proposed: i64,
    accepted: i64,
    auto_approved: i64,
    overridden: i64,
    rejected: i64,
    pending: i64,
    acceptance: String,
    override_rate: String,
    median_review: String,
    mean_review: String,
}

impl KindRow {
    fn new(t: Tr, k: &KindStats) -> KindRow {
        KindRow {
            label: t.d("kind", &k.kind),
            proposed: k.proposed,
            accepted: k.approved + k.auto_approved,
            auto_approved: k.auto_approved,
            overridden: k.overridden,
            rejected: k.rejected,
            pending: k.pending,
            acceptance: pct(k.acceptance_rate),
            override_rate: pct(k.override_rate),
            median_review: duration(t, k.median_review_hours),
            mean_review: duration(t, k.mean_review_hours),
        }
    }
}

/// Quotes that followed or overrode the recommendation.
struct QuoteColumn {
    id: &'static str,
    /// Its heading's string key.
    title: &'static str,
    deals: i64,
    won: i64,
    win_rate: String,
    mean_discount: String,
    won_margin: String,
    won_value: String,
}

impl QuoteColumn {
    fn new(id: &'static str, title: &'static str, o: &DealOutcomes) -> QuoteColumn {
        QuoteColumn {
            id,
            title,
            deals: o.deals,
            won: o.won,
            win_rate: pct(o.win_rate),
            mean_discount: o
                .mean_discount
                .map_or_else(|| "–".into(), |d| format!("{:.1}%", d * 100.0)),
            won_margin: format!("{:.0}", o.won_margin),
            won_value: format!("{:.0}", o.won_value),
        }
    }
}

struct AlertRow {
    name: String,
    value: String,
    above: String,
    since: String,
}

impl AlertRow {
    fn new(a: &AlertState) -> AlertRow {
        let show = |v: f64| match a.alert.metric {
            Metric::OverdueCommitments => format!("{v:.0}"),
            Metric::OverrideRate => format!("{:.0}%", v * 100.0),
            Metric::WinRateDropPoints => format!("{v:.1}"),
        };
        AlertRow {
            name: a.alert.name.clone(),
            value: a.value.map(show).unwrap_or_default(),
            above: show(a.alert.above),
            since: a.fired_at.map(when).unwrap_or_default(),
        }
    }
}

struct BreakerRow {
    kind: &'static str,
    label: String,
    since: String,
    reason: String,
}

impl BreakerRow {
    fn new(t: Tr, b: &Tripped) -> BreakerRow {
        BreakerRow {
            kind: b.kind.as_str(),
            label: t.d("kind", b.kind.as_str()),
            since: when(b.tripped_at),
            reason: b.reason.clone(),
        }
    }
}

/// One value of a fairness attribute.
struct ValueRow {
    value: String,
    deals: usize,
    discount: String,
    win: String,
}

struct AttributeRow {
    attribute: String,
    groups: usize,
    deals: usize,
    discount_gap: String,
    win_gap: String,
    flagged: bool,
    values: Vec<ValueRow>,
}

struct Fairness {
    version: i64,
    deals: usize,
    bounds: String,
    flagged: bool,
    protected_in_use: String,
    attributes: Vec<AttributeRow>,
}

impl Fairness {
    fn new(r: &FairnessReport) -> Fairness {
        let points = |v: f64| format!("{:.1}", v * 100.0);
        Fairness {
            version: r.model_version,
            deals: r.deals,
            bounds: format!("{} / {}", points(r.max_discount_gap), points(r.max_win_gap)),
            flagged: r.flagged,
            protected_in_use: r.protected_in_use.join(", "),
            attributes: r
                .attributes
                .iter()
                .map(|a| AttributeRow {
                    attribute: a.attribute.clone(),
                    groups: a.groups_compared,
                    deals: a.deals_compared,
                    discount_gap: points(a.discount_gap),
                    win_gap: points(a.win_gap),
                    flagged: a.flagged,
                    values: a
                        .by_value
                        .iter()
                        .map(|v| ValueRow {
                            value: v.value.clone(),
                            deals: v.deals,
                            discount: format!("{:.1}%", v.mean_discount * 100.0),
                            win: format!("{:.0}%", v.mean_win_probability * 100.0),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A stacked piece of a week's bar.
struct Piece {
    y: f64,
    height: f64,
    category: String,
    title: String,
}

struct Bar {
    x: f64,
    width: f64,
    /// Where the week's label goes, or `None` when labels are thinned out.
    label: Option<(f64, String)>,
    pieces: Vec<Piece>,
}

/// The objections chart: bars per week, the count axis, the legend and the numbers as a table.
struct ObjectionChart {
    bars: Vec<Bar>,
    /// `(y, count)`.
    ticks: Vec<(f64, usize)>,
    /// `(category, label, total)`, most raised first.
    legend: Vec<(String, String, usize)>,
    /// The chart in one sentence (its text alternative; the table has the rest).
    summary: String,
    /// `(week, counts in legend order, total)`.
    rows: Vec<(String, Vec<usize>, usize)>,
    total: usize,
}

/// Chart area inside the `0 0 640 240` view box.
const LEFT: f64 = 40.0;
const RIGHT: f64 = 630.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 200.0;

impl ObjectionChart {
    fn new(t: Tr, trend: &ObjectionTrend) -> ObjectionChart {
        let max = trend.weeks.iter().map(|w| w.total()).max().unwrap_or(0);
        let (top, step) = count_scale(max);
        let y = Axis::new((0.0, top as f64), (BOTTOM, TOP));
        let n = trend.weeks.len().max(1);
        let slot = (RIGHT - LEFT) / n as f64;
        let every = n.div_ceil(12);
        let legend: Vec<(String, String, usize)> = trend
            .categories
            .iter()
            .map(|(c, total)| (c.clone(), t.d("category", c), *total))
            .collect();
        let bars = trend
            .weeks
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let x = LEFT + slot * i as f64;
                let mut stacked = 0usize;
                let pieces = legend
                    .iter()
                    .filter_map(|(c, label, _)| {
                        let count = w.counts.get(c).copied().unwrap_or(0);
                        if count == 0 {
                            return None;
                        }
                        stacked += count;
                        Some(Piece {
                            y: y.at(stacked as f64),
                            height: y.length(count as f64),
                            category: c.clone(),
                            title: format!("{} · {label}: {count}", w.week),
                        })
                    })
                    .collect();
                Bar {
                    x: x + slot * 0.15,
                    width: slot * 0.7,
                    label: (i % every == 0)
                        .then(|| (x + slot / 2.0, w.week.get(5..).unwrap_or("").to_string())),
                    pieces,
                }
            })
            .collect();
        let top_categories: Vec<String> = legend
            .iter()
            .take(3)
            .map(|(_, label, n)| format!("{label} ({n})"))
            .collect();
        let summary = t
            .s("dashboard.objections_summary")
            .replace("{total}", &trend.total.to_string())
            .replace("{weeks}", &trend.weeks.len().to_string())
            .replace("{from}", &trend.from)
            .replace("{to}", &trend.to)
            .replace("{top}", &top_categories.join(", "));
        ObjectionChart {
            bars,
            ticks: (0..=top / step)
                .map(|i| (y.at((i * step) as f64), i * step))
                .collect(),
            rows: trend
                .weeks
                .iter()
                .map(|w| {
                    let counts = legend
                        .iter()
                        .map(|(c, _, _)| w.counts.get(c).copied().unwrap_or(0))
                        .collect();
                    (w.week.clone(), counts, w.total())
                })
                .collect(),
            legend,
            summary,
            total: trend.total,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    p: Page,
    admin: bool,
    from: String,
    to: String,
    /// The region the numbers cover; empty: every region.
    region: String,
    kinds: Vec<KindRow>,
    reviewed: bool,
    /// Followed, then overridden.
    quotes: [QuoteColumn; 2],
    /// Whether any of them closed.
    closed: bool,
    objections: ObjectionChart,
    reps: Vec<RepCommitments>,
    alerts: Vec<AlertRow>,
    alerts_watched: usize,
    breakers: Vec<BreakerRow>,
    fairness: Option<Fairness>,
}

/// The default range: from the Monday eleven weeks before this week's to today.
fn default_range() -> (String, String) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let monday = analytics::week_start(today);
    let from = monday
        .checked_sub(jiff::Span::new().weeks(DEFAULT_WEEKS - 1))
        .unwrap_or(monday);
    (from.to_string(), today.to_string())
}

/// `GET /app/dashboard?from=&to=&region=`.
pub async fn page(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Query(q): Query<RangeQuery>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let (default_from, default_to) = default_range();
    let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let from = given(&q.from).unwrap_or(default_from);
    let to = given(&q.to).unwrap_or(default_to);
    let admin = user.role == Role::Admin;
    let region = if admin {
        given(&q.region).map(|r| r.trim().to_string())
    } else {
        Some(user.region.clone())
    };
    // The objections first: they check the range and say what is wrong with it.
    let trend =
        analytics::objections_by_week(&state.db, &user, region.as_deref(), &from, &to).await?;
    let m: AiMetrics = metrics::ai_metrics(
        &state.db,
        region.as_deref(),
        metrics::date_ms(&from, "from")?,
        metrics::date_ms(&to, "to")? + DAY_MS,
    )
    .await?;
    let alert_states = alerts::states(&state.db, &state.rules.current()).await?;
    let fairness = match service::fairness(&state.db, &state.config).await {
        Ok(report) => Some(Fairness::new(&report)),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let t = p.t;
    Ok(render(&Dashboard {
        admin,
        from,
        to,
        region: region.unwrap_or_default(),
        reviewed: m.kinds.iter().any(|k| k.proposed > 0),
        kinds: m.kinds.iter().map(|k| KindRow::new(t, k)).collect(),
        closed: m.quotes_followed.deals + m.quotes_overridden.deals > 0,
        quotes: [
            QuoteColumn::new("followed", "dashboard.followed", &m.quotes_followed),
            QuoteColumn::new("overridden", "dashboard.overrode", &m.quotes_overridden),
        ],
        objections: ObjectionChart::new(t, &trend),
        reps: m.commitments.clone(),
        alerts_watched: alert_states.len(),
        alerts: alert_states
            .iter()
            .filter(|a| a.breached)
            .map(AlertRow::new)
            .collect(),
        breakers: breaker::tripped(&state.db)
            .await?
            .iter()
            .map(|b| BreakerRow::new(t, b))
            .collect(),
        fairness,
        p,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::web::Lang;

    #[test]
    fn the_chart_stacks_weeks_and_says_what_it_shows() {
        let counts = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
        };
        let trend = ObjectionTrend {
            from: "2026-03-02".into(),
            to: "2026-03-15".into(),
            weeks: vec![
                analytics::ObjectionWeek {
                    week: "2026-03-02".into(),
                    counts: counts(&[("price", 3), ("timing", 1)]),
                },
                analytics::ObjectionWeek {
                    week: "2026-03-09".into(),
                    counts: BTreeMap::new(),
                },
            ],
            categories: vec![("price".into(), 3), ("timing".into(), 1)],
            total: 4,
        };
        let chart = ObjectionChart::new(Tr(Lang::En), &trend);
        assert_eq!(chart.bars.len(), 2);
        let first = &chart.bars[0];
        assert_eq!(first.pieces.len(), 2);
        // Four objections on a 0–4 axis fill the chart: price at the bottom, timing on top.
        assert_eq!(first.pieces[0].category, "price");
        assert!((first.pieces[0].y + first.pieces[0].height - BOTTOM).abs() < 1e-9);
        assert!((first.pieces[1].y - TOP).abs() < 1e-9);
        assert!(first.pieces[1].title.contains("Timing: 1"));
        assert!(chart.bars[1].pieces.is_empty());
        assert_eq!(chart.ticks.last().unwrap().1, 4);
        assert_eq!(chart.rows[0], ("2026-03-02".into(), vec![3, 1], 4));
        assert!(
            chart.summary.starts_with("Objections raised: 4 in 2 weeks"),
            "{}",
            chart.summary
        );
        assert!(chart.summary.contains("Price (3)"), "{}", chart.summary);
        let zh = ObjectionChart::new(Tr(Lang::Zh), &trend);
        assert!(zh.summary.contains("价格 (3)"), "{}", zh.summary);
    }

    #[test]
    fn numbers_are_shown_as_people_read_them() {
        let t = Tr(Lang::En);
        assert_eq!(pct(Some(2.0 / 3.0)), "67%");
        assert_eq!(pct(None), "–");
        assert_eq!(duration(t, Some(0.25)), "15 min");
        assert_eq!(duration(t, Some(26.0)), "26.0 h");
        let q = QuoteColumn::new(
            "followed",
            "dashboard.followed",
            &DealOutcomes {
                deals: 4,
                won: 3,
                win_rate: Some(0.75),
                mean_discount: Some(0.125),
                won_margin: 1234.4,
                won_value: 5000.0,
            },
        );
        assert_eq!(
            (q.win_rate.as_str(), q.mean_discount.as_str()),
            ("75%", "12.5%")
        );
        assert_eq!(q.won_margin, "1234");
    }
}
