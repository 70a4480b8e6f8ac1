//! Call analytics from a stored transcript: talk ratio per participant and per side, the
//! longest monologue, customer questions (English and Mandarin), interactivity (speaker
//! switches per minute), silence share and topic trackers; and the same aggregated per rep and
//! per team over a date range, with objection categories and commitments kept or overdue.
//!
//! Definitions (also in the README):
//! * talk time of a speaker: the sum of their segments' durations; ratios are over all talk.
//! * the call's span: first segment start to last segment end; silence is the part of the span
//!   no segment covers (overlapping segments count once); silence share = silence / span.
//! * unattributed segments (no speaker) count under "unattributed", side "unknown"; labels the
//!   diarizer gives ("Speaker 1") count under that label, side "unknown" unless a participant
//!   has that name. Monologues and switches only use attributed segments.
//! * a monologue: consecutive segments of one speaker; its duration runs from its first start
//!   to its last end.
//! * a question: a sentence ending in `?`/`？`, an English sentence opening with an
//!   interrogative ("what", "how", "can", "do", ...), or a Mandarin sentence with a question
//!   particle or word (吗, 呢, 什么, 怎么, 多少, 是否, ...).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::dates::Date;
use super::records::{self, Call};
use super::tasks;
use super::trackers::{TrackerHits, Trackers};
use super::transcript::{CallTranscript, Side};
use crate::error::{Error, Result};
use crate::store::Db;
use crate::users::{self, Role, User};

/// The label of segments without a speaker.
pub const UNATTRIBUTED: &str = "unattributed";

/// Talk of one speaker (a participant, a diarizer label, or "unattributed").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpeakerStats {
    pub speaker: String,
    /// `seller`, `customer` or `unknown`.
    pub side: String,
    pub segments: usize,
    pub talk_ms: u64,
    /// Share of all talk time, 0–1.
    pub talk_ratio: f64,
    pub questions: usize,
}

/// Talk of one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SideStats {
    pub talk_ms: u64,
    pub talk_ratio: f64,
    pub questions: usize,
}

/// Talk per side: seller, customer, and speakers of unknown side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sides {
    pub seller: SideStats,
    pub customer: SideStats,
    pub unknown: SideStats,
}

impl Sides {
    fn get_mut(&mut self, side: &str) -> &mut SideStats {
        match side {
            "seller" => &mut self.seller,
            "customer" => &mut self.customer,
            _ => &mut self.unknown,
        }
    }

    fn set_ratios(&mut self, total_ms: u64) {
        for s in [&mut self.seller, &mut self.customer, &mut self.unknown] {
            s.talk_ratio = ratio(s.talk_ms, total_ms);
        }
    }
}

/// The longest uninterrupted stretch of one speaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Monologue {
    pub speaker: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub duration_ms: u64,
    /// The call it is in (set in aggregates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

/// The analytics of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallAnalytics {
    pub call_id: Option<String>,
    pub title: String,
    pub language: String,
    pub segments: usize,
    /// First segment start to last segment end.
    pub span_ms: u64,
    pub talk_ms: u64,
    pub speakers: Vec<SpeakerStats>,
    pub sides: Sides,
    pub longest_monologue: Option<Monologue>,
    pub customer_questions: usize,
    /// Changes of speaker between consecutive attributed segments.
    pub speaker_switches: usize,
    pub switches_per_minute: f64,
    pub silence_ms: u64,
    pub silence_share: f64,
    /// Share of talk time whose speaker is known (a participant or a diarizer label).
    pub attributed_share: f64,
    pub trackers: Vec<TrackerHits>,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn per_minute(count: usize, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        count as f64 * 60_000.0 / ms as f64
    }
}

/// `seller` or `customer`.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Seller => "seller",
        Side::Customer => "customer",
    }
}

