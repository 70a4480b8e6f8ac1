//! Capacity of call processing (issue 11): calls per hour for one and for two worker processes
//! on this machine, each worker's peak memory, and the database load per processed call.
//!
//! Runs the real binary as a deployment would: one API process without workers and N
//! `dealdesk worker` processes on one database and one blob directory. Each worker first
//! analyzes a short warm-up recording (so model loading is not counted), then every worker
//! is given the same batch: the development calls' recordings (../shared/eval/calls, 2.5–3
//! minutes each), uploaded through the API with their titles, dates and participants, each
//! made a distinct file. The clock runs from the batch upload until every call is analyzed.
//!
//! The database is PostgreSQL when `TEST_POSTGRES_URL` points at a server that preloads
//! `pg_stat_statements` (`PG_TEST_CLUSTER_OPTIONS="-c shared_preload_libraries=pg_stat_statements"
//! scripts/pg-test-cluster start`): then statements, rows, transactions and WAL bytes per call
//! are read from the server's statistics. Otherwise it is a SQLite file and only its growth is
//! reported.
//!
//! `cargo bench --bench scale`; `BENCH_SCALE_WORKERS` lists worker-process counts to run
//! (default `1,2`), `BENCH_SCALE_THREADS` the CPU threads of each worker's models for each
//! count (default `2,1`: the two cores are shared out), `BENCH_SCALE_CALLS` the
//! number of calls per run (default 4); not `DEALDESK_…` names, which dealdesk's own
//! configuration refuses as unknown settings. Results are in `eval/reports/scale.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Server, add_user, dealdesk, open_db, peak_rss_kib, poll, spawn_until, upload_call};
use dealdesk::store::Db;
use serde_json::Value;
use sqlx::Row;
use tokio::runtime::Runtime;

fn main() {
    let workers = list_env("BENCH_SCALE_WORKERS", "1,2");
    let threads = list_env("BENCH_SCALE_THREADS", "2,1");
    let calls: usize = std::env::var("BENCH_SCALE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let backend = if std::env::var_os("TEST_POSTGRES_URL").is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("backend: {backend}; {calls} calls per run");
    for (i, &n) in workers.iter().enumerate() {
        let t = threads.get(i).copied().unwrap_or(1);
        run(n, t, calls);
    }
}

fn list_env(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|v| v.trim().parse().expect("a comma-separated list of numbers"))
        .collect()
}

/// One development call: its recording and the upload form's fields.
struct DevCall {
    wav: Vec<u8>,
    seconds: f64,
    fields: Vec<(String, String)>,
}

fn dev_calls() -> Vec<DevCall> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/calls");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the development calls")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("call.wav").exists())
        .collect();
    // Languages alternate (en-01, zh-01, en-02, …), so a short batch has both.
    names.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let (lang, number) = name.split_once('-').unwrap_or((&name, ""));
        (number.to_string(), lang.to_string())
    });
    names
        .iter()
        .map(|folder| {
            let wav = std::fs::read(folder.join("call.wav")).unwrap();
            let meta: Value =
                serde_json::from_slice(&std::fs::read(folder.join("transcript.json")).unwrap())
                    .unwrap();
            let field = |k: &str| meta[k].as_str().unwrap_or_default().to_string();
            DevCall {
                seconds: (wav.len() - 44) as f64 / 32_000.0,
                wav,
                fields: vec![
                    ("title".into(), field("title")),
                    ("language".into(), field("language")),
                    ("call_date".into(), field("call_date")),
                    ("participants".into(), meta["participants"].to_string()),
                ],
            }
        })
        .collect()
}

/// A process of the deployment: its own data directory, the shared database and blobs.
fn member(root: &Path, name: &str, threads: usize) -> Command {
    let mut cmd = dealdesk(root);
    cmd.env("DEALDESK_DATA_DIR", root.join(name))
        .env("DEALDESK_DATA_BLOBS_DIR", root.join("shared-blobs"))
        .env("DEALDESK_ASR_THREADS", threads.to_string())
        .env("DEALDESK_LLM_THREADS", threads.to_string());
    cmd
}

