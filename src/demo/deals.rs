//! The demo's deals: a closed-deal history drawn from the simulated market (fixed seed, close
//! dates over the past nine months) imported through the deals import, a fitted quote model,
//! and quote recommendations that the regions' managers approve, override or reject, with
//! outcomes recorded afterwards so the metrics compare followed and overridden quotes.

use serde::Serialize;

use crate::calls::dates::Date;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::quotes::deals::{NewDeal, Outcome, OutcomeUpdate};
use crate::quotes::recommend::DealInput;
use crate::quotes::service::{self, Actor};
use crate::quotes::simulate::{Market, REGIONS, Rng};
use crate::quotes::store;
use crate::review::{self, Decision};
use crate::store::Db;
use crate::users::User;

/// Closed deals in the history.
pub const HISTORY: usize = 480;
const HISTORY_SEED: u64 = 20_260_301;
const REVIEW_SEED: u64 = 20_260_302;
/// External ids of history deals: `demo-h-0000` …; of the reviewed quotes: `demo-q-00` ….
const HISTORY_PREFIX: &str = "demo-h-";
const QUOTE_PREFIX: &str = "demo-q-";

/// What a reviewer does with a demo quote recommendation, and whether the deal then closes.
#[derive(Debug, Clone, Copy)]
enum Step {
    Approve {
        close: bool,
    },
    /// Replace the recommended discount by one this much different.
    Override {
        delta: f64,
        close: bool,
    },
    Reject {
        close: bool,
    },
    Leave,
}

/// The review history: four approved, three overridden, two rejected, one waiting.
const PLAN: [Step; 10] = [
    Step::Approve { close: true },
    Step::Override {
        delta: -0.05,
        close: true,
    },
    Step::Approve { close: true },
    Step::Reject { close: true },
    Step::Approve { close: true },
    Step::Override {
        delta: 0.03,
        close: true,
    },
    Step::Approve { close: false },
    Step::Reject { close: false },
    Step::Override {
        delta: -0.04,
        close: false,
    },
    Step::Leave,
];

const OVERRIDE_REASONS: [&str; 3] = [
    "Renewal of a long-standing customer: a smaller discount is enough to keep them.",
    "The customer showed us a competitor's written offer; we match their price.",
    "Three-year commitment signed up front; a lower discount keeps the margin.",
];
const REJECT_REASONS: [&str; 2] = [
    "Not qualified yet: the customer has no confirmed budget, no quote before that.",
    "The customer asked for a paid pilot first; we quote after the pilot.",
];

/// The deal history and the model.
#[derive(Debug, Clone, Serialize)]
pub struct DealsReport {
    /// Closed demo deals in the database.
    pub history: usize,
    /// Imported by this run (0 when they were already there).
    pub imported: usize,
    pub won: usize,
    pub lost: usize,
    /// The newest quote model version.
    pub model_version: i64,
    /// Fitted by this run.
    pub model_fitted: bool,
}

/// The quote review history recorded by this run (all zero when it was already there).
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuotesReport {
    pub proposed: usize,
    pub approved: usize,
    pub overridden: usize,
    pub rejected: usize,
    pub pending: usize,
    /// Reviewed deals whose outcome was recorded.
    pub closed: usize,
}

/// The main region, apac and americas stand for the simulated market's three regions.
fn region_name(market_region: Option<&str>, main: &str) -> String {
    match REGIONS.iter().position(|r| Some(*r) == market_region) {
        Some(0) => main.to_string(),
        Some(1) => "americas".to_string(),
        _ => super::APAC.to_string(),
    }
}

/// Unit cost as a share of list price by product line.
fn cost_of(deal: &DealInput) -> f64 {
    let ratio = match deal.features.get("product").and_then(|p| p.as_str()) {
        Some("Titan") => 0.40,
        _ => 0.30,
    };
    (deal.list_price * ratio).round()
}

/// How discounts were set before the recommender: anywhere from list price to 30 % off
/// (enterprise deals up to 34 %), in whole percent.
fn past_policy(deal: &DealInput, rng: &mut Rng) -> f64 {
    let top = if deal.segment.as_deref() == Some("enterprise") {
        0.34
    } else {
        0.30
    };
    (top * rng.uniform() * 100.0).round() / 100.0
}

fn today() -> Result<Date> {
    Date::parse(&review::metrics::today())
}

async fn count_external(db: &Db, prefix: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM deals WHERE external_id LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_one(db.pool())
            .await?,
    )
}

/// The closed-deal history (imported once) and a quote model (fitted when there is none).
pub async fn seed_history(db: &Db, config: &Config, main_region: &str) -> Result<DealsReport> {
    let present = count_external(db, HISTORY_PREFIX).await? as usize;
    let mut report = DealsReport {
        history: present,
        imported: 0,
        won: 0,
        lost: 0,
        model_version: 0,
        model_fitted: false,
    };
    if present == 0 {
        let imported = service::import_deals(db, Actor::OPERATOR, history(main_region)?).await?;
        report.history = imported.imported;
        report.imported = imported.imported;
        report.won = imported.won;
        report.lost = imported.lost;
    }
    report.model_version = match store::latest_model(db).await? {
        Some((info, _)) => info.version,
        None => {
            report.model_fitted = true;
            service::fit(db, config, Actor::OPERATOR).await?.version
        }
    };
    Ok(report)
}

