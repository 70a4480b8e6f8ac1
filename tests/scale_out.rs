//! Several processes on one database (issue: beyond one box): two API processes and two
//! worker processes share the database (PostgreSQL under `TEST_POSTGRES_URL`, else one SQLite
//! file) and one blob directory; each keeps its own indexes.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sqlx::Row;

const JFK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/eval/audio/en/jfk.wav"
);

/// A process of the cluster: its own data directory, the shared database and blob directory.
fn member(root: &Path, name: &str) -> Command {
    let mut cmd = dealdesk(root);
    cmd.env("DEALDESK_DATA_DIR", root.join(name))
        .env("DEALDESK_DATA_BLOBS_DIR", root.join("shared-blobs"))
        .env("DEALDESK_JOBS_LEASE_SECS", "3")
        .env("DEALDESK_JOBS_POLL_MS", "100")
        .env("DEALDESK_LLM_THREADS", "1");
    cmd
}

/// `dealdesk worker`, once it says it is running.
fn start_worker(mut cmd: Command) -> Child {
    cmd.args(["worker", "--workers", "1"]);
    spawn_until(cmd, "dealdesk worker running").0
}

/// The JFK clip with one sample changed per `n`, so every upload is a distinct recording.
fn recording(n: u8) -> Vec<u8> {
    let mut wav = std::fs::read(JFK).unwrap();
    let last = wav.len() - 1;
    wav[last] ^= n.wrapping_add(1);
    wav
}

struct JobRow {
    call_id: String,
    state: String,
    attempts: i64,
    worker: String,
}

fn analyze_jobs(root: &Path) -> Vec<JobRow> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = open_db(root).await;
        let rows = sqlx::query(
            "SELECT payload, state, attempts, worker FROM jobs WHERE kind = 'call.analyze'",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        rows.iter()
            .map(|r| {
                let payload: Value = serde_json::from_str(&r.get::<String, _>(0)).unwrap();
                JobRow {
                    call_id: payload["call_id"].as_str().unwrap_or_default().to_string(),
                    state: r.get(1),
                    attempts: r.get(2),
                    worker: r.get::<Option<String>, _>(3).unwrap_or_default(),
                }
            })
            .collect()
    })
}

#[test]
fn two_apis_and_two_workers_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rep = add_user(root, "rep", "rep", "emea");
    let bidder = add_user(root, "bidder", "bid", "emea");
    // API processes only: no workers.
    let api = ["api-a", "api-b"].map(|name| {
        let mut cmd = member(root, name);
        cmd.env("DEALDESK_JOBS_WORKERS", "0");
        Server::start(cmd)
    });

    // A bid written through one API is found through the other, whose index follows the log.
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids/SB-101.json");
    let bid: Value = serde_json::from_str(&std::fs::read_to_string(corpus).unwrap()).unwrap();
    let put = api[0].post("/bids", &bidder, bid.clone());
    assert_eq!(put.status(), 200, "{}", put.text().unwrap());
    let written = Instant::now();
    let query = json!({
        "tender": {"title": bid["title"], "requirements": bid["requirements"]},
        "filters": {"outcomes": ["won", "lost", "withdrawn", "pending"]},
    });
    poll(Duration::from_secs(10), || {
        let found: Value = api[1]
            .post("/bids/search", &bidder, query.clone())
            .json()
            .unwrap();
        let hits = found["hits"].as_array().cloned().unwrap_or_default();
        hits.iter().any(|h| h["id"] == bid["id"]).then_some(())
    });
    eprintln!(
        "bid visible through the other API after {:?}",
        written.elapsed()
    );

    // 20 recordings uploaded through both APIs.
    let mut calls = Vec::new();
    for n in 0..20u8 {
        let title = format!("call {n}");
        let resp = upload_call(
            &api[(n % 2) as usize].url,
            &rep,
            recording(n),
            &[("title", &title), ("language", "en")],
        );
        assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
        let accepted: Value = resp.json().unwrap();
        calls.push(accepted["call"]["id"].as_str().unwrap().to_string());
    }

    // Two workers; the first is killed while it holds a job.
    let mut first = start_worker(member(root, "worker-a"));
    let mut second = start_worker(member(root, "worker-b"));
    let first_tag = format!(":{}:", first.id());
    let taken = poll(Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_millis(50));
        analyze_jobs(root)
            .into_iter()
            .find(|j| j.state == "running" && j.worker.contains(&first_tag))
            .map(|j| j.call_id)
    });
    first.kill().unwrap();
    first.wait().unwrap();

    // Every call is processed, each by exactly one job; the killed job was finished by the
    // other worker on its second attempt, every other job on its first.
    let started = Instant::now();
    let jobs = poll(Duration::from_secs(1200), || {
        std::thread::sleep(Duration::from_millis(500));
        let jobs = analyze_jobs(root);
        assert!(jobs.iter().all(|j| j.state != "failed"), "a job failed");
        jobs.iter().all(|j| j.state == "done").then_some(jobs)
    });
    eprintln!("20 calls processed {:?} after the kill", started.elapsed());
    assert_eq!(jobs.len(), 20);
    for call in &calls {
        let mine: Vec<&JobRow> = jobs.iter().filter(|j| &j.call_id == call).collect();
        assert_eq!(mine.len(), 1, "one job for call {call}");
        let job = mine[0];
        let second_tag = format!(":{}:", second.id());
        if *call == taken {
            assert_eq!(job.attempts, 2, "the killed job ran again");
            assert!(
                job.worker.contains(&second_tag),
                "taken over by the other worker"
            );
        } else {
            assert_eq!(job.attempts, 1, "call {call} processed once");
        }
        // Both APIs show the finished call and its transcript.
        for server in &api {
            let got: Value = server.get(&format!("/calls/{call}"), &rep).json().unwrap();
            assert_eq!(got["status"], "done", "{got}");
        }
        let transcript: Value = api[1]
            .get(&format!("/calls/{call}/transcript"), &rep)
            .json()
            .unwrap();
        let text: String = transcript["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap())
            .collect();
        assert!(text.to_lowercase().contains("country"), "{text}");
    }
    let _ = second.kill();
    let _ = second.wait();
}