/// Computes the analytics of a transcript. Never fails: odd input (no segments, reversed
/// times, unknown speakers) yields zeros and "unknown" rather than an error.
pub fn analyze(t: &CallTranscript, trackers: &Trackers) -> CallAnalytics {
    let mut speakers: Vec<SpeakerStats> = Vec::new();
    let mut sides = Sides::default();
    let mut talk_ms = 0u64;
    let mut attributed_ms = 0u64;
    for seg in &t.segments {
        let label = seg.speaker.as_deref().unwrap_or(UNATTRIBUTED);
        let side = t.side_of(seg).map_or("unknown", side_name);
        let ms = seg.end_ms.saturating_sub(seg.start_ms);
        let questions = count_questions(&seg.text, &t.language);
        talk_ms += ms;
        if seg.speaker.is_some() {
            attributed_ms += ms;
        }
        let stats = match speakers.iter_mut().position(|s| s.speaker == label) {
            Some(i) => &mut speakers[i],
            None => {
                speakers.push(SpeakerStats {
                    speaker: label.to_string(),
                    side: side.to_string(),
                    segments: 0,
                    talk_ms: 0,
                    talk_ratio: 0.0,
                    questions: 0,
                });
                speakers.last_mut().expect("just pushed")
            }
        };
        stats.segments += 1;
        stats.talk_ms += ms;
        stats.questions += questions;
        let side_stats = sides.get_mut(side);
        side_stats.talk_ms += ms;
        side_stats.questions += questions;
    }
    for s in &mut speakers {
        s.talk_ratio = ratio(s.talk_ms, talk_ms);
    }
    speakers.sort_by(|a, b| b.talk_ms.cmp(&a.talk_ms).then(a.speaker.cmp(&b.speaker)));
    sides.set_ratios(talk_ms);

    // Monologues and switches over attributed segments in time order.
    let mut ordered: Vec<_> = t.segments.iter().collect();
    ordered.sort_by_key(|s| (s.start_ms, s.end_ms));
    let mut longest: Option<Monologue> = None;
    let mut run: Option<Monologue> = None;
    let mut switches = 0;
    let mut previous: Option<&str> = None;
    for seg in &ordered {
        let Some(speaker) = seg.speaker.as_deref() else {
            // An unattributed stretch breaks a monologue (we do not know who spoke).
            finish_run(&mut run, &mut longest);
            continue;
        };
        if previous.is_some_and(|p| p != speaker) {
            switches += 1;
        }
        previous = Some(speaker);
        match &mut run {
            Some(m) if m.speaker == speaker => {
                m.end_ms = m.end_ms.max(seg.end_ms);
                m.duration_ms = m.end_ms.saturating_sub(m.start_ms);
            }
            _ => {
                finish_run(&mut run, &mut longest);
                run = Some(Monologue {
                    speaker: speaker.to_string(),
                    start_ms: seg.start_ms,
                    end_ms: seg.end_ms.max(seg.start_ms),
                    duration_ms: seg.end_ms.saturating_sub(seg.start_ms),
                    call_id: None,
                });
            }
        }
    }
    finish_run(&mut run, &mut longest);

    // Silence: the span minus the union of segment intervals.
    let span_start = ordered.iter().map(|s| s.start_ms).min().unwrap_or(0);
    let span_end = ordered
        .iter()
        .map(|s| s.end_ms.max(s.start_ms))
        .max()
        .unwrap_or(0);
    let span_ms = span_end.saturating_sub(span_start);
    let mut covered = 0u64;
    let mut reach = span_start;
    for seg in &ordered {
        let (from, to) = (seg.start_ms.max(reach), seg.end_ms.max(seg.start_ms));
        if to > from {
            covered += to - from;
        }
        reach = reach.max(to);
    }
    let silence_ms = span_ms.saturating_sub(covered);

    CallAnalytics {
        call_id: t.call_id.clone(),
        title: t.title.clone(),
        language: t.language.clone(),
        segments: t.segments.len(),
        span_ms,
        talk_ms,
        customer_questions: sides.customer.questions,
        speakers,
        sides,
        longest_monologue: longest,
        speaker_switches: switches,
        switches_per_minute: per_minute(switches, span_ms),
        silence_ms,
        silence_share: ratio(silence_ms, span_ms),
        attributed_share: ratio(attributed_ms, talk_ms),
        trackers: trackers.fire(t),
    }
}

