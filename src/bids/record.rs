//! The bid record (the import format of `corpus/*.json`) and its validation, and reading
//! records from a `.json` file (one object or an array), a `.jsonl` file (one object a line)
//! or a directory of such files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Languages a bid can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The language most of `text` is written in (Chinese when a fifth of its letters are
    /// CJK ideographs).
    pub fn detect(text: &str) -> Lang {
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        let cjk = text
            .chars()
            .filter(|c| super::analyzers::is_cjk(*c))
            .count();
        if cjk * 5 >= letters.max(1) {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// What became of a bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = BidOutcome)]
pub enum Outcome {
    Won,
    Lost,
    Withdrawn,
    Pending,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Won,
        Outcome::Lost,
        Outcome::Withdrawn,
        Outcome::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::Lost => "lost",
            Outcome::Withdrawn => "withdrawn",
            Outcome::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Result<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "outcome {s:?}: use won, lost, withdrawn or pending"
                ))
            })
    }
}

/// The response sections of a bid, in document order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Sections {
    pub executive_summary: String,
    pub technical_approach: String,
    pub implementation_plan: String,
    pub service_and_support: String,
    pub pricing_summary: String,
    pub compliance: String,
    pub differentiators: String,
}

/// The section names, as cited in drafts (`[B0001 §technical_approach]`).
pub const SECTION_NAMES: [&str; 7] = [
    "executive_summary",
    "technical_approach",
    "implementation_plan",
    "service_and_support",
    "pricing_summary",
    "compliance",
    "differentiators",
];

impl Sections {
    /// Every section as (name, text), in document order.
    pub fn iter(&self) -> [(&'static str, &str); 7] {
        [
            (SECTION_NAMES[0], &self.executive_summary),
            (SECTION_NAMES[1], &self.technical_approach),
            (SECTION_NAMES[2], &self.implementation_plan),
            (SECTION_NAMES[3], &self.service_and_support),
            (SECTION_NAMES[4], &self.pricing_summary),
            (SECTION_NAMES[5], &self.compliance),
            (SECTION_NAMES[6], &self.differentiators),
        ]
    }

    /// The text of the section called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    }
}

/// One past bid: the import format and the stored document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bid {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub id: String,
    #[schema(pattern = r"\S")]
    pub title: String,
    #[serde(default)]
    pub buyer: String,
    #[serde(default)]
    pub buyer_type: String,
    #[serde(default)]
    pub sector: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub country: String,
    pub language: Lang,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub submitted_date: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0.0)]
    pub value: Option<f64>,
    /// A 3-letter ISO code such as USD or CNY.
    #[serde(default)]
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: Option<String>,
    pub outcome: Outcome,
    #[serde(default)]
    pub requirements: Vec<String>,
    #[serde(default)]
    pub sections: Sections,
    /// The buyer's evaluation feedback (why it was won or lost).
    #[serde(default)]
    pub feedback: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The most text one bid may carry (all fields together).
pub const MAX_BID_BYTES: usize = 256 * 1024;

impl Bid {
    /// Checks the rules the JSON types cannot express; the message names the bid and field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| {
            Err(Error::InvalidInput(format!(
                "bid {:?}: {field} {why}",
                self.id
            )))
        };
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return bad(
                "id",
                "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            );
        }
        if self.title.trim().is_empty() {
            return bad("title", "must not be empty");
        }
        if let Some(date) = &self.submitted_date
            && date_number(date).is_none()
        {
            return bad("submitted_date", "must be a date YYYY-MM-DD");
        }
        if let Some(v) = self.value
            && !(v.is_finite() && v >= 0.0)
        {
            return bad("value", "must be a non-negative number");
        }
        if let Some(c) = &self.currency
            && !(c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()))
        {
            return bad("currency", "must be a 3-letter ISO code such as USD or CNY");
        }
        if self.text_len() > MAX_BID_BYTES {
            return bad("text", "is larger than 256 KiB; split the attachments out");
        }
        Ok(())
    }

    fn text_len(&self) -> usize {
        self.title.len()
            + self.requirements.iter().map(String::len).sum::<usize>()
            + self
                .sections
                .iter()
                .iter()
                .map(|(_, t)| t.len())
                .sum::<usize>()
            + self.feedback.len()
            + self.tags.iter().map(String::len).sum::<usize>()
    }

    /// `submitted_date` as the number YYYYMMDD (for range filters), if set.
    pub fn date_number(&self) -> Option<i64> {
        self.submitted_date.as_deref().and_then(date_number)
    }
}

/// `YYYY-MM-DD` as the number YYYYMMDD, or None when it is not a plausible date.
pub fn date_number(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    // Digits only: `parse` alone would take "+123" or "-001" as a year.
    let digits_at = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !(digits_at(0..4) && digits_at(5..7) && digits_at(8..10))
    {
        return None;
    }
    let y: i64 = date[0..4].parse().ok()?;
    let m: i64 = date[5..7].parse().ok()?;
    let d: i64 = date[8..10].parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some(y * 10_000 + m * 100 + d)
}

