//! Retrieval of similar past bids for a tender: BM25 over the per-language text fields (the
//! tender is analyzed with both analyzers, so Latin terms such as "ISO 27001" also match
//! Chinese bids), optionally fused with dense retrieval by reciprocal rank fusion; filters
//! (won only by default), matched terms, highlighted snippets and matched fields per hit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Term};

use super::analyzers::{self, is_cjk};
use super::bilingual;
use super::index::{BidIndex, lang_slot};
use super::record::{Bid, Lang, Outcome, date_number};
use crate::error::{Error, Result};

/// A new tender to find precedents for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tender {
    /// What is searched with, with the requirements: one of the two must have words in it, and
    /// the two together at most 64 KiB (the schema asks for a title, the product takes
    /// requirements alone too).
    #[schema(pattern = r"\S", max_length = 4096)]
    pub title: String,
    #[serde(default)]
    pub buyer: String,
    #[serde(default)]
    pub buyer_type: String,
    #[serde(default)]
    pub sector: String,
    #[serde(default)]
    pub region: String,
    /// en or zh; detected from the text when absent.
    #[serde(default)]
    pub language: Option<Lang>,
    /// The requirements: one text, or one string per requirement.
    #[serde(default)]
    pub requirements: Requirements,
}

/// Requirements as one text or a list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Requirements {
    Text(String),
    List(Vec<String>),
}

impl Default for Requirements {
    fn default() -> Self {
        Requirements::List(Vec::new())
    }
}

impl Requirements {
    /// One string per requirement: the list as given, or the text split into sentences.
    pub fn items(&self) -> Vec<String> {
        let pieces: Vec<String> = match self {
            Requirements::List(items) => items.clone(),
            Requirements::Text(text) => text
                .split(['\n', '。', '；', ';'])
                .flat_map(|s| s.split(". "))
                .map(str::to_string)
                .collect(),
        };
        pieces
            .into_iter()
            .map(|s| s.trim().trim_end_matches('.').trim().to_string())
            .filter(|s| s.chars().count() >= 4)
            .collect()
    }

    fn text(&self) -> String {
        match self {
            Requirements::Text(t) => t.clone(),
            Requirements::List(items) => items.join("\n"),
        }
    }
}

impl Tender {
    /// Checks that there is something to search with.
    pub fn validate(&self) -> Result<()> {
        if self.title.trim().is_empty() && self.requirements.text().trim().is_empty() {
            return Err(Error::InvalidInput(
                "the tender needs a title or requirements text to search with".into(),
            ));
        }
        if self.title.len() + self.requirements.text().len() > 64 * 1024 {
            return Err(Error::InvalidInput(
                "the tender text is larger than 64 KiB; paste the requirements only".into(),
            ));
        }
        Ok(())
    }

    /// The text that is searched: title and requirements.
    pub fn query_text(&self) -> String {
        format!("{}\n{}", self.title, self.requirements.text())
    }

    pub fn lang(&self) -> Lang {
        self.language
            .unwrap_or_else(|| Lang::detect(&self.query_text()))
    }
}

/// Which bids may be returned.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Also return lost bids (as contrast). Default: won only.
    pub include_lost: bool,
    /// Exactly these outcomes (overrides `include_lost`).
    pub outcomes: Option<Vec<Outcome>>,
    pub sector: Option<String>,
    pub region: Option<String>,
    pub language: Option<Lang>,
    /// Submitted on or after (YYYY-MM-DD).
    pub date_from: Option<String>,
    /// Submitted on or before (YYYY-MM-DD).
    pub date_to: Option<String>,
    pub value_min: Option<f64>,
    pub value_max: Option<f64>,
}

impl Filters {
    pub fn outcomes(&self) -> Vec<Outcome> {
        match &self.outcomes {
            Some(o) => o.clone(),
            None if self.include_lost => vec![Outcome::Won, Outcome::Lost],
            None => vec![Outcome::Won],
        }
    }

    fn date_bounds(&self) -> Result<(Option<i64>, Option<i64>)> {
        let parse = |d: &Option<String>, name: &str| -> Result<Option<i64>> {
            d.as_deref()
                .map(|d| {
                    date_number(d).ok_or_else(|| {
                        Error::InvalidInput(format!("filters.{name} {d:?}: use YYYY-MM-DD"))
                    })
                })
                .transpose()
        };
        Ok((
            parse(&self.date_from, "date_from")?,
            parse(&self.date_to, "date_to")?,
        ))
    }

