//! Success factors: for a tender, contrast the most similar won and lost bids — terms the
//! winners share and the losers lack, certifications (and ones still "in progress"), pricing
//! approach, section lengths and the buyers' feedback — and list what the winners had in
//! common.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::Library;
use super::record::{Bid, Outcome, SECTION_NAMES};
use super::search::{self, Filters, SearchRequest, Tender};
use crate::error::Result;

/// Similar bids compared on each side.
const PER_SIDE: usize = 6;

/// Certificate and standard markers looked for in the compliance section.
const CERTIFICATIONS: &[&str] = &[
    "ISO 9001",
    "ISO 13485",
    "ISO 14001",
    "ISO 20000",
    "ISO 27001",
    "ISO 45001",
    "SOC 2",
    "PCI DSS",
    "FDA",
    "CE",
    "HL7",
    "OCPP",
    "ATEX",
    "WCAG",
    "等保三级",
    "等级保护",
    "信创",
    "医疗器械注册证",
    "强制性产品认证",
    "型号核准",
];

/// Phrases that say a certificate is not held yet.
const IN_PROGRESS: &[&str] = &[
    "in progress",
    "pending certification",
    "正在办理",
    "办理中",
    "申请中",
];

/// Pricing-approach markers: (label, phrases).
const PRICING: &[(&str, &[&str])] = &[
    ("fixed price", &["fixed", "总价", "固定"]),
    (
        "all-inclusive (services in the price)",
        &["includ", "covers", "含"],
    ),
    (
        "extras priced separately",
        &["separately", "另行", "单独", "not included"],
    ),
    (
        "availability or service credits",
        &["credit", "availability", "可用率"],
    ),
];

