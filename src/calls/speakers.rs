//! Speaker attribution of mono recordings: diarized speaker turns onto Whisper's segments
//! ([`attribute`]), labelled "Speaker 1", "Speaker 2", … by first appearance, and each label
//! mapped to a participant only on clear evidence in what was said ([`map_speakers`]).
//!
//! # Evidence (English and Mandarin)
//!
//! * **Self-introduction** — "I'm Priya", "my name is …", "this is Daniel from Halvern" or
//!   "Daniel here" at the start of a turn, "我是王磊", "我叫…", "我姓王": strong evidence
//!   ([`SELF_INTRO`]) that the speaker is that participant.
//! * **Address at the start of a turn** — "Morning Daniel.", "Thanks, Susan.", "王总，…",
//!   "好的，谢谢黄工。": the speaker answers the previous turn, so this is evidence that the
//!   previous turn's speaker is that person; stronger after a thanks or greeting
//!   ([`ADDRESS_ACK`]) than bare ([`ADDRESS_BARE`]). Several names at once ("Hi Greg, hi
//!   Aisha") greet a group: no evidence about the previous speaker.
//! * **Naming someone** (addressing or mentioning them, "Priya is with me") — people do not
//!   talk to or about themselves by name: the speaker is *not* that person.
//!
//! Names match a participant's full name, first name or title + surname ("Ms Whitfield"); in
//! Mandarin the full name, the given name, or surname + title ("王总", "李经理", "黄工",
//! "小王"). A form two participants share is ambiguous and ignored.
//!
//! # Decision
//!
//! A speaker is mapped to a participant when the evidence for that pair reaches [`MIN_SCORE`],
//! nothing says the speaker is not that person, and it leads both the speaker's other
//! candidates and the participant's other speakers by [`MARGIN`] (so conflicting evidence maps
//! nothing). Pairs are taken strongest first. Then by elimination: a speaker who has named
//! every unmapped participant but one is that one (unless another speaker could be that one
//! too), and when one speaker and one participant are left, they are each other. Everything else stays "Speaker N" for the user to relabel;
//! names are never invented.

use std::collections::BTreeMap;

use super::dates::Date;
use super::transcript::{CallTranscript, Participant, Segment};
use crate::asr;
use crate::diarize::{self, SpeakerTurn, TimedSegment};

/// Evidence weight of a self-introduction.
pub const SELF_INTRO: f32 = 3.0;
/// Evidence weight of a name addressed after thanks or a greeting at the start of a turn.
pub const ADDRESS_ACK: f32 = 2.0;
/// Evidence weight of a bare name addressed at the start of a turn ("Susan, …").
pub const ADDRESS_BARE: f32 = 1.0;
/// Evidence a pair needs before it is mapped.
pub const MIN_SCORE: f32 = 2.0;
/// Lead a pair needs over every competing pair of its speaker and of its participant.
pub const MARGIN: f32 = 2.0;

/// The label of 0-based speaker `i`: "Speaker 1" for 0.
pub fn label(i: usize) -> String {
    format!("Speaker {}", i + 1)
}

/// One turn: consecutive speech of one (0-based) speaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpokenTurn<'a> {
    pub speaker: usize,
    pub text: &'a str,
}

