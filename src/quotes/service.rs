//! The recommender's operations as the API and the CLI call them: record deals and outcomes
//! (refitting when enough new outcomes arrived), fit, recommend (recording approvals for
//! review), fairness and import. `scope` is the caller's region for non-admins (they see and
//! change only their region's deals), `None` for admins and the CLI.

use std::path::Path;

use serde::Serialize;

use super::deals::{NewDeal, OutcomeUpdate};
use super::fairness::{self, FairnessReport};
use super::import::{self, Mapping};
use super::model::{QuoteModel, TrainOptions};
use super::recommend::{DealInput, Recommendation, Recommender};
use super::rules::Rules;
use super::simulate::examples;
use super::store::{self, Deal, ModelInfo};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::review::{self, Kind, Proposal, Subject};
use crate::store::Db;

/// Who is acting: their user id (if a user) and region scope (None: every region).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user_id: Option<&'a str>,
    pub scope: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// A signed-in user: admins act on every region, everyone else on their own.
    pub fn of(user: &'a crate::users::User) -> Actor<'a> {
        Actor {
            user_id: Some(&user.id),
            scope: (user.role != crate::users::Role::Admin).then_some(user.region.as_str()),
        }
    }

    /// The operator at the command line.
    pub const OPERATOR: Actor<'static> = Actor {
        user_id: None,
        scope: None,
    };

    fn region_for(&self, region: Option<&str>) -> Result<String> {
        match (self.scope, region) {
            (Some(scope), Some(r)) if r != scope => Err(Error::Forbidden(format!(
                "you work in region {scope:?} and may not record deals for {r:?}"
            ))),
            (Some(scope), _) => Ok(scope.to_string()),
            (None, Some(r)) => Ok(r.to_string()),
            (None, None) => Err(Error::InvalidInput(
                "the deal has no region; give \"region\"".into(),
            )),
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("model task failed: {e}")))?
}

/// The configured rules file.
pub fn rules(config: &Config) -> Result<Rules> {
    Rules::load(&config.quotes.rules)
}

/// Records a deal (open or closed).
pub async fn record_deal(
    db: &Db,
    config: &Config,
    actor: Actor<'_>,
    deal: NewDeal,
) -> Result<Deal> {
    let mut deal = deal.validate()?;
    deal.region = Some(actor.region_for(deal.region.as_deref())?);
    let closed = deal.outcome.is_some();
    let ids = store::insert_deals(db, actor.user_id, "", std::slice::from_ref(&deal)).await?;
    if closed {
        refit_if_due(db, config).await?;
    }
    store::get_deal(db, &ids[0], None).await
}

/// Records the outcome of an open deal.
pub async fn record_outcome(
    db: &Db,
    config: &Config,
    actor: Actor<'_>,
    id: &str,
    update: OutcomeUpdate,
) -> Result<Deal> {
    let deal = store::record_outcome(db, id, actor.scope, &update).await?;
    refit_if_due(db, config).await?;
    Ok(deal)
}

/// Fits a new model version on every closed deal (penalty and calibration selected).
pub async fn fit(db: &Db, config: &Config, actor: Actor<'_>) -> Result<ModelInfo> {
    let rules = rules(config)?;
    let past = store::closed_deals(db).await?;
    let hash = store::training_hash(&past);
    let opts = TrainOptions {
        exclude: rules.fairness.protected.clone(),
        ..TrainOptions::default()
    };
    let model = blocking(move || QuoteModel::train(&examples(&past), &opts)).await?;
    store::save_model(db, &model, "fit", &hash, actor.user_id).await
}

