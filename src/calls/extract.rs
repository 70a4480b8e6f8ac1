//! The LLM steps of call analysis, built for a small local model: every candidate sentence
//! gets one short question with an enum answer under a JSON Schema (is it a promise? which
//! objection category?), behind a fixed system prompt whose KV state the service reuses.
//! The model never writes free text that reaches the output: quotes are transcript
//! sentences, owners are their speakers, dates come from [`super::dates`], actions are cut
//! from the quote in code. Deterministic checks then enforce the invariants: the owner is a
//! participant or a diarized speaker label of the call, the quote is found in its segment
//! (normalized match), withdrawn and duplicate items are removed, and every drop is counted.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::candidates::{self, Sentence, not_a_commitment};
use super::dates::{Date, find_deadline};
use super::grounding::{is_grounded, quotes_overlap};
use super::playbook::Playbook;
use super::transcript::{CallTranscript, Side};
use crate::error::{Error, Result};
use crate::llm::{ChatMessage, GenerateParams, LlmHandle};

/// The objection taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Price,
    Budget,
    Timing,
    Competitor,
    Authority,
    Need,
    Trust,
    ProductFit,
    Contract,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Price,
        Category::Budget,
        Category::Timing,
        Category::Competitor,
        Category::Authority,
        Category::Need,
        Category::Trust,
        Category::ProductFit,
        Category::Contract,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Price => "price",
            Category::Budget => "budget",
            Category::Timing => "timing",
            Category::Competitor => "competitor",
            Category::Authority => "authority",
            Category::Need => "need",
            Category::Trust => "trust",
            Category::ProductFit => "product_fit",
            Category::Contract => "contract",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A prompt template from `prompts/`, with the version id stored with every output.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub text: &'static str,
    /// `<name>@<first 12 hex of the template's sha256>`.
    pub version: String,
}

impl Prompt {
    fn new(name: &str, text: &'static str) -> Prompt {
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        Prompt {
            text,
            version: format!("{name}@{}", &hash[..12]),
        }
    }

    /// "Is this sentence a firm promise?"
    pub fn commitment() -> Prompt {
        Prompt::new(
            "calls-commitment",
            include_str!("../../prompts/calls-commitment.txt"),
        )
    }

    /// "Which objection category, if any?"
    pub fn objection() -> Prompt {
        Prompt::new(
            "calls-objection",
            include_str!("../../prompts/calls-objection.txt"),
        )
    }
}

/// A grounded commitment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Commitment {
    /// The participant who spoke the promise, or the diarized speaker label ("Speaker 2") when
    /// that speaker is not mapped to a participant yet.
    pub owner: String,
    /// `null` while the owner is an unmapped speaker label.
    pub side: Option<Side>,
    /// The owner is an unmapped speaker label: relabel the call's speakers to attribute it.
    #[serde(default)]
    pub needs_relabel: bool,
    /// What will be done, cut from the quote.
    pub action: String,
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<Date>,
    pub due_text: Option<String>,
    /// Exact text of the transcript.
    pub quote: String,
    /// The segment (turn) id.
    pub turn: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// 0..1: 0.9 when the cue pass, a dated deadline and the model agree, 0.7 when only
    /// the cue pass and the model do.
    pub confidence: f64,
}

/// A grounded objection with its playbook answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Objection {
    pub category: Category,
    /// The customer-side participant who raised it, or the diarized speaker label when that
    /// speaker is not mapped to a participant yet (side unknown).
    pub raised_by: String,
    /// The raiser is an unmapped speaker label: relabel the call's speakers to attribute it (a
    /// raiser relabelled to the seller side removes the objection).
    #[serde(default)]
    pub needs_relabel: bool,
    pub quote: String,
    pub turn: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Whether a later customer turn signals it is no longer a blocker after a seller answer.
    pub resolved: bool,
    /// The playbook's suggested answer for the category and language.
    pub answer: String,
    pub confidence: f64,
}

/// Items removed by the deterministic checks, by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dropped {
    /// Quote not found in the transcript.
    pub ungrounded: u32,
    /// Speaker unknown, not a speaker of the call, or (objections) on the seller side.
    pub unattributed: u32,
    /// Not a commitment by the guideline's surface rules (question, condition, ...).
    pub rules: u32,
    /// The model answered "not a promise" / "no objection".
    pub model: u32,
    /// Replaced later in the call by the same owner.
    pub withdrawn: u32,
    /// Merged into an earlier item.
    pub duplicates: u32,
    /// Model requests that failed (invalid output, deadline); the candidate is dropped.
    pub model_errors: u32,
}

