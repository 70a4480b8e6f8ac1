//! Load on the API from a second process on loopback (issue 12): bid search, quote
//! recommendation and the review queue at rising concurrency until p99 latency doubles, then 50
//! concurrent call uploads with the server's memory watched, then 100 uploads at once into a
//! full job queue.
//!
//! The server is the real release binary on a demo data set (`dealdesk demo`: 14 bids, 480
//! deals and a fitted quote model, reviews) with its job workers off, so the queued demo calls
//! do not compete for the CPU. Each step runs `BENCH_LOAD_SECS` seconds (default 10)
//! with that many clients each sending its next request as soon as the last one is answered.
//!
//! `cargo bench --bench load`. Results are in `eval/reports/load.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, call_form, dealdesk, peak_rss_kib, run_ok};
use serde_json::{Value, json};

/// One endpoint under load: a request builder and the token that may call it.
struct Endpoint {
    name: &'static str,
    method: reqwest::Method,
    path: &'static str,
    body: Option<Value>,
    token: String,
}

fn main() {
    let secs: u64 = std::env::var("BENCH_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    let seeded: Value = serde_json::from_str(&run_ok(
        dealdesk(root)
            .env("DEALDESK_JOBS_WORKERS", "0")
            .args(["demo", "--json", "--corpus", corpus]),
    ))
    .unwrap();
    let token = |name: &str| {
        seeded["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"]["name"] == name)
            .and_then(|u| u["token"].as_str())
            .unwrap_or_else(|| panic!("demo user {name}"))
            .to_string()
    };
    let mut cmd = dealdesk(root);
    cmd.env("DEALDESK_JOBS_WORKERS", "0");
    let server = Server::start(cmd);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let endpoints = [
        Endpoint {
            name: "bid search",
            method: reqwest::Method::POST,
            path: "/bids/search",
            body: Some(json!({"tender": {
                "title": "Hospital infusion pumps with five-year service",
                "requirements": ["Drug library with dose limits", "On-site training for nurses",
                                 "24/7 service with 4-hour response"]}})),
            token: token("demo-bid"),
        },
        Endpoint {
            name: "quote recommend",
            method: reqwest::Method::POST,
            path: "/quotes/recommend",
            body: Some(
                json!({"region": "West", "segment": "smb", "list_price": 5000.0,
                              "features": {"product": "Argo"}}),
            ),
            token: token("demo-rep"),
        },
        Endpoint {
            name: "review queue",
            method: reqwest::Method::GET,
            path: "/reviews",
            body: None,
            token: token("demo-manager"),
        },
    ];
    println!("| endpoint | clients | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    for endpoint in &endpoints {
        let mut first_p99 = None;
        for clients in [1, 2, 4, 8, 16, 32, 64, 128] {
            let step = rt.block_on(load(&server.url, endpoint, clients, secs));
            println!(
                "| {} | {clients} | {:.0} | {:.1} | {:.1} | {} |",
                endpoint.name, step.per_sec, step.p50_ms, step.p99_ms, step.errors
            );
            let base = *first_p99.get_or_insert(step.p99_ms);
            if step.p99_ms >= 2.0 * base {
                break;
            }
        }
    }
    uploads(&rt, &server, root, &token("demo-rep"));
    drop(server);
    full_queue(&rt);
}

struct Step {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

/// `clients` concurrent clients hammering `endpoint` for `secs` seconds.
async fn load(url: &str, endpoint: &Endpoint, clients: usize, secs: u64) -> Step {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let request = Arc::new(
        client
            .request(endpoint.method.clone(), format!("{url}{}", endpoint.path))
            .bearer_auth(&endpoint.token)
            .json(&endpoint.body.clone().unwrap_or(Value::Null))
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let req = request.try_clone().unwrap();
                    match client.execute(req).await {
                        Ok(resp) if resp.status().is_success() => {
                            let _ = resp.bytes().await;
                            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, failed) = task.await.unwrap();
        all.extend(latencies);
        errors += failed;
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)));
    Step {
        per_sec: all.len() as f64 / secs as f64,
        p50_ms: at(0.50).copied().unwrap_or(f64::NAN),
        p99_ms: at(0.99).copied().unwrap_or(f64::NAN),
        errors,
    }
}

/// One answered upload: its status, how long it took, and its `Retry-After`.
struct Upload {
    status: u16,
    ms: f64,
    retry_after: Option<String>,
}

