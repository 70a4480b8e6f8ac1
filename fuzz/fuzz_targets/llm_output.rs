//! The checks on the LLM's structured output: `llm::parse_and_validate` against the schemas the
//! product asks with (the commitment and objection questions of call extraction, the bid
//! draft), then what consumes a validated value (`calls::extract::enum_answer`,
//! `bids::draft::check`). Input: one selector byte (which schema), then the model's text.
#![no_main]
use std::sync::LazyLock;

use dealdesk::bids::draft::{self, Bullet, DraftSection};
use dealdesk::bids::record::Lang;
use dealdesk::calls::extract::{COMMITMENT_LABELS, enum_answer, enum_schema, objection_choices};
use dealdesk::llm::{compile_validator, parse_and_validate};
use libfuzzer_sys::fuzz_target;

struct Question {
    key: &'static str,
    choices: Vec<&'static str>,
    validator: jsonschema::Validator,
}

fn question(key: &'static str, choices: Vec<&'static str>) -> Question {
    let validator = compile_validator(&enum_schema(key, &choices)).expect("question schema");
    Question {
        key,
        choices,
        validator,
    }
}

static COMMITMENT: LazyLock<Question> =
    LazyLock::new(|| question("label", COMMITMENT_LABELS.to_vec()));
static OBJECTION: LazyLock<Question> = LazyLock::new(|| question("category", objection_choices()));

fn sections() -> Vec<DraftSection> {
    let bullet = |bid: &str, text: &str| Bullet {
        text: text.into(),
        citation: format!("[{bid} §delivery]"),
        bid_id: bid.into(),
        section: "delivery".into(),
    };
    let section = |req: &str, bullets: Vec<Bullet>| DraftSection {
        requirement: req.into(),
        maps_to: "delivery".into(),
        bullets,
        paragraph: Vec::new(),
        dropped: Vec::new(),
        unsourced: Vec::new(),
        uncited: Vec::new(),
    };
    vec![
        section(
            "Bedside monitors for 16 ICU beds",
            vec![bullet(
                "B-1",
                "We delivered 16 bedside monitors with central alarms in 6 weeks.",
            )],
        ),
        section(
            "中央监护站",
            vec![bullet("B-2", "我们在四周内完成了中央监护站的安装和培训。")],
        ),
    ]
}

static DRAFT: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| compile_validator(&draft::schema(&sections())).expect("draft schema"));

fn answer(q: &Question, text: &str) {
    if let Ok(value) = parse_and_validate(text, &q.validator) {
        let a =
            enum_answer(&value, text, q.key, &q.choices).expect("a validated answer is a choice");
        assert!(q.choices.contains(&a.as_str()));
    }
}

fuzz_target!(
    init: {
        // Build jieba's dictionary now (about 10 s instrumented), not inside the first input's
        // 10 s timeout.
        let mut zh = dealdesk::calls::trackers::analyzer_for("zh");
        dealdesk::calls::trackers::words(&mut zh, "我们在四周内完成了中央监护站的安装");
        LazyLock::force(&DRAFT);
    },
    |data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 3 {
        0 => answer(&COMMITMENT, text),
        1 => answer(&OBJECTION, text),
        _ => {
            if let Ok(value) = parse_and_validate(text, &DRAFT) {
                let mut sections = sections();
                let langs = |bid: &str| (bid == "B-2").then_some(Lang::Zh);
                draft::check(&mut sections, &value, Lang::En, &langs);
            }
        }
    }
});