fn finish_run(run: &mut Option<Monologue>, longest: &mut Option<Monologue>) {
    if let Some(m) = run.take()
        && longest
            .as_ref()
            .is_none_or(|l| m.duration_ms > l.duration_ms)
    {
        *longest = Some(m);
    }
}

/// English sentence openings that make a question without a question mark.
const EN_INTERROGATIVES: &[&str] = &[
    "what", "why", "how", "when", "where", "who", "whom", "whose", "which", "can", "could",
    "would", "do", "does", "did", "is", "are", "was", "were", "should", "shall", "isn't", "aren't",
    "don't", "doesn't", "didn't", "can't", "won't", "wouldn't", "couldn't",
];

/// Mandarin question words and patterns (a sentence containing one asks something).
const ZH_QUESTION_WORDS: &[&str] = &[
    "什么",
    "怎么",
    "多少",
    "是否",
    "为什么",
    "为何",
    "哪里",
    "哪个",
    "哪些",
    "哪家",
    "哪一",
    "哪天",
    "几时",
    "能不能",
    "是不是",
    "有没有",
    "可不可以",
    "要不要",
    "会不会",
    "对不对",
    "行不行",
    "好不好",
    "如何",
    "多久",
    "多长时间",
];

/// Sentence-final particles that make a Mandarin question.
const ZH_PARTICLES: &[char] = &['吗', '呢', '么'];

/// How many questions `text` asks (one per sentence at most).
pub fn count_questions(text: &str, language: &str) -> usize {
    sentences(text)
        .into_iter()
        .filter(|s| is_question(s, language))
        .count()
}

/// Splits on sentence punctuation, keeping each sentence's terminator. A `.` only ends a
/// sentence before whitespace or the end (so "1.5" stays whole).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = match c {
            '?' | '!' | '。' | '？' | '！' | ';' | '；' => true,
            '.' => chars.peek().is_none_or(|(_, n)| n.is_whitespace()),
            _ => false,
        };
        if ends {
            let end = i + c.len_utf8();
            out.push(&text[start..end]);
            start = end;
        }
    }
    out.push(&text[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

fn is_question(sentence: &str, language: &str) -> bool {
    let trimmed = sentence.trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '”');
    if trimmed.ends_with(['?', '？']) {
        return true;
    }
    let body = trimmed.trim_end_matches(|c: char| !c.is_alphanumeric());
    let has_cjk = body.chars().any(crate::bids::analyzers::is_cjk);
    if has_cjk || language == "zh" {
        if body.ends_with(ZH_PARTICLES) || ZH_QUESTION_WORDS.iter().any(|w| body.contains(w)) {
            return true;
        }
        if has_cjk {
            return false;
        }
    }
    let first = body
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_lowercase();
    EN_INTERROGATIVES.contains(&first.as_str())
}

// ---------------------------------------------------------------------------------------------
// Aggregates per rep and team.

/// A tracker's count over many calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackerTotal {
    /// Segments where it fired.
    pub hits: usize,
    /// Calls where it fired at least once.
    pub calls: usize,
}

/// Commitments (tasks) of the calls: kept (done), open, and overdue (open past their due date).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommitmentTotals {
    pub total: usize,
    pub kept: usize,
    pub open: usize,
    pub overdue: usize,
}

/// Analytics summed over calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub calls: usize,
    pub span_ms: u64,
    pub talk_ms: u64,
    /// Talk per side over all the calls (ratios weighted by talk time).
    pub sides: Sides,
    pub longest_monologue: Option<Monologue>,
    /// Mean over calls of each call's longest monologue.
    pub mean_longest_monologue_ms: f64,
    pub customer_questions: usize,
    pub customer_questions_per_call: f64,
    pub speaker_switches: usize,
    /// All switches over all call minutes.
    pub switches_per_minute: f64,
    pub silence_ms: u64,
    pub silence_share: f64,
    pub trackers: BTreeMap<String, TrackerTotal>,
    /// Objections raised, by category.
    pub objections: BTreeMap<String, usize>,
    pub commitments: CommitmentTotals,
}

