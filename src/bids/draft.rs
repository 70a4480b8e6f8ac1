//! Tender-response drafts: an outline with one section per tender requirement, bullets drawn
//! from the most similar winning bids (each cited `[bid-id §section]`), and short paragraphs
//! the LLM writes from those bullets only. The LLM's output is schema-constrained; then every
//! citation is checked to exist and every sentence to be supported by the cited text (lexical
//! overlap, across languages through the glossary); unsupported sentences are dropped.
//! Tender text is data: it only selects evidence and is quoted as headings.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::index::lang_slot;
use super::record::{Bid, Lang};
use super::search::{self, Filters, QueryTerms, Requirements, SearchRequest, Tender};
use super::{Library, analyzers};
use crate::config::Config;
use crate::engines::Engines;
use crate::error::{Error, Result};
use crate::llm::{ChatMessage, GenerateParams, LlmHandle};
use crate::models::Manifest;
use crate::review::{self, Kind, Proposal, Subject};

const TEMPLATE: &str = include_str!("../../prompts/bids-draft-v1.txt");
/// Most requirements turned into sections, and bullets per section.
const MAX_SECTIONS: usize = 8;
const BULLETS: usize = 2;
/// Winning bids each requirement's bullets are drawn from.
const PRECEDENTS: usize = 3;
/// Share of a sentence's terms that must occur in the cited text.
pub const SUPPORT: f64 = 0.6;

/// The prompt template's version id: name and content hash.
pub fn prompt_version() -> String {
    let hash = hex::encode(Sha256::digest(TEMPLATE.as_bytes()));
    format!("bids-draft-v1@{}", &hash[..12])
}

/// One evidence bullet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bullet {
    pub text: String,
    /// `[bid-id §section]`.
    pub citation: String,
    pub bid_id: String,
    pub section: String,
}

/// A sentence the LLM wrote that passed the checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sentence {
    pub text: String,
    pub citation: String,
}

/// One outline section: a requirement, the response section it maps to, its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftSection {
    pub requirement: String,
    /// The response section it belongs in (the most common section of its evidence).
    pub maps_to: String,
    pub bullets: Vec<Bullet>,
    pub paragraph: Vec<Sentence>,
    /// Sentences the LLM wrote that were dropped, with why.
    pub dropped: Vec<String>,
    /// After a person's edit: citations in the edited text that are not among the draft's
    /// sources (see [`super::edit`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsourced: Vec<String>,
    /// After a person's edit: statements in the edited text that cite nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncited: Vec<String>,
}

/// A response draft.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Draft {
    pub ai_generated: bool,
    pub notice: String,
    pub title: String,
    pub language: Lang,
    pub precedents: Vec<String>,
    pub sections: Vec<DraftSection>,
    pub prompt_version: String,
    pub model: String,
    /// The recommendation it is stored as, for review.
    pub recommendation_id: Option<String>,
    /// Who edited it after generation (their name) and when (ms since the epoch), if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
}

/// Splits text into sentences (English and Chinese punctuation).
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '.' | '。' | '!' | '?' | '！' | '？' | '；' | ';') {
            push_sentence(&mut out, &mut current);
        }
    }
    push_sentence(&mut out, &mut current);
    out
}

fn push_sentence(out: &mut Vec<String>, current: &mut String) {
    let s = current.trim();
    if s.chars().count() >= 8 {
        out.push(s.to_string());
    }
    current.clear();
}

/// The index terms of `text` in `lang` (the query analyzers, without translation).
fn terms(text: &str, lang: Lang) -> HashSet<String> {
    analyzers::analyze(&mut search::analyzer(lang), text)
        .into_iter()
        .map(|t| t.text)
        .collect()
}

/// Share of the terms of `sentence` (in `lang`) found in `cited` (in `cited_lang`, with its
/// glossary translations).
pub fn support(sentence: &str, lang: Lang, cited: &str, cited_lang: Lang) -> f64 {
    let own = terms(sentence, lang);
    if own.is_empty() {
        return 0.0;
    }
    let cited_terms = QueryTerms::new(cited, cited_lang);
    let have: HashSet<&str> = cited_terms.terms[lang_slot(lang)]
        .iter()
        .map(String::as_str)
        .collect();
    own.iter().filter(|t| have.contains(t.as_str())).count() as f64 / own.len() as f64
}

