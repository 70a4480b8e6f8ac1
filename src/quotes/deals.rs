//! Deals as the recommender sees them: a logged outcome or a deal to price, checked on the
//! way in, and the model record built from it (its features plus region, segment and list
//! price).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::features::{Raw, Record, iso_days};
use crate::error::{Error, Result};

/// Won or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DealOutcome)]
pub enum Outcome {
    Won,
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::Lost => "lost",
        }
    }
}

/// Whether the quote followed a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Followed {
    Followed,
    Overrode,
    None,
}

impl Followed {
    pub fn as_str(self) -> &'static str {
        match self {
            Followed::Followed => "followed",
            Followed::Overrode => "overrode",
            Followed::None => "none",
        }
    }
}

/// A deal to record (`POST /deals`, one CSV row): open, or closed with its outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "external_id": "CRM-4711",
    "region": "emea",
    "segment": "mid-market",
    "features": {"product": "analytics", "competitor_present": true},
    "list_price": 120000.0,
    "quoted_price": 102000.0
}))]
pub struct NewDeal {
    /// The deal's id in the CRM, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Default: the caller's region.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    /// Context fields: product, deal size, competitor present, tender, lead source, … (numbers,
    /// text or booleans).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub features: Map<String, Value>,
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0)]
    pub list_price: Option<f64>,
    /// At most the list price; needs `list_price`.
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0)]
    pub quoted_price: Option<f64>,
    /// Fraction of list price; derived from the two prices when both are given.
    #[serde(default)]
    #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
    pub discount: Option<f64>,
    /// The deal's cost, for margins (default: the rules' cost_ratio × list price).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0)]
    pub cost: Option<f64>,
    /// Won or lost for a closed deal; none for an open one.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// YYYY-MM-DD (a timestamp's date part counts); only with an outcome.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")]
    pub close_date: Option<String>,
    #[serde(default)]
    pub followed_recommendation: Option<Followed>,
}

/// The outcome of an open deal (`POST /deals/{id}/outcome`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeUpdate {
    pub outcome: Outcome,
    #[serde(default)]
    pub quoted_price: Option<f64>,
    #[serde(default)]
    pub discount: Option<f64>,
    #[serde(default)]
    pub close_date: Option<String>,
    #[serde(default)]
    pub followed_recommendation: Option<Followed>,
}

fn positive(name: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(Error::InvalidInput(format!(
            "{name} is {v}; it must be a positive amount"
        ))),
        _ => Ok(()),
    }
}

/// Checks a price pair and returns the discount: given, or `1 − quoted / list`.
pub fn resolve_discount(
    list: Option<f64>,
    quoted: Option<f64>,
    discount: Option<f64>,
) -> Result<Option<f64>> {
    positive("list_price", list)?;
    positive("quoted_price", quoted)?;
    let derived = match (list, quoted) {
        (Some(l), Some(q)) => Some(1.0 - q / l),
        (None, Some(_)) => {
            return Err(Error::InvalidInput(
                "quoted_price without list_price: give both, or the discount".into(),
            ));
        }
        _ => None,
    };
    if let (Some(d), Some(e)) = (discount, derived)
        && (d - e).abs() > 0.005
    {
        return Err(Error::InvalidInput(format!(
            "discount {d} does not match list and quoted price (they give {e:.4}); give one or the other"
        )));
    }
    match discount.or(derived) {
        Some(d) if !(0.0..1.0).contains(&d) => Err(Error::InvalidInput(format!(
            "discount {d:.4} is outside [0, 1): a discount is a fraction of list price \
             (0.15 = 15 %) and the quoted price may not exceed list"
        ))),
        d => Ok(d),
    }
}

/// Checks an ISO date.
pub fn check_date(date: Option<&str>) -> Result<()> {
    match date {
        Some(d) if iso_days(d).is_none() => Err(Error::InvalidInput(format!(
            "close_date {d:?} is not a date; use YYYY-MM-DD"
        ))),
        _ => Ok(()),
    }
}

impl NewDeal {
    /// Checks the deal and fills in the derived discount.
    pub fn validate(mut self) -> Result<NewDeal> {
        self.discount = resolve_discount(self.list_price, self.quoted_price, self.discount)?;
        positive("cost", self.cost)?;
        check_date(self.close_date.as_deref())?;
        if self.outcome.is_none() && self.close_date.is_some() {
            return Err(Error::InvalidInput(
                "close_date without an outcome: a closed deal needs outcome won or lost".into(),
            ));
        }
        for (k, v) in &self.features {
            if v.is_object() || v.is_array() {
                return Err(Error::InvalidInput(format!(
                    "feature {k:?} is a JSON {}; features are numbers, text or booleans",
                    if v.is_object() { "object" } else { "array" }
                )));
            }
        }
        Ok(self)
    }
}

/// The model's view of a deal: its features plus `region`, `segment` and `list_price`.
pub fn record_of(
    region: Option<&str>,
    segment: Option<&str>,
    list_price: Option<f64>,
    features: &Map<String, Value>,
) -> Record {
    let mut record: Record = features
        .iter()
        .map(|(k, v)| (k.clone(), Raw::from_json(v)))
        .collect();
    let text = |v: Option<&str>| v.map_or(Raw::Missing, |s| Raw::Text(s.to_string()));
    record.insert("region".into(), text(region));
    record.insert("segment".into(), text(segment));
    record.insert(
        "list_price".into(),
        list_price.map_or(Raw::Missing, Raw::Num),
    );
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_discounts_are_checked_and_derived() {
        assert_eq!(
            resolve_discount(Some(100.0), Some(80.0), None).unwrap(),
            Some(0.19999999999999996)
        );
        assert_eq!(resolve_discount(None, None, Some(0.1)).unwrap(), Some(0.1));
        assert!(resolve_discount(Some(100.0), Some(120.0), None).is_err());
        assert!(resolve_discount(Some(100.0), Some(80.0), Some(0.1)).is_err());
        assert!(resolve_discount(Some(-5.0), None, None).is_err());
        assert!(resolve_discount(None, Some(5.0), None).is_err());
        assert!(resolve_discount(None, None, Some(15.0)).is_err());
        let closed_without_outcome = NewDeal {
            close_date: Some("2024-01-01".into()),
            ..NewDeal::default()
        };
        assert!(closed_without_outcome.validate().is_err());
    }
}