impl Summary {
    fn add(&mut self, a: &CallAnalytics, extra: &CallExtras) {
        self.calls += 1;
        self.span_ms += a.span_ms;
        self.talk_ms += a.talk_ms;
        for (mine, theirs) in [
            (&mut self.sides.seller, &a.sides.seller),
            (&mut self.sides.customer, &a.sides.customer),
            (&mut self.sides.unknown, &a.sides.unknown),
        ] {
            mine.talk_ms += theirs.talk_ms;
            mine.questions += theirs.questions;
        }
        if let Some(m) = &a.longest_monologue {
            self.mean_longest_monologue_ms += m.duration_ms as f64;
            if self
                .longest_monologue
                .as_ref()
                .is_none_or(|l| m.duration_ms > l.duration_ms)
            {
                self.longest_monologue = Some(Monologue {
                    call_id: a.call_id.clone(),
                    ..m.clone()
                });
            }
        }
        self.customer_questions += a.customer_questions;
        self.speaker_switches += a.speaker_switches;
        self.silence_ms += a.silence_ms;
        for t in &a.trackers {
            let total = self.trackers.entry(t.name.clone()).or_default();
            total.hits += t.count;
            total.calls += usize::from(t.count > 0);
        }
        for category in &extra.objections {
            *self.objections.entry(category.clone()).or_default() += 1;
        }
        let c = &mut self.commitments;
        c.total += extra.commitments.total;
        c.kept += extra.commitments.kept;
        c.open += extra.commitments.open;
        c.overdue += extra.commitments.overdue;
    }

    fn finish(&mut self) {
        self.sides.set_ratios(self.talk_ms);
        let calls = self.calls.max(1) as f64;
        self.mean_longest_monologue_ms /= calls;
        self.customer_questions_per_call = self.customer_questions as f64 / calls;
        self.switches_per_minute = per_minute(self.speaker_switches, self.span_ms);
        self.silence_share = ratio(self.silence_ms, self.span_ms);
    }
}

/// What a call adds from its stored insights and tasks.
struct CallExtras {
    objections: Vec<String>,
    commitments: CommitmentTotals,
}

/// A rep's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepSummary {
    pub rep_id: String,
    pub rep: String,
    pub region: String,
    pub summary: Summary,
}

/// Analytics over the calls of a rep or a team in a date range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamAnalytics {
    pub from: Option<String>,
    pub to: Option<String>,
    /// The rep asked for (name), if any.
    pub rep: Option<String>,
    /// The day commitments were judged overdue against (UTC).
    pub today: String,
    pub total: Summary,
    /// One entry per rep with calls in the range, by name.
    pub by_rep: Vec<RepSummary>,
}

/// Which calls to aggregate.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// A rep's name or id (a rep may only give themselves).
    pub rep: Option<String>,
    /// First call date, YYYY-MM-DD (inclusive).
    pub from: Option<String>,
    /// Last call date, YYYY-MM-DD (inclusive).
    pub to: Option<String>,
}

/// The rep `name_or_id` if `viewer` may see their calls: themselves for a rep, anyone in the
/// region for a manager, anyone for an admin.
pub async fn visible_rep(db: &Db, viewer: &User, name_or_id: &str) -> Result<User> {
    let rep = users::active(db, name_or_id).await?;
    let allowed = match viewer.role {
        Role::Admin => true,
        Role::Manager => rep.region == viewer.region,
        _ => rep.id == viewer.id,
    };
    if allowed {
        Ok(rep)
    } else {
        Err(Error::Forbidden(format!(
            "you may not see the calls of {name_or_id:?}: a rep sees their own calls, a manager \
             their region's"
        )))
    }
}

/// The day a call counts for: its call date, else the day it was recorded (UTC).
pub fn call_day(call: &Call) -> String {
    call.call_date.clone().unwrap_or_else(|| {
        jiff::Timestamp::from_millisecond(call.created_at)
            .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
            .unwrap_or_default()
    })
}

