//! Turning a deal's context into model inputs: each field is typed from the training data
//! (number, ISO date or category), numbers get an optional log, standardization, a missing
//! indicator and a linear spline (hinges at quartiles), categories become one-hot columns for
//! every level seen often enough (rare and unseen levels share the all-zero reference).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One field's raw value.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Num(f64),
    Text(String),
    Missing,
}

impl Raw {
    /// A CSV cell: empty is missing, a number is a number, anything else is text.
    pub fn from_cell(cell: &str) -> Raw {
        let cell = cell.trim();
        if cell.is_empty() {
            Raw::Missing
        } else {
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => Raw::Num(v),
                _ => Raw::Text(cell.to_string()),
            }
        }
    }

    /// A JSON value: numbers, strings and booleans (as text); null is missing.
    pub fn from_json(value: &serde_json::Value) -> Raw {
        match value {
            serde_json::Value::Number(n) => n.as_f64().map_or(Raw::Missing, Raw::Num),
            serde_json::Value::String(s) => Raw::from_cell(s),
            serde_json::Value::Bool(b) => Raw::Text(b.to_string()),
            serde_json::Value::Null => Raw::Missing,
            other => Raw::Text(other.to_string()),
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Raw::Num(v) => Some(format!("{v}")),
            Raw::Text(s) => Some(s.clone()),
            Raw::Missing => None,
        }
    }
}

/// A deal's context: field name to value. Absent fields are missing.
pub type Record = BTreeMap<String, Raw>;

/// Days since 1970-01-01 of an ISO date (`YYYY-MM-DD`, optionally followed by a time).
pub fn iso_days(s: &str) -> Option<f64> {
    let date: jiff::civil::Date = s.get(..10)?.parse().ok()?;
    let epoch = jiff::civil::date(1970, 1, 1);
    let days = (date - epoch).get_days();
    Some(f64::from(days))
}

/// How one field becomes columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    Numeric {
        /// ISO dates, read as days since 1970.
        date: bool,
        /// `ln(1 + x - min)` before standardizing (right-skewed, e.g. deal size).
        log: bool,
        /// The training range: values outside it are clamped to it (no extrapolation).
        min: f64,
        max: f64,
        center: f64,
        scale: f64,
        /// Fill for missing values (the standardized median) and whether an indicator is kept.
        fill: f64,
        missing_indicator: bool,
        /// Hinge knots on the standardized scale: one column `max(0, z - k)` each.
        knots: Vec<f64>,
    },
    Categorical {
        levels: Vec<String>,
    },
}

/// One field's encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// Settings of [`Encoder::fit`].
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    /// A category level needs at least this many rows to get its own column.
    pub min_level_count: usize,
    /// Hinge knots at these quantiles of numeric fields with enough distinct values.
    pub knot_quantiles: Vec<f64>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            min_level_count: 5,
            knot_quantiles: vec![0.25, 0.5, 0.75],
        }
    }
}

/// The fitted encoding of every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    pub columns: Vec<Column>,
}

impl Encoder {
    /// Types and encodes every field that appears in `records` except `exclude`d ones. Fields
    /// with a single value carry no information and are left out.
    pub fn fit(records: &[Record], exclude: &[String], opts: &EncoderOptions) -> Encoder {
        let names: BTreeSet<&String> = records.iter().flat_map(|r| r.keys()).collect();
        let columns = names
            .into_iter()
            .filter(|n| !exclude.contains(n))
            .filter_map(|name| {
                let values: Vec<&Raw> = records
                    .iter()
                    .map(|r| r.get(name).unwrap_or(&Raw::Missing))
                    .collect();
                fit_column(&values, opts).map(|kind| Column {
                    name: name.clone(),
                    kind,
                })
            })
            .collect();
        Encoder { columns }
    }

    /// The number of columns [`Encoder::encode`] writes.
    pub fn width(&self) -> usize {
        self.columns.iter().map(|c| column_width(&c.kind)).sum()
    }

