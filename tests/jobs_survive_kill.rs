//! A job accepted by the server survives `kill -9` of the whole process: after a restart its
//! lease runs out, a worker takes it over, and it finishes.

mod common;

use std::time::Duration;

use common::*;
use dealdesk::store::blobs::BlobStore;
use serde_json::Value;

const BLOB_BYTES: u64 = 128 * 1024 * 1024;
const BLOBS: u64 = 4;

#[test]
fn a_job_killed_mid_run_finishes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let admin = add_user(dir.path(), "ops", "admin", "global");

    // Enough stored data that verifying it takes a while, so the kill lands mid-job.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = dir.path().join("data");
        let db = common::open_db(dir.path()).await;
        let store = BlobStore::directory(data.join("blobs"), db);
        for i in 0..BLOBS {
            let content = tokio::io::AsyncReadExt::take(tokio::io::repeat(i as u8), BLOB_BYTES);
            store
                .put(content, "application/octet-stream", u64::MAX)
                .await
                .unwrap();
        }
    });

    let start = || {
        let mut cmd = dealdesk(dir.path());
        cmd.env("DEALDESK_JOBS_LEASE_SECS", "1")
            .env("DEALDESK_JOBS_POLL_MS", "50");
        Server::start(cmd)
    };
    let http = client();
    let server = start();
    let job: Value = http
        .post(format!("{}/admin/blobs/verify", server.url))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let get_job = |url: &str| -> Value {
        http.get(format!("{url}/jobs/{id}"))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let running = poll(Duration::from_secs(30), || {
        let j = get_job(&server.url);
        assert_ne!(
            j["state"], "done",
            "the job finished before it could be killed"
        );
        (j["state"] == "running").then_some(j)
    });
    assert_eq!(running["attempts"], 1);
    server.kill_hard();

    let server = start();
    let done = poll(Duration::from_secs(60), || {
        let j = get_job(&server.url);
        assert_ne!(j["state"], "failed", "{j}");
        (j["state"] == "done").then_some(j)
    });
    assert_eq!(
        done["attempts"], 2,
        "taken over once after the kill: {done}"
    );
    assert_eq!(done["progress"], 100);
    assert_eq!(done["result"]["checked"], BLOBS);
    assert_eq!(done["result"]["ok"], BLOBS);
    assert!(server.terminate(), "SIGTERM shuts down cleanly");
}
