//! Scores of probabilistic predictions: AUC, log-loss, Brier score and expected calibration
//! error (10 equal-width bins).

use serde::Serialize;

/// The four scores of one set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Scores {
    pub auc: f64,
    pub logloss: f64,
    pub brier: f64,
    pub ece: f64,
}

impl Scores {
    pub fn of(p: &[f64], y: &[f64]) -> Scores {
        Scores {
            auc: auc(p, y),
            logloss: logloss(p, y),
            brier: brier(p, y),
            ece: ece(p, y, 10),
        }
    }
}

/// Area under the ROC curve (ties count one half); NaN when one class is absent.
pub fn auc(p: &[f64], y: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Mid-ranks of tied scores (Mann-Whitney U).
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if y[k] > 0.5 {
                rank_sum_pos += mid;
            }
        }
        i = j + 1;
    }
    let n_pos = y.iter().filter(|&&v| v > 0.5).count() as f64;
    let n_neg = y.len() as f64 - n_pos;
    (rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15].
pub fn logloss(p: &[f64], y: &[f64]) -> f64 {
    let sum: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    sum / p.len() as f64
}

/// Mean squared error of the probabilities.
pub fn brier(p: &[f64], y: &[f64]) -> f64 {
    p.iter().zip(y).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / p.len() as f64
}

/// Expected calibration error: the row-weighted mean |mean prediction − outcome rate| over
/// `bins` equal-width bins of the prediction.
pub fn ece(p: &[f64], y: &[f64], bins: usize) -> f64 {
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&p, &y) in p.iter().zip(y) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += y;
        count[b] += 1;
    }
    (0..bins).map(|b| (sum_p[b] - sum_y[b]).abs()).sum::<f64>() / p.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computed_values() {
        let p = [0.1, 0.4, 0.35, 0.8];
        let y = [0.0, 0.0, 1.0, 1.0];
        assert!((auc(&p, &y) - 0.75).abs() < 1e-12);
        assert!((auc(&[0.5; 4], &y) - 0.5).abs() < 1e-12);
        let ll = -(0.9f64.ln() + 0.6f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
        assert!((logloss(&p, &y) - ll).abs() < 1e-12);
        assert!((brier(&p, &y) - (0.01 + 0.16 + 0.4225 + 0.04) / 4.0).abs() < 1e-12);
        // Each prediction in its own bin: the mean absolute error.
        assert!((ece(&p, &y, 10) - (0.1 + 0.4 + 0.65 + 0.2) / 4.0).abs() < 1e-12);
        // One bin: |mean prediction - rate|.
        assert!((ece(&[0.3, 0.35], &[0.0, 1.0], 10) - 0.175).abs() < 1e-12);
    }
}
