//! The win-probability model: context features plus a discount curve, a regularized logistic
//! regression with its penalty chosen by stratified cross-validation, and a calibration step
//! chosen on the out-of-fold predictions.
//!
//! The discount enters through two basis functions of `u = d / d_max`, `u - u²/2` and `u²/2`,
//! whose coefficients are constrained to be non-negative: that is exactly the set of quadratic
//! logit curves that never fall as the discount grows on `[0, d_max]`, so a thin or confounded
//! data set cannot produce a model that says a bigger discount loses deals.

use ndarray::{Array1, Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use super::calibrate::Calibrator;
use super::features::{Encoder, EncoderOptions, Record};
use super::logit::{self, FitOptions, sigmoid};
use super::metrics::Scores;
use super::simulate::Rng;
use crate::error::{Error, Result};

/// One logged outcome.
#[derive(Debug, Clone)]
pub struct Example {
    pub record: Record,
    /// The quoted discount as a fraction of list price, when known.
    pub discount: Option<f64>,
    pub won: bool,
}

/// Settings of [`QuoteModel::train`].
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Candidate L2 penalties.
    pub lambdas: Vec<f64>,
    /// Folds of the inner cross-validation that picks the penalty and the calibration.
    pub folds: usize,
    pub seed: u64,
    /// Fields the model must not see (protected attributes, ids).
    pub exclude: Vec<String>,
    pub encoder: EncoderOptions,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            lambdas: vec![0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0],
            folds: 5,
            seed: 42,
            exclude: Vec::new(),
            encoder: EncoderOptions::default(),
        }
    }
}

/// The discount terms: present only when every training outcome has a discount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTerms {
    /// The largest discount in the training data; the curve is not extrapolated beyond it.
    pub max_discount: f64,
}

impl PriceTerms {
    /// The two discount columns at discount `d`.
    pub fn basis(&self, d: f64) -> [f64; 2] {
        let u = (d / self.max_discount).clamp(0.0, 1.0);
        [u - u * u / 2.0, u * u / 2.0]
    }
}

/// How the model was validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub rows: usize,
    pub won: usize,
    pub lambda: f64,
    /// Mean out-of-fold log-loss of each candidate penalty.
    pub lambda_logloss: Vec<(f64, f64)>,
    /// Calibration picked: identity, platt or isotonic, with each one's cross-fitted log-loss.
    pub calibration: String,
    pub calibration_logloss: [f64; 3],
    /// Out-of-fold scores after calibration.
    pub auc: f64,
    pub logloss: f64,
    pub brier: f64,
    pub ece: f64,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteModel {
    pub encoder: Encoder,
    pub price: Option<PriceTerms>,
    /// Intercept, encoder columns, then the two discount terms when `price` is set.
    pub beta: Vec<f64>,
    /// Lower Cholesky factor of the penalized Hessian, row-major `p × p`.
    pub chol: Vec<f64>,
    pub calibrator: Calibrator,
    /// Mean of each design column in the training data (the baseline of explanations).
    pub means: Vec<f64>,
    pub validation: Validation,
    /// Why the discount curve is absent, when it is.
    pub note: Option<String>,
}

/// Fold of each row: stratified by outcome, shuffled with `seed`.
pub fn stratified_folds(y: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut fold = vec![0; y.len()];
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        rng.shuffle(&mut idx);
        for (n, i) in idx.into_iter().enumerate() {
            fold[i] = n % k;
        }
    }
    fold
}

struct Design {
    x: Array2<f64>,
    y: Array1<f64>,
    penalty_scale: Vec<f64>,
    nonneg: Vec<bool>,
}

impl QuoteModel {
    fn p(&self) -> usize {
        self.beta.len()
    }

    /// The design row of a deal at discount `d` (ignored without price terms).
    pub fn row(&self, record: &Record, d: f64) -> Vec<f64> {
        let mut row = vec![0.0; self.p()];
        fill_row(&self.encoder, self.price.as_ref(), record, d, &mut row);
        row
    }

