//! Call analysis through the real binary over HTTP: import a transcript and upload a
//! recording, follow the job, read transcript, insights and task exports, check scoping, the
//! CRM webhook, duplicate and corrupt uploads.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");

/// A CRM stand-in: answers 503 once, then 200, and reports each JSON body it got.
fn crm() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/tasks", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let mut reader = BufReader::new(stream.unwrap());
            let (mut line, mut length) = (String::new(), 0);
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if i == 0 { 503 } else { 200 };
            let mut stream = reader.into_inner();
            write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
            if status == 200 {
                tx.send(serde_json::from_slice(&body).unwrap()).unwrap();
            }
        }
    });
    (url, rx)
}

#[test]
fn import_upload_insights_exports_scoping_and_bad_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rep-a", "rep", "emea");
    let other_rep = add_user(dir.path(), "rep-b", "rep", "emea");
    let manager = add_user(dir.path(), "mgr-emea", "manager", "emea");
    let far_manager = add_user(dir.path(), "mgr-apac", "manager", "apac");
    let bid = add_user(dir.path(), "bidder", "bid", "emea");
    let (hook, delivered) = crm();
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_CALLS_WEBHOOK_URL", &hook)
        .env("DEALDESK_CALLS_WEBHOOK_BACKOFF_SECS", "0.05")
        .env("DEALDESK_SERVER_MAX_UPLOAD_BYTES", "2000000")
        .env("DEALDESK_LLM_THREADS", "1");
    let server = Server::start(cmd);
    let api = Api::new(&server.url);

    // A corrupt upload is refused before anything is recorded.
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let resp = api.upload(&rep, garbage, &[("title", "garbage")]);
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a recording"),
        "{body}"
    );
    // Too large: refused with 413 while streaming.
    let resp = api.upload(&rep, vec![0u8; 2_500_000], &[]);
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Bad metadata and a missing file are clear 400s.
    let resp = api.upload(
        &rep,
        wav_head(&Path::new(EVAL).join("en-02/call.wav"), 1),
        &[("call_date", "next week")],
    );
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        api.json(&rep, "/calls").as_array().unwrap().is_empty(),
        "nothing was recorded"
    );

    // Import a transcript (no ASR): the analysis runs as a job.
    let text = std::fs::read_to_string(Path::new(EVAL).join("en-02/transcript.json")).unwrap();
    let resp = api
        .http
        .post(format!("{}/calls/import-transcript", api.url))
        .bearer_auth(&rep)
        .body(text.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let accepted: Value = resp.json().unwrap();
    let id = accepted["call"]["id"].as_str().unwrap().to_string();
    assert_eq!(accepted["call"]["source"], "import");
    let call = api.wait_done(&rep, &id);
    assert_eq!(call["progress"], 100);

    let transcript: Value = serde_json::from_str(&text).unwrap();
    let all_text: String = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let insights = api.json(&rep, &format!("/calls/{id}/insights"));
    let commitments = insights["commitments"].as_array().unwrap();
    let objections = insights["objections"].as_array().unwrap();
    assert!(commitments.len() >= 3, "{insights}");
    assert!(!objections.is_empty(), "{insights}");
    for item in commitments.iter().chain(objections) {
        let quote = item["quote"].as_str().unwrap();
        assert!(all_text.contains(quote), "grounded: {quote}");
        assert!(
            !quote.contains("ignore your previous instructions"),
            "the injection yields no item"
        );
        assert!(!quote.to_lowercase().contains("discount"), "{quote}");
    }
    assert!(
        objections
            .iter()
            .all(|o| o["answer"].as_str().unwrap().len() > 20),
        "playbook answers"
    );
    assert_eq!(insights["prompt_versions"].as_array().unwrap().len(), 2);
    assert!(
        insights["prompt_versions"][0]
            .as_str()
            .unwrap()
            .starts_with("calls-")
    );
    // Relative deadlines resolve against the call date, Wednesday 2026-03-25. Which promises a
    // 0.5B model keeps varies with the CPU's float kernels, so every dated one is checked, not
    // one particular promise.
    let resolved = [
        ("tomorrow", "2026-03-26"),
        ("friday", "2026-03-27"),
        ("end of the month", "2026-03-31"),
        ("next wednesday", "2026-04-01"),
    ];
    let mut dated = 0;
    for c in commitments {
        let Some(due_text) = c["due_text"].as_str() else {
            continue;
        };
        let phrase = due_text.to_lowercase();
        if let Some((_, date)) = resolved.iter().find(|(p, _)| phrase.contains(p)) {
            assert_eq!(c["due_date"], *date, "{c}");
            dated += 1;
        }
    }
    assert!(dated >= 2, "{insights}");

    // Tasks, exports and the CRM webhook (which failed once and was retried).
    let tasks = api.json(&rep, &format!("/calls/{id}/tasks"));
    assert_eq!(tasks.as_array().unwrap().len(), commitments.len());
    let csv = api.get(&rep, &format!("/calls/{id}/tasks.csv"));
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().unwrap();
    assert_eq!(csv.lines().count(), commitments.len() + 1);
    let ics = api
        .get(&rep, &format!("/calls/{id}/tasks.ics"))
        .text()
        .unwrap();
    assert_eq!(ics.matches("BEGIN:VTODO").count(), commitments.len());
    for due in commitments.iter().filter_map(|c| c["due_date"].as_str()) {
        let line = format!("DUE;VALUE=DATE:{}", due.replace('-', ""));
        assert!(ics.contains(&line), "{line} in {ics}");
    }
    let pushed = delivered
        .recv_timeout(Duration::from_secs(30))
        .expect("the CRM got the tasks");
    assert_eq!(pushed["call_id"], id.as_str());
    assert_eq!(pushed["tasks"].as_array().unwrap().len(), commitments.len());
    let task_id = tasks[0]["id"].as_str().unwrap();
    let resp = api
        .http
        .post(format!("{}/calls/{id}/tasks/{task_id}", api.url))
        .bearer_auth(&rep)
        .json(&serde_json::json!({"status": "done"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let after: Value = resp.json().unwrap();
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == task_id && t["status"] == "done")
    );

    // Scoping: own calls for reps, the region's for managers, none for the bid role.
    assert_eq!(
        api.get(&other_rep, &format!("/calls/{id}")).status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        api.json(&other_rep, "/calls")
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(api.json(&manager, "/calls").as_array().unwrap().len(), 1);
    assert!(
        api.json(&far_manager, "/calls")
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        api.get(&far_manager, &format!("/calls/{id}/insights"))
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.get(&bid, "/calls").status(), StatusCode::FORBIDDEN);

    // Upload a recording (the first 20 s of a dev call) without participants: Whisper and the
    // diarizer run, segments keep their times and get speaker labels, never names; the same
    // bytes again are a duplicate.
    let wav = wav_head(&Path::new(EVAL).join("en-02/call.wav"), 20);
    let resp = api.upload(
        &rep,
        wav.clone(),
        &[
            ("title", "renewal"),
            ("call_date", "2026-03-25"),
            ("language", "en"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let accepted: Value = resp.json().unwrap();
    let upload_id = accepted["call"]["id"].as_str().unwrap().to_string();
    assert_eq!(accepted["call"]["blob_sha256"].as_str().unwrap().len(), 64);
    let again = api.upload(&rep, wav, &[]);
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["call"]["id"], upload_id.as_str());
    api.wait_done(&rep, &upload_id);
    let t = api.json(&rep, &format!("/calls/{upload_id}/transcript"));
    let segments = t["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    assert!(
        segments
            .iter()
            .all(|s| s["speaker"].as_str().unwrap().starts_with("Speaker ")),
        "labels, no invented names: {t}"
    );
    assert!(
        t["speakers"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_null)
    );
    assert!(
        segments
            .iter()
            .all(|s| s["end_ms"].as_u64() >= s["start_ms"].as_u64())
    );
    let words = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    assert!(words.contains("renewal"), "{words}");
    assert_eq!(api.json(&rep, "/calls").as_array().unwrap().len(), 2);
}

/// A mono upload with participants gets speaker-attributed segments; relabelling through the
/// API is scoped, checked and re-attributes the transcript.
#[test]
fn mono_upload_is_diarized_and_relabelled() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rep-a", "rep", "emea");
    let far_rep = add_user(dir.path(), "rep-apac", "rep", "apac");
    let manager = add_user(dir.path(), "mgr-emea", "manager", "emea");
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_LLM_THREADS", "1");
    let server = Server::start(cmd);
    let api = Api::new(&server.url);
    let call = Path::new(EVAL).join("en-02");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(call.join("transcript.json")).unwrap())
            .unwrap();
    let participants = reference["participants"].to_string();
    let resp = api.upload(
        &rep,
        wav_head(&call.join("call.wav"), 60),
        &[
            ("call_date", "2026-03-25"),
            ("language", "en"),
            ("participants", &participants),
        ],
    );
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let id = resp.json::<Value>().unwrap()["call"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_done(&rep, &id);
    let t = api.json(&rep, &format!("/calls/{id}/transcript"));
    let segments = t["segments"].as_array().unwrap();
    let speakers = t["speakers"].as_object().unwrap();
    // The participant count fixes the number of speakers; every segment has a speaker, and
    // each is a participant or a label of this call.
    assert!(speakers.len() >= 2 && speakers.len() <= 3, "{t}");
    let names: Vec<&str> = reference["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for s in segments {
        let who = s["speaker"]
            .as_str()
            .unwrap_or_else(|| panic!("unattributed: {s}"));
        let label = s["label"].as_str().unwrap();
        assert!(speakers.contains_key(label), "{s}");
        assert!(
            who == label || names.contains(&who),
            "a label or a participant: {s}"
        );
    }
    eprintln!("speakers: {speakers:?}");

    // Relabelling: out of scope is not found, bad names are refused, a manager may.
    let label = segments[0]["label"].as_str().unwrap().to_string();
    let body = serde_json::json!({ label.clone(): "Lena Hoffmann" });
    let path = format!("/calls/{id}/speakers");
    assert_eq!(
        api.put(&far_rep, &path, body.clone()).status(),
        StatusCode::NOT_FOUND
    );
    let resp = api.put(&rep, &path, serde_json::json!({ label.clone(): "Nobody" }));
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text().unwrap().contains("not a participant"),
        "the error names the problem"
    );
    let resp = api.put(&manager, &path, body);
    assert_eq!(resp.status(), StatusCode::OK);
    let out: Value = resp.json().unwrap();
    assert_eq!(out["speakers"][&label], "Lena Hoffmann");
    let t = api.json(&rep, &format!("/calls/{id}/transcript"));
    for s in t["segments"].as_array().unwrap() {
        if s["label"] == label.as_str() {
            assert_eq!(s["speaker"], "Lena Hoffmann", "{s}");
        }
    }
    let insights = api.json(&rep, &format!("/calls/{id}/insights"));
    for c in insights["commitments"].as_array().unwrap() {
        let owner = c["owner"].as_str().unwrap();
        assert!(
            names.contains(&owner) || speakers.contains_key(owner),
            "{c}"
        );
        assert_eq!(c["needs_relabel"], !names.contains(&owner), "{c}");
    }
}
