//! Deadline phrases in English and Mandarin, resolved to ISO dates against the call date.
//!
//! The rules are the label guidelines' (weeks start on Monday; a bare weekday is the first one
//! strictly after the call date; "next Wednesday" is in the next calendar week; event-anchored
//! and vague deadlines have no date). The LLM is never asked for a date: a small model swaps
//! them, while these rules are tested case by case.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A calendar date (proleptic Gregorian, years -9999 to 9999), on `jiff`'s civil date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(jiff::civil::Date);

impl Date {
    /// The date `y-m-d`, or `None` when it does not exist.
    pub fn ymd(y: i64, m: u32, d: u32) -> Option<Date> {
        let date = jiff::civil::Date::new(
            i16::try_from(y).ok()?,
            i8::try_from(m).ok()?,
            i8::try_from(d).ok()?,
        );
        date.ok().map(Date)
    }

    /// Parses `YYYY-MM-DD` (exactly that form).
    pub fn parse(s: &str) -> Result<Date> {
        let bad = || Error::InvalidInput(format!("{s:?} is not a date: use YYYY-MM-DD"));
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let (y, m, d) = (next()?, next()?, next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let num = |t: &str| t.parse::<u32>().map_err(|_| bad());
        Date::ymd(num(y)? as i64, num(m)?, num(d)?).ok_or_else(bad)
    }

    /// (year, month, day).
    pub fn civil(self) -> (i64, u32, u32) {
        (
            self.0.year().into(),
            self.0.month() as u32,
            self.0.day() as u32,
        )
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(self) -> u32 {
        self.0.weekday().to_monday_zero_offset() as u32
    }

    /// `n` days later (earlier when negative), kept within the supported years.
    pub fn add_days(self, n: i64) -> Date {
        match jiff::Span::new().try_days(n) {
            Ok(span) => Date(self.0.saturating_add(span)),
            Err(_) if n < 0 => Date(jiff::civil::Date::MIN),
            Err(_) => Date(jiff::civil::Date::MAX),
        }
    }

    /// The Monday of this date's week.
    pub fn monday(self) -> Date {
        self.add_days(-(self.weekday() as i64))
    }

    /// The last day of this date's month, shifted by `months_ahead` months.
    pub fn month_end(self, months_ahead: u32) -> Date {
        let first = self
            .0
            .first_of_month()
            .saturating_add(jiff::Span::new().months(i64::from(months_ahead.min(12 * 100))));
        Date(first.last_of_month())
    }

    /// The last day of this date's calendar quarter.
    pub fn quarter_end(self) -> Date {
        let (_, m, _) = self.civil();
        self.month_end((3 - (m - 1) % 3) - 1)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Date, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A deadline found in an utterance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadline {
    /// The deadline words as spoken.
    pub text: String,
    /// The resolved date; `None` for event-anchored or vague deadlines.
    pub date: Option<Date>,
}

const EN_WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const EN_MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const EN_NUMBERS: [&str; 31] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "twenty one",
    "twenty two",
    "twenty three",
    "twenty four",
    "twenty five",
    "twenty six",
    "twenty seven",
    "twenty eight",
    "twenty nine",
    "thirty",
];
const EN_ORDINALS: [&str; 20] = [
    "",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
];

/// Words that tie a deadline to a future event (no date), English, used when no dated phrase
/// is present ("when the new wing opens", "once I have your cost model", "from this summer").
const EN_EVENT: [&str; 5] = ["when", "once", "after", "from", "as soon as"];
const EN_VAGUE: [&str; 5] = [
    "as soon as possible",
    "asap",
    "soon",
    "later",
    "at some point",
];
/// Mandarin event anchors; they override a dated phrase that follows them
/// ("名单确定以后，我们两周内完成").
const ZH_EVENT: [&str; 4] = ["以后", "之后", "出来后", "出来以后"];
const ZH_VAGUE: [&str; 3] = ["尽快", "回头", "过段时间"];

/// Finds the deadline in `utterance` and resolves it against the call date `d`.
/// Returns `None` when the utterance names no deadline.
pub fn find_deadline(utterance: &str, d: Date) -> Option<Deadline> {
    if utterance.chars().any(is_han) {
        find_zh(utterance, d)
    } else {
        find_en(utterance, d)
    }
}

fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Lower-cased words with punctuation turned into spaces, and the original-text byte span of
/// each word, so a matched phrase can be cut from the utterance as spoken.
struct Words<'a> {
    text: &'a str,
    words: Vec<(String, usize, usize)>,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Words<'a> {
        let mut words = Vec::new();
        let mut start = None;
        for (i, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            let part = c.is_alphanumeric() || c == '\'' || c == '’';
            match (part, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    let w = text[s..i].to_lowercase().replace('’', "'");
                    words.push((w, s, i));
                    start = None;
                }
                _ => {}
            }
        }
        Words { text, words }
    }

