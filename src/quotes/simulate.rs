//! Deterministic randomness, and a simulated market with a known true win curve in which the
//! recommender's regret can be measured.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use serde::Serialize;

use super::model::{Example, QuoteModel, TrainOptions};
use super::recommend::{DealInput, PastDeal, Recommender};
use super::rules::Rules;
use crate::error::Result;

/// A seeded generator (ChaCha, so the same seed gives the same stream on every machine).
pub struct Rng(StdRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(StdRng::seed_from_u64(seed))
    }

    /// Uniform on [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// An index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// A synthetic market with a known true win curve, for tests, benchmarks and the regret
/// report: deals in three regions and two products with a log-normal list price, and
/// `logit P(win) = base + region + product + 0.2·z(log list) + 8d − 10d²`.
#[derive(Debug, Clone)]
pub struct Market {
    /// Logit shift of each of [`REGIONS`].
    pub region_effect: [f64; 3],
}

/// The market's regions.
pub const REGIONS: [&str; 3] = ["Central", "East", "West"];
const PRODUCTS: [(&str, f64, f64); 2] = [("Argo", 5000.0, 0.0), ("Titan", 25000.0, -0.3)];
const SEGMENTS: [&str; 2] = ["smb", "enterprise"];

impl Market {
    /// The README of the deals eval data: Central 0, East +0.4, West −0.4.
    pub fn regional() -> Market {
        Market {
            region_effect: [0.0, 0.4, -0.4],
        }
    }

    /// No difference between regions.
    pub fn fair() -> Market {
        Market {
            region_effect: [0.0; 3],
        }
    }

    /// A random deal (no id, no outcome).
    pub fn draw(&self, rng: &mut Rng) -> DealInput {
        let (product, price, _) = PRODUCTS[rng.below(PRODUCTS.len())];
        let mut features = serde_json::Map::new();
        features.insert("product".into(), product.into());
        DealInput {
            deal_id: None,
            region: Some(REGIONS[rng.below(3)].to_string()),
            segment: Some(SEGMENTS[rng.below(2)].to_string()),
            list_price: (price * (0.5 * rng.normal()).exp()).round(),
            cost: None,
            features,
        }
    }

    /// The true P(win) of `deal` at discount `d`.
    pub fn win_probability(&self, deal: &DealInput, d: f64) -> f64 {
        let region = REGIONS
            .iter()
            .position(|r| Some(*r) == deal.region.as_deref())
            .map_or(0.0, |i| self.region_effect[i]);
        let (_, base_price, product) = PRODUCTS
            .iter()
            .copied()
            .find(|(p, _, _)| deal.features.get("product").and_then(|v| v.as_str()) == Some(*p))
            .unwrap_or(PRODUCTS[0]);
        let size_z = (deal.list_price / base_price).ln() / 0.5;
        super::logit::sigmoid(-0.2 + region + product + 0.2 * size_z + 8.0 * d - 10.0 * d * d)
    }

    /// `n` closed deals, quoted at `policy(deal, rng)`, with outcomes drawn from the truth.
    pub fn history(
        &self,
        n: usize,
        rng: &mut Rng,
        mut policy: impl FnMut(&DealInput, &mut Rng) -> f64,
    ) -> Vec<PastDeal> {
        (0..n)
            .map(|i| {
                let input = self.draw(rng);
                let d = policy(&input, rng);
                let won = rng.uniform() < self.win_probability(&input, d);
                PastDeal {
                    id: format!("sim-{i}"),
                    won,
                    discount: Some(d),
                    input,
                }
            })
            .collect()
    }
}

/// Training examples from past deals.
pub fn examples(past: &[PastDeal]) -> Vec<Example> {
    past.iter()
        .map(|d| Example {
            record: d.input.record(),
            discount: d.discount,
            won: d.won,
        })
        .collect()
}

/// One point of the regret curve.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RegretPoint {
    pub outcomes: usize,
    /// Mean recommended and truly optimal discount over the reference deals.
    pub recommended: f64,
    pub optimum: f64,
    /// Mean of `1 − E[margin | recommended] / E[margin | optimum]` under the true curve.
    pub regret: f64,
}

