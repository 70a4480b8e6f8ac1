//! UI strings in English and Simplified Chinese, from `i18n/en.toml` and `i18n/zh.toml`
//! (built into the binary). Keys are `section.name`; both files have the same keys (tested).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;

use super::session::{LANG_COOKIE, cookie};

/// A UI language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The code used in the cookie and in `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "zh" | "zh-CN" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The language cookie, else the browser's first preference between the two, else English.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(|c| Lang::parse(&c)) {
            return lang;
        }
        let accept = headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let first = accept
            .split(',')
            .map(|l| l.trim().to_ascii_lowercase())
            .find(|l| l.starts_with("en") || l.starts_with("zh"));
        match first {
            Some(l) if l.starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../../i18n/en.toml"),
            Lang::Zh => include_str!("../../i18n/zh.toml"),
        }
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => panic!("i18n key {key} must be a string, not {other}"),
        }
    }
}

fn strings(lang: Lang) -> BTreeMap<String, String> {
    let table: toml::Table = lang
        .source()
        .parse()
        .unwrap_or_else(|e| panic!("i18n file of {} is not valid TOML: {e}", lang.code()));
    let mut out = BTreeMap::new();
    flatten("", &table, &mut out);
    out
}

static STRINGS: LazyLock<[BTreeMap<String, String>; 2]> =
    LazyLock::new(|| [strings(Lang::En), strings(Lang::Zh)]);

/// The strings of one language, for templates: `{{ p.t.s("nav.calls") }}`.
#[derive(Clone, Copy, Debug)]
pub struct Tr(pub Lang);

impl Tr {
    /// The string for `key`; the key itself if it is missing (the tests make sure none is).
    pub fn s<'a>(&self, key: &'a str) -> &'a str {
        let table = &STRINGS[self.0 as usize];
        table.get(key).map(String::as_str).unwrap_or(key)
    }

    /// The string for a key made from data, `section.name` (a status, a kind, a category);
    /// `name` itself when there is none.
    pub fn d(&self, section: &str, name: &str) -> String {
        let table = &STRINGS[self.0 as usize];
        table
            .get(&format!("{section}.{name}"))
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys_and_no_empty_string() {
        let en = strings(Lang::En);
        let zh = strings(Lang::Zh);
        let only_en: Vec<_> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        let only_zh: Vec<_> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(only_en.is_empty(), "missing in zh.toml: {only_en:?}");
        assert!(only_zh.is_empty(), "missing in en.toml: {only_zh:?}");
        for (k, v) in en.iter().chain(zh.iter()) {
            assert!(!v.trim().is_empty(), "{k} is empty");
        }
        assert!(en.len() > 50);
    }

    /// Every `s("key")` used in a template or in the web module's code exists.
    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let en = strings(Lang::En);
        let root = concat!(env!("CARGO_MANIFEST_DIR"));
        let mut used = 0;
        for dir in ["templates", "src/web"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.ends_with("i18n.rs") {
                    continue; // this file's own examples
                }
                let text = std::fs::read_to_string(path).unwrap();
                for piece in text.split("s(\"").skip(1) {
                    let key = piece.split('"').next().unwrap();
                    if key.contains('.') && !key.contains(' ') {
                        assert!(en.contains_key(key), "{dir}: key {key:?} is not in en.toml");
                        used += 1;
                    }
                }
            }
        }
        assert!(used > 50, "only {used} keys found in use");
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of_request(&h), Lang::En);
        h.insert(ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.8".parse().unwrap());
        assert_eq!(Lang::of_request(&h), Lang::Zh);
        h.insert(axum::http::header::COOKIE, "dd_lang=en".parse().unwrap());
        assert_eq!(Lang::of_request(&h), Lang::En);
        assert_eq!(Tr(Lang::Zh).s("nav.calls"), "通话");
        assert_eq!(Tr(Lang::En).s("no.such.key"), "no.such.key");
    }
}