/// Parses an optional YYYY-MM-DD bound.
pub fn parse_day(day: Option<&str>, name: &str) -> Result<Option<String>> {
    day.filter(|d| !d.is_empty())
        .map(|d| {
            Date::parse(d)
                .map(|d| d.to_string())
                .map_err(|_| Error::InvalidInput(format!("{name} {d:?}: use YYYY-MM-DD")))
        })
        .transpose()
}

/// The calls `viewer` may see (optionally only `rep`'s) with a call day in `[from, to]`.
pub async fn calls_in_range(
    db: &Db,
    viewer: &User,
    rep: Option<&User>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<Call>> {
    let calls = records::list_scoped(db, viewer).await?;
    Ok(calls
        .into_iter()
        .filter(|c| rep.is_none_or(|r| c.owner_id == r.id))
        .filter(|c| {
            let day = call_day(c);
            from.is_none_or(|f| day.as_str() >= f) && to.is_none_or(|t| day.as_str() <= t)
        })
        .collect())
}

/// The analytics of a call `viewer` may see.
pub async fn for_call(
    db: &Db,
    viewer: &User,
    trackers: &Trackers,
    id: &str,
) -> Result<CallAnalytics> {
    let call = records::get_scoped(db, viewer, id).await?;
    let t = records::transcript(db, &call).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "call {id} has no transcript yet (status {}); poll GET /calls/{id}",
            call.status
        ))
    })?;
    Ok(analyze(&t, trackers))
}

/// Analytics over the calls of a rep (or of everyone `viewer` may see) in a date range.
pub async fn for_range(
    db: &Db,
    viewer: &User,
    trackers: &Trackers,
    range: &Range,
) -> Result<TeamAnalytics> {
    let from = parse_day(range.from.as_deref(), "from")?;
    let to = parse_day(range.to.as_deref(), "to")?;
    if let (Some(f), Some(t)) = (&from, &to)
        && f > t
    {
        return Err(Error::InvalidInput(format!(
            "from {f} is after to {t}; swap them"
        )));
    }
    let rep = match range.rep.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(visible_rep(db, viewer, r).await?),
        None => None,
    };
    let calls = calls_in_range(db, viewer, rep.as_ref(), from.as_deref(), to.as_deref()).await?;
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let names: HashMap<String, User> = users::list(db)
        .await?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let mut total = Summary::default();
    let mut by_rep: BTreeMap<String, RepSummary> = BTreeMap::new();
    for call in &calls {
        let Some(t) = records::transcript(db, call).await? else {
            continue;
        };
        let analytics = analyze(&t, trackers);
        let extras = extras(db, &call.id, &today).await?;
        total.add(&analytics, &extras);
        let owner = names.get(&call.owner_id);
        by_rep
            .entry(call.owner_id.clone())
            .or_insert_with(|| RepSummary {
                rep_id: call.owner_id.clone(),
                rep: owner.map_or_else(|| call.owner_id.clone(), |u| u.name.clone()),
                region: call.region.clone(),
                summary: Summary::default(),
            })
            .summary
            .add(&analytics, &extras);
    }
    total.finish();
    let mut by_rep: Vec<RepSummary> = by_rep.into_values().collect();
    for r in &mut by_rep {
        r.summary.finish();
    }
    by_rep.sort_by(|a, b| a.rep.cmp(&b.rep));
    Ok(TeamAnalytics {
        from,
        to,
        rep: rep.map(|r| r.name),
        today,
        total,
        by_rep,
    })
}

async fn extras(db: &Db, call_id: &str, today: &str) -> Result<CallExtras> {
    let insights = records::insights(db, call_id).await?;
    let mut commitments = CommitmentTotals::default();
    for task in tasks::list(db.pool(), call_id).await? {
        commitments.total += 1;
        if task.status == "done" {
            commitments.kept += 1;
        } else {
            commitments.open += 1;
            if task.due_date.as_deref().is_some_and(|d| d < today) {
                commitments.overdue += 1;
            }
        }
    }
    Ok(CallExtras {
        objections: insights
            .objections
            .iter()
            .map(|o| o.category.as_str().to_string())
            .collect(),
        commitments,
    })
}

// ---------------------------------------------------------------------------------------------
// Objection categories over time.

