//! `dealdesk eval quotes`: the evaluation protocol on any single-table CSV. 5-fold stratified
//! cross-validation (seed 42) without a time column, else a time-ordered 80/20 split; the
//! model is the product's ([`QuoteModel::train`], context only) and the scores are AUC,
//! log-loss, Brier score and ECE (10 bins).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::features::{Raw, Record, iso_days};
use super::metrics::Scores;
use super::model::{Example, QuoteModel, TrainOptions, stratified_folds};
use crate::error::{Error, Result};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub csv: PathBuf,
    pub target: String,
    pub positive: String,
    pub sep: u8,
    pub time_col: Option<String>,
    pub drop: Vec<String>,
}

/// One train/test split's result.
#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    pub n_train: usize,
    pub n_test: usize,
    #[serde(flatten)]
    pub scores: Scores,
    pub lambda: f64,
    pub calibration: String,
}

/// The evaluation's result; the top-level scores are the means over splits.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub auc: f64,
    pub logloss: f64,
    pub brier: f64,
    pub ece: f64,
    /// Standard deviation over folds (cross-validation only).
    pub sd: Option<Scores>,
    pub protocol: String,
    pub rows: usize,
    pub positives: usize,
    /// Rows without a target value, left out.
    pub skipped: usize,
    pub features: Vec<String>,
    pub splits: Vec<SplitReport>,
    pub seconds: f64,
}

struct Table {
    examples: Vec<Example>,
    times: Vec<Raw>,
    skipped: usize,
}

fn read_table(opts: &EvalOptions) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.sep)
        .from_path(&opts.csv)
        .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", opts.csv.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| Error::InvalidInput(format!("{}: no header row: {e}", opts.csv.display())))?
        .clone();
    let find = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{} has no column {name:?}; its columns are {:?}",
                opts.csv.display(),
                headers.iter().collect::<Vec<_>>()
            ))
        })
    };
    let target = find(&opts.target)?;
    let time = opts.time_col.as_deref().map(find).transpose()?;
    for d in &opts.drop {
        find(d)?;
    }
    let mut table = Table {
        examples: Vec::new(),
        times: Vec::new(),
        skipped: 0,
    };
    for (n, row) in reader.records().enumerate() {
        let row = row.map_err(|e| {
            Error::InvalidInput(format!("{} line {}: {e}", opts.csv.display(), n + 2))
        })?;
        let value = row.get(target).unwrap_or("").trim();
        if value.is_empty() {
            table.skipped += 1;
            continue;
        }
        let record: Record = headers
            .iter()
            .zip(row.iter())
            .enumerate()
            .filter(|(i, (h, _))| {
                *i != target && Some(*i) != time && !opts.drop.iter().any(|d| d == h)
            })
            .map(|(_, (h, v))| (h.to_string(), Raw::from_cell(v)))
            .collect();
        if let Some(t) = time {
            table.times.push(Raw::from_cell(row.get(t).unwrap_or("")));
        }
        table.examples.push(Example {
            record,
            discount: None,
            won: value == opts.positive,
        });
    }
    let positives = table.examples.iter().filter(|e| e.won).count();
    if positives == 0 || positives == table.examples.len() {
        return Err(Error::InvalidInput(format!(
            "{} rows, {positives} with {}={:?}: both classes are needed; check --target and \
             --positive",
            table.examples.len(),
            opts.target,
            opts.positive
        )));
    }
    Ok(table)
}

/// A sortable key of a time value: ISO date, number, else the text itself.
fn time_key(raw: &Raw) -> (u8, f64, String) {
    match raw {
        Raw::Num(v) => (0, *v, String::new()),
        Raw::Text(s) => match iso_days(s) {
            Some(d) => (0, d, s.clone()),
            None => (1, 0.0, s.clone()),
        },
        Raw::Missing => (2, 0.0, String::new()),
    }
}

fn run_split(examples: &[Example], train: &[usize], test: &[usize]) -> Result<SplitReport> {
    let tr: Vec<Example> = train.iter().map(|&i| examples[i].clone()).collect();
    let model = QuoteModel::train(&tr, &TrainOptions::default())?;
    let p: Vec<f64> = test
        .iter()
        .map(|&i| model.predict(&examples[i].record, 0.0))
        .collect();
    let y: Vec<f64> = test
        .iter()
        .map(|&i| f64::from(u8::from(examples[i].won)))
        .collect();
    Ok(SplitReport {
        n_train: train.len(),
        n_test: test.len(),
        scores: Scores::of(&p, &y),
        lambda: model.validation.lambda,
        calibration: model.validation.calibration,
    })
}