/// Maps speakers `0..speakers` to participants (indices into `participants`) from the
/// evidence in `turns` (in call order); `None` where the evidence is not clear.
pub fn map_speakers(
    participants: &[Participant],
    turns: &[SpokenTurn<'_>],
    speakers: usize,
) -> Vec<Option<usize>> {
    let names = NameForms::new(participants);
    let n = participants.len();
    let mut score = vec![vec![0f32; n]; speakers];
    let mut not = vec![vec![false; n]; speakers];
    let mut previous: Option<usize> = None;
    for turn in turns {
        let c = turn.speaker;
        if c >= speakers {
            continue;
        }
        let intro = self_introduction(&names, turn.text);
        if let Some(p) = intro {
            score[c][p] += SELF_INTRO;
        }
        for p in names.mentioned(turn.text) {
            if Some(p) != intro {
                not[c][p] = true;
            }
        }
        if let Some(prev) = previous.filter(|&prev| prev != c)
            && let Some((p, weight)) = addressed(&names, turn.text)
        {
            score[prev][p] += weight;
        }
        if previous != Some(c) {
            previous = Some(c);
        }
    }
    decide(&score, &not)
}

/// The mapping from the evidence matrices (see the module docs).
fn decide(score: &[Vec<f32>], not: &[Vec<bool>]) -> Vec<Option<usize>> {
    let speakers = score.len();
    let n = score.first().map_or(0, Vec::len);
    let mut mapped: Vec<Option<usize>> = vec![None; speakers];
    let mut taken = vec![false; n];
    // Strongest clear pair first, until none is left.
    loop {
        let mut best: Option<(f32, usize, usize)> = None;
        for c in (0..speakers).filter(|&c| mapped[c].is_none()) {
            for p in (0..n).filter(|&p| !taken[p]) {
                let s = score[c][p];
                if s < MIN_SCORE || not[c][p] {
                    continue;
                }
                let rival_p = (0..n)
                    .filter(|&q| q != p && !taken[q])
                    .map(|q| score[c][q])
                    .fold(0f32, f32::max);
                let rival_c = (0..speakers)
                    .filter(|&d| d != c && mapped[d].is_none())
                    .map(|d| score[d][p])
                    .fold(0f32, f32::max);
                if s - rival_p >= MARGIN
                    && s - rival_c >= MARGIN
                    && best.is_none_or(|(b, ..)| s > b)
                {
                    best = Some((s, c, p));
                }
            }
        }
        let Some((_, c, p)) = best else { break };
        mapped[c] = Some(p);
        taken[p] = true;
    }
    // Elimination.
    loop {
        let free_c: Vec<usize> = (0..speakers).filter(|&c| mapped[c].is_none()).collect();
        let free_p: Vec<usize> = (0..n).filter(|&p| !taken[p]).collect();
        // A speaker with evidence for someone else is not eliminated into another name.
        let fits =
            |c: usize, p: usize| !not[c][p] && (0..n).all(|q| q == p || score[c][q] < MIN_SCORE);
        let mut found = None;
        if let ([c], [p]) = (free_c.as_slice(), free_p.as_slice()) {
            found = fits(*c, *p).then_some((*c, *p));
        }
        // The participants each free speaker may still be.
        let open: Vec<Vec<usize>> = free_c
            .iter()
            .map(|&c| free_p.iter().copied().filter(|&p| !not[c][p]).collect())
            .collect();
        for (i, &c) in free_c.iter().enumerate() {
            if found.is_some() || free_p.len() < 2 {
                break;
            }
            if let [p] = open[i].as_slice()
                && fits(c, *p)
                && free_c.iter().enumerate().all(|(j, &d)| {
                    d == c || (score[d][*p] < MIN_SCORE && open[j].as_slice() != [*p])
                })
            {
                found = Some((c, *p));
            }
        }
        let Some((c, p)) = found else { break };
        mapped[c] = Some(p);
        taken[p] = true;
    }
    mapped
}

/// How each participant can be named, with ambiguous forms removed.
struct NameForms {
    /// (lowercased form, participant, kind).
    forms: Vec<(String, usize, Form)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// Full name, first/given name: usable after "I'm" / "我是".
    Name,
    /// Title + surname ("Ms Whitfield", "王总"): an address or mention, not an introduction.
    Title,
    /// A Chinese surname alone: only after "我姓".
    Surname,
}

/// Titles before an English surname.
const EN_TITLES: [&str; 8] = ["mr", "mr.", "mrs", "mrs.", "ms", "ms.", "dr", "dr."];
/// Titles after a Chinese surname (longest first where one is a prefix of another).
const ZH_TITLES: [&str; 30] = [
    "总经理",
    "董事长",
    "总监",
    "经理",
    "主任",
    "主管",
    "院长",
    "处长",
    "局长",
    "科长",
    "部长",
    "校长",
    "书记",
    "老师",
    "教授",
    "博士",
    "医生",
    "律师",
    "工程师",
    "先生",
    "女士",
    "小姐",
    "老板",
    "会计",
    "董",
    "总",
    "工",
    "姐",
    "哥",
    "秘书",
];
/// Two-character Chinese surnames.
const ZH_DOUBLE_SURNAMES: [&str; 16] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "令狐", "夏侯",
    "宇文", "司徒", "端木", "独孤",
];

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

