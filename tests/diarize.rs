//! `dealdesk eval diarization` through the real binary, on one evaluation call (needs
//! `dealdesk models fetch`).

mod common;

use common::{dealdesk, run_ok};

const CALLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");

#[test]
fn eval_diarization_scores_a_call_and_rejects_an_empty_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let calls = tmp.path().join("calls");
    std::fs::create_dir_all(calls.join("zh-02")).unwrap();
    for f in ["call.wav", "turns.tsv"] {
        std::os::unix::fs::symlink(
            std::path::Path::new(CALLS).join("zh-02").join(f),
            calls.join("zh-02").join(f),
        )
        .unwrap();
    }
    let out = run_ok(dealdesk(tmp.path()).args([
        "eval",
        "diarization",
        "--dir",
        calls.to_str().unwrap(),
        "--speakers-known",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["calls"][0]["call"], "zh-02");
    assert_eq!(v["calls"][0]["reference_speakers"], 3);
    assert_eq!(v["calls"][0]["speakers"], 3);
    assert_eq!(v["speaker_count_accuracy"], 1.0);
    assert_eq!(v["collar_ms"], 250);
    let der = v["der"].as_f64().unwrap();
    assert!((0.0..0.5).contains(&der), "DER {der}");
    assert!(v["compute_s_per_audio_min"].as_f64().unwrap() > 0.0);

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = dealdesk(tmp.path())
        .args(["eval", "diarization", "--dir", empty.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("call.wav and turns.tsv"), "{err}");
}