    fn get(&self, i: usize) -> &str {
        self.words.get(i).map(|w| w.0.as_str()).unwrap_or("")
    }

    /// Whether the words from `i` spell `phrase` (space separated); returns its word count.
    fn at(&self, i: usize, phrase: &str) -> Option<usize> {
        let parts: Vec<&str> = phrase.split(' ').collect();
        parts
            .iter()
            .enumerate()
            .all(|(k, p)| self.get(i + k) == *p)
            .then_some(parts.len())
    }

    /// The spoken text of words `i..j`, with a preceding "by"/"on"/"within"... kept.
    fn span(&self, i: usize, j: usize) -> String {
        let i = if i > 0
            && ["by", "on", "within", "in", "until", "before", "at"].contains(&self.get(i - 1))
        {
            i - 1
        } else {
            i
        };
        self.text[self.words[i].1..self.words[j - 1].2].to_string()
    }

    /// A number word, digits or "a" at `i`: (value, words used).
    fn number(&self, i: usize) -> Option<(u32, usize)> {
        if let Ok(n) = self.get(i).parse::<u32>() {
            return Some((n, 1));
        }
        if self.get(i) == "a" || self.get(i) == "an" {
            return Some((1, 1));
        }
        (1..EN_NUMBERS.len())
            .rev()
            .find_map(|n| self.at(i, EN_NUMBERS[n]).map(|len| (n as u32, len)))
    }

    /// A day of the month at `i`: "20", "20th", "twentieth", "twenty eighth".
    fn day_of_month(&self, i: usize) -> Option<(u32, usize)> {
        let w = self.get(i);
        let digits: String = w.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() && matches!(&w[digits.len()..], "" | "st" | "nd" | "rd" | "th") {
            return digits.parse().ok().map(|n| (n, 1));
        }
        let ordinal = |word: &str| EN_ORDINALS.iter().position(|o| !o.is_empty() && *o == word);
        let ordinal = |word: &str| {
            ordinal(word).or(match word {
                "twentieth" => Some(20),
                "thirtieth" => Some(30),
                _ => None,
            })
        };
        if let Some(n) = ordinal(w) {
            return Some((n as u32, 1));
        }
        let tens = match w {
            "twenty" => 20,
            "thirty" => 30,
            _ => return None,
        };
        ordinal(self.get(i + 1))
            .filter(|n| *n < 10)
            .map(|n| (tens + n as u32, 2))
    }
}

fn find_en(utterance: &str, d: Date) -> Option<Deadline> {
    let w = Words::new(utterance);
    let found = |i: usize, j: usize, date: Option<Date>| Deadline {
        text: w.span(i, j),
        date,
    };
    if let Some(hit) = (0..w.words.len())
        .find_map(|i| en_phrase_at(&w, i, d).map(|(len, date)| found(i, i + len, date)))
    {
        return Some(hit);
    }
    // No dated phrase: an event anchor or a vague deadline leaves the date open.
    let (i, len) = EN_VAGUE
        .iter()
        .chain(EN_EVENT.iter())
        .find_map(|p| (0..w.words.len()).find_map(|i| w.at(i, p).map(|n| (i, n))))?;
    let end = if EN_VAGUE.iter().any(|v| w.at(i, v).is_some()) {
        i + len
    } else {
        (i + 5).min(w.words.len())
    };
    Some(Deadline {
        text: w.text[w.words[i].1..w.words[end - 1].2].to_string(),
        date: None,
    })
}

