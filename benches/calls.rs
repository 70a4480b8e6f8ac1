//! End-to-end call analysis time: Whisper on a dev call's recording, then extraction with the
//! configured LLM (diarized speakers mapped to the participants on evidence, as for an upload
//! and in `dealdesk eval calls --from audio`). Prints seconds per call, the real-time factor and the extrapolation to a
//! 30-minute call. One run per call: each takes minutes, so no statistics harness.
//!
//! `cargo bench --bench calls` (models from `dealdesk models fetch`); `DEALDESK_BENCH_CALLS`
//! picks the calls (default `en-01,zh-01`). Results are in `eval/reports/calls.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use dealdesk::calls::eval::{Source, evaluate_call};
use dealdesk::calls::extract_options;
use dealdesk::config::Config;
use dealdesk::engines::Engines;
use dealdesk::models::Manifest;

fn main() {
    let config = Config::load(None).expect("configuration");
    dealdesk::llm::set_threads(&config);
    let engines = Engines::new(
        Arc::new(config.clone()),
        Arc::new(Manifest::load(&config).expect("manifest")),
    );
    let started = Instant::now();
    engines
        .transcriber()
        .expect("whisper model: run `dealdesk models fetch`");
    engines
        .diarizer()
        .expect("speaker model: run `dealdesk models fetch`");
    let llm = engines.llm().expect("LLM: run `dealdesk models fetch`");
    println!("models loaded in {:.1} s", started.elapsed().as_secs_f64());
    let calls = std::env::var("DEALDESK_BENCH_CALLS").unwrap_or_else(|_| "en-01,zh-01".into());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/calls");
    let (mut audio_s, mut total_s) = (0.0, 0.0);
    for call in calls.split(',') {
        let folder = dir.join(call);
        let samples = std::fs::metadata(folder.join("call.wav"))
            .expect("call.wav")
            .len()
            .saturating_sub(44)
            / 2;
        let duration = samples as f64 / 16_000.0;
        let t = Instant::now();
        let score = evaluate_call(
            &folder,
            &Source::Audio(&engines),
            &llm,
            &extract_options(&config),
        )
        .expect("analysis");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{call}: {duration:.0} s of audio analyzed in {secs:.1} s (RTF {:.2}; {} LLM questions in {:.1} s)",
            secs / duration,
            score.extraction.stats.llm_questions,
            score.extraction.stats.llm_seconds
        );
        audio_s += duration;
        total_s += secs;
    }
    let rtf = total_s / audio_s;
    println!(
        "overall RTF {rtf:.2}: a 30-minute call ≈ {:.0} s end to end",
        rtf * 1800.0
    );
}
