//! Review and governance through the real binary: a capability's proposals (written into the
//! server's database the way the call, bid and quote pipelines write them) are routed by an
//! operator-edited rules file, decided over HTTP within each user's scope, and audited in a
//! chain that `dealdesk audit verify` checks.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use dealdesk::review::{self, Kind, Proposal, Subject};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Writes a proposal into the server's database, as a capability's job would.
fn propose(dir: &Path, kind: Kind, owner_name: &str, discount: Option<f64>) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = common::open_db(dir).await;
        let owner = dealdesk::users::active(&db, owner_name).await.unwrap();
        let mut tx = db.pool().begin().await.unwrap();
        let id = review::propose(
            &mut tx,
            &Proposal {
                kind,
                subject: Subject::Deal,
                subject_id: format!("deal-{owner_name}"),
                region: owner.region.clone(),
                owner_id: Some(owner.id.clone()),
                model_id: "quotes-logit".into(),
                model_version: "test".into(),
                prompt_version: None,
                input: json!({"list_price": 1000}),
                output: json!({"discount": discount}),
                explanation: None,
                confidence: Some(0.9),
                discount,
                deal_value: Some(1000.0),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    })
}

#[test]
fn proposals_are_routed_by_editable_rules_decided_in_scope_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(&rules_path, review::rules::DEFAULT_RULES).unwrap();
    let rep = add_user(dir.path(), "rita", "rep", "emea");
    let other_rep = add_user(dir.path(), "omar", "rep", "emea");
    let manager = add_user(dir.path(), "maria", "manager", "emea");
    let apac_manager = add_user(dir.path(), "ken", "manager", "apac");
    let admin = add_user(dir.path(), "ada", "admin", "hq");

    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_REVIEW_RULES", &rules_path);
    let server = Server::start(cmd);
    let http = client();
    let get = |path: &str, token: &str| server.get(path, token);
    let post = |path: &str, token: &str, body: Value| server.post(path, token, body);
    let queue = |token: &str| -> Vec<Value> {
        let resp = get("/reviews?state=proposed", token);
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<Value>().unwrap()["items"]
            .as_array()
            .unwrap()
            .clone()
    };

    let big = propose(dir.path(), Kind::Quote, "rita", Some(0.30));
    let small = propose(dir.path(), Kind::Quote, "rita", Some(0.05));
    let task = propose(dir.path(), Kind::Commitment, "rita", None);

    // The shipped rules: the small quote is approved automatically, the big one needs a manager.
    let rita_queue = queue(&rep);
    assert_eq!(rita_queue.len(), 2, "{rita_queue:?}");
    let auto = get(&format!("/recommendations/{small}"), &rep)
        .json::<Value>()
        .unwrap();
    assert_eq!(auto["state"], "approved");
    assert!(queue(&other_rep).is_empty());
    assert!(queue(&apac_manager).is_empty());
    assert_eq!(queue(&manager).len(), 2);

    let approve = json!({"action": "approve"});
    let resp = post(
        &format!("/recommendations/{big}/review"),
        &rep,
        approve.clone(),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(
        &format!("/recommendations/{big}/review"),
        &apac_manager,
        approve.clone(),
    );
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = post(
        &format!("/recommendations/{big}/review"),
        &manager,
        json!({"action": "override", "replacement": {"discount": 0.2}, "reason": ""}),
    );
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = post(
        &format!("/recommendations/{big}/review"),
        &manager,
        json!({"action": "override", "replacement": {"discount": 0.2}, "reason": "strategic logo"}),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().unwrap()["final_output"]["discount"],
        0.2
    );
    let resp = post(
        &format!("/recommendations/{big}/review"),
        &admin,
        approve.clone(),
    );
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    // Operations tighten the rules without code: now commitments need a manager too.
    let stricter = review::rules::DEFAULT_RULES.replace(
        "[[rule]]\nname = \"discounts above 15% need a manager\"",
        "[[rule]]\nname = \"commitments need a manager\"\nkinds = [\"commitment\"]\nroute = \"manager\"\n\n[[rule]]\nname = \"discounts above 15% need a manager\"",
    );
    assert_ne!(stricter, review::rules::DEFAULT_RULES);
    write_later(&rules_path, &stricter);
    let resp = post(
        &format!("/recommendations/{task}/review"),
        &rep,
        approve.clone(),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A broken edit is refused, reported on /readyz, and the last good rules stay.
    write_later(&rules_path, "default = [");
    let ready: Value = http
        .get(format!("{}/readyz", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        ready["review_rules"]
            .as_str()
            .unwrap()
            .contains("rules.toml"),
        "{ready}"
    );
    let rec = get(&format!("/recommendations/{task}"), &manager)
        .json::<Value>()
        .unwrap();
    assert_eq!(rec["rule"], "commitments need a manager");
    let resp = post(
        &format!("/recommendations/{task}/review"),
        &manager,
        approve,
    );
    assert_eq!(resp.status(), StatusCode::OK);

    // The audit trail: managers read their region's subjects, admins verify the chain.
    let events: Vec<Value> = get(&format!("/audit?subject={big}"), &manager)
        .json()
        .unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["recommendation.proposed", "recommendation.overridden"]
    );
    assert_eq!(events[1]["details"]["reason"], "strategic logo");
    let resp = get(&format!("/audit?subject={big}"), &apac_manager);
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let verify: Value = get("/audit/verify", &admin).json().unwrap();
    assert!(verify["first_broken"].is_null(), "{verify}");

    // The ROI numbers and the Prometheus metrics.
    let m: Value = get("/metrics/ai", &manager).json().unwrap();
    let kind = |name: &str| {
        m["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(kind("quote")["auto_approved"], 1, "{m}");
    assert_eq!(kind("quote")["overridden"], 1, "{m}");
    assert_eq!(kind("commitment")["approved"], 1, "{m}");
    assert_eq!(kind("quote")["override_rate"], 0.5, "{m}");
    let apac: Value = get("/metrics/ai", &apac_manager).json().unwrap();
    assert_eq!(apac["region"], "apac");
    assert!(
        apac["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["proposed"] == 0)
    );
    let resp = get("/metrics", &admin);
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().unwrap();
    assert!(
        text.contains("dealdesk_recommendations{kind=\"quote\",state=\"approved\"} 1"),
        "{text}"
    );
    drop(server);
    let today = jiff::Zoned::now().date();
    let out = run_ok(dealdesk(dir.path()).args([
        "report",
        "roi",
        "--from",
        &today.yesterday().unwrap().to_string(),
        "--to",
        &today.to_string(),
        "--json",
    ]));
    let roi: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(roi["kinds"].as_array().unwrap().len(), 4);

    // The CLI sees the same scoped queue and checks rules files before they go live.
    let out = run_ok(
        dealdesk(dir.path()).args(["review", "list", "--as", "rita", "--state", "all", "--json"]),
    );
    let mine: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(mine.len(), 3);
    let out = run_ok(
        dealdesk(dir.path()).args(["review", "list", "--as", "omar", "--state", "all", "--json"]),
    );
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 0);
    let out = dealdesk(dir.path())
        .args(["review", "rules", "--check"])
        .arg(&rules_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rules.toml"));

    // Someone edits the database directly: the CLI names the broken event and fails.
    let out = run_ok(dealdesk(dir.path()).args(["audit", "verify", "--json"]));
    let intact: Value = serde_json::from_str(&out).unwrap();
    // Three proposals, one automatic approval, one override, one approval.
    assert_eq!(intact["events"], 6, "{intact}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = common::open_db(dir.path()).await;
        sqlx::query("UPDATE audit_events SET actor_id = 'someone-else' WHERE seq = 4")
            .execute(db.pool())
            .await
            .unwrap();
    });
    let out = dealdesk(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("BROKEN at event 4"), "{stdout}");
}

/// Rewrites a file with a modification time clearly after the previous one.
fn write_later(path: &Path, text: &str) {
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(path, text).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}