/// A line addressed to the AI note-taker, reported and never acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Injection {
    pub turn: u32,
    pub quote: String,
}

/// Cue-pass statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PassStats {
    pub sentences: u32,
    pub commitment_candidates: u32,
    pub objection_candidates: u32,
    pub llm_questions: u32,
    pub llm_seconds: f64,
}

/// What extraction found in one transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Extraction {
    pub commitments: Vec<Commitment>,
    pub objections: Vec<Objection>,
    pub injections: Vec<Injection>,
    pub dropped: Dropped,
    pub stats: PassStats,
    /// The model's manifest id.
    pub model_id: String,
    /// Version ids of the prompt templates used.
    pub prompt_versions: Vec<String>,
}

/// How to run extraction.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub model_id: String,
    /// Per-question deadline.
    pub timeout: Duration,
    pub playbook: Playbook,
}

/// Runs the whole extraction; `progress` gets 0..=1 as questions are answered.
pub fn extract(
    t: &CallTranscript,
    llm: &LlmHandle,
    opts: &ExtractOptions,
    progress: &dyn Fn(f32),
) -> Result<Extraction> {
    let cands = candidates::find(t);
    let mut dropped = Dropped::default();
    let mut stats = PassStats {
        sentences: cands.sentences as u32,
        commitment_candidates: cands.commitments.len() as u32,
        objection_candidates: cands.objections.len() as u32,
        ..PassStats::default()
    };
    let total = (cands.commitments.len() + cands.objections.len()).max(1) as f32;
    let mut asked = 0usize;
    let mut ask = |prompt: &Prompt,
                   key: &str,
                   choices: &[&str],
                   s: &Sentence,
                   stats: &mut PassStats,
                   dropped: &mut Dropped|
     -> Result<Option<String>> {
        let started = Instant::now();
        let answer = ask_enum(llm, prompt, key, choices, &s.text, opts.timeout);
        stats.llm_questions += 1;
        stats.llm_seconds += started.elapsed().as_secs_f64();
        asked += 1;
        progress(asked as f32 / total);
        match answer {
            Ok(a) => Ok(Some(a)),
            Err(Error::Unavailable(m)) => Err(Error::Unavailable(m)),
            Err(e) => {
                tracing::warn!(error = %e, "model question failed; candidate dropped");
                dropped.model_errors += 1;
                Ok(None)
            }
        }
    };

    // Commitments first, then objections: consecutive questions share one system prompt, so
    // the service reuses its KV state.
    let cp = Prompt::commitment();
    let mut commitments = Vec::new();
    for s in &cands.commitments {
        let seg = &t.segments[s.segment];
        if not_a_commitment(&s.text).is_some() {
            dropped.rules += 1;
            continue;
        }
        let Some((owner, side)) = t.speaker_of(seg) else {
            dropped.unattributed += 1;
            continue;
        };
        let Some(label) = ask(&cp, "label", COMMITMENT_LABELS, s, &mut stats, &mut dropped)? else {
            continue;
        };
        if label != "promise" {
            dropped.model += 1;
            continue;
        }
        let deadline = t.call_date.and_then(|d| find_deadline(&s.text, d));
        let dated = deadline.as_ref().is_some_and(|d| d.date.is_some());
        commitments.push(Commitment {
            owner,
            side,
            needs_relabel: side.is_none(),
            action: action_of(&s.text, deadline.as_ref().map(|d| d.text.as_str())),
            due_date: deadline.as_ref().and_then(|d| d.date),
            due_text: deadline.map(|d| d.text),
            quote: s.text.clone(),
            turn: seg.id,
            start_ms: seg.start_ms,
            end_ms: seg.end_ms,
            confidence: if dated { 0.9 } else { 0.7 },
        });
    }

    let op = Prompt::objection();
    let mut objections = Vec::new();
    let choices = objection_choices();
    for s in &cands.objections {
        let seg = &t.segments[s.segment];
        let Some((raiser, side)) = t.speaker_of(seg) else {
            dropped.unattributed += 1;
            continue;
        };
        let Some(answer) = ask(&op, "category", &choices, s, &mut stats, &mut dropped)? else {
            continue;
        };
        let Some(category) = Category::parse(&answer) else {
            dropped.model += 1;
            continue;
        };
        objections.push(Objection {
            category,
            raised_by: raiser,
            needs_relabel: side.is_none(),
            quote: s.text.clone(),
            turn: seg.id,
            start_ms: seg.start_ms,
            end_ms: seg.end_ms,
            resolved: resolved_later(t, s.segment),
            answer: opts.playbook.answer(category, &t.language),
            confidence: 0.7,
        });
    }

    let commitments = check_commitments(commitments, t, &mut dropped);
    let objections = check_objections(objections, t, &mut dropped);
    Ok(Extraction {
        commitments,
        objections,
        injections: cands
            .injections
            .iter()
            .map(|s| Injection {
                turn: t.segments[s.segment].id,
                quote: s.text.clone(),
            })
            .collect(),
        dropped,
        stats,
        model_id: opts.model_id.clone(),
        prompt_versions: vec![cp.version, op.version],
    })
}