/// Parses one bid from JSON text and validates it; `origin` names where it came from.
pub fn parse_bid(text: &str, origin: &str) -> Result<Bid> {
    let bid: Bid = serde_json::from_str(text)
        .map_err(|e| Error::InvalidInput(format!("{origin}: not a valid bid record: {e}")))?;
    bid.validate()
        .map_err(|e| Error::InvalidInput(format!("{origin}: {e}")))?;
    Ok(bid)
}

/// Reads every bid under `path` (a `.json`/`.jsonl` file or a directory of them, in name
/// order) and validates all of them before returning, so nothing is written from a bad file.
pub fn read_path(path: &Path) -> Result<Vec<Bid>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io("cannot list the bid directory", path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "jsonl")
                )
            })
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut bids = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io("cannot read the bid file", file, e))?;
        bids.extend(parse_text(
            &text,
            &file.display().to_string(),
            is_jsonl(file),
        )?);
    }
    let mut seen = std::collections::HashSet::new();
    for bid in &bids {
        if !seen.insert(bid.id.as_str()) {
            return Err(Error::InvalidInput(format!(
                "bid id {:?} appears twice in {}; ids must be unique",
                bid.id,
                path.display()
            )));
        }
    }
    Ok(bids)
}

fn is_jsonl(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some("jsonl")
}

/// Parses bids from `text`: JSON Lines when `jsonl`, else one object or an array of objects.
pub fn parse_text(text: &str, origin: &str, jsonl: bool) -> Result<Vec<Bid>> {
    if jsonl {
        return text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| parse_bid(line, &format!("{origin}:{}", n + 1)))
            .collect();
    }
    if text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("{origin}: not a JSON array: {e}")))?;
        return items
            .iter()
            .enumerate()
            .map(|(n, item)| parse_bid(&item.to_string(), &format!("{origin}[{n}]")))
            .collect();
    }
    Ok(vec![parse_bid(text, origin)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"id":"X-1","title":"Ward monitors","language":"en","outcome":"won"}"#;

    #[test]
    fn a_minimal_record_parses_with_defaults() {
        let bid = parse_bid(MINIMAL, "test").unwrap();
        assert_eq!(bid.outcome, Outcome::Won);
        assert!(bid.requirements.is_empty());
        assert_eq!(bid.sections.get("compliance"), Some(""));
    }

    #[test]
    fn bad_records_are_rejected_with_the_field_named() {
        let err = parse_bid(&MINIMAL.replace("X-1", "a b"), "f.json").unwrap_err();
        assert!(err.to_string().contains("id"), "{err}");
        let err = parse_bid(&MINIMAL.replace("\"won\"", "\"maybe\""), "f.json").unwrap_err();
        assert!(err.to_string().contains("f.json"), "{err}");
        let dated = MINIMAL.replace("}", r#","submitted_date":"2024-13-01"}"#);
        let err = parse_bid(&dated, "f.json").unwrap_err();
        assert!(err.to_string().contains("submitted_date"), "{err}");
        let typo = MINIMAL.replace("}", r#","titel":"x"}"#);
        assert!(parse_bid(&typo, "f.json").is_err());
    }

    #[test]
    fn dates_are_digits_as_the_openapi_pattern_says() {
        assert_eq!(date_number("2024-02-29"), Some(20240229));
        for not_a_date in [
            "+123-01-01",
            "-001-01-01",
            "2024-+1-01",
            "2024-01- 1",
            "2024-00-10",
        ] {
            assert_eq!(date_number(not_a_date), None, "{not_a_date}");
        }
    }

    #[test]
    fn json_lines_and_arrays_parse_and_errors_name_the_line() {
        let two = format!("{MINIMAL}\n\n{}\n", MINIMAL.replace("X-1", "X-2"));
        assert_eq!(parse_text(&two, "b.jsonl", true).unwrap().len(), 2);
        let array = format!("[{MINIMAL}]");
        assert_eq!(parse_text(&array, "b.json", false).unwrap().len(), 1);
        let broken = format!("{MINIMAL}\n{{\"id\":");
        let err = parse_text(&broken, "b.jsonl", true).unwrap_err();
        assert!(err.to_string().contains("b.jsonl:2"), "{err}");
    }

    #[test]
    fn the_shipped_corpus_is_valid() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids"));
        let bids = read_path(dir).unwrap();
        assert!(bids.len() >= 10);
        assert!(bids.iter().any(|b| b.language == Lang::Zh));
        assert!(bids.iter().any(|b| b.language == Lang::En));
    }

    #[test]
    fn language_detection() {
        assert_eq!(Lang::detect("区域医疗中心采购监护设备"), Lang::Zh);
        assert_eq!(
            Lang::detect("Regional hospital monitors, ISO 13485"),
            Lang::En
        );
    }
}