/// The comparison.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Factors {
    pub won: Vec<String>,
    pub lost: Vec<String>,
    /// Terms found in most winners and few losers, with the share of each side having them.
    pub common_to_winners: Vec<TermContrast>,
    /// Certifications named by each side (count of bids).
    pub certifications_won: BTreeMap<String, usize>,
    pub certifications_lost: BTreeMap<String, usize>,
    /// Bids whose compliance section says a certificate is still in progress.
    pub certification_in_progress: Vec<String>,
    /// Pricing approaches: share of winners and of losers using each.
    pub pricing: Vec<TermContrast>,
    /// Mean section length (characters) of winners and losers.
    pub sections: Vec<SectionContrast>,
    pub feedback_won: Vec<String>,
    pub feedback_lost: Vec<String>,
    /// Plain-language summary lines.
    pub summary: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TermContrast {
    pub term: String,
    pub won_share: f64,
    pub lost_share: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SectionContrast {
    pub section: String,
    pub won_chars: f64,
    pub lost_chars: f64,
}

fn share(bids: &[Bid], has: impl Fn(&Bid) -> bool) -> f64 {
    if bids.is_empty() {
        return 0.0;
    }
    bids.iter().filter(|b| has(b)).count() as f64 / bids.len() as f64
}

fn bid_terms(bid: &Bid) -> HashSet<String> {
    let mut analyzer = search::analyzer(bid.language);
    bid.sections
        .iter()
        .iter()
        .flat_map(|(_, text)| super::analyzers::analyze(&mut analyzer, text))
        .map(|t| t.text)
        .filter(|t| t.chars().count() > 1)
        .collect()
}

fn certifications(bids: &[Bid]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for cert in CERTIFICATIONS {
        let n = bids
            .iter()
            .filter(|b| b.sections.compliance.contains(cert))
            .count();
        if n > 0 {
            out.insert(cert.to_string(), n);
        }
    }
    out
}

/// Compares the similar won and lost bids for `tender`.
pub fn factors(library: &Library, tender: &Tender) -> Result<Factors> {
    let side = |outcome: Outcome| -> Result<Vec<Bid>> {
        Ok(library
            .search(&SearchRequest {
                tender: tender.clone(),
                filters: Filters {
                    outcomes: Some(vec![outcome]),
                    ..Filters::default()
                },
                limit: PER_SIDE,
            })?
            .hits
            .into_iter()
            .map(|h| h.bid)
            .collect())
    };
    let won = side(Outcome::Won)?;
    let lost = side(Outcome::Lost)?;
    Ok(compare(&won, &lost))
}

/// The contrast between `won` and `lost` bids.
pub fn compare(won: &[Bid], lost: &[Bid]) -> Factors {
    let won_terms: Vec<HashSet<String>> = won.iter().map(bid_terms).collect();
    let lost_terms: Vec<HashSet<String>> = lost.iter().map(bid_terms).collect();
    let frac = |sets: &[HashSet<String>], t: &str| {
        if sets.is_empty() {
            0.0
        } else {
            sets.iter().filter(|s| s.contains(t)).count() as f64 / sets.len() as f64
        }
    };
    let mut candidates: Vec<&String> = won_terms.iter().flatten().collect();
    candidates.sort();
    candidates.dedup();
    let mut common: Vec<TermContrast> = candidates
        .into_iter()
        .map(|t| TermContrast {
            term: t.clone(),
            won_share: frac(&won_terms, t),
            lost_share: frac(&lost_terms, t),
        })
        .filter(|c| c.won_share >= 0.5 && c.won_share - c.lost_share >= 0.34)
        .collect();
    common.sort_by(|a, b| {
        (b.won_share - b.lost_share)
            .total_cmp(&(a.won_share - a.lost_share))
            .then_with(|| a.term.cmp(&b.term))
    });
    common.truncate(15);

    let pricing: Vec<TermContrast> = PRICING
        .iter()
        .map(|(label, phrases)| {
            let uses = |b: &Bid| {
                let p = b.sections.pricing_summary.to_lowercase();
                phrases.iter().any(|x| p.contains(x))
            };
            TermContrast {
                term: label.to_string(),
                won_share: share(won, uses),
                lost_share: share(lost, uses),
            }
        })
        .collect();
    let mean_len = |bids: &[Bid], name: &str| {
        if bids.is_empty() {
            return 0.0;
        }
        bids.iter()
            .map(|b| b.sections.get(name).unwrap_or("").chars().count() as f64)
            .sum::<f64>()
            / bids.len() as f64
    };
    let sections: Vec<SectionContrast> = SECTION_NAMES
        .iter()
        .map(|name| SectionContrast {
            section: name.to_string(),
            won_chars: mean_len(won, name),
            lost_chars: mean_len(lost, name),
        })
        .collect();
    let in_progress: Vec<String> = won
        .iter()
        .chain(lost)
        .filter(|b| {
            let c = b.sections.compliance.to_lowercase();
            IN_PROGRESS.iter().any(|p| c.contains(p))
        })
        .map(|b| b.id.clone())
        .collect();

    let mut summary = Vec::new();
    if !common.is_empty() {
        let terms: Vec<&str> = common.iter().take(6).map(|c| c.term.as_str()).collect();
        summary.push(format!("Winners had in common: {}.", terms.join(", ")));
    }
    for p in &pricing {
        if p.won_share - p.lost_share >= 0.34 {
            summary.push(format!(
                "Pricing: {} in {:.0}% of winners vs {:.0}% of losers.",
                p.term,
                p.won_share * 100.0,
                p.lost_share * 100.0
            ));
        } else if p.lost_share - p.won_share >= 0.34 {
            summary.push(format!(
                "Pricing: {} mostly in losing bids ({:.0}% vs {:.0}%).",
                p.term,
                p.lost_share * 100.0,
                p.won_share * 100.0
            ));
        }
    }
    let lost_in_progress = in_progress
        .iter()
        .filter(|id| lost.iter().any(|b| &b.id == *id))
        .count();
    if lost_in_progress > 0 {
        summary.push(format!(
            "{lost_in_progress} losing bid(s) had a certificate still in progress."
        ));
    }
    for s in &sections {
        if s.won_chars > 1.5 * s.lost_chars.max(1.0) && !lost.is_empty() {
            summary.push(format!(
                "Winners wrote a fuller {} ({:.0} vs {:.0} characters).",
                s.section, s.won_chars, s.lost_chars
            ));
        }
    }
    Factors {
        won: won.iter().map(|b| b.id.clone()).collect(),
        lost: lost.iter().map(|b| b.id.clone()).collect(),
        common_to_winners: common,
        certifications_won: certifications(won),
        certifications_lost: certifications(lost),
        certification_in_progress: in_progress,
        pricing,
        sections,
        feedback_won: won
            .iter()
            .map(|b| format!("{}: {}", b.id, b.feedback))
            .collect(),
        feedback_lost: lost
            .iter()
            .map(|b| format!("{}: {}", b.id, b.feedback))
            .collect(),
        summary,
    }
}