impl NameForms {
    fn new(participants: &[Participant]) -> NameForms {
        let mut forms: Vec<(String, usize, Form)> = Vec::new();
        for (i, p) in participants.iter().enumerate() {
            let name = p.name.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut add = |f: String, kind: Form| {
                if !f.is_empty() {
                    forms.push((f.to_lowercase(), i, kind));
                }
            };
            if name.chars().any(is_cjk) {
                let compact: String = name.chars().filter(|c| !c.is_whitespace()).collect();
                let surname = ZH_DOUBLE_SURNAMES
                    .iter()
                    .find(|s| compact.starts_with(*s) && compact.chars().count() > 2)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| compact.chars().take(1).collect());
                let given = &compact[surname.len()..];
                add(compact.clone(), Form::Name);
                if given.chars().count() >= 2 {
                    add(given.to_string(), Form::Name);
                }
                for t in ZH_TITLES {
                    add(format!("{surname}{t}"), Form::Title);
                }
                add(format!("小{surname}"), Form::Title);
                add(format!("老{surname}"), Form::Title);
                add(surname, Form::Surname);
            } else {
                let words: Vec<&str> = name.split(' ').collect();
                add(name.clone(), Form::Name);
                if words.len() > 1 {
                    add(words[0].to_string(), Form::Name);
                    let last = words[words.len() - 1];
                    for t in EN_TITLES {
                        add(format!("{t} {last}"), Form::Title);
                    }
                }
            }
        }
        // A form two participants share says nothing about which one is meant.
        let shared: Vec<String> = forms
            .iter()
            .filter(|(f, i, _)| forms.iter().any(|(g, j, _)| g == f && j != i))
            .map(|(f, ..)| f.clone())
            .collect();
        forms.retain(|(f, ..)| !shared.contains(f));
        // Longest first, so "王总经理" wins over "王总" and "daniel okafor" over "daniel".
        forms.sort_by_key(|(f, ..)| std::cmp::Reverse(f.chars().count()));
        NameForms { forms }
    }

    /// The participant named at the very start of `text` (lowercased), and the form's length
    /// in bytes. English forms must end at a word boundary.
    fn at_start(&self, text: &str, kinds: &[Form]) -> Option<(usize, usize)> {
        self.forms
            .iter()
            .filter(|(_, _, k)| kinds.contains(k))
            .find(|(f, ..)| {
                text.starts_with(f.as_str()) && (f.chars().any(is_cjk) || word_ends(text, f.len()))
            })
            .map(|(f, i, _)| (*i, f.len()))
    }

    /// Every participant named anywhere in `text` by a name or title form.
    fn mentioned(&self, text: &str) -> Vec<usize> {
        let lower = text.to_lowercase();
        let mut out = Vec::new();
        for (f, i, kind) in &self.forms {
            if *kind == Form::Surname || out.contains(i) {
                continue;
            }
            let cjk = f.chars().any(is_cjk);
            let found = lower
                .match_indices(f.as_str())
                .any(|(at, _)| cjk || (word_starts(&lower, at) && word_ends(&lower, at + f.len())));
            if found {
                out.push(*i);
            }
        }
        out
    }
}