    /// The uncalibrated logit of a design row.
    pub fn logit(&self, row: &[f64]) -> f64 {
        row.iter().zip(&self.beta).map(|(x, b)| x * b).sum()
    }

    /// Calibrated P(win) of a deal at discount `d`.
    pub fn predict(&self, record: &Record, d: f64) -> f64 {
        self.calibrator
            .apply(sigmoid(self.logit(&self.row(record, d))))
    }

    /// A `z`-standard-error interval of the calibrated P(win) of a design row (Laplace
    /// approximation on the logit, mapped through the monotone calibration).
    pub fn interval(&self, row: &[f64], z: f64) -> (f64, f64) {
        let p = self.p();
        let l = ArrayView1::from(&self.chol[..]).into_shape_with_order((p, p));
        let l = l.map(|l| l.to_owned()).unwrap_or_else(|_| Array2::eye(p));
        let se = logit::forward(&l, &Array1::from_vec(row.to_vec()))
            .mapv(|v| v * v)
            .sum()
            .sqrt();
        let eta = self.logit(row);
        (
            self.calibrator.apply(sigmoid(eta - z * se)),
            self.calibrator.apply(sigmoid(eta + z * se)),
        )
    }

    /// Fits the model: encoder, penalty by cross-validation, calibration by cross-fitting.
    pub fn train(examples: &[Example], opts: &TrainOptions) -> Result<QuoteModel> {
        let won = examples.iter().filter(|e| e.won).count();
        if examples.len() < 2 * opts.folds.max(2) || won == 0 || won == examples.len() {
            return Err(Error::InvalidInput(format!(
                "{} outcomes ({won} won): a model needs at least {} with both won and lost \
                 deals; record more outcomes first",
                examples.len(),
                2 * opts.folds.max(2)
            )));
        }
        let records: Vec<Record> = examples.iter().map(|e| e.record.clone()).collect();
        let encoder = Encoder::fit(&records, &opts.exclude, &opts.encoder);
        let priced = examples.iter().filter(|e| e.discount.is_some()).count();
        let (price, note) = if priced == examples.len() {
            let max = examples
                .iter()
                .filter_map(|e| e.discount)
                .fold(0.0, f64::max);
            if max > 0.0 {
                (Some(PriceTerms { max_discount: max }), None)
            } else {
                (None, Some("no outcome has a discount above 0: the model predicts P(win) from the deal's context only".to_string()))
            }
        } else {
            (
                None,
                Some(format!(
                    "{} of {} outcomes have no price: the model predicts P(win) from the deal's \
                     context only and recommends no discount",
                    examples.len() - priced,
                    examples.len()
                )),
            )
        };
        let design = build_design(&encoder, price.as_ref(), examples);
        let y: Vec<bool> = examples.iter().map(|e| e.won).collect();
        let folds = stratified_folds(&y, opts.folds, opts.seed);
        // Out-of-fold predictions for every penalty, warm-started along the path.
        let mut lambdas = opts.lambdas.clone();
        lambdas.sort_by(|a, b| b.total_cmp(a));
        let mut oof = vec![vec![0.0; examples.len()]; lambdas.len()];
        for k in 0..opts.folds {
            let train: Vec<usize> = (0..examples.len()).filter(|&i| folds[i] != k).collect();
            let test: Vec<usize> = (0..examples.len()).filter(|&i| folds[i] == k).collect();
            let x_tr = design.x.select(ndarray::Axis(0), &train);
            let y_tr = design.y.select(ndarray::Axis(0), &train);
            let mut init = None;
            for (m, &lambda) in lambdas.iter().enumerate() {
                let mut fo = fit_options(&design, lambda);
                fo.init = init.take();
                let fit = logit::fit(x_tr.view(), y_tr.view(), None, &fo)?;
                for &i in &test {
                    oof[m][i] = sigmoid(design.x.row(i).dot(&fit.beta));
                }
                init = Some(fit.beta.to_vec());
            }
        }
        let yf: Vec<f64> = design.y.to_vec();
        let lambda_logloss: Vec<(f64, f64)> = lambdas
            .iter()
            .zip(&oof)
            .map(|(&l, p)| (l, super::metrics::logloss(p, &yf)))
            .collect();
        let best = (0..lambdas.len())
            .min_by(|&a, &b| lambda_logloss[a].1.total_cmp(&lambda_logloss[b].1))
            .unwrap_or(0);
        let (calibrator, calibration_logloss) = Calibrator::choose(&oof[best], &yf);
        let calibrated: Vec<f64> = oof[best].iter().map(|&p| calibrator.apply(p)).collect();
        let scores = Scores::of(&calibrated, &yf);
        let fit = logit::fit(
            design.x.view(),
            design.y.view(),
            None,
            &fit_options(&design, lambdas[best]),
        )?;
        let n = examples.len() as f64;
        let means = design.x.sum_axis(ndarray::Axis(0)).mapv(|v| v / n).to_vec();
        QuoteModel {
            encoder,
            price,
            beta: fit.beta.to_vec(),
            chol: fit.chol.iter().copied().collect(),
            calibrator: calibrator.clone(),
            means,
            validation: Validation {
                rows: examples.len(),
                won,
                lambda: lambdas[best],
                lambda_logloss,
                calibration: calibrator.name().to_string(),
                calibration_logloss,
                auc: scores.auc,
                logloss: scores.logloss,
                brier: scores.brier,
                ece: scores.ece,
            },
            note,
        }
        .storable()
    }