    fn query(&self, index: &BidIndex) -> Result<Vec<Box<dyn Query>>> {
        let f = &index.fields;
        let term = |field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let outcomes: Vec<(Occur, Box<dyn Query>)> = self
            .outcomes()
            .into_iter()
            .map(|o| (Occur::Should, term(f.outcome, o.as_str())))
            .collect();
        let mut must: Vec<Box<dyn Query>> = vec![Box::new(BooleanQuery::new(outcomes))];
        if let Some(s) = &self.sector {
            must.push(term(f.sector, s));
        }
        if let Some(r) = &self.region {
            must.push(term(f.region, r));
        }
        if let Some(l) = self.language {
            must.push(term(f.language, l.as_str()));
        }
        let (from, to) = self.date_bounds()?;
        if from.is_some() || to.is_some() {
            let bound = |b: Option<i64>| match b {
                Some(v) => Bound::Included(Term::from_field_i64(f.date, v)),
                None => Bound::Unbounded,
            };
            must.push(Box::new(RangeQuery::new(bound(from), bound(to))));
        }
        if self.value_min.is_some() || self.value_max.is_some() {
            let bound = |b: Option<f64>| match b {
                Some(v) => Bound::Included(Term::from_field_f64(f.value, v)),
                None => Bound::Unbounded,
            };
            must.push(Box::new(RangeQuery::new(
                bound(self.value_min),
                bound(self.value_max),
            )));
        }
        Ok(must)
    }
}

/// What the filters look at, for lists built outside the index (dense retrieval).
#[derive(Debug, Clone)]
pub struct Facets {
    pub outcome: Outcome,
    pub sector: String,
    pub region: String,
    pub language: Lang,
    pub date: Option<i64>,
    pub value: Option<f64>,
}

impl Facets {
    pub fn of(bid: &Bid) -> Facets {
        Facets {
            outcome: bid.outcome,
            sector: bid.sector.clone(),
            region: bid.region.clone(),
            language: bid.language,
            date: bid.date_number(),
            value: bid.value,
        }
    }
}

impl Filters {
    /// The filters as a predicate over [`Facets`] (the same rules as the index query).
    pub fn predicate(&self) -> Result<impl Fn(&Facets) -> bool + use<>> {
        let (from, to) = self.date_bounds()?;
        let outcomes = self.outcomes();
        let f = self.clone();
        Ok(move |b: &Facets| {
            let within = |v: Option<f64>, lo: Option<f64>, hi: Option<f64>| {
                (lo.is_none() && hi.is_none())
                    || v.is_some_and(|v| lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi))
            };
            outcomes.contains(&b.outcome)
                && f.sector.as_ref().is_none_or(|s| *s == b.sector)
                && f.region.as_ref().is_none_or(|r| *r == b.region)
                && f.language.is_none_or(|l| l == b.language)
                && within(
                    b.date.map(|d| d as f64),
                    from.map(|d| d as f64),
                    to.map(|d| d as f64),
                )
                && within(b.value, f.value_min, f.value_max)
        })
    }
}

/// A search: the tender, the filters and how many hits.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BidSearchRequest)]
pub struct SearchRequest {
    pub tender: Tender,
    #[serde(default)]
    pub filters: Filters,
    /// Most hits (default 10, at most 100).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    10
}

/// One retrieved bid and why it ranked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub buyer: String,
    pub sector: String,
    pub region: String,
    pub language: Lang,
    pub outcome: Outcome,
    pub submitted_date: Option<String>,
    pub value: Option<f64>,
    pub currency: Option<String>,
    /// The fused score (reciprocal rank fusion) the list is ordered by.
    pub score: f64,
    /// Rank (1-based) in the keyword list over bids in the tender's language, and in the
    /// list over bids in the other language (searched with glossary translations and codes).
    pub own_language_rank: Option<usize>,
    pub cross_language_rank: Option<usize>,
    /// Rank (1-based) in the dense (multilingual embedding) list, both languages together.
    pub dense_rank: Option<usize>,
    /// Query terms found in the bid.
    pub matched_terms: Vec<String>,
    /// Fields whose text matched (title, requirements, section names, feedback).
    pub matched_fields: Vec<String>,
    /// A snippet per matched field with the matches wrapped in `<b>…</b>`.
    pub highlights: BTreeMap<String, String>,
    /// One sentence on why it ranked.
    pub why: String,
    #[serde(skip)]
    pub bid: Bid,
}

