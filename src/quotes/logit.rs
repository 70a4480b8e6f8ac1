//! Penalized logistic regression fit by Newton's method (iteratively reweighted least squares)
//! on ndarray, with an own Cholesky solver, optional per-coefficient non-negativity (used to
//! keep the win probability monotone in the discount) and warm starts.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{Error, Result};

/// `1 / (1 + e^-z)` without overflow.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// How to fit.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// L2 penalty per coefficient (`0.5 * penalty[j] * beta[j]^2` is added to the negative
    /// log-likelihood); 0 leaves a coefficient (e.g. the intercept) unpenalized.
    pub penalty: Vec<f64>,
    /// Coefficients constrained to be `>= 0`.
    pub nonneg: Vec<bool>,
    /// Starting point (a previous fit), else zeros.
    pub init: Option<Vec<f64>>,
    pub max_iter: usize,
    /// Stop when no coefficient moves by more than this.
    pub tol: f64,
}

impl FitOptions {
    /// `p` coefficients, the first (intercept) unpenalized, the rest penalized by `lambda`.
    pub fn ridge(p: usize, lambda: f64) -> FitOptions {
        let mut penalty = vec![lambda; p];
        penalty[0] = 0.0;
        FitOptions {
            penalty,
            nonneg: vec![false; p],
            init: None,
            max_iter: 100,
            tol: 1e-7,
        }
    }
}

/// A fitted model.
#[derive(Debug, Clone)]
pub struct Fit {
    pub beta: Array1<f64>,
    /// Lower Cholesky factor of the penalized Hessian at `beta`: `x' H^-1 x` is the
    /// (Laplace-approximate) variance of the linear predictor at `x`.
    pub chol: Array2<f64>,
    pub iterations: usize,
    pub converged: bool,
}

/// The penalized negative log-likelihood.
pub fn objective(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: Option<ArrayView1<f64>>,
    beta: ArrayView1<f64>,
    penalty: &[f64],
) -> f64 {
    let z = x.dot(&beta);
    let mut loss = 0.0;
    for i in 0..z.len() {
        let wi = w.map_or(1.0, |w| w[i]);
        loss += wi * (softplus(z[i]) - y[i] * z[i]);
    }
    loss + 0.5
        * beta
            .iter()
            .zip(penalty)
            .map(|(b, l)| l * b * b)
            .sum::<f64>()
}

/// Fits `P(y=1|x) = sigmoid(x . beta)`; `x` carries its own intercept column.
pub fn fit(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: Option<ArrayView1<f64>>,
    opts: &FitOptions,
) -> Result<Fit> {
    let (n, p) = x.dim();
    if y.len() != n || opts.penalty.len() != p || opts.nonneg.len() != p {
        return Err(Error::Internal(format!(
            "logit::fit: {n} rows, {} outcomes, {p} columns, {} penalties",
            y.len(),
            opts.penalty.len()
        )));
    }
    let mut beta = match &opts.init {
        Some(b) if b.len() == p => Array1::from_vec(b.clone()),
        _ => Array1::zeros(p),
    };
    for j in 0..p {
        if opts.nonneg[j] && beta[j] < 0.0 {
            beta[j] = 0.0;
        }
    }
    let mut obj = objective(x, y, w, beta.view(), &opts.penalty);
    let mut converged = false;
    let mut iterations = 0;
    while iterations < opts.max_iter {
        iterations += 1;
        let (grad, hess) = gradient_hessian(x, y, w, beta.view(), &opts.penalty);
        // Constrained coefficients at their bound that the gradient pushes outward stay fixed.
        let free: Vec<usize> = (0..p)
            .filter(|&j| !(opts.nonneg[j] && beta[j] <= 0.0 && grad[j] > 0.0))
            .collect();
        let h_ff =
            Array2::from_shape_fn((free.len(), free.len()), |(a, b)| hess[[free[a], free[b]]]);
        let g_f: Array1<f64> = free.iter().map(|&j| -grad[j]).collect();
        let step = cholesky_solve(&cholesky(&h_ff)?, &g_f);
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let mut cand = beta.clone();
            for (k, &j) in free.iter().enumerate() {
                cand[j] += t * step[k];
                if opts.nonneg[j] && cand[j] < 0.0 {
                    cand[j] = 0.0;
                }
            }
            let cand_obj = objective(x, y, w, cand.view(), &opts.penalty);
            if cand_obj <= obj + 1e-12 * obj.abs().max(1.0) {
                accepted = Some((cand, cand_obj));
                break;
            }
            t *= 0.5;
        }
        let Some((cand, cand_obj)) = accepted else {
            converged = true; // no descent direction left: at the optimum up to rounding
            break;
        };
        let moved = cand
            .iter()
            .zip(beta.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        beta = cand;
        obj = cand_obj;
        if moved < opts.tol {
            converged = true;
            break;
        }
    }
    let (_, hess) = gradient_hessian(x, y, w, beta.view(), &opts.penalty);
    Ok(Fit {
        chol: cholesky(&hess)?,
        beta,
        iterations,
        converged,
    })
}

fn gradient_hessian(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: Option<ArrayView1<f64>>,
    beta: ArrayView1<f64>,
    penalty: &[f64],
) -> (Array1<f64>, Array2<f64>) {
    let z = x.dot(&beta);
    let n = z.len();
    let mut resid = Array1::zeros(n);
    let mut root = Array1::zeros(n);
    for i in 0..n {
        let wi = w.map_or(1.0, |w| w[i]);
        let pi = sigmoid(z[i]);
        resid[i] = wi * (pi - y[i]);
        root[i] = (wi * pi * (1.0 - pi)).sqrt();
    }
    let mut grad = x.t().dot(&resid);
    let scaled = &x * &root.insert_axis(Axis(1));
    let mut hess = scaled.t().dot(&scaled);
    for j in 0..beta.len() {
        grad[j] += penalty[j] * beta[j];
        hess[[j, j]] += penalty[j] + 1e-10;
    }
    (grad, hess)
}