    /// Refits the coefficients on `examples` (the old ones plus new outcomes) with this model's
    /// encoding, penalty and calibration, warm-started from its coefficients: the incremental
    /// update run as outcomes arrive. A full [`QuoteModel::train`] re-selects everything.
    pub fn refit(&self, examples: &[Example]) -> Result<QuoteModel> {
        if self.price.is_some() && examples.iter().any(|e| e.discount.is_none()) {
            return Err(Error::InvalidInput(
                "an outcome without a discount cannot update a model with a discount curve; \
                 run a full fit"
                    .into(),
            ));
        }
        let design = build_design(&self.encoder, self.price.as_ref(), examples);
        let mut fo = fit_options(&design, self.validation.lambda);
        fo.init = Some(self.beta.clone());
        let fit = logit::fit(design.x.view(), design.y.view(), None, &fo)?;
        let n = examples.len() as f64;
        let mut model = self.clone();
        model.beta = fit.beta.to_vec();
        model.chol = fit.chol.iter().copied().collect();
        model.means = design.x.sum_axis(ndarray::Axis(0)).mapv(|v| v / n).to_vec();
        model.validation.rows = examples.len();
        model.validation.won = examples.iter().filter(|e| e.won).count();
        model.storable()
    }

    /// The model, if it reads back from its stored JSON. A NaN or infinity anywhere (JSON
    /// writes them as `null`) would make the stored version unreadable and every quote after it
    /// fail, so such a fit is refused and the previous version stays current.
    fn storable(self) -> Result<QuoteModel> {
        let json = serde_json::to_string(&self).expect("a model serializes");
        match serde_json::from_str::<QuoteModel>(&json) {
            Ok(_) => Ok(self),
            Err(e) => Err(Error::InvalidInput(format!(
                "the fit produced a non-finite number ({e}); look for extreme values among the \
                 deals' numbers"
            ))),
        }
    }

    /// Readable names of the design columns.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec!["intercept".to_string()];
        names.extend(self.encoder.names());
        if self.price.is_some() {
            names.push("discount".into());
            names.push("discount (curvature)".into());
        }
        names
    }
}

