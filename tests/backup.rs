//! `dealdesk backup` of a running server and `dealdesk restore` into a new data directory:
//! every table and every upload come back identical, the restored server serves them, and a
//! damaged backup or a non-empty target is refused without changing anything.

mod common;

use std::path::Path;

use common::*;
use dealdesk::ops::tables;
use serde_json::{Value, json};

const WAV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/eval/calls/en-02/call.wav"
);

/// Every table of the database in `dir` as exported rows, with each table's row count read
/// by a plain `COUNT(*)`.
fn dump(dir: &Path) -> Vec<(String, i64, Vec<u8>)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = open_db(dir).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let all = tables::catalog(&mut conn, db.backend()).await.unwrap();
        let counts = tables::counts(&mut conn, &all).await.unwrap();
        let mut out = Vec::new();
        for (t, (name, n)) in all.iter().zip(counts) {
            let mut rows = Vec::new();
            let exported = tables::export(&mut conn, t, &mut rows).await.unwrap();
            assert_eq!(exported as i64, n, "{name}");
            out.push((name, n, rows));
        }
        out
    })
}

/// Every file under the blob directory of `dir` (uploads), by relative path.
fn blob_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let root = dir.join("data/blobs");
    let mut out = Vec::new();
    for shard in std::fs::read_dir(&root).unwrap() {
        let shard = shard.unwrap().path();
        if shard.file_name().unwrap() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(&shard).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(&root).unwrap().display().to_string();
            out.push((rel, std::fs::read(&f).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_backup_of_a_running_server_restores_every_table_and_upload() {
    let src = tempfile::tempdir().unwrap();
    // The demo data: users, bids, 480 deals, a fitted quote model, decided recommendations
    // with their audit trail, an imported call.
    run_ok(
        dealdesk(src.path())
            .env("DEALDESK_BIDS_DENSE", "false")
            .args(["demo", "--calls", "1", "--corpus"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus")),
    );
    let rep = add_user(src.path(), "rhea", "rep", "emea");
    let bid = add_user(src.path(), "bert", "bid", "emea");
    let mut cmd = dealdesk(src.path());
    cmd.env("DEALDESK_JOBS_WORKERS", "0")
        .env("DEALDESK_BIDS_DENSE", "false");
    let server = Server::start(cmd);
    // Records of many kinds: two uploads (blobs), an imported transcript, deals, bids.
    let first = wav_head(Path::new(WAV), 4);
    let second = wav_head(Path::new(WAV), 7);
    let mut calls = Vec::new();
    for (wav, title) in [(&first, "first"), (&second, "second")] {
        let resp = upload_call(&server.url, &rep, wav.clone(), &[("title", title)]);
        assert_eq!(resp.status(), 202);
        let v: Value = resp.json().unwrap();
        calls.push(v["call"]["id"].as_str().unwrap().to_string());
    }
    let transcript = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/calls/kestrel-technical-en.json"
    ))
    .unwrap();
    let resp = client()
        .post(format!("{}/calls/import-transcript", server.url))
        .bearer_auth(&rep)
        .body(transcript)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    for price in [1000.0, 2500.5, 0.1 + 0.2] {
        let deal = json!({"list_price": price, "region": "emea", "segment": "smb",
            "features": {"note": "Grüße, 你好 \"quoted\""}});
        assert_eq!(server.post("/deals", &rep, deal).status(), 201);
    }
    let one: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/corpus/bids/SB-101.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(server.post("/bids", &bid, one.clone()).status(), 200);

    // Online: the server keeps running during the backup.
    let backup = src.path().join("backups/first");
    let out = run_ok(dealdesk(src.path()).args(["backup"]).arg(&backup));
    assert!(out.contains("backed up"), "{out}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["blobs"].as_array().unwrap().len(), 2);
    assert!(manifest["damaged_blobs"].as_array().unwrap().is_empty());
    drop(server);
    let before = dump(src.path());
    for table in [
        "users",
        "calls",
        "blobs",
        "jobs",
        "transcripts",
        "deals",
        "bids",
        "audit_events",
    ] {
        let n = before.iter().find(|(t, _, _)| t == table).unwrap().1;
        assert!(n > 0, "the source has {table} rows");
    }

    // Into a new data directory (and, on PostgreSQL, a new database).
    let dst = tempfile::tempdir().unwrap();
    let out = run_ok(dealdesk(dst.path()).args(["restore"]).arg(&backup));
    assert!(out.contains("restored"), "{out}");
    assert_eq!(dump(dst.path()), before, "every table comes back identical");
    assert_eq!(blob_files(dst.path()), blob_files(src.path()));
    assert!(
        dst.path()
            .join("data/restored-config/dealdesk.toml")
            .exists()
    );
    run_ok(dealdesk(dst.path()).args(["audit", "verify"]));
    let out = run_ok(dealdesk(dst.path()).args(["doctor"]));
    assert!(out.contains("0 problem(s)"), "{out}");

    // The restored server serves the records with the same tokens.
    let mut cmd = dealdesk(dst.path());
    cmd.env("DEALDESK_JOBS_WORKERS", "0")
        .env("DEALDESK_BIDS_DENSE", "false");
    let server = Server::start(cmd);
    let recording = server.get(&format!("/calls/{}/recording", calls[1]), &rep);
    assert_eq!(recording.status(), 200);
    assert_eq!(recording.bytes().unwrap().as_ref(), second.as_slice());
    let id = one["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/bids/{id}"), &bid).status(), 200);
    drop(server);

    // A second restore into the now non-empty target is refused, and changes nothing.
    let again = dealdesk(dst.path())
        .args(["restore"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    // With --force it replaces the data: still identical.
    run_ok(
        dealdesk(dst.path())
            .args(["restore", "--force"])
            .arg(&backup),
    );
    assert_eq!(dump(dst.path()), before);

    // A damaged backup is refused before anything is touched.
    let victim = backup.join("db/deals.jsonl");
    let mut text = std::fs::read_to_string(&victim).unwrap();
    text = text.replacen("1000", "9000", 1);
    std::fs::write(&victim, text).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let damaged = dealdesk(fresh.path())
        .args(["restore"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!damaged.status.success());
    let err = String::from_utf8_lossy(&damaged.stderr);
    assert!(
        err.contains("db/deals.jsonl does not match its checksum"),
        "{err}"
    );
    assert!(
        !fresh.path().join("data").exists(),
        "nothing was created for a damaged backup"
    );

    // A backup never lands in a directory that holds something.
    let taken = dealdesk(src.path())
        .args(["backup"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!taken.status.success());
}