/// The lower-triangular `L` with `L L' = a` (a symmetric positive definite).
pub fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    let p = a.nrows();
    let mut l = Array2::<f64>::zeros((p, p));
    for j in 0..p {
        let mut d = a[[j, j]];
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(Error::InvalidInput(format!(
                "the model's Hessian is singular at coefficient {j}: the training data has a \
                 constant or duplicated feature, or too few rows; add rows or drop the feature"
            )));
        }
        let d = d.sqrt();
        l[[j, j]] = d;
        for i in j + 1..p {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = s / d;
        }
    }
    Ok(l)
}

/// Solves `L z = b` (forward substitution).
pub fn forward(l: &Array2<f64>, b: &Array1<f64>) -> Array1<f64> {
    let p = b.len();
    let mut z = Array1::zeros(p);
    for i in 0..p {
        let mut s = b[i];
        for k in 0..i {
            s -= l[[i, k]] * z[k];
        }
        z[i] = s / l[[i, i]];
    }
    z
}

/// Solves `L L' x = b`.
pub fn cholesky_solve(l: &Array2<f64>, b: &Array1<f64>) -> Array1<f64> {
    let z = forward(l, b);
    let p = z.len();
    let mut x = Array1::zeros(p);
    for i in (0..p).rev() {
        let mut s = z[i];
        for k in i + 1..p {
            s -= l[[k, i]] * x[k];
        }
        x[i] = s / l[[i, i]];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotes::simulate::Rng;

    #[test]
    fn cholesky_solves_a_known_system() {
        let a = ndarray::array![[4.0, 2.0, 0.6], [2.0, 5.0, 1.0], [0.6, 1.0, 3.0]];
        let b = ndarray::array![1.0, -2.0, 0.5];
        let x = cholesky_solve(&cholesky(&a).unwrap(), &b);
        let back = a.dot(&x);
        for i in 0..3 {
            assert!((back[i] - b[i]).abs() < 1e-12);
        }
        assert!(cholesky(&ndarray::array![[1.0, 1.0], [1.0, 1.0]]).is_err());
    }

    /// Simulates from a known logistic model and checks every coefficient is recovered
    /// within four standard errors (and within 0.1 absolutely) by the unpenalized fit.
    #[test]
    fn fit_recovers_a_known_logistic_model() {
        let truth = [-0.5, 1.2, -0.8, 0.3, 0.0, 2.0];
        let n = 20_000;
        let mut rng = Rng::new(42);
        let x = Array2::from_shape_fn((n, truth.len()), |(_, j)| {
            if j == 0 {
                1.0
            } else if j == 5 {
                f64::from(u8::from(rng.uniform() < 0.3))
            } else {
                rng.normal()
            }
        });
        let y: Array1<f64> = (0..n)
            .map(|i| {
                let z: f64 = (0..truth.len()).map(|j| x[[i, j]] * truth[j]).sum();
                f64::from(u8::from(rng.uniform() < sigmoid(z)))
            })
            .collect();
        let fit = fit(
            x.view(),
            y.view(),
            None,
            &FitOptions::ridge(truth.len(), 0.0),
        )
        .unwrap();
        assert!(fit.converged && fit.iterations < 15, "{fit:?}");
        for (j, t) in truth.iter().enumerate() {
            let mut e = Array1::zeros(truth.len());
            e[j] = 1.0;
            let se = forward(&fit.chol, &e).dot(&forward(&fit.chol, &e)).sqrt();
            let err = (fit.beta[j] - t).abs();
            assert!(
                err < 4.0 * se && err < 0.1,
                "coef {j}: {} vs {t} (se {se})",
                fit.beta[j]
            );
        }
    }

    #[test]
    fn nonnegative_coefficients_stay_at_zero_when_the_data_pulls_them_below() {
        // y falls with the second column; constrained to >= 0 its coefficient must be 0.
        let mut rng = Rng::new(42);
        let n = 2_000;
        let x = Array2::from_shape_fn((n, 2), |(_, j)| if j == 0 { 1.0 } else { rng.normal() });
        let y: Array1<f64> = (0..n)
            .map(|i| f64::from(u8::from(rng.uniform() < sigmoid(-x[[i, 1]]))))
            .collect();
        let mut opts = FitOptions::ridge(2, 0.0);
        let free = fit(x.view(), y.view(), None, &opts).unwrap();
        assert!(free.beta[1] < -0.8);
        opts.nonneg[1] = true;
        let bound = fit(x.view(), y.view(), None, &opts).unwrap();
        assert_eq!(bound.beta[1], 0.0);
        assert!(bound.converged);
    }

    #[test]
    fn a_warm_start_converges_in_few_steps() {
        let mut rng = Rng::new(7);
        let n = 5_000;
        let x = Array2::from_shape_fn((n, 3), |(_, j)| if j == 0 { 1.0 } else { rng.normal() });
        let y: Array1<f64> = (0..n)
            .map(|i| {
                f64::from(u8::from(
                    rng.uniform() < sigmoid(0.5 * x[[i, 1]] - x[[i, 2]]),
                ))
            })
            .collect();
        let mut opts = FitOptions::ridge(3, 1.0);
        let cold = fit(x.view(), y.view(), None, &opts).unwrap();
        opts.init = Some(cold.beta.to_vec());
        let warm = fit(x.view(), y.view(), None, &opts).unwrap();
        assert!(warm.iterations <= 2 && cold.iterations > warm.iterations);
    }
}