/// A dated deadline phrase starting at word `i`: (words used, date).
fn en_phrase_at(w: &Words, i: usize, d: Date) -> Option<(usize, Option<Date>)> {
    let weekday_at = |k: usize| EN_WEEKDAYS.iter().position(|x| *x == w.get(k));
    let first_after = |wd: usize| {
        let ahead = (wd as i64 - d.weekday() as i64).rem_euclid(7);
        d.add_days(if ahead == 0 { 7 } else { ahead })
    };
    let next_week = |wd: usize| d.monday().add_days(7 + wd as i64);
    if w.get(i) == "today" {
        return Some((1, Some(d)));
    }
    if let Some(n) = w.at(i, "the end of the day") {
        return Some((n, Some(d)));
    }
    if w.get(i) == "tomorrow" {
        return Some((1, Some(d.add_days(1))));
    }
    if let Some(n) = w.at(i, "the end of next month") {
        return Some((n, Some(d.month_end(1))));
    }
    for p in [
        "the end of the month",
        "the end of this month",
        "this month",
        "month end",
    ] {
        if let Some(n) = w.at(i, p) {
            return Some((n, Some(d.month_end(0))));
        }
    }
    for p in [
        "the end of the quarter",
        "the end of this quarter",
        "quarter end",
        "this quarter",
    ] {
        if let Some(n) = w.at(i, p) {
            return Some((n, Some(d.quarter_end())));
        }
    }
    for p in ["the end of the week", "the end of this week", "this week"] {
        if let Some(n) = w.at(i, p) {
            return Some((n, Some(d.monday().add_days(4))));
        }
    }
    if w.get(i) == "next" {
        if let Some(wd) = weekday_at(i + 1) {
            return Some((2, Some(next_week(wd))));
        }
        if w.get(i + 1) == "week" {
            return Some((2, Some(next_week(4))));
        }
        if w.get(i + 1) == "month" {
            return Some((2, Some(d.month_end(1))));
        }
    }
    if w.get(i) == "this"
        && let Some(wd) = weekday_at(i + 1)
    {
        return Some((2, Some(first_after(wd))));
    }
    if let Some(wd) = weekday_at(i) {
        // "next Tuesday" is handled from its "next".
        if w.get(i.wrapping_sub(1)) != "next" {
            return Some((1, Some(first_after(wd))));
        }
    }
    if matches!(w.get(i), "in" | "within")
        && let Some((n, len)) = w.number(i + 1)
    {
        let days = match w.get(i + 1 + len) {
            "day" | "days" => n as i64,
            "week" | "weeks" => 7 * n as i64,
            _ => return None,
        };
        return Some((len + 2, Some(d.add_days(days))));
    }
    // "the twentieth of March", "20 March", "March 20th".
    let (y, _, _) = d.civil();
    let month_at = |k: usize| {
        EN_MONTHS
            .iter()
            .position(|m| *m == w.get(k))
            .map(|m| m as u32 + 1)
    };
    let start = if w.get(i) == "the" { i + 1 } else { i };
    if let Some((day, len)) = w.day_of_month(start) {
        let mut k = start + len;
        if w.get(k) == "of" {
            k += 1;
        }
        if let Some(m) = month_at(k) {
            return Some((k + 1 - i, Date::ymd(y, m, day)));
        }
    }
    if let Some(m) = month_at(i) {
        let k = if w.get(i + 1) == "the" { i + 2 } else { i + 1 };
        if let Some((day, len)) = w.day_of_month(k) {
            return Some((k + len - i, Date::ymd(y, m, day)));
        }
    }
    None
}

const ZH_WEEKDAY_CHARS: [char; 7] = ['一', '二', '三', '四', '五', '六', '日'];