/// Runs the recommender in the market: the first outcomes are quoted at random discounts in
/// `[0, 0.3]`, later ones at the current recommendation plus N(0, 0.05²) exploration; at each
/// checkpoint the model is refitted and scored on 200 fixed reference deals against the true
/// optimum on the same grid and guardrails.
pub fn regret_curve(
    market: &Market,
    rules: &Rules,
    checkpoints: &[usize],
    seed: u64,
) -> Result<Vec<RegretPoint>> {
    let mut rng = Rng::new(seed);
    let reference: Vec<DealInput> = (0..200).map(|_| market.draw(&mut rng)).collect();
    let opts = TrainOptions {
        lambdas: vec![1.0, 10.0, 100.0],
        folds: 3,
        ..TrainOptions::default()
    };
    let mut past: Vec<PastDeal> = Vec::new();
    let mut current: Option<Recommender> = None;
    let mut curve = Vec::new();
    for &target in checkpoints {
        let more = target.saturating_sub(past.len());
        let batch = market.history(more, &mut rng, |deal, rng| match &current {
            Some(r) => {
                let d = r
                    .price(deal)
                    .ok()
                    .and_then(|rec| rec.recommended)
                    .map_or(0.15, |q| q.discount);
                (d + 0.05 * rng.normal()).clamp(0.0, 0.3)
            }
            None => 0.3 * rng.uniform(),
        });
        past.extend(batch);
        let model = QuoteModel::train(&examples(&past), &opts)?;
        let rec = Recommender::new(model, "sim".into(), past.len() as i64, rules.clone(), &past);
        let (mut sum_rec, mut sum_opt, mut sum_regret) = (0.0, 0.0, 0.0);
        for deal in &reference {
            let r = rec.price(deal)?;
            let margin =
                |d: f64| market.win_probability(deal, d) * (deal.list_price * (1.0 - d) - r.cost);
            let (opt_d, opt_m) = r
                .curve
                .iter()
                .filter(|c| c.allowed)
                .map(|c| (c.discount, margin(c.discount)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0.0, margin(0.0)));
            let d = r.recommended.map_or(0.0, |q| q.discount);
            sum_rec += d;
            sum_opt += opt_d;
            sum_regret += 1.0 - margin(d) / opt_m;
        }
        let n = reference.len() as f64;
        curve.push(RegretPoint {
            outcomes: past.len(),
            recommended: sum_rec / n,
            optimum: sum_opt / n,
            regret: sum_regret / n,
        });
        current = Some(rec);
    }
    Ok(curve)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::load(std::path::Path::new("")).unwrap()
    }

    #[test]
    fn regret_falls_as_outcomes_accumulate() {
        let curve = regret_curve(&Market::regional(), &rules(), &[200, 800, 3200], 42).unwrap();
        let (first, last) = (curve[0], curve[curve.len() - 1]);
        assert!(last.regret < first.regret, "{curve:?}");
        assert!(last.regret < 0.01, "{curve:?}");
        assert!((last.recommended - last.optimum).abs() < 0.02, "{curve:?}");
    }

    #[test]
    fn guardrails_bind() {
        let mut rng = Rng::new(42);
        let market = Market::regional();
        let past = market.history(3000, &mut rng, |_, rng| 0.3 * rng.uniform());
        let model = QuoteModel::train(&examples(&past), &TrainOptions::default()).unwrap();
        let mut rules = rules();
        rules.default.cost_ratio = 0.0;
        let mut deal = market.draw(&mut rng);
        deal.segment = Some("other".into());
        let free = Recommender::new(model.clone(), "m".into(), 1, rules.clone(), &past)
            .recommend(&deal)
            .unwrap();
        let free_d = free.recommended.unwrap().discount;
        assert!(free.binding.is_none() && free_d > 0.1, "{free:?}");
        // A lower max discount binds at exactly that discount.
        rules.default.max_discount = 0.05;
        let capped = Recommender::new(model.clone(), "m".into(), 1, rules.clone(), &past)
            .recommend(&deal)
            .unwrap();
        assert_eq!(capped.binding.as_deref(), Some("max_discount"));
        assert!((capped.recommended.unwrap().discount - 0.05).abs() < 1e-9);
        assert!(!capped.needs_approval && free.needs_approval == (free_d > 0.15));
        // A floor margin of 90 % with a cost of 9 % of list allows at most 1 − 0.09/0.1 = 10 %.
        rules.default.max_discount = 0.3;
        rules.default.floor_margin = 0.9;
        rules.default.cost_ratio = 0.09;
        let floored = Recommender::new(model, "m".into(), 1, rules, &past)
            .recommend(&deal)
            .unwrap();
        let q = floored.recommended.unwrap();
        assert_eq!(floored.binding.as_deref(), Some("floor_margin"));
        assert!(q.discount <= 0.1 + 1e-9 && q.discount > 0.09, "{q:?}");
        assert!(q.interval[0] < q.win_probability && q.win_probability < q.interval[1]);
        assert_eq!(floored.similar.len(), 5);
        assert!(!floored.explanation.is_empty());
    }
}
