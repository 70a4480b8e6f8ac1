//! Faults against the real binary on a real database: `kill -9` during an upload, a bid
//! import (tantivy commits), a model answer and a migration; a full disk under an upload and
//! under the database; a corrupted index file; a database locked by another process. After each, `dealdesk doctor`
//! reports and repairs, and the test checks that every record that got a 2xx is there and
//! that nothing half-written is visible.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const WAV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/eval/calls/en-02/call.wav"
);
const CORPUS_BIDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids");

/// Nothing half-written is visible and nothing is left to repair: `doctor --dry-run` finds
/// no problem, every upload row has its file with the right sha256, every call's recording
/// is a stored upload, every finished call has its transcript, and no unfinished upload file
/// is left.
fn assert_consistent(cmd: Command, dir: &Path, blobs: &Path) {
    let (ok, text) = doctor(cmd, &["--dry-run"]);
    assert!(ok && text.contains("0 repaired, 0 problem(s)"), "{text}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = open_db(dir).await;
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sha256, size_bytes FROM blobs")
            .fetch_all(db.pool())
            .await
            .unwrap();
        for (sha, size) in rows {
            let path = blobs.join(&sha[..2]).join(&sha);
            let hash = dealdesk::store::blobs::hash_file(&path, &mut |_| {}).unwrap();
            assert_eq!(hash, sha, "{}", path.display());
            assert_eq!(std::fs::metadata(&path).unwrap().len() as i64, size);
        }
        let unbacked: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM calls c WHERE c.blob_sha256 IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = c.blob_sha256)",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(unbacked, 0, "a call without its recording");
        let hollow: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM calls c WHERE status = 'done' \
             AND NOT EXISTS (SELECT 1 FROM transcripts t WHERE t.call_id = c.id)",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(hollow, 0, "a finished call without its transcript");
    });
    let tmp = blobs.join("tmp");
    let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "unfinished upload files in {}", tmp.display());
}

/// `sql`'s one number, read without migrating (another process may be migrating now);
/// `None` while the database cannot answer it yet.
fn try_count(dir: &Path, sql: &str) -> Option<i64> {
    let url = db_url(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = dealdesk::store::Db::connect_unmigrated(&url, 1)
            .await
            .ok()?;
        sqlx::query_scalar(sql).fetch_one(db.pool()).await.ok()
    })
}

fn count(dir: &Path, sql: &str) -> i64 {
    try_count(dir, sql).unwrap_or_else(|| panic!("{sql} failed"))
}

fn blobs_of(dir: &Path) -> PathBuf {
    dir.join("data").join("blobs")
}

/// A 503 `unavailable` answer with a `Retry-After` whose message says `why`.
fn assert_unavailable(resp: reqwest::blocking::Response, why: &str) {
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().unwrap();
    assert_eq!(body["code"], "unavailable");
    assert!(body["message"].as_str().unwrap().contains(why), "{body}");
}

/// The call ids a user sees.
fn call_ids(server: &Server, token: &str) -> Vec<String> {
    let calls: Value = server.get("/calls", token).json().unwrap();
    let list = calls.as_array().unwrap();
    let mut ids: Vec<String> = list
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn kill_during_an_upload_loses_nothing_accepted_and_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let token = add_user(dir.path(), "rita", "rep", "emea");
    let start = || {
        let mut cmd = dealdesk(dir.path());
        cmd.env("DEALDESK_JOBS_WORKERS", "0");
        Server::start(cmd)
    };
    let server = start();
    let small = wav_head(Path::new(WAV), 5);
    let resp = upload_call(&server.url, &token, small.clone(), &[("title", "accepted")]);
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().unwrap();
    let accepted_id = accepted["call"]["id"].as_str().unwrap().to_string();

    // A slow client: headers and half of a 60 s recording, then nothing more.
    let big = wav_head(Path::new(WAV), 60);
    let boundary = "slow-client-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.wav\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /calls HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{head}",
        head.len() + big.len() + tail.len()
    )
    .unwrap();
    stream.write_all(&big[..big.len() / 2]).unwrap();
    stream.flush().unwrap();
    let tmp = blobs_of(dir.path()).join("tmp");
    poll(Duration::from_secs(30), || {
        let partial = std::fs::read_dir(&tmp)
            .ok()?
            .filter_map(|e| e.ok()?.metadata().ok())
            .any(|m| m.len() > 0);
        partial.then_some(())
    });
    server.kill_hard();
    drop(stream);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "the cut-off upload is on disk"
    );
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM calls"), 1);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM blobs"), 1);

    let (ok, text) = doctor(dealdesk(dir.path()), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("REPAIRED  uploads") && text.contains("1 unfinished upload file(s)"),
        "{text}"
    );
    assert_consistent(dealdesk(dir.path()), dir.path(), &blobs_of(dir.path()));

    let server = start();
    assert_eq!(call_ids(&server, &token), vec![accepted_id.clone()]);
    let recording = server.get(&format!("/calls/{accepted_id}/recording"), &token);
    assert_eq!(recording.status(), 200);
    assert_eq!(recording.bytes().unwrap().as_ref(), small.as_slice());
}

