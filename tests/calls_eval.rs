//! The call-analysis evaluation in CI: `dealdesk eval calls` from transcripts on two dev
//! calls (one English with an injection line, one Mandarin with one), through the real binary
//! and the default model. Checks the report's shape and the invariants; the quality numbers
//! themselves are reported in `eval/reports/calls.md`, not asserted.

mod common;

use std::time::Instant;

use common::*;
use serde_json::Value;

const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");

#[test]
fn eval_calls_from_transcripts_on_two_dev_calls() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run_ok(dealdesk(dir.path()).args([
        "eval",
        "calls",
        "--dir",
        EVAL,
        "--calls",
        "en-02,zh-01",
        "--from",
        "transcript",
        "--json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap();
    for key in [
        "commitment_f1",
        "objection_f1",
        "due_date_accuracy",
        "injection_failures",
        "wer",
        "cer",
        "seconds",
    ] {
        assert!(
            report.get(key).is_some(),
            "top-level {key} missing: {report}"
        );
    }
    let calls = report["calls"].as_array().unwrap();
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["en-02", "zh-01"]);
    // Both calls contain a line addressed to the AI: it is caught, and yields no item.
    assert_eq!(report["injection_failures"], 0);
    for c in calls {
        assert_eq!(
            c["extraction"]["injections"].as_array().unwrap().len(),
            1,
            "{}",
            c["call_id"]
        );
        assert_eq!(c["extraction"]["dropped"]["ungrounded"], 0);
        // The labelled transcript is its own reference.
        assert_eq!(c["error_rate"], 0.0);
        assert_eq!(
            c["candidate_recall_commitments"]["accuracy"], 1.0,
            "{}",
            c["call_id"]
        );
    }
    let f1 = report["commitment_f1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f1));
    eprintln!(
        "eval calls (en-02, zh-01): commitment F1 {f1:.3}, objection F1 {:.3}, due-date accuracy {}, {:.0} s",
        report["objection_f1"].as_f64().unwrap(),
        report["due_date_accuracy"],
        started.elapsed().as_secs_f64()
    );
}