/// The answers to the commitment question (only `promise` keeps the candidate).
pub const COMMITMENT_LABELS: &[&str] = &[
    "promise",
    "hypothetical",
    "suggestion",
    "request",
    "question",
    "past",
    "refusal",
    "vague",
    "other",
];

/// The answers to the objection question: the taxonomy, or `none`.
pub fn objection_choices() -> Vec<&'static str> {
    Category::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(["none"])
        .collect()
}

/// The JSON Schema of one question: `{"<key>": <one of choices>}`.
pub fn enum_schema(key: &str, choices: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": {key: {"type": "string", "enum": choices}},
        "required": [key],
        "additionalProperties": false
    })
}

/// The answer in a model's validated output `value` (its JSON `text`, for the message):
/// checked again against the choices, never passed on otherwise.
pub fn enum_answer(value: &Value, text: &str, key: &str, choices: &[&str]) -> Result<String> {
    value
        .get(key)
        .and_then(|v| v.as_str())
        .filter(|v| choices.contains(v))
        .map(str::to_string)
        .ok_or_else(|| Error::Internal(format!("model answer {text} is not one of the choices")))
}

/// One schema-constrained question: `{"<key>": <one of choices>}`.
fn ask_enum(
    llm: &LlmHandle,
    prompt: &Prompt,
    key: &str,
    choices: &[&str],
    sentence: &str,
    timeout: Duration,
) -> Result<String> {
    // The sentence is data: bounded in length and labelled as the thing to classify.
    let sentence: String = sentence.chars().take(400).collect();
    let messages = vec![
        ChatMessage::system(prompt.text),
        ChatMessage::user(format!("Sentence: {sentence}")),
    ];
    let params = GenerateParams {
        max_tokens: 16,
        ..GenerateParams::default()
    }
    .with_timeout(timeout);
    let out = llm.generate_json_blocking(messages, enum_schema(key, choices), params)?;
    // Validated against the schema by the service; checked again here, never passed on.
    enum_answer(&out.value, &out.text, key, choices)
}

/// The action words of a promise: the quote after its subject and modal, without the
/// deadline words.
pub fn action_of(quote: &str, deadline: Option<&str>) -> String {
    let mut s = quote.to_string();
    if let Some(d) = deadline.filter(|d| !d.is_empty()) {
        s = s.replacen(d, "", 1);
    }
    let lower = s.to_lowercase().replace('’', "'");
    let cut = ["'ll ", " will ", "going to ", "let me ", " can "]
        .iter()
        .filter_map(|c| lower.find(c).map(|p| p + c.len()))
        .min();
    if let Some(p) = cut.filter(|p| s.is_char_boundary(*p)) {
        s = s[p..].to_string();
    }
    let mut s = s.trim().to_string();
    for prefix in ["我们", "我", "一定", "就", "会"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_string();
        }
    }
    let s = s
        .trim_end_matches(|c: char| {
            c.is_ascii_punctuation() || "。！？；，".contains(c) || c.is_whitespace()
        })
        .trim_end_matches(" instead")
        .trim();
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
}

/// Words that mark a correction of something just said.
const CORRECTIONS: [&str; 14] = [
    "instead",
    "actually",
    "scratch",
    "forget",
    "let me correct",
    "correction",
    "change that",
    "on second thought",
    "不对",
    "改成",
    "改为",
    "不好意思",
    "更正",
    "算了",
];

fn corrects(text: &str) -> bool {
    let lower = text.to_lowercase();
    CORRECTIONS.iter().any(|c| lower.contains(c))
}

