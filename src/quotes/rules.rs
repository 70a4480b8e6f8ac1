//! The rules file: guardrails per segment (largest discount, floor margin, default cost), the
//! approval threshold and the fairness bounds. `quote_rules.toml` in the repository is the
//! built-in default and documents every key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The built-in rules.
pub const DEFAULT_RULES: &str = include_str!("../../quote_rules.toml");

/// Guardrails of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    pub max_discount: f64,
    pub floor_margin: f64,
    pub cost_ratio: f64,
}

/// A segment's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRule {
    pub max_discount: Option<f64>,
    pub floor_margin: Option<f64>,
    pub cost_ratio: Option<f64>,
}

/// Fairness settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessRules {
    pub attributes: Vec<String>,
    pub protected: Vec<String>,
    pub match_on: Vec<String>,
    pub size_bands: usize,
    pub max_discount_gap: f64,
    pub max_win_gap: f64,
    pub min_group: usize,
}

/// The whole rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub approval_discount: f64,
    pub grid_step: f64,
    pub default: Guardrail,
    #[serde(default)]
    pub segments: BTreeMap<String, SegmentRule>,
    pub fairness: FairnessRules,
}

impl Rules {
    /// The rules in `path`, or the built-in ones when `path` is empty.
    pub fn load(path: &Path) -> Result<Rules> {
        if path.as_os_str().is_empty() {
            return Rules::parse(DEFAULT_RULES, "built-in quote_rules.toml");
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read the quote rules file", path, e))?;
        Rules::parse(&text, &path.display().to_string())
    }

    /// Parses and checks rules; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Rules> {
        let rules: Rules = toml::from_str(text).map_err(|e| {
            Error::InvalidInput(format!("{origin}: {e}; see quote_rules.toml for every key"))
        })?;
        let fraction = |v: f64| (0.0..1.0).contains(&v);
        let mut bad: Vec<String> = Vec::new();
        for (name, g) in std::iter::once(("default".to_string(), rules.default)).chain(
            rules
                .segments
                .keys()
                .map(|s| (format!("segments.{s}"), rules.guardrail(Some(s)))),
        ) {
            if !(fraction(g.max_discount) && fraction(g.floor_margin) && fraction(g.cost_ratio)) {
                bad.push(name);
            }
        }
        let grid_ok = rules.grid_step > 0.0 && rules.grid_step <= 0.1;
        if !bad.is_empty() || !grid_ok || rules.fairness.size_bands == 0 {
            return Err(Error::InvalidInput(format!(
                "{origin}: max_discount, floor_margin and cost_ratio must be fractions in [0, 1) \
                 (check {}), grid_step in (0, 0.1], fairness.size_bands at least 1",
                if bad.is_empty() {
                    "all".into()
                } else {
                    bad.join(", ")
                }
            )));
        }
        Ok(rules)
    }

    /// The guardrails of a segment.
    pub fn guardrail(&self, segment: Option<&str>) -> Guardrail {
        let over = segment
            .and_then(|s| self.segments.get(s))
            .cloned()
            .unwrap_or_default();
        Guardrail {
            max_discount: over.max_discount.unwrap_or(self.default.max_discount),
            floor_margin: over.floor_margin.unwrap_or(self.default.floor_margin),
            cost_ratio: over.cost_ratio.unwrap_or(self.default.cost_ratio),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_parse_and_segments_override_the_default() {
        let rules = Rules::load(Path::new("")).unwrap();
        assert_eq!(rules.guardrail(Some("enterprise")).max_discount, 0.35);
        assert_eq!(rules.guardrail(Some("enterprise")).cost_ratio, 0.55);
        assert_eq!(rules.guardrail(Some("unknown")), rules.default);
        assert_eq!(rules.guardrail(None).floor_margin, 0.10);
    }

    #[test]
    fn bad_rules_are_clear_errors() {
        let typo = DEFAULT_RULES.replace("approval_discount", "aproval_discount");
        assert!(
            Rules::parse(&typo, "x")
                .unwrap_err()
                .to_string()
                .contains("aproval_discount")
        );
        let out_of_range = DEFAULT_RULES.replace("max_discount = 0.20", "max_discount = 1.5");
        assert!(
            Rules::parse(&out_of_range, "x")
                .unwrap_err()
                .to_string()
                .contains("segments.smb")
        );
    }
}
