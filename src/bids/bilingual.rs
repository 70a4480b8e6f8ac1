//! Cross-language query terms from a small English-Mandarin tender glossary
//! (`glossary.txt`, generic procurement and sector vocabulary). An English tender gets
//! Mandarin terms for the Chinese fields and vice versa; acronyms and codes written in Latin
//! letters (ISO 27001, HL7, OCPP) carry over as they are.

use std::sync::OnceLock;

use super::analyzers::{self, Term};

const GLOSSARY: &str = include_str!("glossary.txt");

/// One glossary entry: the English phrase as stems, the Mandarin words as written and as
/// index terms.
struct Entry {
    en: Vec<String>,
    zh: Vec<String>,
    zh_terms: Vec<String>,
}

/// The parsed glossary.
pub struct Glossary {
    entries: Vec<Entry>,
}

/// The built-in glossary.
pub fn glossary() -> &'static Glossary {
    static G: OnceLock<Glossary> = OnceLock::new();
    G.get_or_init(|| Glossary::parse(GLOSSARY))
}

impl Glossary {
    /// Parses `english phrase = 中文, 中文` lines (`#` comments).
    pub fn parse(text: &str) -> Glossary {
        let mut en = analyzers::english();
        let mut zh = analyzers::mandarin();
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(e, z)| {
                let zh_words: Vec<String> = z
                    .split([',', '，'])
                    .map(|w| w.trim().to_string())
                    .filter(|w| !w.is_empty())
                    .collect();
                let mut zh_terms = Vec::new();
                for w in &zh_words {
                    zh_terms.extend(analyzers::analyze(&mut zh, w).into_iter().map(|t| t.text));
                }
                Entry {
                    en: analyzers::analyze(&mut en, e)
                        .into_iter()
                        .map(|t| t.text)
                        .collect(),
                    zh: zh_words,
                    zh_terms,
                }
            })
            .filter(|e| !e.en.is_empty() && !e.zh.is_empty())
            .collect();
        Glossary { entries }
    }

    /// Mandarin index terms for English `stems` (phrases match as consecutive stems).
    pub fn en_to_zh(&self, stems: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.entries {
            if stems.windows(e.en.len()).any(|w| w == e.en.as_slice()) {
                out.extend(e.zh_terms.iter().cloned());
            }
        }
        out
    }

    /// English stems for the glossary words that occur in Mandarin `text`.
    pub fn zh_to_en(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.entries {
            if e.zh.iter().any(|w| text.contains(w.as_str())) {
                out.extend(e.en.iter().cloned());
            }
        }
        out
    }
}

/// Whether a Latin token is a code or acronym worth matching across languages (has a digit,
/// or is written in capitals: ISO, HL7, 13485, OCPP).
pub fn is_code(source: &str) -> bool {
    source.chars().any(|c| c.is_ascii_digit())
        || (source.len() >= 2 && source.chars().all(|c| c.is_ascii_uppercase()))
}

/// The code-like tokens of `terms` analyzed from `text`.
pub fn codes(text: &str, terms: &[Term]) -> Vec<String> {
    terms
        .iter()
        .filter(|t| is_code(&text[t.from..t.to]))
        .map(|t| t.text.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_translate_both_ways() {
        let g = glossary();
        let mut en = analyzers::english();
        let stems: Vec<String> =
            analyzers::analyze(&mut en, "Intensive care monitors and charging")
                .into_iter()
                .map(|t| t.text)
                .collect();
        let zh = g.en_to_zh(&stems);
        assert!(zh.iter().any(|t| t == "重症" || t == "重症监护"), "{zh:?}");
        assert!(zh.iter().any(|t| t == "充电"), "{zh:?}");
        let back = g.zh_to_en("公交场站充电桩");
        assert!(back.contains(&"charger".to_string()), "{back:?}");
        assert!(back.contains(&"bus".to_string()), "{back:?}");
    }

    #[test]
    fn codes_are_digits_or_capitals() {
        assert!(is_code("HL7") && is_code("ISO") && is_code("13485"));
        assert!(!is_code("Monitoring") && !is_code("a"));
    }
}