/// The deterministic checks on commitments: owner is a speaker of the call, quote is grounded in its
/// turn, a promise replaced by the same owner within three turns with correction words is
/// dropped as withdrawn, and overlapping promises of one owner are merged.
pub fn check_commitments(
    items: Vec<Commitment>,
    t: &CallTranscript,
    dropped: &mut Dropped,
) -> Vec<Commitment> {
    let items = grounded(items, t, dropped, |c| (&c.owner, &c.quote, c.turn));
    let mut kept: Vec<Commitment> = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let replaced = items[i + 1..].iter().any(|later| {
            later.owner == c.owner
                && later.turn > c.turn
                && later.turn <= c.turn + 3
                && t.segments
                    .iter()
                    .find(|s| s.id == later.turn)
                    .is_some_and(|s| corrects(&s.text))
        });
        if replaced {
            dropped.withdrawn += 1;
        } else if kept
            .iter()
            .any(|k| k.owner == c.owner && quotes_overlap(&k.quote, &c.quote))
        {
            dropped.duplicates += 1;
        } else {
            kept.push(c.clone());
        }
    }
    kept
}

/// The deterministic checks on objections: the raiser is a customer-side participant (or an
/// unmapped speaker label, side unknown: kept and marked for relabelling), the quote is
/// grounded, one objection per turn, and a concern the same person repeats in the
/// same category within three turns is merged into the first.
pub fn check_objections(
    items: Vec<Objection>,
    t: &CallTranscript,
    dropped: &mut Dropped,
) -> Vec<Objection> {
    let items = grounded(items, t, dropped, |o| (&o.raised_by, &o.quote, o.turn));
    let mut kept: Vec<Objection> = Vec::new();
    for o in items {
        let seller = t
            .participant(&o.raised_by)
            .is_some_and(|p| p.side == Side::Seller);
        if seller {
            dropped.unattributed += 1;
        } else if let Some(k) = kept.iter_mut().find(|k| k.turn == o.turn) {
            // Several sentences of one turn: one objection quoting from the first to the last,
            // in the category of its longest sentence.
            if let Some(seg) = t.segments.iter().find(|s| s.id == o.turn)
                && let (Some(a), Some(b)) = (seg.text.find(&k.quote), seg.text.find(&o.quote))
            {
                if o.quote.chars().count() > k.quote.chars().count() {
                    k.category = o.category;
                    k.answer = o.answer.clone();
                }
                let (start, end) = (a.min(b), (a + k.quote.len()).max(b + o.quote.len()));
                k.quote = seg.text[start..end].to_string();
            }
            dropped.duplicates += 1;
        } else if kept
            .iter()
            .any(|k| k.raised_by == o.raised_by && k.category == o.category && o.turn <= k.turn + 3)
        {
            dropped.duplicates += 1;
        } else {
            kept.push(o);
        }
    }
    kept
}

/// Keeps items whose person is a speaker of the call (a participant or an unmapped speaker
/// label) and whose quote is found in their turn.
fn grounded<T>(
    items: Vec<T>,
    t: &CallTranscript,
    dropped: &mut Dropped,
    key: impl Fn(&T) -> (&String, &String, u32),
) -> Vec<T> {
    items
        .into_iter()
        .filter(|item| {
            let (person, quote, turn) = key(item);
            let Some(seg) = t.segments.iter().find(|s| s.id == turn) else {
                dropped.ungrounded += 1;
                return false;
            };
            let spoken_by_them = seg
                .speaker
                .as_deref()
                .is_some_and(|s| super::transcript::same_name(s, person));
            if !t.is_speaker(person) || !spoken_by_them {
                dropped.unattributed += 1;
                false
            } else if !is_grounded(quote, &seg.text) {
                dropped.ungrounded += 1;
                false
            } else {
                true
            }
        })
        .collect()
}

/// Acceptance words a customer uses when a concern is settled.
const ACCEPTANCE: [&str; 18] = [
    "that works",
    "works for us",
    "is fine",
    "that's fine",
    "not worried",
    "not really worried",
    "much better",
    "we can live with",
    "acceptable",
    "can accept",
    "sounds good",
    "that helps",
    "没问题",
    "可以接受",
    "来得及",
    "那就好",
    "放心了",
    "这个可以",
];

/// Whether, after the objection at segment `at`, a seller answered and a customer then
/// signalled it is no longer a blocker (within the next eight turns).
fn resolved_later(t: &CallTranscript, at: usize) -> bool {
    let mut seller_answered = false;
    for seg in t.segments.iter().skip(at + 1).take(8) {
        match t.side_of(seg) {
            Some(Side::Seller) => seller_answered = true,
            Some(Side::Customer) if seller_answered => {
                let lower = seg.text.to_lowercase().replace('’', "'");
                if ACCEPTANCE.iter().any(|a| lower.contains(a)) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
