//! `dealdesk deals import FILE.csv --map mapping.toml`: a CRM export becomes deals. The
//! mapping names the outcome column and its values, the price, date, region and segment
//! columns, and the feature columns. Every row is checked first; if any is bad, the import
//! reports each bad row with its line number and reason and records nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::deals::{Followed, NewDeal, Outcome};
use crate::error::{Error, Result};

/// The mapping file (see README, "Quotes").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The outcome column.
    pub outcome: String,
    /// Values of the outcome column meaning won, lost, and still open.
    pub won: Vec<String>,
    pub lost: Vec<String>,
    #[serde(default)]
    pub open: Vec<String>,
    pub list_price: Option<String>,
    pub quoted_price: Option<String>,
    /// A discount column: a fraction (0.15), or percent when `discount_percent` is true.
    pub discount: Option<String>,
    #[serde(default)]
    pub discount_percent: bool,
    pub cost: Option<String>,
    pub close_date: Option<String>,
    pub region: Option<String>,
    pub segment: Option<String>,
    pub external_id: Option<String>,
    /// A column of followed | overrode | none.
    pub followed: Option<String>,
    /// Columns copied into the deal's features.
    #[serde(default)]
    pub features: Vec<String>,
    /// The field separator (one character).
    #[serde(default = "comma")]
    pub sep: String,
}

fn comma() -> String {
    ",".into()
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read the mapping file", path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a mapping file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Mapping> {
        toml::from_str(text).map_err(|e| {
            Error::InvalidInput(format!(
                "{origin}: {e}; the README's Quotes section shows every key"
            ))
        })
    }
}

/// A bad row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// Deals to insert, or the bad rows.
pub type Parsed = std::result::Result<Vec<NewDeal>, Vec<BadRow>>;

/// The parsed file: deals to insert, or the bad rows.
pub fn parse(csv_path: &Path, mapping: &Mapping) -> Result<Parsed> {
    let file = std::fs::File::open(csv_path)
        .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", csv_path.display())))?;
    parse_reader(file, &csv_path.display().to_string(), mapping)
}

/// [`parse`] over CSV bytes from `input`; `origin` names them in errors.
pub fn parse_reader(input: impl std::io::Read, origin: &str, mapping: &Mapping) -> Result<Parsed> {
    let [sep] = mapping.sep.as_bytes() else {
        return Err(Error::InvalidInput(format!(
            "mapping sep {:?}: give one character",
            mapping.sep
        )));
    };
    let mut reader = csv::ReaderBuilder::new().delimiter(*sep).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| Error::InvalidInput(format!("{origin}: no header row: {e}")))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "the mapping names column {name:?}, which {origin} does not have; its columns are {:?}",
                headers.iter().collect::<Vec<_>>()
            ))
        })
    };
    let optional = |name: &Option<String>| name.as_deref().map(column).transpose();
    if mapping.region.is_none() {
        return Err(Error::InvalidInput(
            "the mapping has no `region` column; every deal needs a region".into(),
        ));
    }
    let outcome_col = column(&mapping.outcome)?;
    let cols = [
        optional(&mapping.list_price)?,
        optional(&mapping.quoted_price)?,
        optional(&mapping.discount)?,
        optional(&mapping.cost)?,
        optional(&mapping.close_date)?,
        optional(&mapping.region)?,
        optional(&mapping.segment)?,
        optional(&mapping.external_id)?,
        optional(&mapping.followed)?,
    ];
    let [
        list_c,
        quoted_c,
        discount_c,
        cost_c,
        date_c,
        region_c,
        segment_c,
        id_c,
        followed_c,
    ] = cols;
    let feature_cols: Vec<(String, usize)> = mapping
        .features
        .iter()
        .map(|f| column(f).map(|c| (f.clone(), c)))
        .collect::<Result<_>>()?;
    let mut deals = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    reason: format!("not a CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let cell = |c: Option<usize>| {
            c.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let number = |c: Option<usize>, name: &str| -> std::result::Result<Option<f64>, String> {
            cell(c)
                .map(|s| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("{name} {s:?} is not a number"))
                })
                .transpose()
        };
        let row = || -> std::result::Result<NewDeal, String> {
            let value = cell(Some(outcome_col)).unwrap_or_default();
            let outcome = if mapping.won.contains(&value) {
                Some(Outcome::Won)
            } else if mapping.lost.contains(&value) {
                Some(Outcome::Lost)
            } else if mapping.open.contains(&value) {
                None
            } else {
                return Err(format!(
                    "{} {value:?} is none of won {:?}, lost {:?}, open {:?}",
                    mapping.outcome, mapping.won, mapping.lost, mapping.open
                ));
            };
            let followed = match cell(followed_c).as_deref() {
                None => None,
                Some("followed") => Some(Followed::Followed),
                Some("overrode") => Some(Followed::Overrode),
                Some("none") => Some(Followed::None),
                Some(other) => {
                    return Err(format!(
                        "followed {other:?} is none of followed, overrode, none"
                    ));
                }
            };
            let scale = if mapping.discount_percent { 0.01 } else { 1.0 };
            let mut features = Map::new();
            for (name, c) in &feature_cols {
                if let Some(v) = cell(Some(*c)) {
                    let json = match v.parse::<f64>() {
                        Ok(n) if n.is_finite() => {
                            serde_json::Number::from_f64(n).map_or(Value::String(v), Value::Number)
                        }
                        _ => Value::String(v),
                    };
                    features.insert(name.clone(), json);
                }
            }
            let Some(region) = cell(region_c) else {
                return Err("the region is empty; every deal needs one".into());
            };
            NewDeal {
                external_id: cell(id_c),
                region: Some(region),
                segment: cell(segment_c),
                features,
                list_price: number(list_c, "list price")?,
                quoted_price: number(quoted_c, "quoted price")?,
                discount: number(discount_c, "discount")?.map(|d| d * scale),
                cost: number(cost_c, "cost")?,
                // Open deals carry no close date even if the export has one.
                close_date: if outcome.is_some() {
                    cell(date_c)
                } else {
                    None
                },
                outcome,
                followed_recommendation: followed,
            }
            .validate()
            .map_err(|e| e.to_string())
        };
        match row() {
            Ok(deal) => deals.push(deal),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    Ok(if bad.is_empty() { Ok(deals) } else { Err(bad) })
}

/// The error that lists bad rows (the first 20 and how many more).
pub fn bad_rows_error(path: &Path, bad: &[BadRow]) -> Error {
    let shown: Vec<String> = bad
        .iter()
        .take(20)
        .map(|b| format!("line {}: {}", b.line, b.reason))
        .collect();
    let more = bad.len().saturating_sub(shown.len());
    Error::InvalidInput(format!(
        "{} has {} bad row(s); nothing was imported. Fix them and import again:\n{}{}",
        path.display(),
        bad.len(),
        shown.join("\n"),
        if more > 0 {
            format!("\n… and {more} more")
        } else {
            String::new()
        }
    ))
}