/// The analyzed query: its terms per index language slot.
pub struct QueryTerms {
    pub terms: [Vec<String>; 2],
}

impl QueryTerms {
    /// The tender's own-language terms, and for the other language the glossary
    /// translations plus codes and acronyms (ISO 13485, HL7) that read the same in both.
    pub fn new(text: &str, lang: Lang) -> QueryTerms {
        let glossary = bilingual::glossary();
        let own = analyzers::analyze(&mut analyzer(lang), text);
        let other_lang = match lang {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        };
        let other = analyzers::analyze(&mut analyzer(other_lang), text);
        let own_terms: Vec<String> = own
            .iter()
            .map(|t| t.text.clone())
            .filter(|t| !(lang == Lang::En && t.chars().any(is_cjk)))
            .collect();
        let mut translated = match lang {
            Lang::En => glossary.en_to_zh(&own_terms),
            Lang::Zh => glossary.zh_to_en(text),
        };
        translated.extend(bilingual::codes(text, &other));
        let mut terms: [Vec<String>; 2] = Default::default();
        terms[lang_slot(lang)] = dedup(own_terms);
        terms[lang_slot(other_lang)] = dedup(translated);
        QueryTerms { terms }
    }
}

fn dedup(terms: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    terms
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Most query terms searched per language (the rarest in the index).
pub const MAX_TERMS: usize = 32;

/// Field weights: title, requirements, body.
const BOOSTS: [f32; 3] = [2.0, 1.5, 1.0];
/// How many keyword hits enter fusion.
pub const CANDIDATES: usize = 100;

/// BM25 top `limit` (address, score) over the fields of language `slot` for its terms, under
/// `filters`.
pub fn bm25(
    index: &BidIndex,
    terms: &QueryTerms,
    slot: usize,
    filters: &Filters,
    limit: usize,
) -> Result<Vec<(DocAddress, f32)>> {
    let searcher = index.searcher();
    let fields = index.fields.text();
    // Keep the most selective terms: frequent ones have long posting lists and add little.
    let mut selective: Vec<(u64, &String)> = Vec::new();
    for t in &terms.terms[slot] {
        let mut df = 0;
        for f in &fields {
            df += searcher
                .doc_freq(&Term::from_field_text(f.fields[slot], t))
                .map_err(|e| Error::Internal(format!("bid search failed: {e}")))?;
        }
        if df > 0 {
            selective.push((df, t));
        }
    }
    selective.sort();
    selective.truncate(MAX_TERMS);
    let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (text_field, boost) in fields.into_iter().zip(BOOSTS) {
        {
            for (_, t) in &selective {
                let q = TermQuery::new(
                    Term::from_field_text(text_field.fields[slot], t),
                    IndexRecordOption::WithFreqs,
                );
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        }
    }
    if should.is_empty() {
        return Ok(Vec::new());
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
    clauses.extend(filters.query(index)?.into_iter().map(|q| (Occur::Must, q)));
    let query = BooleanQuery::new(clauses);
    searcher
        .search(&query, &TopDocs::with_limit(limit.max(1)))
        .map_err(|e| Error::Internal(format!("bid search failed: {e}")))
        .map(|hits| hits.into_iter().map(|(s, a)| (a, s)).collect())
}

/// When lost or other outcomes are searched too, a won bid's fused score is raised by this
/// share, so at similar relevance the winner ranks first (chosen from 0, 0.1, 0.25 on the
/// development set; 0.1 keeps strongly matching lost bids in the top ranks).
pub const WON_PRIOR: f64 = 0.1;

/// Reciprocal rank fusion constant.
pub const RRF_K: f64 = 60.0;

/// Fuses ranked id lists by reciprocal rank fusion; returns (id, score, rank in each list).
pub fn fuse(lists: &[Vec<String>]) -> Vec<(String, f64, Vec<Option<usize>>)> {
    let mut fused: HashMap<&str, (f64, Vec<Option<usize>>)> = HashMap::new();
    for (l, list) in lists.iter().enumerate() {
        for (rank, id) in list.iter().enumerate() {
            let entry = fused
                .entry(id.as_str())
                .or_insert_with(|| (0.0, vec![None; lists.len()]));
            entry.0 += 1.0 / (RRF_K + rank as f64 + 1.0);
            entry.1[l] = Some(rank + 1);
        }
    }
    let mut out: Vec<_> = fused
        .into_iter()
        .map(|(id, (score, ranks))| (id.to_string(), score, ranks))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Builds the explained hit for `bid`.
pub fn explain(
    bid: Bid,
    terms: &QueryTerms,
    score: f64,
    own_language_rank: Option<usize>,
    cross_language_rank: Option<usize>,
) -> Hit {
    let slot = lang_slot(bid.language);
    let wanted: HashSet<&str> = terms.terms[slot].iter().map(String::as_str).collect();
    let mut analyzer = analyzer(bid.language);
    let mut fields: Vec<(&str, String)> = vec![
        ("title", bid.title.clone()),
        ("requirements", bid.requirements.join("\n")),
    ];
    for (name, text) in bid.sections.iter() {
        fields.push((name, text.to_string()));
    }
    fields.push(("feedback", bid.feedback.clone()));
    let mut matched_terms = BTreeMap::new();
    let mut matched_fields = Vec::new();
    let mut highlights = BTreeMap::new();
    for (name, text) in &fields {
        let hits: Vec<_> = analyzers::analyze(&mut analyzer, text)
            .into_iter()
            .filter(|t| wanted.contains(t.text.as_str()))
            .collect();
        if hits.is_empty() {
            continue;
        }
        for h in &hits {
            *matched_terms.entry(h.text.clone()).or_insert(0usize) += 1;
        }
        matched_fields.push(name.to_string());
        highlights.insert(name.to_string(), snippet(text, &hits));
    }
    let mut terms_by_count: Vec<(String, usize)> = matched_terms.into_iter().collect();
    terms_by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let matched_terms: Vec<String> = terms_by_count
        .into_iter()
        .map(|(t, _)| t)
        .take(20)
        .collect();
    let top = matched_terms
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let fields = list_or_none(&matched_fields);
    let lang = bid.language.as_str();
    let why = match (own_language_rank, cross_language_rank) {
        (Some(k), _) => format!("keyword rank {k} among {lang} bids; matched {top} in {fields}"),
        (None, Some(k)) => format!(
            "rank {k} among {lang} bids through translated terms and codes; matched {top} in {fields}"
        ),
        (None, None) => "no keyword match".to_string(),
    };
    Hit {
        id: bid.id.clone(),
        title: bid.title.clone(),
        buyer: bid.buyer.clone(),
        sector: bid.sector.clone(),
        region: bid.region.clone(),
        language: bid.language,
        outcome: bid.outcome,
        submitted_date: bid.submitted_date.clone(),
        value: bid.value,
        currency: bid.currency.clone(),
        score,
        own_language_rank,
        cross_language_rank,
        dense_rank: None,
        matched_terms,
        matched_fields,
        highlights,
        why,
        bid,
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no field".into()
    } else {
        items.join(", ")
    }
}

/// Snippet width in bytes around the best run of matches.
const SNIPPET_BYTES: usize = 220;

/// The window of `text` with the most matches, matches wrapped in `<b>…</b>`.
pub fn snippet(text: &str, hits: &[analyzers::Term]) -> String {
    let best = (0..hits.len())
        .max_by_key(|&i| {
            let end = hits[i].from + SNIPPET_BYTES;
            (
                hits[i..].iter().take_while(|h| h.to <= end).count(),
                usize::MAX - i,
            )
        })
        .unwrap_or(0);
    let start = floor_char(text, hits[best].from.saturating_sub(40));
    let end = floor_char(text, (start + SNIPPET_BYTES).min(text.len()));
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for h in hits {
        if h.from < at || h.to > end {
            continue;
        }
        out.push_str(&text[at..h.from]);
        out.push_str("<b>");
        out.push_str(&text[h.from..h.to]);
        out.push_str("</b>");
        at = h.to;
    }
    out.push_str(&text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The analyzer of a language.
pub fn analyzer(lang: Lang) -> TextAnalyzer {
    match lang {
        Lang::En => analyzers::english(),
        Lang::Zh => analyzers::mandarin(),
    }
}