/// The evidence for one requirement: the best-overlapping sentences of the winners' sections.
fn bullets_for(requirement: &str, lang: Lang, winners: &[Bid]) -> Vec<Bullet> {
    let query = QueryTerms::new(requirement, lang);
    let mut scored: Vec<(f64, Bullet)> = Vec::new();
    for bid in winners {
        let wanted: HashSet<&str> = query.terms[lang_slot(bid.language)]
            .iter()
            .map(String::as_str)
            .collect();
        for (section, text) in bid.sections.iter() {
            for sentence in sentences(text) {
                let found = terms(&sentence, bid.language);
                let hits = found.iter().filter(|t| wanted.contains(t.as_str())).count();
                if hits == 0 {
                    continue;
                }
                let score = hits as f64 / (found.len() as f64).sqrt();
                scored.push((
                    score,
                    Bullet {
                        citation: format!("[{} §{section}]", bid.id),
                        text: sentence,
                        bid_id: bid.id.clone(),
                        section: section.to_string(),
                    },
                ));
            }
        }
    }
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.citation.cmp(&b.1.citation))
    });
    let mut seen = HashSet::new();
    scored
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| seen.insert(b.citation.clone()))
        .take(BULLETS)
        .collect()
}

/// The outline (no LLM): a section per requirement, its bullets drawn from the winning bids
/// most similar to that requirement (with the tender title), so one requirement's text never
/// changes another's evidence. Returns the precedents used, best first, and the sections.
pub fn outline(library: &Library, tender: &Tender) -> Result<(Vec<Bid>, Vec<DraftSection>)> {
    tender.validate()?;
    let lang = tender.lang();
    let mut requirements = tender.requirements.items();
    if requirements.is_empty() {
        requirements.push(tender.title.clone());
    }
    let mut precedents: Vec<Bid> = Vec::new();
    let mut sections = Vec::new();
    for requirement in requirements.into_iter().take(MAX_SECTIONS) {
        let found = library.search(&SearchRequest {
            tender: Tender {
                requirements: Requirements::Text(requirement.clone()),
                language: Some(lang),
                ..tender.clone()
            },
            filters: Filters::default(),
            limit: PRECEDENTS,
        })?;
        let winners: Vec<Bid> = found.hits.into_iter().map(|h| h.bid).collect();
        let bullets = bullets_for(&requirement, lang, &winners);
        for bid in winners {
            if bullets.iter().any(|b| b.bid_id == bid.id)
                && !precedents.iter().any(|p| p.id == bid.id)
            {
                precedents.push(bid);
            }
        }
        let maps_to = most_common(bullets.iter().map(|b| b.section.as_str()))
            .unwrap_or("technical_approach")
            .to_string();
        sections.push(DraftSection {
            requirement,
            maps_to,
            bullets,
            paragraph: Vec::new(),
            dropped: Vec::new(),
            unsourced: Vec::new(),
            uncited: Vec::new(),
        });
    }
    Ok((precedents, sections))
}

fn most_common<'a>(items: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(i, _)| *i == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    // The first (best-scored) of the most frequent.
    let mut best: Option<(&str, usize)> = None;
    for (item, n) in counts {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((item, n));
        }
    }
    best.map(|(i, _)| i)
}

/// The prompt: the template, then the sections as data.
pub fn messages(sections: &[DraftSection], lang: Lang) -> Vec<ChatMessage> {
    let language = match lang {
        Lang::En => "English",
        Lang::Zh => "simplified Chinese",
    };
    let mut data = String::new();
    for (n, s) in sections.iter().enumerate() {
        data.push_str(&format!(
            "Section {}: heading: {:?}\n",
            n + 1,
            s.requirement
        ));
        for b in &s.bullets {
            data.push_str(&format!("- {} {}\n", b.text, b.citation));
        }
    }
    vec![
        ChatMessage::system(TEMPLATE.replace("{language}", language)),
        ChatMessage::user(format!("<sections>\n{data}</sections>")),
    ]
}