    /// Readable names of the encoded columns, e.g. `region=West`, `employees`, `employees>q2`.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.width());
        for c in &self.columns {
            match &c.kind {
                Kind::Numeric {
                    missing_indicator,
                    knots,
                    ..
                } => {
                    out.push(c.name.clone());
                    if *missing_indicator {
                        out.push(format!("{} missing", c.name));
                    }
                    out.extend((1..=knots.len()).map(|k| format!("{} above knot {k}", c.name)));
                }
                Kind::Categorical { levels } => {
                    out.extend(levels.iter().map(|l| format!("{}={l}", c.name)));
                }
            }
        }
        out
    }

    /// The field each encoded column comes from.
    pub fn fields(&self) -> Vec<&str> {
        self.columns
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.name.as_str(), column_width(&c.kind)))
            .collect()
    }

    /// Writes the encoded record into `out` (length [`Encoder::width`]).
    pub fn encode_into(&self, record: &Record, out: &mut [f64]) {
        let mut at = 0;
        for c in &self.columns {
            let raw = record.get(&c.name).unwrap_or(&Raw::Missing);
            match &c.kind {
                Kind::Numeric {
                    date,
                    log,
                    min,
                    max,
                    center,
                    scale,
                    fill,
                    missing_indicator,
                    knots,
                } => {
                    let z = numeric_value(raw, *date)
                        .map(|v| (transform(v.clamp(*min, *max), *log, *min) - center) / scale);
                    let v = z.unwrap_or(*fill);
                    out[at] = v;
                    at += 1;
                    if *missing_indicator {
                        out[at] = f64::from(u8::from(z.is_none()));
                        at += 1;
                    }
                    for k in knots {
                        out[at] = (v - k).max(0.0);
                        at += 1;
                    }
                }
                Kind::Categorical { levels } => {
                    out[at..at + levels.len()].fill(0.0);
                    if let Some(t) = raw.text()
                        && let Ok(i) = levels.binary_search(&t)
                    {
                        out[at + i] = 1.0;
                    }
                    at += levels.len();
                }
            }
        }
    }
}

fn column_width(kind: &Kind) -> usize {
    match kind {
        Kind::Numeric {
            missing_indicator,
            knots,
            ..
        } => 1 + usize::from(*missing_indicator) + knots.len(),
        Kind::Categorical { levels } => levels.len(),
    }
}

fn numeric_value(raw: &Raw, date: bool) -> Option<f64> {
    match (raw, date) {
        (Raw::Num(v), false) => Some(*v),
        (Raw::Text(s), true) => iso_days(s),
        _ => None,
    }
}