fn fill_row(
    encoder: &Encoder,
    price: Option<&PriceTerms>,
    record: &Record,
    d: f64,
    row: &mut [f64],
) {
    let w = encoder.width();
    row[0] = 1.0;
    encoder.encode_into(record, &mut row[1..1 + w]);
    if let Some(price) = price {
        row[1 + w..].copy_from_slice(&price.basis(d));
    }
}

fn build_design(encoder: &Encoder, price: Option<&PriceTerms>, examples: &[Example]) -> Design {
    let w = encoder.width();
    let p = 1 + w + if price.is_some() { 2 } else { 0 };
    let mut x = Array2::zeros((examples.len(), p));
    for (i, e) in examples.iter().enumerate() {
        let mut row = x.row_mut(i);
        let row = row
            .as_slice_mut()
            .expect("rows of a standard array are contiguous");
        fill_row(encoder, price, &e.record, e.discount.unwrap_or(0.0), row);
    }
    let y = examples
        .iter()
        .map(|e| f64::from(u8::from(e.won)))
        .collect();
    let mut penalty_scale = vec![1.0; p];
    penalty_scale[0] = 0.0;
    let mut nonneg = vec![false; p];
    if price.is_some() {
        // The price response is the point of the model: shrink it far less than the context.
        penalty_scale[1 + w] = 0.01;
        penalty_scale[2 + w] = 0.01;
        nonneg[1 + w] = true;
        nonneg[2 + w] = true;
    }
    Design {
        x,
        y,
        penalty_scale,
        nonneg,
    }
}

fn fit_options(design: &Design, lambda: f64) -> FitOptions {
    FitOptions {
        penalty: design.penalty_scale.iter().map(|s| s * lambda).collect(),
        nonneg: design.nonneg.clone(),
        init: None,
        max_iter: 100,
        tol: 1e-6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotes::simulate::{Market, Rng, examples};

    #[test]
    fn without_prices_the_model_is_context_only_and_says_so() {
        let mut rng = Rng::new(42);
        let past = Market::regional().history(600, &mut rng, |_, rng| 0.3 * rng.uniform());
        let mut data = examples(&past);
        data[0].discount = None;
        let model = QuoteModel::train(&data, &TrainOptions::default()).unwrap();
        assert!(model.price.is_none());
        assert!(
            model
                .note
                .as_deref()
                .unwrap()
                .contains("1 of 600 outcomes have no price")
        );
        assert_eq!(model.beta.len(), 1 + model.encoder.width());
        let p = model.predict(&data[1].record, 0.2);
        assert_eq!(p, model.predict(&data[1].record, 0.0), "no discount effect");
        assert!(model.validation.auc > 0.55, "{:?}", model.validation);
        // A fit with a NaN would be stored unreadable: it is refused instead.
        let mut broken = model.clone();
        broken.beta[0] = f64::NAN;
        let refused = broken.storable().unwrap_err().to_string();
        assert!(refused.contains("non-finite"), "{refused}");
        let too_few = QuoteModel::train(&data[..5], &TrainOptions::default());
        assert!(
            too_few
                .unwrap_err()
                .to_string()
                .contains("record more outcomes")
        );
    }

    #[test]
    fn the_discount_curve_is_monotone_and_close_to_the_truth() {
        let market = Market::regional();
        let mut rng = Rng::new(42);
        let past = market.history(20_000, &mut rng, |_, rng| 0.3 * rng.uniform());
        let model = QuoteModel::train(&examples(&past), &TrainOptions::default()).unwrap();
        let deal = market.draw(&mut rng);
        let record = deal.record();
        let mut last = 0.0;
        for k in 0..=30 {
            let d = f64::from(k) / 100.0;
            let p = model.predict(&record, d);
            assert!(p >= last - 1e-12, "P(win) falls at d = {d}");
            assert!(
                (p - market.win_probability(&deal, d)).abs() < 0.05,
                "d = {d}"
            );
            last = p;
        }
    }
}