#[test]
fn kill_during_a_bid_import_leaves_the_index_repairable_and_batches_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bids.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for bid in dealdesk::bids::synthetic::library(7, 30_000) {
            serde_json::to_writer(&mut out, &bid).unwrap();
            out.write_all(b"\n").unwrap();
        }
    }
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_BIDS_DENSE", "false")
        .args(["bids", "import"])
        .arg(&file)
        .stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Wait until a few batches are in, then kill wherever the import is: most of its time is
    // spent adding documents to tantivy and committing them.
    poll(Duration::from_secs(300), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished first"
        );
        let n = try_count(dir.path(), "SELECT COUNT(*) FROM bids").unwrap_or(0);
        (n >= 3000).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = count(dir.path(), "SELECT COUNT(*) FROM bids");
    assert_eq!(stored % 1000, 0, "whole batches only: {stored}");

    let (ok, text) = doctor(dealdesk(dir.path()), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "the bid index matches the database ({stored} entries)"
        )) || text.contains("REPAIRED  indexes"),
        "{text}"
    );
    assert_consistent(dealdesk(dir.path()), dir.path(), &blobs_of(dir.path()));
    let (_, text) = doctor(dealdesk(dir.path()), &["--dry-run"]);
    assert!(
        text.contains(&format!(
            "the bid index matches the database ({stored} entries)"
        )),
        "{text}"
    );
}

#[test]
fn kill_during_a_model_answer_resumes_the_job_and_shows_no_partial_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let token = add_user(dir.path(), "rob", "rep", "emea");
    let start = || {
        let mut cmd = dealdesk(dir.path());
        cmd.env("DEALDESK_JOBS_LEASE_SECS", "3")
            .env("DEALDESK_JOBS_POLL_MS", "100")
            .env("DEALDESK_LLM_THREADS", "1");
        Server::start(cmd)
    };
    let server = start();
    let transcript = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/calls/aldermoor-contract-en.json"
    ))
    .unwrap();
    let resp = client()
        .post(format!("{}/calls/import-transcript", server.url))
        .bearer_auth(&token)
        .body(transcript)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let call: Value = resp.json().unwrap();
    let call_id = call["call"]["id"].as_str().unwrap().to_string();
    let job_id = call["call"]["job_id"].as_str().unwrap().to_string();
    // Kill once the LLM has answered some of the call's questions but not all.
    let job = poll(Duration::from_secs(600), || {
        let j: Value = server
            .get(&format!("/jobs/{job_id}"), &token)
            .json()
            .unwrap();
        assert_ne!(j["state"], "done", "the analysis finished before the kill");
        (j["state"] == "running" && j["progress"].as_i64().unwrap() > 0).then_some(j)
    });
    server.kill_hard();
    eprintln!("killed at progress {}", job["progress"]);
    let insights = format!("SELECT COUNT(*) FROM insights WHERE call_id = '{call_id}'");
    assert_eq!(count(dir.path(), &insights), 0, "no partial analysis");
    std::thread::sleep(Duration::from_millis(3500)); // the lease runs out

    let (ok, text) = doctor(dealdesk(dir.path()), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("REPAIRED  jobs") && text.contains(&format!("call.analyze {job_id}")),
        "{text}"
    );
    let server = start();
    let j = poll(Duration::from_secs(900), || {
        let j: Value = server
            .get(&format!("/jobs/{job_id}"), &token)
            .json()
            .unwrap();
        assert_ne!(j["state"], "failed", "{j}");
        (j["state"] == "done").then_some(j)
    });
    assert_eq!(j["attempts"], 2, "resumed once after the kill: {j}");
    let done: Value = server
        .get(&format!("/calls/{call_id}"), &token)
        .json()
        .unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert!(count(dir.path(), &insights) > 0, "{done}");
    drop(server);
    assert_consistent(dealdesk(dir.path()), dir.path(), &blobs_of(dir.path()));
}

