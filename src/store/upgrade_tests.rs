//! Upgrading from the previous release's schema keeps every row, readable by today's code.
//!
//! The database is built at exactly the previous release's schema (its migrations only), filled
//! through the domain functions as that release wrote them (the demo dataset: users and
//! tokens, bids with revisions, embeddings and the change log, imported calls with
//! transcripts and queued jobs, a deal history with a fitted quote model and decided quote
//! recommendations; plus an uploaded recording with its analysis: insights, tasks, a decided
//! commitment), then opened by the normal startup (`app::build_state`, which applies the newer
//! migrations and rebuilds a missing bid index), on SQLite or PostgreSQL like every test.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::blobs::BlobStore;
use super::{Backend, Db, MIGRATOR};
use crate::calls::extract::{Category, Commitment, Dropped, Extraction, Objection, PassStats};
use crate::calls::records::{self, NewCall};
use crate::calls::transcript::{CallTranscript, Participant, Segment, Side};
use crate::calls::{dates::Date, tasks};
use crate::config::Config;
use crate::review::{self, audit, queue};
use crate::users::{self, User};

/// The last migration of the previous release: main at d5aabb4 shipped 0001..0014.
///
/// On a release, set this to that release's last migration version. The seed below writes
/// through today's domain functions; once they write a column the older schema lacks, seed that
/// part with the SQL the released code ran instead.
const PREVIOUS_RELEASE_MIGRATION: i64 = 14;

/// Row counts of every table but sqlx's own.
async fn table_counts(db: &Db) -> BTreeMap<String, i64> {
    let names = match db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    let tables: Vec<String> = sqlx::query_scalar(names)
        .fetch_all(db.pool())
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for table in tables.into_iter().filter(|t| t != "_sqlx_migrations") {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(db.pool())
            .await
            .unwrap();
        counts.insert(table, n);
    }
    counts
}

