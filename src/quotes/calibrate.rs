//! Recalibrating predicted probabilities: Platt scaling (a logistic fit on the logit) or
//! isotonic regression (pool-adjacent-violators), chosen by cross-fitted log-loss on
//! held-out predictions; no recalibration when neither helps.

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::logit::{self, FitOptions, sigmoid};
use super::metrics;

/// A monotone map from a raw probability to a calibrated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibrator {
    Identity,
    /// `sigmoid(a * logit(p) + b)`.
    Platt {
        a: f64,
        b: f64,
    },
    /// Piecewise-linear through `(x[i], y[i])`, `x` increasing, `y` non-decreasing.
    Isotonic {
        x: Vec<f64>,
        y: Vec<f64>,
    },
}

fn logit_of(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

impl Calibrator {
    pub fn name(&self) -> &'static str {
        match self {
            Calibrator::Identity => "identity",
            Calibrator::Platt { .. } => "platt",
            Calibrator::Isotonic { .. } => "isotonic",
        }
    }

    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibrator::Identity => p,
            Calibrator::Platt { a, b } => sigmoid(a * logit_of(p) + b),
            Calibrator::Isotonic { x, y } => {
                let i = x.partition_point(|&v| v < p);
                let out = if i == 0 {
                    y[0]
                } else if i == x.len() {
                    y[x.len() - 1]
                } else {
                    let t = (p - x[i - 1]) / (x[i] - x[i - 1]);
                    y[i - 1] + t * (y[i] - y[i - 1])
                };
                // Never exactly 0 or 1: one surprising outcome must not cost infinite loss.
                out.clamp(1e-3, 1.0 - 1e-3)
            }
        }
    }

    /// Platt scaling fitted to `(p, y)`.
    pub fn fit_platt(p: &[f64], y: &[f64]) -> Calibrator {
        let x = Array2::from_shape_fn(
            (p.len(), 2),
            |(i, j)| if j == 0 { 1.0 } else { logit_of(p[i]) },
        );
        let y = Array1::from_vec(y.to_vec());
        match logit::fit(x.view(), y.view(), None, &FitOptions::ridge(2, 1e-6)) {
            Ok(fit) => Calibrator::Platt {
                a: fit.beta[1],
                b: fit.beta[0],
            },
            Err(_) => Calibrator::Identity,
        }
    }

    /// Isotonic regression of `y` on `p` by pool-adjacent-violators.
    pub fn fit_isotonic(p: &[f64], y: &[f64]) -> Calibrator {
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        // Blocks of (sum x, sum y, count).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for &i in &order {
            blocks.push((p[i], y[i], 1.0));
            while blocks.len() > 1 {
                let (x2, y2, n2) = blocks[blocks.len() - 1];
                let (x1, y1, n1) = blocks[blocks.len() - 2];
                if y1 / n1 < y2 / n2 {
                    break;
                }
                blocks.truncate(blocks.len() - 2);
                blocks.push((x1 + x2, y1 + y2, n1 + n2));
            }
        }
        Calibrator::Isotonic {
            x: blocks.iter().map(|b| b.0 / b.2).collect(),
            y: blocks.iter().map(|b| b.1 / b.2).collect(),
        }
    }

    /// Picks identity, Platt or isotonic for held-out predictions `p` with outcomes `y`: each
    /// candidate is fitted on one half and scored on the other (both ways, deterministic
    /// interleaved halves); the winner is refitted on all of them.
    pub fn choose(p: &[f64], y: &[f64]) -> (Calibrator, [f64; 3]) {
        type Fitter = fn(&[f64], &[f64]) -> Calibrator;
        let fitters: [Fitter; 3] = [
            |_, _| Calibrator::Identity,
            Calibrator::fit_platt,
            Calibrator::fit_isotonic,
        ];
        let halves = |k: usize| -> (Vec<f64>, Vec<f64>) {
            (0..p.len())
                .filter(|i| i % 2 == k)
                .map(|i| (p[i], y[i]))
                .unzip()
        };
        let (a, b) = (halves(0), halves(1));
        let mut losses = [0.0; 3];
        for (m, fitter) in fitters.iter().enumerate() {
            for (train, test) in [(&a, &b), (&b, &a)] {
                let cal = fitter(&train.0, &train.1);
                let q: Vec<f64> = test.0.iter().map(|&v| cal.apply(v)).collect();
                losses[m] += metrics::logloss(&q, &test.1) / 2.0;
            }
        }
        let best = (0..3)
            .min_by(|&i, &j| losses[i].total_cmp(&losses[j]))
            .unwrap_or(0);
        (fitters[best](p, y), losses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotes::simulate::Rng;

    /// An overconfident model: the true probability is sigmoid(z) but it predicts
    /// sigmoid(3z + 0.5). Calibration must cut the ECE on fresh data.
    #[test]
    fn calibration_repairs_an_overconfident_model() {
        let mut rng = Rng::new(42);
        let mut draw = |n: usize| -> (Vec<f64>, Vec<f64>) {
            (0..n)
                .map(|_| {
                    let z = rng.normal();
                    let y = f64::from(u8::from(rng.uniform() < sigmoid(z)));
                    (sigmoid(3.0 * z + 0.5), y)
                })
                .unzip()
        };
        let (p_fit, y_fit) = draw(4_000);
        let (p_test, y_test) = draw(20_000);
        let before = metrics::ece(&p_test, &y_test, 10);
        let (cal, losses) = Calibrator::choose(&p_fit, &y_fit);
        assert_ne!(cal.name(), "identity", "{losses:?}");
        let q: Vec<f64> = p_test.iter().map(|&p| cal.apply(p)).collect();
        let after = metrics::ece(&q, &y_test, 10);
        assert!(
            before > 0.08 && after < 0.02,
            "ECE {before} -> {after} with {cal:?}"
        );
        // Platt recovers the inverse map: a ≈ 1/3, b ≈ -0.5/3.
        let Calibrator::Platt { a, b } = Calibrator::fit_platt(&p_fit, &y_fit) else {
            panic!("platt")
        };
        assert!(
            (a - 1.0 / 3.0).abs() < 0.05 && (b + 0.5 / 3.0).abs() < 0.1,
            "{a} {b}"
        );
    }

    #[test]
    fn isotonic_is_monotone_and_identity_wins_on_calibrated_input() {
        let cal = Calibrator::fit_isotonic(&[0.1, 0.2, 0.3, 0.4], &[0.0, 1.0, 0.0, 1.0]);
        let Calibrator::Isotonic { y, .. } = &cal else {
            panic!()
        };
        assert!(y.windows(2).all(|w| w[0] <= w[1]), "{y:?}");
        let mut rng = Rng::new(1);
        let (p, y): (Vec<f64>, Vec<f64>) = (0..4000)
            .map(|_| {
                let p = rng.uniform();
                (p, f64::from(u8::from(rng.uniform() < p)))
            })
            .unzip();
        let (_, losses) = Calibrator::choose(&p, &y);
        // Already calibrated: recalibrating cannot win by much.
        assert!(
            losses[0] <= losses[1] + 0.002 && losses[0] <= losses[2] + 0.002,
            "{losses:?}"
        );
    }
}