fn run(workers: usize, threads: usize, calls: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rep = add_user(root, "rep", "rep", "emea");
    let mut api_cmd = member(root, "api", threads);
    api_cmd.env("DEALDESK_JOBS_WORKERS", "0");
    let api = Server::start(api_cmd);
    let mut procs: Vec<Child> = (0..workers)
        .map(|i| {
            let mut cmd = member(root, &format!("worker-{i}"), threads);
            cmd.args(["worker", "--workers", "1"]);
            spawn_until(cmd, "dealdesk worker running").0
        })
        .collect();
    let upload = |n: usize, call: &DevCall| {
        // One changed sample per upload makes every recording a distinct blob.
        let mut wav = call.wav.clone();
        let last = wav.len() - 1;
        wav[last] ^= (n % 250) as u8 + 1;
        let fields: Vec<(&str, &str)> = call
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = upload_call(&api.url, &rep, wav, &fields);
        assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
    };
    let all = dev_calls();

    // Warm-up: every worker loads its models on a first, short call.
    let jfk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/audio/en/jfk.wav");
    let warm = DevCall {
        wav: std::fs::read(jfk).unwrap(),
        seconds: 11.0,
        fields: vec![("language".into(), "en".into())],
    };
    for n in 0..workers {
        upload(1000 + n, &warm);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(open_db(root));
    wait_done(&rt, &db, workers);

    let before = DbLoad::read(&rt, &db, root);
    let started = Instant::now();
    let mut audio_s = 0.0;
    for n in 0..calls {
        let call = &all[n % all.len()];
        upload(n, call);
        audio_s += call.seconds;
    }
    let latencies = wait_done(&rt, &db, workers + calls);
    let wall = started.elapsed().as_secs_f64();
    let after = DbLoad::read(&rt, &db, root);

    let peaks: Vec<u64> = procs.iter().map(|c| peak_rss_kib(c.id()) / 1024).collect();
    for child in &mut procs {
        let _ = child.kill();
        let _ = child.wait();
    }
    let per_hour = calls as f64 * 3600.0 / wall;
    println!(
        "{workers} worker(s) × {threads} thread(s): {calls} calls ({:.0} s of audio) in {wall:.0} s \
         → {per_hour:.1} calls/hour, {:.2} audio hours per hour; latency upload→done p50 {:.0} s, max {:.0} s; \
         peak RSS per worker {peaks:?} MiB",
        audio_s,
        audio_s / wall,
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
    );
    before.print_delta(&after, calls);
}

/// Waits (one query every 2 s) until `n` analysis jobs are done; returns the upload→done
/// seconds of every job, sorted.
fn wait_done(rt: &Runtime, db: &Db, n: usize) -> Vec<f64> {
    let rows = poll(Duration::from_secs(6 * 3600), || {
        std::thread::sleep(Duration::from_secs(2));
        let rows = rt.block_on(
            sqlx::query(
                "SELECT state, created_at, finished_at FROM jobs WHERE kind = 'call.analyze'",
            )
            .fetch_all(db.pool()),
        );
        let rows: Vec<(String, i64, i64)> = rows
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get::<Option<i64>, _>(2).unwrap_or_default(),
                )
            })
            .collect();
        assert!(
            rows.iter().all(|r| r.0 != "failed"),
            "an analysis job failed"
        );
        (rows.len() == n && rows.iter().all(|r| r.0 == "done")).then_some(rows)
    });
    let mut latencies: Vec<f64> = rows.iter().map(|r| (r.2 - r.1) as f64 / 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Each statement's text and how often it ran.
type StatementCounts = Vec<(i64, String)>;

/// The database's counters at one moment.
struct DbLoad {
    /// PostgreSQL: statements executed (pg_stat_statements), transactions committed, rows
    /// read and written, WAL bytes; the top statements by count.
    postgres: Option<(Vec<i64>, StatementCounts)>,
    /// The database's size in bytes (SQLite file or pg_database_size).
    size_bytes: i64,
}

const PG_COUNTERS: [&str; 6] = [
    "statements",
    "transactions",
    "rows read",
    "rows written",
    "WAL bytes",
    "statement rows",
];

impl DbLoad {
    fn read(rt: &Runtime, db: &Db, root: &Path) -> DbLoad {
        if std::env::var_os("TEST_POSTGRES_URL").is_none() {
            // The file and its write-ahead log.
            let size = ["dealdesk.db", "dealdesk.db-wal"]
                .iter()
                .map(|f| std::fs::metadata(root.join("data").join(f)).map_or(0, |m| m.len()))
                .sum::<u64>();
            return DbLoad {
                postgres: None,
                size_bytes: size as i64,
            };
        }
        rt.block_on(async {
            let pool = db.pool();
            sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .execute(pool)
                .await
                .expect("pg_stat_statements: start the server with shared_preload_libraries=pg_stat_statements");
            let stats = sqlx::query(
                "SELECT CAST(COALESCE(SUM(s.calls), 0) AS BIGINT), \
                        CAST(d.xact_commit AS BIGINT), \
                        CAST(d.tup_returned + d.tup_fetched AS BIGINT), \
                        CAST(d.tup_inserted + d.tup_updated + d.tup_deleted AS BIGINT), \
                        CAST(pg_current_wal_lsn() - '0/0' AS BIGINT), \
                        CAST(COALESCE(SUM(s.rows), 0) AS BIGINT), \
                        CAST(pg_database_size(current_database()) AS BIGINT) \
                 FROM pg_stat_database d \
                 LEFT JOIN pg_stat_statements s ON s.dbid = d.datid \
                 WHERE d.datname = current_database() \
                 GROUP BY d.xact_commit, d.tup_returned, d.tup_fetched, d.tup_inserted, d.tup_updated, d.tup_deleted",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            let counters: Vec<i64> = (0..6).map(|i| stats.get(i)).collect();
            let top = sqlx::query(
                "SELECT CAST(s.calls AS BIGINT), s.query FROM pg_stat_statements s \
                 JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() \
                 ORDER BY s.calls DESC",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
            DbLoad {
                postgres: Some((counters, top)),
                size_bytes: stats.get(6),
            }
        })
    }

    /// Prints what changed between `self` and `after`, per call.
    fn print_delta(&self, after: &DbLoad, calls: usize) {
        let per_call = |a: i64, b: i64| (b - a) as f64 / calls as f64;
        println!(
            "  database growth per call: {:.0} KiB",
            per_call(self.size_bytes, after.size_bytes) / 1024.0
        );
        let (Some((before, top_before)), Some((now, top_now))) = (&self.postgres, &after.postgres)
        else {
            return;
        };
        for (i, name) in PG_COUNTERS.iter().enumerate() {
            println!("  {name} per call: {:.0}", per_call(before[i], now[i]));
        }
        let mut top: Vec<(i64, &str)> = top_now
            .iter()
            .map(|(n, q)| {
                let was = top_before
                    .iter()
                    .find(|(_, bq)| bq == q)
                    .map_or(0, |(b, _)| *b);
                (n - was, q.as_str())
            })
            .collect();
        top.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        for (n, q) in top.iter().take(6) {
            let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
            println!(
                "    {:.1} per call: {}",
                *n as f64 / calls as f64,
                q.chars().take(110).collect::<String>()
            );
        }
    }
}