fn transform(v: f64, log: bool, min: f64) -> f64 {
    if log { (v - min).max(0.0).ln_1p() } else { v }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn fit_column(values: &[&Raw], opts: &EncoderOptions) -> Option<Kind> {
    let present: Vec<&Raw> = values
        .iter()
        .copied()
        .filter(|v| **v != Raw::Missing)
        .collect();
    if present.is_empty() {
        return None;
    }
    let numbers: Option<Vec<f64>> = present.iter().map(|v| numeric_value(v, false)).collect();
    let dates: Option<Vec<f64>> = present.iter().map(|v| numeric_value(v, true)).collect();
    if let Some((date, raw)) = numbers.map(|n| (false, n)).or(dates.map(|d| (true, d))) {
        return fit_numeric(date, raw, present.len() < values.len(), opts);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in &present {
        *counts.entry(v.text().unwrap_or_default()).or_default() += 1;
    }
    let mut levels: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n >= opts.min_level_count)
        .map(|(l, _)| l.clone())
        .collect();
    // With no missing or rare values, the most common level is the reference (all zeros).
    let covered: usize = levels.iter().map(|l| counts[l]).sum();
    if covered == values.len()
        && let Some((top, _)) = counts.iter().max_by_key(|(_, n)| **n)
    {
        levels.retain(|l| l != top);
    }
    (!levels.is_empty()).then_some(Kind::Categorical { levels })
}

fn fit_numeric(
    date: bool,
    raw: Vec<f64>,
    has_missing: bool,
    opts: &EncoderOptions,
) -> Option<Kind> {
    let n = raw.len() as f64;
    let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
    let max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = raw.iter().sum::<f64>() / n;
    let sd = (raw.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    // Constant, or so extreme (around 1e154 and beyond) that the spread overflows: either way
    // nothing a model can use, and a non-finite scale could not even be stored.
    if !(sd.is_finite() && sd > 0.0) {
        return None;
    }
    let skew = raw.iter().map(|v| ((v - mean) / sd).powi(3)).sum::<f64>() / n;
    let log = !date && skew > 1.0;
    let mut t: Vec<f64> = raw.iter().map(|&v| transform(v, log, min)).collect();
    let center = t.iter().sum::<f64>() / n;
    let scale = (t.iter().map(|v| (v - center).powi(2)).sum::<f64>() / n).sqrt();
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    for v in &mut t {
        *v = (*v - center) / scale;
    }
    t.sort_by(f64::total_cmp);
    let mut distinct = t.clone();
    distinct.dedup();
    let mut knots: Vec<f64> = if distinct.len() > 10 {
        opts.knot_quantiles
            .iter()
            .map(|&q| quantile(&t, q))
            .collect()
    } else {
        Vec::new()
    };
    knots.dedup();
    knots.retain(|&k| k > t[0] && k < t[t.len() - 1]);
    Some(Kind::Numeric {
        date,
        log,
        min,
        max,
        center,
        scale,
        fill: quantile(&t, 0.5),
        missing_indicator: has_missing,
        knots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, Raw)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn iso_dates_count_days_since_1970() {
        assert_eq!(iso_days("1970-01-01"), Some(0.0));
        assert_eq!(iso_days("2017-07-01"), Some(17348.0));
        assert_eq!(iso_days("2017-07-01T10:00:00Z"), Some(17348.0));
        assert_eq!(iso_days("2017-13-01"), None);
        assert_eq!(iso_days("Won"), None);
    }

    #[test]
    fn fields_are_typed_and_encoded_from_the_training_data() {
        let records: Vec<Record> = (0..40)
            .map(|i| {
                rec(&[
                    ("size", Raw::Num(f64::from(i * i))),
                    ("region", Raw::Text(["East", "West"][i as usize % 2].into())),
                    ("rare", Raw::Text(if i == 0 { "x" } else { "y" }.into())),
                    ("day", Raw::Text(format!("2017-01-{:02}", i % 28 + 1))),
                    ("constant", Raw::Num(1.0)),
                ])
            })
            .collect();
        let enc = Encoder::fit(&records, &["day".into()], &EncoderOptions::default());
        let names: Vec<&str> = enc.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["rare", "region", "size"]);
        // region: two levels, no missing: one of them is the reference.
        let Kind::Categorical { levels } = &enc.columns[1].kind else {
            panic!("region is categorical")
        };
        assert_eq!(levels.len(), 1);
        let Kind::Numeric { knots, log, .. } = &enc.columns[2].kind else {
            panic!("size is numeric")
        };
        assert_eq!(knots.len(), 3);
        assert!(!log, "i^2 over 0..40 is not skewed enough for a log");
        let mut out = vec![f64::NAN; enc.width()];
        enc.encode_into(&rec(&[("region", Raw::Text("North".into()))]), &mut out);
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        assert_eq!(enc.names().len(), enc.width());
        assert_eq!(enc.fields().len(), enc.width());
        let dated = Encoder::fit(&records, &[], &EncoderOptions::default());
        assert!(
            dated
                .columns
                .iter()
                .any(|c| matches!(c.kind, Kind::Numeric { date: true, .. }))
        );
    }

    #[test]
    fn a_field_whose_spread_overflows_is_left_out_not_encoded_as_nan() {
        // What API fuzzing sent: deals whose numbers reach 1e300. Their variance is infinite.
        let records: Vec<Record> = (0..20)
            .map(|i| {
                let huge = if i % 2 == 0 { 1e300 } else { -1e300 };
                rec(&[("huge", Raw::Num(huge)), ("size", Raw::Num(f64::from(i)))])
            })
            .collect();
        let enc = Encoder::fit(&records, &[], &EncoderOptions::default());
        let names: Vec<&str> = enc.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["size"]);
    }
}
