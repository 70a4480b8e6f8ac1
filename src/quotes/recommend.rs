//! A recommendation for one deal: the win-probability curve over a discount grid, the
//! discount that maximizes expected margin `P(win | d) · (list · (1 − d) − cost)` within the
//! guardrails, its interval, the feature contributions that explain it and the most similar
//! past deals with their outcomes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::deals::record_of;
use super::features::Record;
use super::logit::sigmoid;
use super::model::QuoteModel;
use super::rules::{Guardrail, Rules};
use crate::error::{Error, Result};

/// A deal to price.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    /// An existing (open) deal this quote is for; a new open deal is recorded when the
    /// recommendation needs approval and this is empty.
    #[serde(default)]
    pub deal_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    /// A positive amount.
    #[schema(exclusive_minimum = 0.0)]
    pub list_price: f64,
    /// Default: the segment's cost_ratio × list price.
    #[serde(default)]
    pub cost: Option<f64>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub features: Map<String, Value>,
}

impl DealInput {
    pub fn record(&self) -> Record {
        record_of(
            self.region.as_deref(),
            self.segment.as_deref(),
            Some(self.list_price),
            &self.features,
        )
    }
}

/// A past closed deal, for similar-deal look-ups and fairness.
#[derive(Debug, Clone)]
pub struct PastDeal {
    pub id: String,
    pub won: bool,
    pub discount: Option<f64>,
    pub input: DealInput,
}

/// One point of the win-probability curve.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct CurvePoint {
    pub discount: f64,
    pub win_probability: f64,
    pub expected_margin: f64,
    /// Within the guardrails.
    pub allowed: bool,
}

/// The recommended quote.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Quote {
    pub discount: f64,
    pub price: f64,
    pub win_probability: f64,
    /// 95 % interval of the win probability (Laplace approximation).
    pub interval: [f64; 2],
    pub expected_margin: f64,
}

/// How much one field moves the logit from the average deal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contribution {
    pub field: String,
    pub logit: f64,
}

/// A similar past deal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SimilarDeal {
    pub deal_id: String,
    pub won: bool,
    pub discount: Option<f64>,
    pub distance: f64,
}

/// The answer of `POST /quotes/recommend`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = QuoteRecommendation)]
pub struct Recommendation {
    pub model_id: String,
    pub model_version: i64,
    /// Win probability at list price (or from context only, without a price model).
    pub win_probability_at_list: f64,
    pub curve: Vec<CurvePoint>,
    /// Absent when the model has no price terms.
    pub recommended: Option<Quote>,
    /// The best discount if the guardrails did not apply.
    pub unconstrained_discount: Option<f64>,
    pub guardrail: Guardrail,
    pub cost: f64,
    /// The constraint that cut the unconstrained optimum: max_discount, floor_margin or
    /// data_range (the model does not extrapolate beyond the discounts it has seen).
    pub binding: Option<String>,
    /// Above the rules' approval_discount: recorded for a manager's review.
    pub needs_approval: bool,
    pub approval_discount: f64,
    /// The review queue entry, when one was recorded.
    pub recommendation_id: Option<String>,
    pub explanation: Vec<Contribution>,
    pub similar: Vec<SimilarDeal>,
    pub note: Option<String>,
}

/// A model ready to answer: the fitted model, the rules and the index of past deals.
pub struct Recommender {
    pub model: QuoteModel,
    pub model_id: String,
    pub model_version: i64,
    pub rules: Rules,
    past: Vec<(String, bool, Option<f64>)>,
    /// Encoded context of each past deal, row-major, `encoder.width()` per deal.
    index: Vec<f64>,
    fields: Vec<String>,
}

const SIMILAR: usize = 5;
const TOP_CONTRIBUTIONS: usize = 5;

impl Recommender {
    pub fn new(
        model: QuoteModel,
        model_id: String,
        model_version: i64,
        rules: Rules,
        past: &[PastDeal],
    ) -> Recommender {
        let w = model.encoder.width();
        let mut index = vec![0.0; w * past.len()];
        for (i, deal) in past.iter().enumerate() {
            model
                .encoder
                .encode_into(&deal.input.record(), &mut index[i * w..(i + 1) * w]);
        }
        let mut fields = vec!["intercept".to_string()];
        fields.extend(model.encoder.fields().into_iter().map(str::to_string));
        if model.price.is_some() {
            fields.extend(["discount".to_string(), "discount".to_string()]);
        }
        Recommender {
            past: past
                .iter()
                .map(|d| (d.id.clone(), d.won, d.discount))
                .collect(),
            index,
            fields,
            model,
            model_id,
            model_version,
            rules,
        }
    }

    /// Prices `deal`.
    pub fn recommend(&self, deal: &DealInput) -> Result<Recommendation> {
        let mut out = self.price(deal)?;
        let m = &self.model;
        let record = deal.record();
        let discount = out.recommended.map_or(0.0, |q| q.discount);
        let row = m.row(&record, discount);
        out.explanation = self.explain(&row);
        out.similar = self.similar(&row[1..1 + m.encoder.width()]);
        Ok(out)
    }