#[test]
fn kill_during_migrations_leaves_a_database_the_next_start_completes() {
    let known = dealdesk::ops::tables::known_migrations().len();
    // How long a first start that migrates takes, to spread the kills over it.
    let probe = tempfile::tempdir().unwrap();
    let started = Instant::now();
    run_ok(dealdesk(probe.path()).args(["users", "list"]));
    let full = started.elapsed();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Kills a first start `at` after it began; how many migrations it had applied.
    let kill_at = |at: Duration| {
        let dir = tempfile::tempdir().unwrap();
        let mut child = dealdesk(dir.path())
            .args(["users", "list"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        child.kill().unwrap();
        child.wait().unwrap();
        let url = db_url(dir.path());
        let applied = rt.block_on(async {
            let db = dealdesk::store::Db::connect_unmigrated(&url, 1)
                .await
                .unwrap();
            let mut conn = db.pool().acquire().await.unwrap();
            dealdesk::ops::tables::applied_migrations(&mut conn, db.backend())
                .await
                .unwrap()
                .len()
        });
        let (ok, text) = doctor(dealdesk(dir.path()), &[]);
        assert!(ok, "{text}");
        if applied < known {
            assert!(text.contains("REPAIRED  migrations"), "{text}");
        }
        assert_consistent(dealdesk(dir.path()), dir.path(), &blobs_of(dir.path()));
        // And the database works: a user can be added.
        add_user(dir.path(), "after", "admin", "global");
        applied
    };
    // 24 kills spread over a whole start; then, while none landed between two migrations
    // (they take a small part of a start, and the machine's load moves them), 12 more over
    // the span where the count went from none to all.
    let between = |kills: &[(Duration, usize)]| kills.iter().any(|&(_, n)| n > 0 && n < known);
    let mut kills: Vec<(Duration, usize)> = Vec::new();
    let (mut from, mut to, mut count) = (Duration::ZERO, full, 24);
    for _ in 0..3 {
        for i in 0..count {
            let at = from + (to - from) * i / count;
            kills.push((at, kill_at(at)));
        }
        if between(&kills) {
            break;
        }
        to = kills
            .iter()
            .filter(|k| k.1 == known)
            .map(|k| k.0)
            .min()
            .unwrap_or(to * 2);
        from = kills
            .iter()
            .filter(|k| k.1 == 0 && k.0 < to)
            .map(|k| k.0)
            .max()
            .unwrap_or(Duration::ZERO);
        count = 12;
    }
    let applied_after_kill: Vec<usize> = kills.iter().map(|k| k.1).collect();
    eprintln!(
        "migrations applied when killed (of {known}), {} kills, the first 24 over {full:?}: \
         {applied_after_kill:?}",
        kills.len()
    );
    assert!(
        between(&kills),
        "no kill landed between the first and the last migration: {kills:?}"
    );
}

/// A tmpfs of `size` mounted at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs ({}); run as root to test a full disk",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_the_upload_with_503_and_keeps_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("small-disk");
    let Some(_mount) = Tmpfs::mount(&blobs, "2m") else {
        return;
    };
    // Most of the small disk is taken already.
    std::fs::write(blobs.join("filler"), vec![0u8; 1_600_000]).unwrap();
    let token = add_user(dir.path(), "fay", "rep", "emea");
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_DATA_BLOBS_DIR", &blobs)
        .env("DEALDESK_JOBS_WORKERS", "0");
    let server = Server::start(cmd);

    let resp = upload_call(&server.url, &token, wav_head(Path::new(WAV), 20), &[]);
    assert_unavailable(resp, "disk is full");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM calls"), 0);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM blobs"), 0);
    assert_eq!(std::fs::read_dir(blobs.join("tmp")).unwrap().count(), 0);

    // What fits is still accepted.
    let small = wav_head(Path::new(WAV), 3);
    let resp = upload_call(&server.url, &token, small, &[("title", "fits")]);
    assert_eq!(resp.status(), 202);
    assert_eq!(call_ids(&server, &token).len(), 1);
    drop(server);
    std::fs::remove_file(blobs.join("filler")).unwrap();
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_DATA_BLOBS_DIR", &blobs);
    assert_consistent(cmd, dir.path(), &blobs);
}

