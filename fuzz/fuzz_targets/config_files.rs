//! The operator-edited configuration files. Input: one selector byte, then the file's text:
//! 0 `dealdesk.toml` (through `Config::load_from`, with `DEALDESK_*` variables given as
//! `NAME=value` lines after a line `---env---`), 1 `rules.toml` (review routing, then a route
//! for a few facts), 2 `quote_rules.toml` (guardrails), 3 `trackers.toml`.
#![no_main]
use std::path::PathBuf;
use std::sync::LazyLock;

use dealdesk::calls::trackers::Trackers;
use dealdesk::config::Config;
use dealdesk::quotes::rules::Rules as QuoteRules;
use dealdesk::review::Kind;
use dealdesk::review::rules::{Facts, Rules as ReviewRules};
use libfuzzer_sys::fuzz_target;

/// `Config::load_from` reads a file: one per fuzzing process, rewritten for each input.
static CONFIG_FILE: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("dealdesk-fuzz-config-{}.toml", std::process::id()))
});

fn config(text: &str) {
    let (toml, env) = text.split_once("\n---env---\n").unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| k != "DEALDESK_CONFIG")
        .collect();
    std::fs::write(&*CONFIG_FILE, toml).expect("temp dir writable");
    if let Ok(config) = Config::load_from(Some(&CONFIG_FILE), &env) {
        let shown = config.to_toml();
        // `dealdesk config show` prints a file that loads to the same configuration.
        std::fs::write(&*CONFIG_FILE, &shown).expect("temp dir writable");
        let again = Config::load_from(Some(&CONFIG_FILE), &[]).expect("shown config loads");
        assert_eq!(again.to_toml(), shown);
    }
}

fn review_rules(text: &str) {
    let Ok(rules) = ReviewRules::parse(text, "rules.toml") else {
        return;
    };
    for kind in [
        Kind::Commitment,
        Kind::ObjectionAnswer,
        Kind::TenderDraft,
        Kind::Quote,
    ] {
        for (discount, value, confidence) in [(None, None, None), (Some(0.2), Some(1e6), Some(0.5))]
        {
            let _ = rules.route(&Facts {
                kind,
                region: "emea",
                discount,
                deal_value: value,
                confidence,
            });
        }
    }
}

fn quote_rules(text: &str) {
    if let Ok(rules) = QuoteRules::parse(text, "quote_rules.toml") {
        let g = rules.guardrail(Some("enterprise"));
        assert!((0.0..1.0).contains(&g.max_discount), "{g:?}");
        let _ = rules.guardrail(None);
    }
}

fn trackers(text: &str) {
    if let Ok(t) = Trackers::parse(text, "trackers.toml") {
        let _ = t.fire_on("We can match the competitor's price by Friday.", "en");
        let _ = t.fire_on("我们下周五之前可以给您报价。", "zh");
    }
}

fuzz_target!(
    init: {
        // Build jieba's dictionary now (about 10 s instrumented), not inside the first input's
        // 10 s timeout.
        trackers(include_str!("../../trackers.toml"));
    },
    |data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 4 {
        0 => config(text),
        1 => review_rules(text),
        2 => quote_rules(text),
        _ => trackers(text),
    }
});