/// Warm-started refit of the newest model when `quotes.refit_every` outcomes arrived since.
pub async fn refit_if_due(db: &Db, config: &Config) -> Result<Option<ModelInfo>> {
    if config.quotes.refit_every == 0 {
        return Ok(None);
    }
    let Some((info, model)) = store::latest_model(db).await? else {
        return Ok(None);
    };
    if store::outcomes_since(db, info.created_at).await? < config.quotes.refit_every as i64 {
        return Ok(None);
    }
    check_calibration(db, config, &model, info.created_at).await?;
    let past = store::closed_deals(db).await?;
    let hash = store::training_hash(&past);
    let refit = blocking(move || model.refit(&examples(&past))).await;
    match refit {
        Ok(model) => Ok(Some(
            store::save_model(db, &model, "refit", &hash, None).await?,
        )),
        // New outcomes the old encoding cannot take (e.g. no price): leave it to a full fit.
        Err(Error::InvalidInput(why)) => {
            tracing::warn!(%why, "quote model not refitted; run `dealdesk quotes fit`");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Scores `model` on the outcomes recorded after it was fitted (which it never saw) and lets
/// the review breaker switch quotes to manual when its calibration error is too high.
async fn check_calibration(
    db: &Db,
    config: &Config,
    model: &QuoteModel,
    fitted_at: i64,
) -> Result<()> {
    let recent = store::closed_deals_since(db, fitted_at).await?;
    if recent.is_empty() {
        return Ok(());
    }
    let (p, y): (Vec<f64>, Vec<f64>) = recent
        .iter()
        .map(|d| {
            let p = model.predict(&d.input.record(), d.discount.unwrap_or(0.0));
            (p, if d.won { 1.0 } else { 0.0 })
        })
        .unzip();
    let ece = super::metrics::ece(&p, &y, 10);
    let rules = review::rules_source(config)?.current();
    let mut tx = db.begin().await?;
    if review::breaker::observe_calibration(&mut tx, &rules, ece).await? {
        tracing::warn!(
            ece,
            "quote recommendations need a manager until an admin resets the breaker"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// The newest model with the past deals, ready to recommend.
pub async fn recommender(db: &Db, config: &Config) -> Result<Recommender> {
    let rules = rules(config)?;
    let (info, model) = store::latest_model(db).await?.ok_or_else(|| {
        Error::NotFound(
            "no quote model yet: record closed deals (POST /deals or `dealdesk deals import`) \
             and fit one (`dealdesk quotes fit` or POST /quotes/fit)"
                .into(),
        )
    })?;
    let past = store::closed_deals(db).await?;
    blocking(move || Ok(Recommender::new(model, info.id, info.version, rules, &past))).await
}

/// Prices a deal; a discount above the approval threshold is recorded for a manager's review
/// (with a new open deal when the request names none).
pub async fn recommend(
    db: &Db,
    config: &Config,
    actor: Actor<'_>,
    deal: DealInput,
) -> Result<Recommendation> {
    if let Some(id) = &deal.deal_id {
        store::get_deal(db, id, actor.scope).await?;
    }
    let recommender = recommender(db, config).await?;
    let input = deal.clone();
    let mut rec = blocking(move || recommender.recommend(&input)).await?;
    let Some(quote) = rec.recommended.filter(|_| rec.needs_approval) else {
        return Ok(rec);
    };
    let region = actor.region_for(deal.region.as_deref())?;
    let mut tx = db.begin().await?;
    let subject_id = match &deal.deal_id {
        Some(id) => id.clone(),
        None => {
            let open = NewDeal {
                region: Some(region.clone()),
                segment: deal.segment.clone(),
                features: deal.features.clone(),
                list_price: Some(deal.list_price),
                cost: deal.cost,
                ..NewDeal::default()
            };
            store::insert_deal(&mut tx, actor.user_id, &region, &open).await?
        }
    };
    let explanation = rec
        .explanation
        .iter()
        .map(|c| format!("{} {:+.2}", c.field, c.logit))
        .collect::<Vec<_>>()
        .join(", ");
    let id = review::propose(
        &mut tx,
        &Proposal {
            kind: Kind::Quote,
            subject: Subject::Deal,
            subject_id: subject_id.clone(),
            region,
            model_id: rec.model_id.clone(),
            model_version: rec.model_version.to_string(),
            prompt_version: None,
            input: serde_json::to_value(&deal).expect("deal serializes"),
            output: serde_json::to_value(quote).expect("quote serializes"),
            explanation: Some(format!(
                "discount {:.0} % is above the approval threshold {:.0} %; logit contributions: {explanation}",
                quote.discount * 100.0,
                rec.approval_discount * 100.0
            )),
            confidence: Some(quote.win_probability),
            owner_id: actor.user_id.map(str::to_string),
            discount: Some(quote.discount),
            deal_value: Some(deal.list_price),
        },
    )
    .await?;
    tx.commit().await?;
    rec.recommendation_id = Some(id);
    Ok(rec)
}

/// The fairness report of the newest model over every closed deal.
pub async fn fairness(db: &Db, config: &Config) -> Result<FairnessReport> {
    let recommender = recommender(db, config).await?;
    // A deal closed with only a discount has no list price to score; the report compares the
    // others (one such deal must not make the report fail for everyone).
    let mut past = store::closed_deals(db).await?;
    past.retain(|d| d.input.list_price > 0.0);
    blocking(move || fairness::report(&recommender, &past)).await
}

/// What an import recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub won: usize,
    pub lost: usize,
    pub open: usize,
}

/// Imports a CRM export through a mapping: every row or none.
pub async fn import(db: &Db, actor: Actor<'_>, csv: &Path, mapping: &Path) -> Result<ImportReport> {
    let mapping = Mapping::load(mapping)?;
    let deals = match import::parse(csv, &mapping)? {
        Ok(deals) => deals,
        Err(bad) => return Err(import::bad_rows_error(csv, &bad)),
    };
    import_deals(db, actor, deals).await
}

/// Imports deals already read (a parsed CRM export, generated demo deals): each is checked,
/// then all are recorded in one transaction, or none.
pub async fn import_deals(db: &Db, actor: Actor<'_>, deals: Vec<NewDeal>) -> Result<ImportReport> {
    let deals = deals
        .into_iter()
        .map(NewDeal::validate)
        .collect::<Result<Vec<_>>>()?;
    store::insert_deals(db, actor.user_id, "", &deals).await?;
    let count = |o: Option<super::deals::Outcome>| deals.iter().filter(|d| d.outcome == o).count();
    Ok(ImportReport {
        imported: deals.len(),
        won: count(Some(super::deals::Outcome::Won)),
        lost: count(Some(super::deals::Outcome::Lost)),
        open: count(None),
    })
}