fn word_ends(text: &str, at: usize) -> bool {
    text[at..]
        .chars()
        .next()
        .is_none_or(|c| !c.is_alphanumeric() && c != '\'' && c != '’')
}

fn word_starts(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric())
}

/// Openers that thank or greet (a reply to the one addressed), English and Mandarin.
const ACKS: [&str; 27] = [
    "good morning",
    "good afternoon",
    "good evening",
    "morning",
    "afternoon",
    "evening",
    "hello",
    "hi",
    "hey",
    "thank you very much",
    "thank you so much",
    "thanks so much",
    "thanks a lot",
    "thank you",
    "thanks",
    "many thanks",
    "cheers",
    "nice to meet you",
    "great to meet you",
    "good to see you",
    "早上好",
    "下午好",
    "晚上好",
    "您好",
    "你好",
    "谢谢",
    "感谢",
];
/// The other words a turn may open with before a self-introduction or an addressed name.
const OTHER_OPENERS: [&str; 31] = [
    "welcome",
    "sure",
    "okay",
    "ok",
    "yes",
    "yeah",
    "right",
    "great",
    "well",
    "oh",
    "sorry",
    "of course",
    "absolutely",
    "fair enough",
    "good point",
    "exactly",
    "and",
    "so",
    "大家好",
    "好的",
    "好",
    "嗯",
    "对",
    "是的",
    "是",
    "哈哈",
    "哎",
    "啊",
    "那",
    "明白",
    "没问题",
];

fn is_separator(c: char) -> bool {
    c.is_whitespace() || ",.!?;:—–-，。！？；：、…".contains(c)
}

/// Strips separators and openers from the start of `text`; returns the rest and whether an
/// opener that thanks or greets was among them.
fn skip_openers(mut text: &str) -> (&str, bool) {
    let mut ack = false;
    loop {
        let trimmed = text.trim_start_matches(is_separator);
        let opener = ACKS.iter().chain(OTHER_OPENERS.iter()).find(|o| {
            trimmed.starts_with(**o) && (o.chars().any(is_cjk) || word_ends(trimmed, o.len()))
        });
        match opener {
            Some(o) => {
                ack |= ACKS.contains(o);
                text = &trimmed[o.len()..];
            }
            None => return (trimmed, ack),
        }
    }
}

/// The participant a turn introduces its speaker as, if it does.
fn self_introduction(names: &NameForms, text: &str) -> Option<usize> {
    let lower = text.to_lowercase().replace('’', "'");
    let name_after = |rest: &str, kinds: &[Form]| {
        let rest = rest.trim_start_matches(is_separator);
        names
            .at_start(rest, kinds)
            // "我是王总的助理", "I'm Daniel's colleague": someone else.
            .filter(|&(_, len)| !rest[len..].starts_with('的') && !rest[len..].starts_with("'s"))
            .map(|(p, _)| p)
    };
    for cue in ["i'm ", "i am ", "my name is ", "my name's "] {
        for (at, _) in lower.match_indices(cue) {
            if word_starts(&lower, at)
                && let Some(p) = name_after(&lower[at + cue.len()..], &[Form::Name, Form::Title])
            {
                return Some(p);
            }
        }
    }
    for cue in ["我是", "我叫", "本人是"] {
        for (at, _) in lower.match_indices(cue) {
            if let Some(p) = name_after(&lower[at + cue.len()..], &[Form::Name]) {
                return Some(p);
            }
        }
    }
    for (at, _) in lower.match_indices("我姓") {
        if let Some(p) = name_after(&lower[at + "我姓".len()..], &[Form::Surname]) {
            return Some(p);
        }
    }
    // At the start of a turn: "This is Daniel from Halvern", "Daniel here".
    let (rest, _) = skip_openers(&lower);
    if let Some(p) = rest
        .strip_prefix("this is ")
        .or_else(|| rest.strip_prefix("it's "))
        .and_then(|r| name_after(r, &[Form::Name]))
    {
        return Some(p);
    }
    let (p, len) = names.at_start(rest, &[Form::Name])?;
    let after = rest[len..].trim_start_matches(is_separator);
    ["here", "speaking"]
        .iter()
        .any(|w| after.starts_with(w) && word_ends(after, w.len()))
        .then_some(p)
}

