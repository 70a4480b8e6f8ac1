//! `dealdesk demo` on a fresh data directory, run by the real binary: the dataset it seeds has
//! the documented counts, a second run changes nothing but the tokens, `dealdesk serve` runs
//! the real extraction on the queued demo call, and the audit chain verifies. One demo call
//! (`--calls 1`) keeps the LLM part to about a minute.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");

fn demo(dir: &Path) -> Value {
    let out = run_ok(dealdesk(dir).args(["demo", "--corpus", CORPUS, "--calls", "1", "--json"]));
    serde_json::from_str(&out).unwrap()
}

/// What the demo seeded, counted in the database itself.
#[derive(Debug, PartialEq)]
struct Counts {
    users: i64,
    bids: i64,
    calls: i64,
    jobs: i64,
    deals: i64,
    closed: i64,
    followed: i64,
    overrode: i64,
    models: i64,
    /// Quote recommendations: approved, overridden, rejected, proposed.
    quotes: [i64; 4],
    audit: i64,
}

fn counts(dir: &Path) -> Counts {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = common::open_db(dir).await;
        let n = |sql: &'static str| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(db.pool())
                    .await
                    .unwrap()
            }
        };
        let quotes = "SELECT COUNT(*) FROM recommendations WHERE kind = 'quote' AND state = ";
        let state = |s: &str| {
            let db = db.clone();
            let sql = format!("{quotes}'{s}'");
            async move {
                sqlx::query_scalar::<_, i64>(&sql)
                    .fetch_one(db.pool())
                    .await
                    .unwrap()
            }
        };
        Counts {
            users: n("SELECT COUNT(*) FROM users").await,
            bids: n("SELECT COUNT(*) FROM bids").await,
            calls: n("SELECT COUNT(*) FROM calls").await,
            jobs: n("SELECT COUNT(*) FROM jobs").await,
            deals: n("SELECT COUNT(*) FROM deals").await,
            closed: n("SELECT COUNT(*) FROM deals WHERE outcome IS NOT NULL").await,
            followed: n("SELECT COUNT(*) FROM deals WHERE followed_recommendation = 'followed'")
                .await,
            overrode: n("SELECT COUNT(*) FROM deals WHERE followed_recommendation = 'overrode'")
                .await,
            models: n("SELECT COUNT(*) FROM quote_models").await,
            quotes: [
                state("approved").await,
                state("overridden").await,
                state("rejected").await,
                state("proposed").await,
            ],
            audit: n("SELECT COUNT(*) FROM audit_events").await,
        }
    })
}

fn token(report: &Value, name: &str) -> String {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"]["name"] == name)
        .unwrap_or_else(|| panic!("no demo user {name}: {report}"))["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn audit_verifies(dir: &Path) {
    let out = run_ok(dealdesk(dir).args(["audit", "verify", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["first_broken"].is_null(), "{v}");
}

#[test]
fn demo_seeds_a_complete_dataset_once_and_serve_analyzes_its_call() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let first = demo(dir);
    let seeded = counts(dir);
    // As documented in the README's quick start (with --calls 1: one call).
    assert_eq!(
        seeded,
        Counts {
            users: 6,
            bids: 14,
            calls: 1,
            jobs: 1,
            deals: 480 + 10,
            closed: 480 + 6,
            followed: 3,
            overrode: 2,
            models: 1,
            quotes: [4, 3, 2, 1],
            audit: seeded.audit,
        },
        "{first}"
    );
    assert!(seeded.audit >= 10, "every proposal and decision is audited");
    assert_eq!(first["calls"][0]["status"], "queued");
    assert_eq!(first["deals"]["model_fitted"], true);
    audit_verifies(dir);

    // A second run: fresh tokens, nothing else changes.
    let second = demo(dir);
    assert_eq!(counts(dir), seeded, "{second}");
    assert_eq!(second["calls"][0]["new"], false);
    assert_eq!(second["deals"]["imported"], 0);
    assert_eq!(second["deals"]["model_fitted"], false);
    assert_eq!(second["quotes"]["proposed"], 0);
    assert_ne!(token(&first, "demo-rep"), token(&second, "demo-rep"));

    // The server analyzes the queued call with the real models.
    let server = Server::start(dealdesk(dir));
    let rep = token(&second, "demo-rep");
    let manager = token(&second, "demo-manager");
    let apac_manager = token(&second, "demo-manager-apac");
    assert_eq!(server.get("/me", &rep).status(), 200);
    let call_id = second["calls"][0]["id"].as_str().unwrap().to_string();
    let call: Value = poll(Duration::from_secs(600), || {
        let call: Value = server
            .get(&format!("/calls/{call_id}"), &rep)
            .json()
            .unwrap();
        assert_ne!(call["status"], "failed", "{call}");
        (call["status"] == "done").then_some(call)
    });
    assert_eq!(call["region"], "emea");
    let insights: Value = server
        .get(&format!("/calls/{call_id}/insights"), &rep)
        .json()
        .unwrap();
    let commitments = insights["commitments"].as_array().unwrap();
    assert!(!commitments.is_empty(), "{insights}");
    let tasks: Value = server
        .get(&format!("/calls/{call_id}/tasks"), &rep)
        .json()
        .unwrap();
    assert!(!tasks.as_array().unwrap().is_empty(), "{tasks}");
    // The emea manager's queue has the call's items and the waiting quote; the apac manager
    // sees their region's quotes only.
    let queue: Value = server
        .get("/reviews?state=proposed", &manager)
        .json()
        .unwrap();
    let kinds: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"commitment"), "{queue}");
    assert!(kinds.contains(&"quote"), "{queue}");
    let apac: Value = server.get("/reviews", &apac_manager).json().unwrap();
    assert!(!apac["items"].as_array().unwrap().is_empty(), "{apac}");
    assert!(
        apac["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["region"] == "apac" && r["kind"] == "quote"),
        "{apac}"
    );
    assert!(server.terminate());

    // A third run after the analysis: the call is not queued again.
    let after = counts(dir);
    let third = demo(dir);
    assert_eq!(third["calls"][0]["status"], "done");
    assert_eq!(counts(dir), after);
    audit_verifies(dir);
}