/// [`HISTORY`] closed deals from the regional market, closed 3 to 272 days ago.
fn history(main_region: &str) -> Result<Vec<NewDeal>> {
    let today = today()?;
    let mut rng = Rng::new(HISTORY_SEED);
    let past = Market::regional().history(HISTORY, &mut rng, past_policy);
    Ok(past
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let input = d.input;
            let discount = d.discount.unwrap_or(0.0);
            NewDeal {
                external_id: Some(format!("{HISTORY_PREFIX}{i:04}")),
                region: Some(region_name(input.region.as_deref(), main_region)),
                cost: Some(cost_of(&input)),
                quoted_price: Some((input.list_price * (1.0 - discount)).round()),
                list_price: Some(input.list_price),
                segment: input.segment,
                features: input.features,
                outcome: Some(if d.won { Outcome::Won } else { Outcome::Lost }),
                close_date: Some(today.add_days(-3 - rng.below(270) as i64).to_string()),
                ..NewDeal::default()
            }
        })
        .collect())
}

/// Open deals of the two demo regions whose recommended discount needs a manager, each
/// recommended for its region's rep and decided by [`PLAN`]; outcomes recorded for the
/// closed ones. Skipped when the demo quotes exist.
pub async fn seed_reviews(
    db: &Db,
    config: &Config,
    reps: &[User; 2],
    managers: &[User; 2],
) -> Result<QuotesReport> {
    let mut report = QuotesReport::default();
    if count_external(db, QUOTE_PREFIX).await? > 0 {
        return Ok(report);
    }
    let recommender = service::recommender(db, config).await?;
    let market = Market::regional();
    let mut rng = Rng::new(REVIEW_SEED);
    let today = today()?;
    let rules = review::rules_source(config)?.current();
    let mut recorded = Vec::new();
    for _ in 0..2000 {
        if recorded.len() == PLAN.len() {
            break;
        }
        let truth = market.draw(&mut rng);
        // Only the regions with demo users: the main region and apac.
        let who = match REGIONS
            .iter()
            .position(|r| Some(*r) == truth.region.as_deref())
        {
            Some(0) => 0,
            Some(2) => 1,
            _ => continue,
        };
        // The plan's steps go to the regions in pairs, so each manager's dashboard has
        // approvals, overrides and closed deals of both kinds.
        if who != (recorded.len() / 2) % 2 {
            continue;
        }
        let mut input = truth.clone();
        input.region = Some(reps[who].region.clone());
        input.cost = Some(cost_of(&input));
        if !recommender.price(&input)?.needs_approval {
            continue;
        }
        let actor = Actor::of(&reps[who]);
        let deal = service::record_deal(
            db,
            config,
            actor,
            NewDeal {
                external_id: Some(format!("{QUOTE_PREFIX}{:02}", recorded.len())),
                region: input.region.clone(),
                segment: input.segment.clone(),
                features: input.features.clone(),
                list_price: Some(input.list_price),
                cost: input.cost,
                ..NewDeal::default()
            },
        )
        .await?;
        input.deal_id = Some(deal.id.clone());
        let rec = service::recommend(db, config, actor, input.clone()).await?;
        let (Some(id), Some(quote)) = (rec.recommendation_id, rec.recommended) else {
            return Err(Error::Internal(
                "a demo quote above the approval threshold was not recorded for review".into(),
            ));
        };
        report.proposed += 1;
        recorded.push((who, deal.id, id, quote.discount, truth, input));
    }
    if recorded.len() < PLAN.len() {
        return Err(Error::Internal(format!(
            "only {} of {} demo quotes needed approval; the demo seeds need adjusting",
            recorded.len(),
            PLAN.len()
        )));
    }
    review::triage(db, &rules).await?;
    let (mut overrides, mut rejects) = (0, 0);
    for (k, (step, (who, deal_id, rec_id, discount, truth, input))) in
        PLAN.iter().zip(recorded).enumerate()
    {
        let manager = &managers[who];
        let (decision, quoted, close) = match *step {
            Step::Approve { close } => {
                report.approved += 1;
                let note = "Within the usual range for this segment.".to_string();
                (Decision::Approve { note: Some(note) }, discount, close)
            }
            Step::Override { delta, close } => {
                report.overridden += 1;
                let d = ((discount + delta) * 100.0).round() / 100.0;
                let reason = OVERRIDE_REASONS[overrides % OVERRIDE_REASONS.len()].to_string();
                overrides += 1;
                let replacement = serde_json::json!({
                    "discount": d,
                    "price": (input.list_price * (1.0 - d)).round(),
                });
                (
                    Decision::Override {
                        replacement,
                        reason,
                    },
                    d,
                    close,
                )
            }
            Step::Reject { close } => {
                report.rejected += 1;
                let reason = REJECT_REASONS[rejects % REJECT_REASONS.len()].to_string();
                rejects += 1;
                // Quoted the old way, without the model.
                (
                    Decision::Reject { reason },
                    past_policy(&truth, &mut rng),
                    close,
                )
            }
            Step::Leave => {
                report.pending += 1;
                continue;
            }
        };
        review::decide(db, manager, &rec_id, &decision).await?;
        if close {
            let won = rng.uniform() < market.win_probability(&truth, quoted);
            service::record_outcome(
                db,
                config,
                Actor::of(&reps[who]),
                &deal_id,
                OutcomeUpdate {
                    outcome: if won { Outcome::Won } else { Outcome::Lost },
                    quoted_price: Some((input.list_price * (1.0 - quoted)).round()),
                    discount: None,
                    close_date: Some(today.add_days(-(k as i64 % 5)).to_string()),
                    followed_recommendation: None,
                },
            )
            .await?;
            report.closed += 1;
        }
    }
    Ok(report)
}
