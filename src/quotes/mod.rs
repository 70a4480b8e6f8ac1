//! Quote recommender: learns the win probability of a deal from logged outcomes as a function
//! of its context and its discount, recommends the discount that maximizes expected margin
//! within guardrails, explains it, and checks recommendations for unfair treatment.
//!
//! * [`features`] — typing and encoding of a deal's context fields
//! * [`logit`] — penalized logistic regression (Newton/IRLS on ndarray, own Cholesky)
//! * [`calibrate`] — Platt or isotonic recalibration, chosen on held-out predictions
//! * [`model`] — the fitted model: penalty by cross-validation, monotone discount curve
//! * [`metrics`] — AUC, log-loss, Brier, ECE
//! * [`eval`] — the `dealdesk eval quotes` protocol on a CSV
//! * [`deals`] — deals and outcomes as recorded, checked on the way in
//! * [`rules`] — guardrails and fairness bounds from the rules file
//! * [`recommend`] — curve, guarded optimum, interval, explanation, similar deals
//! * [`fairness`] — gaps across regions and segments for matched deals
//! * [`import`] — CRM CSV import through a column mapping
//! * [`service`] — the operations the API and CLI call
//! * [`store`] — the deals and quote_models tables
//! * [`simulate`] — seeded randomness and the recommender simulator

pub mod calibrate;
pub mod deals;
pub mod eval;
pub mod fairness;
pub mod features;
pub mod import;
pub mod logit;
pub mod metrics;
pub mod model;
pub mod recommend;
pub mod rules;
pub mod service;
pub mod simulate;
pub mod store;