/// `count` uploads of a `bytes`-long recording, all at once; each is its own blob (a WAV
/// header and distinct noise).
fn post_uploads(
    rt: &tokio::runtime::Runtime,
    url: &str,
    token: &str,
    count: usize,
    bytes: usize,
) -> Vec<Upload> {
    rt.block_on(async {
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..count)
            .map(|n| {
                let client = client.clone();
                let url = format!("{url}/calls");
                let token = token.to_string();
                tokio::spawn(async move {
                    let mut wav = common::wav_header(bytes as u32);
                    wav.extend((0..bytes).map(|i| ((i * 31 + n * 7) % 251) as u8));
                    let title = format!("load upload {n}");
                    let (content_type, body) = call_form(wav, &[("title", &title)]);
                    let started = Instant::now();
                    let resp = client
                        .post(url)
                        .bearer_auth(token)
                        .header("content-type", content_type)
                        .body(body)
                        .send()
                        .await;
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    match resp {
                        Ok(r) => Upload {
                            status: r.status().as_u16(),
                            ms,
                            retry_after: r
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok().map(str::to_string)),
                        },
                        Err(_) => Upload {
                            status: 0,
                            ms,
                            retry_after: None,
                        },
                    }
                })
            })
            .collect();
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.unwrap());
        }
        done
    })
}

/// The distinct statuses of `uploads`, sorted.
fn statuses(uploads: &[Upload]) -> Vec<u16> {
    let mut distinct: Vec<u16> = uploads.iter().map(|u| u.status).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
}

/// 50 uploads of a 16 MiB recording at once: the server's peak memory before and after shows
/// whether uploads are streamed to disk or held in memory.
fn uploads(rt: &tokio::runtime::Runtime, server: &Server, root: &Path, token: &str) {
    const UPLOADS: usize = 50;
    const BYTES: usize = 16 << 20;
    let pid = server.child.id();
    let before = peak_rss_kib(pid);
    let started = Instant::now();
    let answered = post_uploads(rt, &server.url, token, UPLOADS, BYTES);
    let secs = started.elapsed().as_secs_f64();
    let after = peak_rss_kib(pid);
    let accepted = answered.iter().filter(|u| u.status == 202).count();
    let blobs: u64 = walk_size(&root.join("data/blobs"));
    println!(
        "\n{UPLOADS} concurrent uploads of {} MiB: {accepted} accepted (statuses {:?}) in {secs:.1} s; \
         server peak RSS {} MiB before, {} MiB after; {} MiB in the blob store",
        BYTES >> 20,
        statuses(&answered),
        before / 1024,
        after / 1024,
        blobs >> 20
    );
}

/// A full job queue: a server whose workers are off and whose queue holds `MAX_QUEUED` jobs
/// gets 100 uploads of 1 MiB at once. What it accepts, how fast it refuses the rest (429
/// before reading the body), with which `Retry-After`, and how many bytes it kept.
fn full_queue(rt: &tokio::runtime::Runtime) {
    const MAX_QUEUED: usize = 20;
    const UPLOADS: usize = 100;
    const BYTES: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let token = common::add_user(dir.path(), "flood", "rep", "emea");
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_JOBS_WORKERS", "0")
        .env("DEALDESK_JOBS_MAX_QUEUED", MAX_QUEUED.to_string());
    let server = Server::start(cmd);
    let answered = post_uploads(rt, &server.url, &token, UPLOADS, BYTES);
    let ms = |status: u16| {
        let mut ms: Vec<f64> = answered
            .iter()
            .filter(|u| u.status == status)
            .map(|u| u.ms)
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q) as usize).copied();
        (ms.len(), at(0.5).unwrap_or(0.0), at(0.99).unwrap_or(0.0))
    };
    let (accepted, acc_p50, acc_p99) = ms(202);
    let (refused, ref_p50, ref_p99) = ms(429);
    let mut waits: Vec<&str> = answered
        .iter()
        .filter_map(|u| u.retry_after.as_deref())
        .collect();
    waits.sort_unstable();
    waits.dedup();
    let kept = walk_size(&dir.path().join("data/blobs"));
    println!(
        "\nfull queue (jobs.max_queued = {MAX_QUEUED}, workers off): {UPLOADS} concurrent uploads \
         of 1 MiB: {accepted} accepted (p50 {acc_p50:.0} ms, p99 {acc_p99:.0} ms), {refused} \
         refused with 429 (p50 {ref_p50:.0} ms, p99 {ref_p99:.0} ms), Retry-After {waits:?}, \
         statuses {:?}; {} MiB kept in the blob store",
        statuses(&answered),
        kept >> 20
    );
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk_size(&path)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}
