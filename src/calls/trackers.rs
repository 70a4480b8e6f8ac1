//! Topic trackers: named keyword/phrase lists (English and Mandarin) from `trackers.toml`, and
//! where in a call each one fired. English phrases match on word boundaries after the bid
//! library's English analysis (case folding, stop words, stemming: "pricing" matches "price");
//! Mandarin phrases match as substrings. The file is read on every use, so edits apply without
//! a restart.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tantivy::tokenizer::TextAnalyzer;

use super::transcript::CallTranscript;
use crate::bids::analyzers::{self, is_cjk};
use crate::config::Config;
use crate::error::{Error, Result};

/// The shipped trackers (also the default when `[calls] trackers` is empty).
pub const BUILTIN: &str = include_str!("../../trackers.toml");

/// One tracker as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSpec {
    pub name: String,
    #[serde(default)]
    pub en: Vec<String>,
    #[serde(default)]
    pub zh: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tracker: Vec<TrackerSpec>,
}

/// A phrase ready to match: stemmed words, or a Mandarin substring.
#[derive(Debug, Clone)]
enum Pattern {
    Words(Vec<String>),
    Substring(String),
}

#[derive(Debug, Clone)]
struct Tracker {
    name: String,
    phrases: Vec<(String, Pattern)>,
}

/// The trackers in force, compiled for matching.
#[derive(Debug, Clone)]
pub struct Trackers {
    trackers: Vec<Tracker>,
    fingerprint: String,
}

/// Where a tracker fired: one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackerHit {
    pub segment_id: u32,
    pub start_ms: u64,
    /// The segment's speaker; `None` when unattributed.
    pub speaker: Option<String>,
    /// The tracker's phrases said in the segment, as written in the file.
    pub phrases: Vec<String>,
}

/// A tracker and every segment where it fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackerHits {
    pub name: String,
    pub count: usize,
    pub hits: Vec<TrackerHit>,
}

impl Trackers {
    /// The trackers configured in `[calls] trackers` (the built-in ones when empty).
    pub fn load(config: &Config) -> Result<Trackers> {
        if config.calls.trackers.is_empty() {
            return Trackers::parse(BUILTIN, "the built-in trackers");
        }
        let path = Path::new(&config.calls.trackers);
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(
                "cannot read the trackers file (set [calls] trackers)",
                path,
                e,
            )
        })?;
        Trackers::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a trackers file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Trackers> {
        let bad = |m: String| Error::InvalidInput(format!("{origin}: {m}"));
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut english = analyzers::english();
        let mut trackers: Vec<Tracker> = Vec::new();
        for spec in file.tracker {
            let name_ok = !spec.name.is_empty()
                && spec
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !name_ok {
                return Err(bad(format!(
                    "tracker name {:?}: use lower-case letters, digits, _ or -",
                    spec.name
                )));
            }
            if trackers.iter().any(|t| t.name == spec.name) {
                return Err(bad(format!("tracker {:?} is defined twice", spec.name)));
            }
            let mut phrases = Vec::new();
            for phrase in spec.en.iter().chain(&spec.zh) {
                let pattern = if phrase.chars().any(is_cjk) {
                    Pattern::Substring(phrase.trim().to_lowercase())
                } else {
                    Pattern::Words(words(&mut english, phrase))
                };
                let empty = match &pattern {
                    Pattern::Words(w) => w.is_empty(),
                    Pattern::Substring(s) => s.is_empty(),
                };
                if empty {
                    return Err(bad(format!(
                        "tracker {:?}: phrase {phrase:?} has no searchable words (only stop \
                         words or punctuation); remove it",
                        spec.name
                    )));
                }
                phrases.push((phrase.clone(), pattern));
            }
            if phrases.is_empty() {
                return Err(bad(format!(
                    "tracker {:?} has no phrases; give it `en` or `zh` phrases",
                    spec.name
                )));
            }
            trackers.push(Tracker {
                name: spec.name,
                phrases,
            });
        }
        let mut digest = Sha256::new();
        for t in &trackers {
            digest.update(t.name.as_bytes());
            for (p, _) in &t.phrases {
                digest.update([0]);
                digest.update(p.as_bytes());
            }
            digest.update([1]);
        }
        Ok(Trackers {
            trackers,
            fingerprint: hex::encode(digest.finalize()),
        })
    }

    /// A digest of the trackers, to tell when derived data must be rebuilt.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The tracker names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.trackers.iter().map(|t| t.name.as_str()).collect()
    }

    /// The names of the trackers that fire on `text` (in a call of `language`), each with the
    /// phrases that matched.
    pub fn fire_on<'a>(&'a self, text: &str, language: &str) -> Vec<(&'a str, Vec<String>)> {
        let tokens = words(&mut analyzer_for(language), text);
        let lower = text.to_lowercase();
        let mut out = Vec::new();
        for t in &self.trackers {
            let matched: Vec<String> = t
                .phrases
                .iter()
                .filter(|(_, p)| match p {
                    Pattern::Substring(s) => lower.contains(s.as_str()),
                    Pattern::Words(w) => tokens.windows(w.len()).any(|win| win == w.as_slice()),
                })
                .map(|(phrase, _)| phrase.clone())
                .collect();
            if !matched.is_empty() {
                out.push((t.name.as_str(), matched));
            }
        }
        out
    }

    /// Every tracker (fired or not, in file order) with the segments where it fired.
    pub fn fire(&self, t: &CallTranscript) -> Vec<TrackerHits> {
        let mut out: Vec<TrackerHits> = self
            .trackers
            .iter()
            .map(|tr| TrackerHits {
                name: tr.name.clone(),
                count: 0,
                hits: Vec::new(),
            })
            .collect();
        for seg in &t.segments {
            for (name, phrases) in self.fire_on(&seg.text, &t.language) {
                let entry = out
                    .iter_mut()
                    .find(|h| h.name == name)
                    .expect("fired trackers are configured");
                entry.count += 1;
                entry.hits.push(TrackerHit {
                    segment_id: seg.id,
                    start_ms: seg.start_ms,
                    speaker: seg.speaker.clone(),
                    phrases,
                });
            }
        }
        out
    }
}