/// Runs the protocol.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport> {
    let start = Instant::now();
    let table = read_table(opts)?;
    let n = table.examples.len();
    let (protocol, splits) = if opts.time_col.is_some() {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            let (ka, kb) = (time_key(&table.times[a]), time_key(&table.times[b]));
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(ka.2.cmp(&kb.2))
        });
        let cut = n * 4 / 5;
        let split = run_split(&table.examples, &order[..cut], &order[cut..])?;
        ("time-ordered 80/20".to_string(), vec![split])
    } else {
        let y: Vec<bool> = table.examples.iter().map(|e| e.won).collect();
        let folds = stratified_folds(&y, 5, 42);
        let splits = (0..5)
            .map(|k| {
                let train: Vec<usize> = (0..n).filter(|&i| folds[i] != k).collect();
                let test: Vec<usize> = (0..n).filter(|&i| folds[i] == k).collect();
                run_split(&table.examples, &train, &test)
            })
            .collect::<Result<Vec<_>>>()?;
        ("5-fold stratified CV, seed 42".to_string(), splits)
    };
    let mean = |f: fn(&Scores) -> f64| {
        splits.iter().map(|s| f(&s.scores)).sum::<f64>() / splits.len() as f64
    };
    let sd = |f: fn(&Scores) -> f64| {
        let m = mean(f);
        (splits
            .iter()
            .map(|s| (f(&s.scores) - m).powi(2))
            .sum::<f64>()
            / (splits.len() as f64 - 1.0))
            .sqrt()
    };
    let fields: [fn(&Scores) -> f64; 4] = [|s| s.auc, |s| s.logloss, |s| s.brier, |s| s.ece];
    let [auc, logloss, brier, ece] = fields.map(mean);
    let features: Vec<String> = table
        .examples
        .first()
        .map(|e| e.record.keys().cloned().collect())
        .unwrap_or_default();
    Ok(EvalReport {
        auc,
        logloss,
        brier,
        ece,
        sd: (splits.len() > 1).then(|| {
            let [auc, logloss, brier, ece] = fields.map(sd);
            Scores {
                auc,
                logloss,
                brier,
                ece,
            }
        }),
        protocol,
        rows: n,
        positives: table.examples.iter().filter(|e| e.won).count(),
        skipped: table.skipped,
        features,
        splits,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotes::simulate::{Market, Rng};
    use std::fmt::Write as _;

    #[test]
    fn both_protocols_run_on_a_csv_and_score_above_chance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deals.csv");
        let mut rng = Rng::new(42);
        let past = Market::regional().history(1500, &mut rng, |_, rng| 0.3 * rng.uniform());
        let mut csv = "id;day;stage;region;product;size\n".to_string();
        for (i, d) in past.iter().enumerate() {
            let p = &d.input;
            let stage = if d.won { "Won" } else { "Lost" };
            let region = p.region.as_deref().unwrap();
            let product = p.features["product"].as_str().unwrap();
            writeln!(
                csv,
                "{i};2024-01-{:02};{stage};{region};{product};{}",
                i % 28 + 1,
                p.list_price
            )
            .unwrap();
        }
        csv.push_str("x;2024-02-01;;West;Argo;100\n");
        std::fs::write(&path, csv).unwrap();
        let opts = EvalOptions {
            csv: path,
            target: "stage".into(),
            positive: "Won".into(),
            sep: b';',
            time_col: None,
            drop: vec!["id".into()],
        };
        let cv = evaluate(&opts).unwrap();
        assert_eq!((cv.splits.len(), cv.rows, cv.skipped), (5, 1500, 1));
        assert_eq!(cv.features, ["day", "product", "region", "size"]);
        assert!(cv.auc > 0.55 && cv.ece < 0.08, "{cv:?}");
        let timed = evaluate(&EvalOptions {
            time_col: Some("day".into()),
            ..opts.clone()
        })
        .unwrap();
        assert_eq!(
            (timed.splits[0].n_train, timed.splits[0].n_test),
            (1200, 300)
        );
        let wrong = evaluate(&EvalOptions {
            target: "nope".into(),
            ..opts
        });
        assert!(
            wrong
                .unwrap_err()
                .to_string()
                .contains("no column \"nope\"")
        );
    }
}