/// The one participant addressed at the start of a turn, with the evidence weight; `None` when
/// nobody or several people are.
fn addressed(names: &NameForms, text: &str) -> Option<(usize, f32)> {
    let lower = text.to_lowercase();
    let (mut rest, mut ack) = skip_openers(&lower);
    let mut who: Vec<usize> = Vec::new();
    let kinds = [Form::Name, Form::Title];
    while let Some((p, len)) = names.at_start(rest, &kinds) {
        let after = &rest[len..];
        // A vocative ends at punctuation or the end ("Thanks, Susan." / "王总，"), or runs into
        // "you" in Mandarin ("王总您看…").
        let vocative = after.is_empty()
            || after.starts_with(|c: char| is_separator(c) && !c.is_whitespace())
            || after.starts_with(['您', '你']);
        if !vocative {
            break;
        }
        if !who.contains(&p) {
            who.push(p);
        }
        let (next, more_ack) = skip_openers(after);
        ack |= more_ack;
        rest = next;
    }
    match who.as_slice() {
        [p] => Some((*p, if ack { ADDRESS_ACK } else { ADDRESS_BARE })),
        _ => None,
    }
}

/// A call transcript from Whisper's output and the diarizer's turns: segments split where the
/// speaker changes (using word timestamps), labelled "Speaker N" by first appearance, and
/// labels mapped to `participants` where the evidence is clear ([`map_speakers`]).
pub fn attribute(
    asr: &asr::Transcript,
    turns: &[SpeakerTurn],
    participants: Vec<Participant>,
    call_date: Option<Date>,
) -> CallTranscript {
    let timed: Vec<TimedSegment> = asr.segments.iter().map(TimedSegment::from).collect();
    let split = diarize::assign(&timed, turns);
    // Renumber by first appearance in the transcript.
    let mut order: Vec<usize> = Vec::new();
    for s in &split {
        if let Some(k) = s.speaker
            && !order.contains(&k)
        {
            order.push(k);
        }
    }
    let index = |k: Option<usize>| k.and_then(|k| order.iter().position(|&o| o == k));
    let segments: Vec<Segment> = split
        .iter()
        .filter(|s| !s.text.is_empty())
        .enumerate()
        .map(|(i, s)| Segment {
            id: i as u32,
            speaker: None,
            label: index(s.speaker).map(label),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text.clone(),
        })
        .collect();
    let mut spoken: Vec<(usize, String)> = Vec::new();
    for s in split.iter().filter(|s| !s.text.is_empty()) {
        let Some(k) = index(s.speaker) else { continue };
        match spoken.last_mut() {
            Some((last, text)) if *last == k => {
                text.push(' ');
                text.push_str(&s.text);
            }
            _ => spoken.push((k, s.text.clone())),
        }
    }
    let turns: Vec<SpokenTurn<'_>> = spoken
        .iter()
        .map(|(k, text)| SpokenTurn { speaker: *k, text })
        .collect();
    let mapping = map_speakers(&participants, &turns, order.len());
    let speakers: BTreeMap<String, Option<String>> = mapping
        .iter()
        .enumerate()
        .map(|(k, p)| (label(k), p.map(|p| participants[p].name.clone())))
        .collect();
    let mut t = CallTranscript {
        call_id: None,
        language: asr.language.clone(),
        call_date,
        title: String::new(),
        participants,
        segments,
        speakers,
    };
    t.apply_speakers();
    t
}

#[cfg(test)]
mod tests;