async fn schema_version(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// A recording of `rep`'s stored in the directory blob store, transcribed and analysed: a
/// commitment (approved by `manager`) and an objection. Returns the call id.
async fn analysed_upload(config: &Config, db: &Db, rep: &User, manager: &User) -> String {
    let blobs = BlobStore::directory(config.blobs_dir(), db.clone());
    let blob = blobs
        .put(
            &b"RIFF recorded call"[..],
            "application/octet-stream",
            1 << 20,
        )
        .await
        .unwrap();
    let participants = vec![
        Participant {
            name: "Dana Reyes".into(),
            side: Side::Seller,
            role: None,
        },
        Participant {
            name: "Lee Park".into(),
            side: Side::Customer,
            role: None,
        },
    ];
    let call = records::create(
        db,
        rep,
        &NewCall {
            title: "pump renewal".into(),
            call_date: Some(Date::parse("2026-03-02").unwrap()),
            language: Some("en".into()),
            participants: participants.clone(),
            blob_sha256: Some(blob.sha256),
            source: "upload",
            channels: "mix".into(),
        },
    )
    .await
    .unwrap();
    let line = |id: u32, who: &str, text: &str| Segment {
        id,
        speaker: Some(who.into()),
        label: None,
        start_ms: u64::from(id) * 4000,
        end_ms: u64::from(id) * 4000 + 3500,
        text: text.into(),
    };
    let transcript = CallTranscript {
        call_id: None,
        language: "en".into(),
        call_date: Some(Date::parse("2026-03-02").unwrap()),
        title: String::new(),
        participants,
        segments: vec![
            line(
                0,
                "Lee Park",
                "Honestly the price is too high for our budget.",
            ),
            line(
                1,
                "Dana Reyes",
                "I'll send you the revised quote by Friday.",
            ),
        ],
        speakers: BTreeMap::new(),
    };
    transcript.validate().unwrap();
    records::save_transcript(db, &call.id, &transcript, "whisper-base")
        .await
        .unwrap();
    let ex = Extraction {
        commitments: vec![Commitment {
            owner: "Dana Reyes".into(),
            side: Some(Side::Seller),
            needs_relabel: false,
            action: "send the revised quote".into(),
            due_date: Some(Date::parse("2026-03-06").unwrap()),
            due_text: Some("by Friday".into()),
            quote: "I'll send you the revised quote by Friday.".into(),
            turn: 1,
            start_ms: 4000,
            end_ms: 7500,
            confidence: 0.8,
        }],
        objections: vec![Objection {
            category: Category::Price,
            raised_by: "Lee Park".into(),
            needs_relabel: false,
            quote: "Honestly the price is too high for our budget.".into(),
            turn: 0,
            start_ms: 0,
            end_ms: 3500,
            resolved: false,
            answer: "Walk through the total cost over three years.".into(),
            confidence: 0.7,
        }],
        injections: vec![],
        dropped: Dropped::default(),
        stats: PassStats::default(),
        model_id: "qwen".into(),
        prompt_versions: vec!["c@1".into(), "o@1".into()],
    };
    records::save_analysis(db, &call, &ex, &review::Rules::builtin())
        .await
        .unwrap();
    let proposed = queue::list(
        db,
        manager,
        &queue::Filter {
            state: Some("proposed".into()),
            kind: Some(review::Kind::Commitment),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let commitment = proposed
        .iter()
        .find(|r| r.subject_id == call.id)
        .expect("the commitment is proposed");
    queue::decide(
        db,
        manager,
        &commitment.id,
        &queue::Decision::Approve { note: None },
    )
    .await
    .unwrap();
    call.id
}

/// What today's code reads from the database, as JSON, to compare before and after.
async fn readings(db: &Db, people: &[User], call_id: &str) -> Value {
    let mut calls = Vec::new();
    let mut queues = Vec::new();
    for user in people {
        calls.push(json!(records::list_scoped(db, user).await.unwrap()));
        queues.push(json!(
            queue::list(db, user, &queue::Filter::default())
                .await
                .unwrap()
        ));
    }
    let call = records::get(db, call_id).await.unwrap();
    json!({
        "users": users::list(db).await.unwrap(),
        "calls": calls,
        "queues": queues,
        "transcript": records::transcript(db, &call).await.unwrap(),
        "insights": records::insights(db, call_id).await.unwrap(),
        "tasks": tasks::list(db.pool(), call_id).await.unwrap(),
        "audit": audit::list(db, None, 10_000).await.unwrap(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_schema_upgrades_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data.dir = dir.path().join("data");
    config.database.url = super::test_database_url(dir.path()).await.unwrap();

    // The previous release's database, filled by its code paths.
    let old = Db::connect_through(&config.database.url, 4, PREVIOUS_RELEASE_MIGRATION)
        .await
        .unwrap();
    assert_eq!(schema_version(&old).await, PREVIOUS_RELEASE_MIGRATION);
    let demo = crate::demo::seed(
        &config,
        &old,
        &crate::demo::Options {
            region: "emea".into(),
            corpus: concat!(env!("CARGO_MANIFEST_DIR"), "/corpus").into(),
            calls: None,
        },
    )
    .await
    .unwrap();
    let person = |name: &str| {
        demo.users
            .iter()
            .find(|n| n.user.name == name)
            .unwrap()
            .clone()
    };
    let (rep, manager) = (person("demo-rep").user, person("demo-manager").user);
    let call_id = analysed_upload(&config, &old, &rep, &manager).await;
    let people: Vec<User> = demo.users.iter().map(|n| n.user.clone()).collect();
    let before_counts = table_counts(&old).await;
    let before = readings(&old, &people, &call_id).await;
    for table in [
        "users",
        "api_tokens",
        "blobs",
        "jobs",
        "calls",
        "transcripts",
        "insights",
        "tasks",
        "bids",
        "bid_embeddings",
        "change_log",
        "deals",
        "quote_models",
        "recommendations",
        "reviews",
        "audit_events",
    ] {
        assert!(before_counts[table] > 0, "the seed fills {table}");
    }
    old.pool().close().await;
    // A process that never indexed the bids: its index comes from the upgraded database.
    std::fs::remove_dir_all(config.data.dir.join("index")).unwrap();

    // Today's startup path.
    let state = crate::app::build_state(config.clone()).await.unwrap();
    let db = &state.db;
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap();
    assert!(latest > PREVIOUS_RELEASE_MIGRATION);
    assert_eq!(schema_version(db).await, latest);
    let after_counts = table_counts(db).await;
    for (table, n) in &before_counts {
        assert_eq!(after_counts.get(table), Some(n), "rows of {table}");
    }
    assert_eq!(readings(db, &people, &call_id).await, before);

    // Tokens still sign in; the audit chain is intact.
    let signed_in = users::authenticate(db, &person("demo-admin").token)
        .await
        .unwrap();
    assert_eq!(signed_in.name, "demo-admin");
    let chain = audit::verify(db).await.unwrap();
    assert_eq!(chain.first_broken, None);
    assert_eq!(chain.events, before_counts["audit_events"]);

    // The bids are found through the index rebuilt from the upgraded database.
    let request = serde_json::from_value(json!({
        "tender": {
            "title": "Patient monitors for intensive care",
            "requirements": "Bedside monitors with a central station and HL7 interface",
        }
    }))
    .unwrap();
    let hits = state.bids.search(&request).unwrap().hits;
    assert_eq!(hits.first().map(|h| h.id.as_str()), Some("SB-101"));

    // The quote model fitted before the upgrade still loads.
    crate::quotes::service::recommender(db, &state.config)
        .await
        .unwrap();

    // The uploaded recording is intact, and the new database blob store works too.
    let rt = tokio::runtime::Handle::current();
    let blobs = state.blobs.clone();
    let report = tokio::task::spawn_blocking(move || blobs.verify_all(&rt, &|_| {}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.checked, report.ok), (1, 1));
    let in_db = BlobStore::database(db.clone(), dir.path().join("spool"));
    let blob = in_db
        .put(&b"after the upgrade"[..], "x", 100)
        .await
        .unwrap();
    let copy = in_db.local_file(&blob.sha256).await.unwrap();
    assert_eq!(std::fs::read(copy.path()).unwrap(), b"after the upgrade");
}