/// A Chinese numeral (一 … 九十九, 两) or Arabic digits at the start of `s`: (value, chars).
fn zh_number(s: &str) -> Option<(u32, usize)> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !digits.is_empty() {
        return digits.parse().ok().map(|n| (n, digits.chars().count()));
    }
    let digit = |c: char| match c {
        '一' => Some(1),
        '二' | '两' => Some(2),
        '三' => Some(3),
        '四' => Some(4),
        '五' => Some(5),
        '六' => Some(6),
        '七' => Some(7),
        '八' => Some(8),
        '九' => Some(9),
        _ => None,
    };
    let cs: Vec<char> = s.chars().take(3).collect();
    match cs.as_slice() {
        [a, '十', b, ..] if digit(*a).is_some() && digit(*b).is_some() => {
            Some((digit(*a)? * 10 + digit(*b)?, 3))
        }
        [a, '十', ..] if digit(*a).is_some() => Some((digit(*a)? * 10, 2)),
        ['十', b, ..] if digit(*b).is_some() => Some((10 + digit(*b)?, 2)),
        ['十', ..] => Some((10, 1)),
        [a, ..] => digit(*a).map(|n| (n, 1)),
        [] => None,
    }
}

fn find_zh(utterance: &str, d: Date) -> Option<Deadline> {
    let chars: Vec<char> = utterance.chars().collect();
    let text_of = |i: usize, j: usize| chars[i..j.min(chars.len())].iter().collect::<String>();
    let mut hit = None;
    for i in 0..chars.len() {
        if let Some((len, date)) = zh_phrase_at(&chars[i..], d) {
            // Keep a trailing 前/之前/内 as part of what was said.
            let mut j = i + len;
            for suffix in ["之前", "以前", "前", "内", "之内"] {
                if text_of(j, j + suffix.chars().count()) == suffix {
                    j += suffix.chars().count();
                    break;
                }
            }
            hit = Some(Deadline {
                text: text_of(i, j),
                date,
            });
            break;
        }
    }
    // An event anchor before the deadline ("名单确定以后，我们两周内", "试用完两周内", "等报价出来")
    // leaves the date open.
    let clause_of = |pos: usize| {
        let start = utterance[..pos]
            .rfind(['，', ',', '。', '；'])
            .map(|p| p + utterance[p..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        let end = utterance[pos..]
            .find(['，', ',', '。', '；', '？', '！'])
            .map_or(utterance.len(), |p| pos + p);
        utterance[start..end].to_string()
    };
    let hit_pos = hit.as_ref().and_then(|h| utterance.find(&h.text));
    let anchor = ZH_EVENT
        .iter()
        .filter_map(|e| utterance.find(e))
        .chain(utterance.starts_with('等').then_some(0))
        .chain(utterance.find("，等").map(|p| p + '，'.len_utf8()))
        .chain(hit_pos.filter(|&p| utterance[..p].ends_with(['完', '后'])))
        .filter(|&p| hit_pos.is_none_or(|h| p <= h))
        .min();
    if let Some(pos) = anchor {
        return Some(Deadline {
            text: clause_of(pos),
            date: None,
        });
    }
    hit.or_else(|| {
        ZH_VAGUE
            .iter()
            .find(|v| utterance.contains(*v))
            .map(|v| Deadline {
                text: (*v).to_string(),
                date: None,
            })
    })
}

/// A dated Mandarin deadline phrase at the start of `s`: (chars used, date).
fn zh_phrase_at(s: &[char], d: Date) -> Option<(usize, Option<Date>)> {
    let text: String = s.iter().take(8).collect();
    let starts = |p: &str| text.starts_with(p);
    let weekday = |c: Option<&char>| {
        c.and_then(|c| {
            ZH_WEEKDAY_CHARS
                .iter()
                .position(|x| x == c)
                .or((*c == '天').then_some(6))
        })
    };
    let first_after = |wd: usize| {
        let ahead = (wd as i64 - d.weekday() as i64).rem_euclid(7);
        d.add_days(if ahead == 0 { 7 } else { ahead })
    };
    if starts("今天") {
        return Some((2, Some(d)));
    }
    if starts("明天") {
        return Some((2, Some(d.add_days(1))));
    }
    if starts("后天") {
        return Some((2, Some(d.add_days(2))));
    }
    for p in ["下个月底", "下月底", "下个月末", "下月末"] {
        if starts(p) {
            return Some((p.chars().count(), Some(d.month_end(1))));
        }
    }
    for p in ["月底", "月末", "这个月", "本月"] {
        if starts(p) {
            return Some((p.chars().count(), Some(d.month_end(0))));
        }
    }
    for p in ["季度末", "本季度", "这个季度"] {
        if starts(p) {
            return Some((p.chars().count(), Some(d.quarter_end())));
        }
    }
    for p in ["下周", "下星期", "下礼拜", "下个星期", "下个礼拜"] {
        if starts(p) {
            let n = p.chars().count();
            let date = match weekday(s.get(n)) {
                Some(wd) => return Some((n + 1, Some(d.monday().add_days(7 + wd as i64)))),
                None => d.monday().add_days(7 + 4),
            };
            return Some((n, Some(date)));
        }
    }
    for p in ["本周", "这周", "这星期", "这个星期", "本星期", "这礼拜"] {
        if starts(p) {
            let n = p.chars().count();
            return Some(match weekday(s.get(n)) {
                Some(wd) => (n + 1, Some(first_after(wd))),
                None => (n, Some(d.monday().add_days(4))),
            });
        }
    }
    for p in ["周", "星期", "礼拜"] {
        if starts(p) {
            let n = p.chars().count();
            if let Some(wd) = weekday(s.get(n)) {
                return Some((n + 1, Some(first_after(wd))));
            }
        }
    }
    // N天内 / N周内 / N个星期内 / 3月20日.
    let (n, len) = zh_number(&text)?;
    let rest: String = s.iter().skip(len).take(4).collect();
    for (unit, days) in [
        ("天", 1),
        ("周", 7),
        ("个星期", 7),
        ("星期", 7),
        ("个礼拜", 7),
    ] {
        if rest.starts_with(unit) {
            let after: String = rest.chars().skip(unit.chars().count()).collect();
            if after.starts_with('内') || after.starts_with("之内") || after.starts_with("以内")
            {
                return Some((
                    len + unit.chars().count(),
                    Some(d.add_days(days * n as i64)),
                ));
            }
        }
    }
    if let Some(after_month) = rest.strip_prefix('月') {
        let (day, dlen) = zh_number(after_month)?;
        let tail = after_month.chars().nth(dlen)?;
        if tail == '日' || tail == '号' {
            let (y, _, _) = d.civil();
            return Some((len + 1 + dlen + 1, Date::ymd(y, n, day)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(utterance: &str, call_date: &str) -> Option<String> {
        find_deadline(utterance, Date::parse(call_date).unwrap())
            .and_then(|d| d.date)
            .map(|d| d.to_string())
    }

    #[test]
    fn calendar_arithmetic() {
        let d = Date::parse("2026-03-10").unwrap();
        assert_eq!(d.weekday(), 1, "a Tuesday");
        assert_eq!(d.to_string(), "2026-03-10");
        assert_eq!(d.month_end(0).to_string(), "2026-03-31");
        assert_eq!(d.month_end(1).to_string(), "2026-04-30");
        assert_eq!(d.month_end(10).to_string(), "2027-01-31");
        assert_eq!(d.quarter_end().to_string(), "2026-03-31");
        assert_eq!(
            Date::parse("2026-11-02").unwrap().quarter_end().to_string(),
            "2026-12-31"
        );
        assert_eq!(
            Date::parse("2028-02-01").unwrap().month_end(0).to_string(),
            "2028-02-29"
        );
        assert!(Date::parse("2026-02-30").is_err());
        assert!(Date::parse("10/03/2026").is_err());
        assert_eq!(Date::parse("1970-01-01").unwrap().weekday(), 3);
    }

    /// The guideline's table (D = Tue 2026-03-10) and the examples it lists, in both languages.
    #[test]
    fn resolves_the_guideline_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("I'll send it today.", "2026-03-10", Some("2026-03-10")),
            ("我今天发给您。", "2026-03-10", Some("2026-03-10")),
            (
                "You'll have it by tomorrow.",
                "2026-03-10",
                Some("2026-03-11"),
            ),
            ("我明天把数据发给你们。", "2026-03-10", Some("2026-03-11")),
            (
                "I'll send a revised price sheet by Friday.",
                "2026-03-10",
                Some("2026-03-13"),
            ),
            ("I'll call you on Friday.", "2026-03-10", Some("2026-03-13")),
            ("我周五前给您答复。", "2026-03-10", Some("2026-03-13")),
            ("星期五我发给您。", "2026-03-10", Some("2026-03-13")),
            ("I'll do it this Friday.", "2026-03-10", Some("2026-03-13")),
            ("我本周五前把材料发给您。", "2026-03-10", Some("2026-03-13")),
            ("这周五我过来。", "2026-03-10", Some("2026-03-13")),
            (
                "I'll set up a test next Wednesday.",
                "2026-03-10",
                Some("2026-03-18"),
            ),
            ("下周三我带技术人员过去。", "2026-03-10", Some("2026-03-18")),
            ("下星期三见。", "2026-03-10", Some("2026-03-18")),
            ("We'll start next Monday.", "2026-03-10", Some("2026-03-16")),
            ("下周一给您送过去。", "2026-03-10", Some("2026-03-16")),
            (
                "I'll brief her myself next week.",
                "2026-03-10",
                Some("2026-03-20"),
            ),
            ("下周我们再联系。", "2026-03-10", Some("2026-03-20")),
            (
                "I'll send it by the end of the week.",
                "2026-03-10",
                Some("2026-03-13"),
            ),
            ("我本周内给您。", "2026-03-10", Some("2026-03-13")),
            ("这周内发。", "2026-03-10", Some("2026-03-13")),
            (
                "I'll send the list by the end of the month.",
                "2026-03-10",
                Some("2026-03-31"),
            ),
            ("我月底前把报价单发给您。", "2026-03-10", Some("2026-03-31")),
            ("月底给你。", "2026-03-10", Some("2026-03-31")),
            (
                "We'll sign by the end of next month.",
                "2026-03-10",
                Some("2026-04-30"),
            ),
            ("我们下个月底签。", "2026-03-10", Some("2026-04-30")),
            (
                "We'll decide by the end of the quarter.",
                "2026-03-10",
                Some("2026-03-31"),
            ),
            ("季度末之前决定。", "2026-03-10", Some("2026-03-31")),
            (
                "You'll hear from us in ten days.",
                "2026-03-10",
                Some("2026-03-20"),
            ),
            ("我十天内给您答复。", "2026-03-10", Some("2026-03-20")),
            (
                "You'll have their letter within two weeks.",
                "2026-03-10",
                Some("2026-03-24"),
            ),
            ("我两周内给你们答复。", "2026-03-10", Some("2026-03-24")),
            ("I'll send it in 3 days.", "2026-03-10", Some("2026-03-13")),
            (
                "We'll deliver on the twentieth of March.",
                "2026-03-10",
                Some("2026-03-20"),
            ),
            ("我3月20日前交付。", "2026-03-10", Some("2026-03-20")),
            ("我三月二十日前交付。", "2026-03-10", Some("2026-03-20")),
            ("Deliver on March 20th.", "2026-03-10", Some("2026-03-20")),
        ];
        for (utterance, d, want) in cases {
            assert_eq!(
                resolve(utterance, d).as_deref(),
                *want,
                "{utterance:?} against {d}"
            );
        }
    }

    #[test]
    fn resolves_the_examples_of_the_guidelines() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "I'll send the revised proposal by Friday instead.",
                "2026-03-25",
                "2026-03-27",
            ),
            (
                "I'll set up a meeting with her for next Wednesday.",
                "2026-03-25",
                "2026-04-01",
            ),
            (
                "I'll send you the list by the end of the month.",
                "2026-03-25",
                "2026-03-31",
            ),
            (
                "I'll send you our promotion calendar by next Friday.",
                "2026-05-12",
                "2026-05-22",
            ),
            ("I'll bring them on Tuesday.", "2026-04-16", "2026-04-21"),
            (
                "I'll be at your plant next Tuesday at eight.",
                "2026-04-16",
                "2026-04-21",
            ),
            ("下周三我过去。", "2026-05-27", "2026-06-03"),
            ("我月底前发给您。", "2026-05-27", "2026-05-31"),
            ("我两周内给你们答复。", "2026-05-27", "2026-06-10"),
            ("我明天发给你们。", "2026-05-27", "2026-05-28"),
            ("我本周五前把认证材料发给您。", "2026-06-03", "2026-06-05"),
            (
                "I'll send it by Wednesday evening.",
                "2026-05-12",
                "2026-05-13",
            ),
            (
                "I'll take it to the panel on the twenty eighth of May.",
                "2026-05-12",
                "2026-05-28",
            ),
        ];
        for (utterance, d, want) in cases {
            assert_eq!(
                resolve(utterance, d).as_deref(),
                Some(*want),
                "{utterance:?}"
            );
        }
    }

    #[test]
    fn a_bare_weekday_on_that_weekday_is_a_week_later() {
        // 2026-03-13 is a Friday.
        assert_eq!(
            resolve("I'll send it by Friday.", "2026-03-13").as_deref(),
            Some("2026-03-20")
        );
        assert_eq!(
            resolve("周五前发给您。", "2026-03-13").as_deref(),
            Some("2026-03-20")
        );
        // "next Friday" on a Monday is not this week's Friday.
        assert_eq!(
            resolve("next Friday", "2026-03-09").as_deref(),
            Some("2026-03-20")
        );
    }

    #[test]
    fn event_anchored_and_vague_deadlines_have_no_date() {
        for (utterance, text) in [
            ("We'll deliver them when the new wing opens.", Some("when")),
            (
                "I'll give you a decision once I have your cost model.",
                Some("once"),
            ),
            (
                "From this summer, we will hold four weeks of safety stock.",
                Some("From"),
            ),
            (
                "I'll send it as soon as possible.",
                Some("as soon as possible"),
            ),
            ("I'll get back to you soon.", Some("soon")),
            (
                "名单确定以后，我们两周内完成试点部署。",
                Some("名单确定以后"),
            ),
            ("等报价出来我自己跟他汇报。", Some("等")),
            ("我尽快发给您。", Some("尽快")),
            ("试用完两周内给您答复。", Some("试用完两周内给您答复")),
        ] {
            let found = find_deadline(utterance, Date::parse("2026-03-10").unwrap());
            assert_eq!(
                found.as_ref().and_then(|f| f.date),
                None,
                "{utterance:?}: {found:?}"
            );
            if let Some(text) = text {
                let found = found.unwrap_or_else(|| panic!("{utterance:?} has a deadline"));
                assert!(
                    found.text.contains(text) || text.contains(&found.text),
                    "{utterance:?}: {found:?}"
                );
            }
        }
    }

    #[test]
    fn keeps_the_deadline_words_as_spoken() {
        let d = Date::parse("2026-03-25").unwrap();
        assert_eq!(
            find_deadline("I'll send it by Friday instead.", d)
                .unwrap()
                .text,
            "by Friday"
        );
        assert_eq!(
            find_deadline("I'll send it by the end of the month.", d)
                .unwrap()
                .text,
            "by the end of the month"
        );
        assert_eq!(
            find_deadline("我月底前把报价单发给您。", d).unwrap().text,
            "月底前"
        );
        assert_eq!(
            find_deadline("我两周内给你们答复。", d).unwrap().text,
            "两周内"
        );
    }

    #[test]
    fn utterances_without_deadlines() {
        let d = Date::parse("2026-03-25").unwrap();
        for u in [
            "I'll prepare a short summary for that meeting.",
            "我会把材料发给您。",
            "Thanks, talk to you then.",
        ] {
            assert_eq!(find_deadline(u, d), None, "{u:?}");
        }
    }
}