/// Objections of one week (Monday to Sunday, by call day).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ObjectionWeek {
    /// The Monday the week starts, YYYY-MM-DD.
    pub week: String,
    /// Objections raised that week, by category.
    pub counts: BTreeMap<String, usize>,
}

impl ObjectionWeek {
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// Weekly objection counts by category over a range of call days.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ObjectionTrend {
    pub from: String,
    pub to: String,
    /// Every week the range touches, oldest first (weeks without objections included).
    pub weeks: Vec<ObjectionWeek>,
    /// Categories seen, most raised first (ties by name).
    pub categories: Vec<(String, usize)>,
    pub total: usize,
}

/// The longest range [`objections_by_week`] accepts, in weeks.
pub const MAX_WEEKS: i64 = 104;

fn civil(day: &str, name: &str) -> Result<jiff::civil::Date> {
    day.parse()
        .map_err(|_| Error::InvalidInput(format!("{name} {day:?}: use YYYY-MM-DD")))
}

/// The Monday of `day`'s week.
pub fn week_start(day: jiff::civil::Date) -> jiff::civil::Date {
    let back = i64::from(day.weekday().to_monday_zero_offset());
    day.checked_sub(jiff::Span::new().days(back)).unwrap_or(day)
}

/// Buckets `(call day, category)` pairs into the weeks of `[from, to]` (YYYY-MM-DD, checked);
/// days outside the range are left out.
pub fn weekly<'a>(
    from: &str,
    to: &str,
    objections: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<ObjectionTrend> {
    let (first, last) = (civil(from, "from")?, civil(to, "to")?);
    if first > last {
        return Err(Error::InvalidInput(format!(
            "from {from} is after to {to}; swap them"
        )));
    }
    let mut week = week_start(first);
    let mut weeks = Vec::new();
    while week <= last {
        if weeks.len() as i64 >= MAX_WEEKS {
            return Err(Error::InvalidInput(format!(
                "{from} to {to} is more than {MAX_WEEKS} weeks; choose a shorter range"
            )));
        }
        weeks.push(ObjectionWeek {
            week: week.to_string(),
            counts: BTreeMap::new(),
        });
        week = week
            .checked_add(jiff::Span::new().weeks(1))
            .map_err(|e| Error::InvalidInput(format!("to {to}: {e}")))?;
    }
    let mut categories: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for (day, category) in objections {
        let Ok(date) = day.parse::<jiff::civil::Date>() else {
            continue;
        };
        if date < first || date > last {
            continue;
        }
        let monday = week_start(date).to_string();
        if let Some(w) = weeks.iter_mut().find(|w| w.week == monday) {
            *w.counts.entry(category.to_string()).or_default() += 1;
            *categories.entry(category.to_string()).or_default() += 1;
            total += 1;
        }
    }
    let mut categories: Vec<(String, usize)> = categories.into_iter().collect();
    categories.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(ObjectionTrend {
        from: from.to_string(),
        to: to.to_string(),
        weeks,
        categories,
        total,
    })
}

/// Objections raised per week and category in the calls `viewer` may see (the scope of
/// [`for_range`]), optionally only calls of `region`, with a call day in `[from, to]`.
pub async fn objections_by_week(
    db: &Db,
    viewer: &User,
    region: Option<&str>,
    from: &str,
    to: &str,
) -> Result<ObjectionTrend> {
    let from = parse_day(Some(from), "from")?.unwrap_or_default();
    let to = parse_day(Some(to), "to")?.unwrap_or_default();
    // Checks the range before reading any call.
    weekly(&from, &to, [])?;
    let calls = calls_in_range(db, viewer, None, Some(&from), Some(&to)).await?;
    let mut raised: Vec<(String, String)> = Vec::new();
    for call in calls
        .iter()
        .filter(|c| region.is_none_or(|r| c.region == r))
    {
        let day = call_day(call);
        for o in records::insights(db, &call.id).await?.objections {
            raised.push((day.clone(), o.category.as_str().to_string()));
        }
    }
    weekly(
        &from,
        &to,
        raised.iter().map(|(d, c)| (d.as_str(), c.as_str())),
    )
}

#[cfg(test)]
mod tests;
