//! The database blob store (`[data] blobs = "db"`) through the real binary: a recording is
//! uploaded, kept in the database (no file under the data directory), transcribed and
//! analysed from a temporary copy, served back with byte ranges, found again as a duplicate,
//! verified; a file that is no recording leaves nothing behind. Recordings stored before an
//! operator switches `[data] blobs` are moved by `dealdesk doctor`.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const JFK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/eval/audio/en/jfk.wav"
);

/// Rows of `table` in the test's database.
fn count(dir: &std::path::Path, table: &str) -> i64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = open_db(dir).await;
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(db.pool())
            .await
            .unwrap()
    })
}

/// A finished job's result, polled through the API.
fn job_result(server: &Server, token: &str, id: &str) -> Value {
    poll(Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_millis(200));
        let job: Value = server.get(&format!("/jobs/{id}"), token).json().unwrap();
        assert_ne!(job["state"], "failed", "{job}");
        (job["state"] == "done").then(|| job["result"].clone())
    })
}

#[test]
fn a_recording_kept_in_the_database_is_analysed_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rep", "rep", "emea");
    let admin = add_user(dir.path(), "ops", "admin", "global");
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_DATA_BLOBS", "db")
        .env("DEALDESK_LLM_THREADS", "1");
    let server = Server::start(cmd);
    let wav = std::fs::read(JFK).unwrap();

    let resp = upload_call(
        &server.url,
        &rep,
        wav.clone(),
        &[("title", "jfk"), ("language", "en")],
    );
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let accepted: Value = resp.json().unwrap();
    let id = accepted["call"]["id"].as_str().unwrap().to_string();

    // The bytes are rows, in 1 MiB chunks; nothing is written under the data directory's
    // blob folder, and the upload's spool file is gone.
    assert_eq!(
        count(dir.path(), "blob_chunks"),
        wav.len().div_ceil(1024 * 1024) as i64
    );
    assert!(!dir.path().join("data/blobs").exists());

    let call = poll(Duration::from_secs(600), || {
        std::thread::sleep(Duration::from_millis(500));
        let call: Value = server.get(&format!("/calls/{id}"), &rep).json().unwrap();
        assert_ne!(call["status"], "failed", "{call}");
        (call["status"] == "done").then_some(call)
    });
    assert_eq!(call["source"], "upload");
    let transcript: Value = server
        .get(&format!("/calls/{id}/transcript"), &rep)
        .json()
        .unwrap();
    // The words of all segments, lower case, without punctuation.
    let text: String = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
        .replace(|c: char| !c.is_alphanumeric(), " ");
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("ask not what your country can do for you"),
        "{words}"
    );

    // Served back from a copy: the whole file, and a byte range.
    let whole = server.get(&format!("/calls/{id}/recording"), &rep);
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "audio/wav");
    assert_eq!(whole.bytes().unwrap().as_ref(), &wav[..]);
    let part = client()
        .get(format!("{}/calls/{id}/recording", server.url))
        .bearer_auth(&rep)
        .header("range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().unwrap().as_ref(), &wav[100..200]);

    // The same bytes again are the same call.
    let again = upload_call(&server.url, &rep, wav.clone(), &[]);
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["call"]["id"], id.as_str());

    // Something that is no recording is refused and removed from the database again.
    let text_file = b"not a recording at all, just words ".repeat(2000);
    let resp = upload_call(&server.url, &rep, text_file, &[("title", "notes")]);
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(dir.path(), "blobs"), 1);
    assert_eq!(
        count(dir.path(), "blob_chunks"),
        wav.len().div_ceil(1024 * 1024) as i64
    );

    // Verification re-hashes the chunks.
    let job: Value = server
        .post("/admin/blobs/verify", &admin, serde_json::json!({}))
        .json()
        .unwrap();
    let report = job_result(&server, &admin, job["id"].as_str().unwrap());
    assert_eq!(report["checked"], 1, "{report}");
    assert_eq!(report["ok"], 1, "{report}");

    // Every temporary copy (sniffing, transcription, serving) was removed.
    let spool = dir.path().join("data/tmp");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn doctor_moves_recordings_into_the_store_data_blobs_names_now() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rep", "rep", "emea");
    let wav = std::fs::read(JFK).unwrap();
    let with_store = |blobs: &str| {
        let mut cmd = dealdesk(dir.path());
        cmd.env("DEALDESK_DATA_BLOBS", blobs)
            .env("DEALDESK_JOBS_WORKERS", "0");
        cmd
    };
    let server = Server::start(with_store("dir"));
    let resp = upload_call(&server.url, &rep, wav.clone(), &[("title", "jfk")]);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let accepted: Value = resp.json().unwrap();
    let id = accepted["call"]["id"].as_str().unwrap().to_string();
    drop(server);
    let sha: String = tokio::runtime::Runtime::new().unwrap().block_on(async {
        sqlx::query_scalar("SELECT sha256 FROM blobs")
            .fetch_one(open_db(dir.path()).await.pool())
            .await
            .unwrap()
    });
    let file = dir.path().join("data/blobs").join(&sha[..2]).join(&sha);
    assert!(file.exists());
    // What a crash of the database store leaves: a spool file nothing will finish.
    std::fs::create_dir_all(dir.path().join("data/tmp")).unwrap();
    std::fs::write(dir.path().join("data/tmp/left-by-a-crash"), b"partial").unwrap();

    // The operator switches to the database store: the recording is still in the directory.
    let (ok, text) = doctor(with_store("db"), &["--dry-run"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("1 upload(s) are in the blob directory")
            && text.contains("not in the database, which [data] blobs names")
            && text.contains("1 unfinished upload file(s)"),
        "{text}"
    );
    assert!(!text.contains("missing upload"), "reported once: {text}");
    let (ok, text) = doctor(with_store("db"), &[]);
    assert!(ok && text.contains("moved them"), "{text}");
    let (ok, text) = doctor(with_store("db"), &["--dry-run"]);
    assert!(ok && text.contains("0 repaired, 0 problem(s)"), "{text}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(count(dir.path(), "blob_chunks") > 0);
    assert!(!file.exists());

    // The database store serves the same bytes.
    let server = Server::start(with_store("db"));
    let served = server.get(&format!("/calls/{id}/recording"), &rep);
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().unwrap().as_ref(), &wav[..]);
}