/// The output schema: per section, 1-2 sentences each with one of the allowed citations.
pub fn schema(sections: &[DraftSection]) -> Value {
    let citations: Vec<&str> = sections
        .iter()
        .flat_map(|s| s.bullets.iter().map(|b| b.citation.as_str()))
        .collect();
    json!({
        "type": "object",
        "properties": {
            "sections": {
                "type": "array",
                "minItems": sections.len(),
                "maxItems": sections.len(),
                "items": {
                    "type": "object",
                    "properties": {
                        "sentences": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 2,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "text": {"type": "string", "minLength": 8, "maxLength": 220},
                                    "citation": {"enum": citations}
                                },
                                "required": ["text", "citation"],
                                "additionalProperties": false
                            }
                        }
                    },
                    "required": ["sentences"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["sections"],
        "additionalProperties": false
    })
}

/// Keeps each generated sentence whose citation is one of its section's bullets and whose
/// terms the cited text supports; records the others as dropped.
pub fn check(
    sections: &mut [DraftSection],
    output: &Value,
    lang: Lang,
    library_langs: &dyn Fn(&str) -> Option<Lang>,
) {
    let generated = output["sections"].as_array().cloned().unwrap_or_default();
    for (section, out) in sections.iter_mut().zip(generated) {
        for s in out["sentences"].as_array().cloned().unwrap_or_default() {
            let text = s["text"].as_str().unwrap_or("").trim().to_string();
            let citation = s["citation"].as_str().unwrap_or("").to_string();
            let Some(bullet) = section.bullets.iter().find(|b| b.citation == citation) else {
                section.dropped.push(format!(
                    "{text} (cites {citation}, which is not evidence for this section)"
                ));
                continue;
            };
            let cited_lang = library_langs(&bullet.bid_id).unwrap_or(lang);
            let share = support(&text, lang, &bullet.text, cited_lang);
            if share >= SUPPORT {
                section.paragraph.push(Sentence { text, citation });
            } else {
                section.dropped.push(format!(
                    "{text} (only {:.0}% of its terms are in {citation})",
                    share * 100.0
                ));
            }
        }
    }
}

/// Job kind: write a draft (`POST /bids/draft`).
pub const DRAFT_JOB: &str = "bids.draft";

/// Queues the drafting of a response to `tender` for `user` (their region and ownership); the
/// job's result is the [`Draft`].
pub async fn enqueue(
    jobs: &crate::jobs::JobQueue,
    user: &crate::users::User,
    tender: Tender,
) -> Result<crate::jobs::Job> {
    tender.validate()?;
    let _place = jobs.admit().await?;
    let job = DraftJob {
        tender,
        region: user.region.clone(),
        owner_id: Some(user.id.clone()),
    };
    let payload = serde_json::to_value(&job).expect("a draft job serializes");
    jobs.enqueue(DRAFT_JOB, &payload, Some(&user.id)).await
}

/// What a draft job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftJob {
    pub tender: Tender,
    /// The region whose managers review it.
    pub region: String,
    /// Who asked for it (they own the draft in the review queue); `None` from the CLI.
    #[serde(default)]
    pub owner_id: Option<String>,
}

/// Drafts with the process's shared LLM (`[llm] model`). Blocking.
pub fn draft(
    library: &Library,
    engines: &Engines,
    config: &Config,
    manifest: &Manifest,
    job: &DraftJob,
    runtime: &tokio::runtime::Handle,
) -> Result<Draft> {
    job.tender.validate()?;
    let model_id = config.llm.model.as_str();
    let version = manifest
        .get(model_id)?
        .files
        .first()
        .map(|f| f.sha256[..12].to_string())
        .unwrap_or_default();
    let llm = engines.llm()?;
    run(
        library,
        &llm,
        (model_id, &version),
        job,
        runtime,
        config.llm.max_tokens,
    )
}

/// Builds the outline, has the LLM write the paragraphs, checks them, and stores the draft as
/// a proposed recommendation. Blocking (runs the LLM).
pub fn run(
    library: &Library,
    llm: &LlmHandle,
    model: (&str, &str),
    job: &DraftJob,
    runtime: &tokio::runtime::Handle,
    max_tokens: usize,
) -> Result<Draft> {
    let tender = &job.tender;
    let lang = tender.lang();
    let (winners, mut sections) = outline(library, tender)?;
    let with_evidence: Vec<usize> = (0..sections.len())
        .filter(|&i| !sections[i].bullets.is_empty())
        .collect();
    if !with_evidence.is_empty() {
        let mut asked: Vec<DraftSection> =
            with_evidence.iter().map(|&i| sections[i].clone()).collect();
        let params = GenerateParams {
            max_tokens: max_tokens.min(110 * asked.len() + 40),
            ..GenerateParams::default()
        };
        let out = llm.generate_json_blocking(messages(&asked, lang), schema(&asked), params)?;
        let langs = |id: &str| winners.iter().find(|b| b.id == id).map(|b| b.language);
        check(&mut asked, &out.value, lang, &langs);
        for (slot, section) in with_evidence.into_iter().zip(asked) {
            sections[slot] = section;
        }
    }
    let mut draft = Draft {
        ai_generated: true,
        notice: "AI-generated draft from past winning bids; every statement cites its source. \
                 Review before use."
            .into(),
        title: tender.title.clone(),
        language: lang,
        precedents: winners.iter().map(|b| b.id.clone()).collect(),
        sections,
        prompt_version: prompt_version(),
        model: model.0.to_string(),
        recommendation_id: None,
        edited_by: None,
        edited_at: None,
    };
    let proposal = Proposal {
        kind: Kind::TenderDraft,
        subject: Subject::Bid,
        subject_id: format!(
            "tender:{}",
            &hex::encode(Sha256::digest(tender.query_text()))[..16]
        ),
        region: job.region.clone(),
        model_id: model.0.to_string(),
        model_version: model.1.to_string(),
        prompt_version: Some(draft.prompt_version.clone()),
        input: serde_json::to_value(tender).expect("a tender serializes"),
        output: serde_json::to_value(&draft).expect("a draft serializes"),
        explanation: Some(format!("precedents: {}", draft.precedents.join(", "))),
        confidence: None,
        owner_id: job.owner_id.clone(),
        discount: None,
        deal_value: None,
    };
    let id = runtime.block_on(async {
        let mut tx = library.db().begin().await?;
        let id = review::propose(&mut tx, &proposal).await?;
        tx.commit().await?;
        Ok::<_, Error>(id)
    })?;
    draft.recommendation_id = Some(id);
    Ok(draft)
}

