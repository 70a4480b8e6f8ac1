//! Inference speed on the real models from the cache (`dealdesk models fetch` first):
//! Whisper on the JFK clip (real-time factor = time / 11 s), and the small LLM's prefill of a
//! 512-token prompt and its decoding of 32 tokens. Threads come from `[asr]`/`[llm]` defaults.
//!
//! `cargo bench --bench inference`; the side-by-side comparison with whisper.cpp and llama.cpp
//! is `eval/bench-engines` (results in `eval/reports/engines.md`).

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use dealdesk::asr::{self, Channels, Language, TranscribeRequest};
use dealdesk::config::Config;
use dealdesk::llm::{GenerateParams, Llm, LoadOptions};
use dealdesk::models::{Manifest, model_path};

fn inference(c: &mut Criterion) {
    let config = Config::default();
    dealdesk::llm::set_threads(&config);
    let manifest = Manifest::builtin();

    let transcriber = asr::load_configured(&config, &manifest)
        .expect("whisper model: run `dealdesk models fetch`");
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/audio/en/jfk.wav");
    let audio = asr::decode_file(&clip, Channels::Mix).expect("the JFK clip beside the checkout");
    let request = TranscribeRequest {
        language: Language::En,
        ..Default::default()
    };
    let mut group = c.benchmark_group("asr");
    group.sample_size(10);
    group.bench_function("whisper_base_jfk_11s", |b| {
        b.iter(|| transcriber.transcribe(&audio, &request, &|_| {}).unwrap())
    });
    group.finish();

    let gguf = model_path(&config, manifest.get("smollm2-135m-instruct").unwrap());
    let mut llm = Llm::load(&LoadOptions::new(gguf)).expect("run `dealdesk models fetch`");
    let unit = llm
        .tokenizer()
        .encode("The customer wants 250 sensors delivered to Shenzhen within six weeks. ")
        .unwrap();
    let prompt: Vec<u32> = unit.iter().cycle().take(512).copied().collect();
    let mut group = c.benchmark_group("llm");
    group.sample_size(10);
    let mut n = 0u32;
    group.bench_function("smollm2_prefill_512", |b| {
        b.iter(|| {
            // A different first token each time, so no cached prefix is reused.
            n += 1;
            let mut p = prompt.clone();
            p[0] = unit[n as usize % unit.len()];
            let params = GenerateParams {
                max_tokens: 1,
                ..Default::default()
            };
            llm.generate_raw(&p, &params, &mut |_| {}).unwrap()
        })
    });
    group.bench_function("smollm2_decode_32", |b| {
        b.iter(|| {
            let params = GenerateParams {
                max_tokens: 32,
                ..Default::default()
            };
            llm.generate_raw(&unit, &params, &mut |_| {}).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, inference);
criterion_main!(benches);