    /// The curve and the guarded optimum only, without explanation and similar deals (for
    /// scoring many deals, e.g. the fairness report).
    pub fn price(&self, deal: &DealInput) -> Result<Recommendation> {
        if !(deal.list_price.is_finite() && deal.list_price > 0.0) {
            return Err(Error::InvalidInput(format!(
                "list_price is {}; it must be a positive amount",
                deal.list_price
            )));
        }
        let guardrail = self.rules.guardrail(deal.segment.as_deref());
        let cost = deal.cost.unwrap_or(deal.list_price * guardrail.cost_ratio);
        let record = deal.record();
        let m = &self.model;
        let row0 = m.row(&record, 0.0);
        let eta0 = m.logit(&row0);
        let p = |d: f64| match &m.price {
            Some(price) => {
                let b = price.basis(d);
                let n = m.beta.len();
                m.calibrator
                    .apply(sigmoid(eta0 + b[0] * m.beta[n - 2] + b[1] * m.beta[n - 1]))
            }
            None => m.calibrator.apply(sigmoid(eta0)),
        };
        let margin_at = |d: f64| deal.list_price * (1.0 - d) - cost;
        let mut out = Recommendation {
            model_id: self.model_id.clone(),
            model_version: self.model_version,
            win_probability_at_list: p(0.0),
            curve: Vec::new(),
            recommended: None,
            unconstrained_discount: None,
            guardrail,
            cost,
            binding: None,
            needs_approval: false,
            approval_discount: self.rules.approval_discount,
            recommendation_id: None,
            explanation: Vec::new(),
            similar: Vec::new(),
            note: m.note.clone(),
        };
        let Some(price) = &m.price else {
            return Ok(out);
        };
        // d ≤ max_discount, margin (price − cost)/price ≥ floor, and no extrapolation.
        let floor_limit = 1.0 - cost / (deal.list_price * (1.0 - guardrail.floor_margin));
        let limits = [
            ("max_discount", guardrail.max_discount),
            ("floor_margin", floor_limit),
            ("data_range", price.max_discount),
        ];
        let (limit_name, limit) = limits
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(limits[0]);
        let step = self.rules.grid_step;
        let points = (price.max_discount / step + 1e-9).floor() as usize;
        out.curve = (0..=points)
            .map(|k| {
                let d = k as f64 * step;
                let win = p(d);
                CurvePoint {
                    discount: d,
                    win_probability: win,
                    expected_margin: win * margin_at(d),
                    allowed: d <= limit + 1e-9,
                }
            })
            .collect();
        let best = |allowed_only: bool| {
            out.curve
                .iter()
                .filter(|c| c.allowed || !allowed_only)
                .max_by(|a, b| a.expected_margin.total_cmp(&b.expected_margin))
                .copied()
        };
        let unconstrained = best(false).map(|c| c.discount);
        out.unconstrained_discount = unconstrained;
        let Some(chosen) = best(true) else {
            out.note = Some(format!(
                "no discount satisfies the guardrails: even list price leaves less than the \
                 floor margin {} at cost {cost:.2}",
                guardrail.floor_margin
            ));
            return Ok(out);
        };
        if unconstrained.is_some_and(|u| u > chosen.discount + 1e-9) {
            out.binding = Some(limit_name.to_string());
        }
        let row = m.row(&record, chosen.discount);
        let (lo, hi) = m.interval(&row, 1.96);
        out.recommended = Some(Quote {
            discount: chosen.discount,
            price: deal.list_price * (1.0 - chosen.discount),
            win_probability: chosen.win_probability,
            interval: [lo, hi],
            expected_margin: chosen.expected_margin,
        });
        out.needs_approval = chosen.discount > self.rules.approval_discount + 1e-9;
        Ok(out)
    }

    /// Per field, `beta · (x − mean)` summed over its columns; the largest in size first.
    fn explain(&self, row: &[f64]) -> Vec<Contribution> {
        let m = &self.model;
        let mut by_field: Vec<Contribution> = Vec::new();
        for (j, x) in row.iter().enumerate().skip(1) {
            let c = m.beta[j] * (x - m.means[j]);
            match by_field.iter_mut().find(|f| f.field == self.fields[j]) {
                Some(f) => f.logit += c,
                None => by_field.push(Contribution {
                    field: self.fields[j].clone(),
                    logit: c,
                }),
            }
        }
        by_field.sort_by(|a, b| b.logit.abs().total_cmp(&a.logit.abs()));
        by_field.truncate(TOP_CONTRIBUTIONS);
        by_field
    }

    /// The nearest past deals in the encoded context space.
    fn similar(&self, context: &[f64]) -> Vec<SimilarDeal> {
        let w = context.len();
        if w == 0 {
            return Vec::new();
        }
        let mut nearest: Vec<(f64, usize)> = Vec::with_capacity(SIMILAR + 1);
        for (i, past) in self.index.chunks_exact(w).enumerate() {
            let d2: f64 = past
                .iter()
                .zip(context)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            if nearest.len() < SIMILAR || d2 < nearest[nearest.len() - 1].0 {
                let at = nearest.partition_point(|(d, _)| *d <= d2);
                nearest.insert(at, (d2, i));
                nearest.truncate(SIMILAR);
            }
        }
        nearest
            .into_iter()
            .map(|(d2, i)| SimilarDeal {
                deal_id: self.past[i].0.clone(),
                won: self.past[i].1,
                discount: self.past[i].2,
                distance: d2.sqrt(),
            })
            .collect()
    }
}
