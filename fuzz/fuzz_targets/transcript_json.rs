//! Transcript import (`POST /calls/import-transcript`, `dealdesk calls import`): the JSON is
//! parsed and validated; an accepted transcript then goes through what the pipeline runs on
//! it first (speaker mapping, text, analytics with the shipped trackers), and survives a
//! round trip through its own JSON.
#![no_main]
use std::sync::LazyLock;

use dealdesk::calls::analytics;
use dealdesk::calls::trackers::Trackers;
use dealdesk::calls::transcript::CallTranscript;
use libfuzzer_sys::fuzz_target;

static TRACKERS: LazyLock<Trackers> = LazyLock::new(|| {
    Trackers::parse(include_str!("../../trackers.toml"), "trackers.toml").expect("shipped trackers")
});

fuzz_target!(
    init: {
        // Build jieba's dictionary now (about 10 s instrumented), not inside the first input's
        // 10 s timeout.
        let mut zh = dealdesk::calls::trackers::analyzer_for("zh");
        dealdesk::calls::trackers::words(&mut zh, "我们下周五之前可以给您报价");
        LazyLock::force(&TRACKERS);
    },
    |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut t) = CallTranscript::from_json(text) else {
        return;
    };
    let json = serde_json::to_string(&t).expect("a transcript serializes");
    let again = CallTranscript::from_json(&json).expect("an accepted transcript re-imports");
    assert_eq!(again, t);
    let _ = t.text();
    for s in &t.segments {
        let _ = t.speaker_of(s);
        let _ = t.side_of(s);
    }
    let _ = analytics::analyze(&t, &TRACKERS);
    t.apply_speakers();
    t.validate()
        .expect("mapping speakers keeps a transcript valid");
});