/// Takes every byte left on the file system of `path` with the file `path`.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for size in [64 * 1024, 512, 1] {
        let block = vec![0u8; size];
        while file.write_all(&block).is_ok() {}
    }
}

#[test]
fn a_full_database_disk_refuses_writes_with_503_and_loses_no_accepted_one() {
    let dir = tempfile::tempdir().unwrap();
    if !db_url(dir.path()).starts_with("sqlite://") {
        eprintln!("SKIPPED on PostgreSQL: the database's disk is the database server's");
        return;
    }
    let data = dir.path().join("data");
    let Some(_mount) = Tmpfs::mount(&data, "16m") else {
        return;
    };
    let token = add_user(dir.path(), "dan", "rep", "emea");
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_JOBS_WORKERS", "0");
    let server = Server::start(cmd);
    let deal = json!({"list_price": 1000.0, "region": "emea", "segment": "smb"});
    assert_eq!(server.post("/deals", &token, deal.clone()).status(), 201);

    fill(&data.join("filler"));
    // Writes that still fit in pages SQLite already has succeed; the first that needs a new
    // one is refused.
    let mut accepted = 1;
    let refused = loop {
        let resp = server.post("/deals", &token, deal.clone());
        if resp.status() != 201 {
            break resp;
        }
        accepted += 1;
        assert!(accepted < 5000, "the full disk never refused a write");
    };
    eprintln!("{accepted} deals accepted before the disk refused one");
    assert_unavailable(refused, "disk is full");
    assert_eq!(server.get("/me", &token).status(), 200, "reads go on");

    std::fs::remove_file(data.join("filler")).unwrap();
    let resp = server.post("/deals", &token, deal);
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    drop(server);
    assert_eq!(
        count(dir.path(), "SELECT COUNT(*) FROM deals"),
        accepted + 1,
        "every accepted deal, nothing of the refused one"
    );
    assert_consistent(dealdesk(dir.path()), dir.path(), &blobs_of(dir.path()));
}

/// Overwrites the middle of the largest file of the index in `dir`.
fn corrupt_index(dir: &Path) -> PathBuf {
    let victim = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x != "json" && x != "lock"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let (mid, len) = (bytes.len() / 2, bytes.len());
    for b in &mut bytes[mid.saturating_sub(64)..(mid + 64).min(len)] {
        *b = !*b;
    }
    std::fs::write(&victim, bytes).unwrap();
    victim
}