/// The draft as Markdown.
pub fn markdown(draft: &Draft) -> String {
    let mut md = format!(
        "# Response draft: {}\n\n> {}\n\n",
        draft.title, draft.notice
    );
    if let Some(editor) = &draft.edited_by {
        let at = draft
            .edited_at
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| format!(" at {}", t.strftime("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default();
        md.push_str(&format!("> Edited by {editor}{at} after generation.\n\n"));
    }
    md.push_str(&format!("Precedents: {}\n\n", draft.precedents.join(", ")));
    for (n, s) in draft.sections.iter().enumerate() {
        md.push_str(&format!(
            "## {}. {} (→ {})\n\n",
            n + 1,
            s.requirement,
            s.maps_to
        ));
        for c in &s.unsourced {
            md.push_str(&format!(
                "> Check: {c} is not among this draft's sources.\n\n"
            ));
        }
        for u in &s.uncited {
            md.push_str(&format!("> Check: no citation for \"{u}\".\n\n"));
        }
        if s.bullets.is_empty() && s.paragraph.is_empty() {
            md.push_str("_No precedent in the winning bids; write this section by hand._\n\n");
            continue;
        }
        for b in &s.bullets {
            md.push_str(&format!("- {} {}\n", b.text, b.citation));
        }
        if !s.paragraph.is_empty() {
            md.push('\n');
            let para: Vec<String> = s
                .paragraph
                .iter()
                .map(|p| format!("{} {}", p.text, p.citation))
                .collect();
            md.push_str(&para.join(" "));
            md.push('\n');
        }
        md.push('\n');
    }
    md.push_str(&format!(
        "_Prompt {} · model {}_\n",
        draft.prompt_version, draft.model
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> DraftSection {
        DraftSection {
            requirement: "Interface to the patient record".into(),
            maps_to: "technical_approach".into(),
            bullets: vec![Bullet {
                text: "Vital signs flow to the patient record through a validated HL7 interface every minute.".into(),
                citation: "[SB-101 §technical_approach]".into(),
                bid_id: "SB-101".into(),
                section: "technical_approach".into(),
            }],
            paragraph: Vec::new(),
            dropped: Vec::new(),
            unsourced: Vec::new(),
            uncited: Vec::new(),
        }
    }

    #[test]
    fn supported_sentences_stay_and_unsupported_or_miscited_ones_are_dropped() {
        let mut sections = vec![section()];
        let output = json!({"sections": [{"sentences": [
            {"text": "Vital signs flow into the patient record through a validated HL7 interface.",
             "citation": "[SB-101 §technical_approach]"},
            {"text": "We guarantee a fifty percent discount on every licence.",
             "citation": "[SB-101 §technical_approach]"},
            {"text": "Vital signs flow to the patient record every minute.",
             "citation": "[SB-999 §compliance]"}
        ]}]});
        check(&mut sections, &output, Lang::En, &|_| Some(Lang::En));
        assert_eq!(sections[0].paragraph.len(), 1);
        assert!(sections[0].paragraph[0].text.starts_with("Vital signs"));
        assert_eq!(sections[0].dropped.len(), 2, "{:?}", sections[0].dropped);
    }

    #[test]
    fn support_crosses_languages_through_the_glossary() {
        let share = support(
            "生命体征通过HL7接口写入电子病历",
            Lang::Zh,
            "Vital signs flow to the electronic medical record through an HL7 interface.",
            Lang::En,
        );
        assert!(share >= 0.3, "{share}");
    }

    #[test]
    fn sentences_split_in_both_languages() {
        assert_eq!(sentences("First point here. Second point there.").len(), 2);
        assert_eq!(sentences("第一句话在这里。第二句话在那里。").len(), 2);
    }
}