/// The analyzer for text of a call language: Mandarin text goes through jieba (Latin words in
/// it through the English chain), anything else through the English chain.
pub fn analyzer_for(language: &str) -> TextAnalyzer {
    if language == "zh" {
        analyzers::mandarin()
    } else {
        analyzers::english()
    }
}

/// The analyzed words of `text`, in order.
pub fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    analyzers::analyze(analyzer, text)
        .into_iter()
        .map(|t| t.text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Trackers {
        Trackers::parse(BUILTIN, "builtin").unwrap()
    }

    fn fired(t: &Trackers, text: &str, lang: &str) -> Vec<String> {
        t.fire_on(text, lang)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    #[test]
    fn english_matches_stemmed_whole_words_case_insensitively() {
        let t = builtin();
        assert_eq!(
            fired(&t, "Your PRICES went up again.", "en"),
            vec!["pricing"]
        );
        assert_eq!(
            fired(&t, "We compared it with salesforce.", "en"),
            vec!["competitors"]
        );
        // Word boundaries: "costume" is not "cost", "secured" stems like "secure".
        assert!(fired(&t, "A costume party.", "en").is_empty());
        assert_eq!(
            fired(&t, "Is the data encrypted and secured?", "en"),
            vec!["security"]
        );
        // A phrase matches its words in order only.
        assert_eq!(fired(&t, "That needs SOC 2.", "en"), vec!["security"]);
        assert!(fired(&t, "Two socks.", "en").is_empty());
    }

    #[test]
    fn mandarin_matches_substrings_and_latin_words_inside_chinese() {
        let t = builtin();
        assert_eq!(fired(&t, "这个报价比我们预期高。", "zh"), vec!["pricing"]);
        assert_eq!(
            fired(&t, "我们也在看Salesforce的方案", "zh"),
            vec!["competitors"]
        );
        // 贵方 (a polite "your side") is not "expensive".
        assert!(fired(&t, "贵方的团队很专业", "zh").is_empty());
        let hits = t.fire_on("合同下周签字，先做数据加密", "zh");
        let names: Vec<&str> = hits.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, vec!["security", "legal", "timeline"]);
        let legal = &hits[1].1;
        assert_eq!(legal, &vec!["合同".to_string(), "签字".to_string()]);
    }

    #[test]
    fn bad_files_are_refused_with_the_problem_named() {
        let err = |text: &str| Trackers::parse(text, "t.toml").unwrap_err().to_string();
        assert!(err("[[tracker]]\nname = \"Price\"\nen = [\"x\"]").contains("lower-case"));
        assert!(
            err("[[tracker]]\nname = \"a\"\nen = [\"x\"]\n[[tracker]]\nname = \"a\"\nen = [\"y\"]")
                .contains("twice")
        );
        assert!(err("[[tracker]]\nname = \"a\"").contains("no phrases"));
        assert!(err("[[tracker]]\nname = \"a\"\nen = [\"the of\"]").contains("no searchable"));
        assert!(err("[[tracker]]\nname = \"a\"\nwords = [\"x\"]").contains("t.toml"));
    }

    #[test]
    fn the_fingerprint_changes_with_the_phrases() {
        let a = Trackers::parse("[[tracker]]\nname = \"a\"\nen = [\"x\"]", "a").unwrap();
        let b = Trackers::parse("[[tracker]]\nname = \"a\"\nen = [\"y\"]", "b").unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(builtin().fingerprint(), builtin().fingerprint());
        assert_eq!(
            builtin().names(),
            vec![
                "competitors",
                "pricing",
                "security",
                "implementation",
                "legal",
                "timeline"
            ]
        );
    }
}
