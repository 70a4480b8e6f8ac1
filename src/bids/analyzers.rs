//! Text analysis for the bid index: an English analyzer (words, lower case, stop words,
//! Snowball stemming) and a Mandarin analyzer (jieba-rs search-mode segmentation; Latin words
//! inside Chinese text, such as "ISO 13485" or "HL7", go through the English chain so they
//! match English bids). Both are registered in the tantivy index under [`EN`] and [`ZH`], and
//! the same functions analyze queries and build highlights.

use std::sync::OnceLock;

use jieba_rs::Jieba;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    Token, TokenStream, Tokenizer, TokenizerManager,
};

/// The English analyzer's name in the index.
pub const EN: &str = "dealdesk_en";
/// The Mandarin analyzer's name in the index.
pub const ZH: &str = "dealdesk_zh";

/// Function words that carry no topic in Chinese tender text.
const ZH_STOP: &[&str] = &[
    "的", "了", "和", "与", "及", "或", "在", "是", "为", "对", "将", "并", "等", "其", "该", "由",
    "于", "以", "从", "中", "上", "下", "个", "把", "被", "也", "都", "而", "之", "我们", "我方",
    "贵方", "要求", "提供", "进行",
];

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// The English chain: simple words, long tokens dropped, lower case, stop words, stemmer.
pub fn english() -> TextAnalyzer {
    static EN: OnceLock<TextAnalyzer> = OnceLock::new();
    EN.get_or_init(|| {
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(
                StopWordFilter::new(Language::English).expect("tantivy ships English stop words"),
            )
            .filter(Stemmer::new(Language::English))
            .build()
    })
    .clone()
}

/// The Mandarin chain: jieba search-mode words (with Latin words normalised like English).
pub fn mandarin() -> TextAnalyzer {
    static ZH: OnceLock<TextAnalyzer> = OnceLock::new();
    ZH.get_or_init(|| TextAnalyzer::builder(JiebaTokenizer { latin: english() }).build())
        .clone()
}

/// Registers both analyzers with an index's tokenizer manager.
pub fn register(manager: &TokenizerManager) {
    manager.register(EN, english());
    manager.register(ZH, mandarin());
}

/// A token with its byte range in the analyzed text.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub text: String,
    pub from: usize,
    pub to: usize,
}

/// Every token `analyzer` makes of `text`, in order.
pub fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Term> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    stream.process(&mut |t: &Token| {
        out.push(Term {
            text: t.text.clone(),
            from: t.offset_from,
            to: t.offset_to,
        })
    });
    out
}

/// Segments with jieba; CJK words are kept unless they are function words, Latin words are
/// lower-cased and stemmed, whitespace and punctuation are dropped.
#[derive(Clone)]
pub struct JiebaTokenizer {
    latin: TextAnalyzer,
}

pub struct JiebaStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for JiebaStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaStream {
        let base = text.as_ptr() as usize;
        let mut tokens = Vec::new();
        for word in jieba().cut_for_search(text, true) {
            let from = word.as_ptr() as usize - base;
            if word.chars().any(is_cjk) {
                if !ZH_STOP.contains(&word) {
                    tokens.push(Token {
                        offset_from: from,
                        offset_to: from + word.len(),
                        position: tokens.len(),
                        text: word.to_string(),
                        position_length: 1,
                    });
                }
                continue;
            }
            for term in analyze(&mut self.latin, word) {
                tokens.push(Token {
                    offset_from: from + term.from,
                    offset_to: from + term.to,
                    position: tokens.len(),
                    text: term.text,
                    position_length: 1,
                });
            }
        }
        JiebaStream { tokens, next: 0 }
    }
}

/// Whether `c` is a CJK ideograph (the text jieba segments).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        analyze(analyzer, text)
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    #[test]
    fn english_stems_inflections_to_one_term_and_drops_stop_words() {
        let mut en = english();
        assert_eq!(
            texts(&mut en, "Implementing the implementations"),
            vec!["implement", "implement"]
        );
        assert_eq!(
            texts(&mut en, "Monitors monitoring"),
            vec!["monitor", "monitor"]
        );
        assert_eq!(texts(&mut en, "of the and"), Vec::<String>::new());
    }

    #[test]
    fn jieba_segments_mandarin_words_and_keeps_search_subwords() {
        let mut zh = mandarin();
        let words = texts(&mut zh, "医院重症监护病房的监护系统");
        for expected in ["医院", "重症", "监护", "病房", "系统"] {
            assert!(
                words.contains(&expected.to_string()),
                "{expected} in {words:?}"
            );
        }
        assert!(
            !words.contains(&"的".to_string()),
            "stop word kept: {words:?}"
        );
    }

    #[test]
    fn latin_words_in_chinese_text_are_normalised_like_english() {
        let mut zh = mandarin();
        let words = texts(&mut zh, "通过ISO 13485认证，支持HL7接口和Monitoring");
        assert!(words.contains(&"iso".to_string()), "{words:?}");
        assert!(words.contains(&"13485".to_string()), "{words:?}");
        assert!(words.contains(&"hl7".to_string()), "{words:?}");
        assert!(words.contains(&"monitor".to_string()), "{words:?}");
        assert!(words.contains(&"认证".to_string()), "{words:?}");
    }

    #[test]
    fn offsets_point_at_the_source_text() {
        let mut zh = mandarin();
        let text = "智能电表 smart meters";
        for t in analyze(&mut zh, text) {
            let src = &text[t.from..t.to];
            assert!(!src.trim().is_empty(), "{t:?}");
        }
    }
}