#[test]
fn a_corrupted_index_file_is_found_and_rebuilt_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let cli = || {
        let mut cmd = dealdesk(dir.path());
        cmd.env("DEALDESK_BIDS_DENSE", "false");
        cmd
    };
    run_ok(cli().args(["bids", "import", CORPUS_BIDS]));
    let index = dir.path().join("data/index/bids");

    let victim = corrupt_index(&index);
    let (ok, text) = doctor(cli(), &["--dry-run"]);
    assert!(!ok, "{text}");
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        text.contains("PROBLEM   indexes") && text.contains(&name),
        "{text}"
    );
    let (ok, text) = doctor(cli(), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("the bid index was damaged") && text.contains("rebuilt"),
        "{text}"
    );
    assert_consistent(cli(), dir.path(), &blobs_of(dir.path()));

    // Corrupted again, and the server simply started: it rebuilds the index on open.
    corrupt_index(&index);
    let token = add_user(dir.path(), "bo", "bid", "emea");
    let server = Server::start(cli());
    let tender = json!({"title": "hospital laboratory information system",
        "requirements": ["HL7 interfaces to the hospital laboratory"]});
    let resp = server.post(
        "/bids/search",
        &token,
        json!({"tender": tender, "filters": {"include_lost": true}}),
    );
    assert_eq!(resp.status(), 200);
    let found: Value = resp.json().unwrap();
    assert!(!found["hits"].as_array().unwrap().is_empty(), "{found}");
    drop(server);
    let (_, text) = doctor(cli(), &["--dry-run"]);
    assert!(
        text.contains("the bid index matches the database (14 entries)"),
        "{text}"
    );
}

/// A write lock another process holds on the test's database: SQLite's file lock (a python3
/// process in `BEGIN EXCLUSIVE`), or on PostgreSQL a session's `LOCK TABLE deals IN
/// EXCLUSIVE MODE` (reads go on, writes wait).
enum WriteLock {
    Sqlite(std::process::Child),
    Postgres(
        tokio::runtime::Runtime,
        sqlx::Transaction<'static, sqlx::Any>,
    ),
}

impl WriteLock {
    fn take(dir: &Path) -> WriteLock {
        let url = db_url(dir);
        if let Some(db_file) = url.strip_prefix("sqlite://") {
            let mut holder = Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3,sys\n\
                     c=sqlite3.connect(sys.argv[1],isolation_level=None)\n\
                     c.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\nsys.stdin.read()",
                ])
                .arg(db_file)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs");
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "locked");
            return WriteLock::Sqlite(holder);
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tx = rt.block_on(async {
            let db = dealdesk::store::Db::connect_unmigrated(&url, 1)
                .await
                .unwrap();
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query("LOCK TABLE deals IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx
        });
        WriteLock::Postgres(rt, tx)
    }

    fn release(self) {
        match self {
            WriteLock::Sqlite(mut holder) => {
                drop(holder.stdin.take());
                holder.wait().unwrap();
            }
            WriteLock::Postgres(rt, tx) => rt.block_on(tx.rollback()).unwrap(),
        }
    }
}

#[test]
fn a_locked_database_answers_503_promptly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let token = add_user(dir.path(), "lea", "rep", "emea");
    let server = Server::start(dealdesk(dir.path()));
    let deal = json!({"list_price": 1000.0, "region": "emea", "segment": "smb"});
    assert_eq!(server.post("/deals", &token, deal.clone()).status(), 201);

    // Another process takes the write lock and keeps it.
    let lock = WriteLock::take(dir.path());

    let started = Instant::now();
    let resp = server.post("/deals", &token, deal.clone());
    let waited = started.elapsed();
    eprintln!("a write under the lock was answered in {waited:?}");
    assert_eq!(resp.headers()["retry-after"], "5");
    assert_unavailable(resp, "database is busy");
    assert!(waited < Duration::from_secs(25), "{waited:?}");
    // Reads still work beside the lock (WAL on SQLite; EXCLUSIVE mode lets reads through).
    assert_eq!(server.get("/me", &token).status(), 200);
    let (ok, text) = doctor(dealdesk(dir.path()), &["--dry-run"]);
    assert!(!ok && text.contains("holds a write lock"), "{text}");

    lock.release();
    assert_eq!(server.post("/deals", &token, deal).status(), 201);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM deals"), 2);
    drop(server);
    assert_consistent(dealdesk(dir.path()), dir.path(), &blobs_of(dir.path()));
}
