//! Call analytics and search across calls through the real binary over HTTP (and the CLI),
//! on transcripts written for this test and imported (no ASR; the analysis job runs the LLM).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Server, add_user, dealdesk, poll, run_ok};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn seg(id: u32, speaker: Option<&str>, start_ms: u64, end_ms: u64, text: &str) -> Value {
    json!({"id": id, "speaker": speaker, "start_ms": start_ms, "end_ms": end_ms, "text": text})
}

fn call(
    language: &str,
    date: &str,
    title: &str,
    participants: Value,
    segments: Vec<Value>,
) -> Value {
    json!({"language": language, "call_date": date, "title": title,
           "participants": participants, "segments": segments})
}

fn acme() -> Value {
    call(
        "en",
        "2026-03-02",
        "Acme renewal",
        json!([{"name": "Alice", "side": "seller"},
               {"name": "Bob", "side": "customer", "role": "CTO, Acme Logistics"}]),
        vec![
            seg(
                0,
                Some("Alice"),
                0,
                10_000,
                "Hi Bob, thanks for joining. Let me walk you through the pricing.",
            ),
            seg(
                1,
                Some("Alice"),
                10_000,
                20_000,
                "Our price is forty dollars per seat, and the rollout takes six weeks.",
            ),
            seg(
                2,
                Some("Bob"),
                22_000,
                30_000,
                "How does that compare with Salesforce? Is SSO included?",
            ),
            seg(
                3,
                Some("Alice"),
                30_000,
                36_000,
                "Yes, single sign-on is included in every plan.",
            ),
            seg(
                4,
                Some("Bob"),
                40_000,
                44_000,
                "Honestly, the price is too high for our budget this year.",
            ),
            seg(
                5,
                Some("Alice"),
                44_000,
                50_000,
                "I will send you a revised quote by Friday.",
            ),
        ],
    )
}

fn shunda() -> Value {
    call(
        "zh",
        "2026-03-20",
        "顺达物流车报价",
        json!([{"name": "刘洋", "side": "seller"},
               {"name": "赵敏", "side": "customer", "role": "财务经理，顺达同城配送"}]),
        vec![
            seg(
                0,
                Some("刘洋"),
                0,
                6_000,
                "赵经理您好，今天想确认一下报价。",
            ),
            seg(
                1,
                Some("赵敏"),
                6_000,
                12_000,
                "你们的价格比友商贵了不少，能不能再便宜一点？",
            ),
            seg(
                2,
                Some("刘洋"),
                12_000,
                18_000,
                "我们会在下周五之前给您一个新的方案。",
            ),
            seg(
                3,
                Some("赵敏"),
                18_000,
                24_000,
                "实施周期要多久？数据安全怎么保证",
            ),
        ],
    )
}

fn globex() -> Value {
    call(
        "en",
        "2026-03-10",
        "Globex pilot",
        json!([{"name": "Carol", "side": "seller"}, {"name": "Dan", "side": "customer"}]),
        vec![
            seg(
                0,
                Some("Dan"),
                0,
                5_000,
                "Is the pricing for the pilot fixed?",
            ),
            seg(
                1,
                Some("Carol"),
                5_000,
                9_000,
                "Yes, the pilot price is fixed for three months.",
            ),
        ],
    )
}

fn webinar() -> Value {
    call(
        "en",
        "2026-04-01",
        "Product webinar",
        json!([{"name": "Alice", "side": "seller"}]),
        vec![
            seg(
                0,
                Some("Alice"),
                1_000,
                4_000,
                "Welcome to the product webinar.",
            ),
            seg(
                1,
                Some("Alice"),
                5_000,
                9_000,
                "Today we cover the new dashboards.",
            ),
        ],
    )
}

fn unattributed() -> Value {
    call(
        "en",
        "2026-04-02",
        "Phone call",
        json!([{"name": "Alice", "side": "seller"}, {"name": "Frank", "side": "customer"}]),
        vec![
            seg(0, None, 0, 3_000, "Can you hear me?"),
            seg(1, None, 3_500, 8_000, "Yes, go ahead, what is the price?"),
        ],
    )
}

fn ok(resp: reqwest::blocking::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn close(v: &Value, want: f64) -> bool {
    (v.as_f64().unwrap() - want).abs() < 1e-9
}

fn hit_calls(v: &Value) -> BTreeSet<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["call_id"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn analytics_and_search_over_http_and_cli_with_role_scoping() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rep-a", "rep", "emea");
    let other_rep = add_user(dir.path(), "rep-b", "rep", "emea");
    let manager = add_user(dir.path(), "mgr-emea", "manager", "emea");
    let far_manager = add_user(dir.path(), "mgr-apac", "manager", "apac");
    let server = Server::start(dealdesk(dir.path()));

    let import = |token: &str, t: Value| -> String {
        let resp = server.post("/calls/import-transcript", token, t);
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let v: Value = resp.json().unwrap();
        v["call"]["id"].as_str().unwrap().to_string()
    };
    let a = import(&rep, acme());
    let b = import(&rep, shunda());
    let c = import(&other_rep, globex());
    let d = import(&rep, webinar());
    let e = import(&rep, unattributed());
    // Analytics need only the transcript; the analysis job (LLM) runs meanwhile.
    let analytics =
        |token: &str, id: &str| ok(server.get(&format!("/calls/{id}/analytics"), token));

    // Hand-built call with known answers.
    let an = analytics(&rep, &a);
    assert_eq!(
        (an["talk_ms"].as_u64(), an["span_ms"].as_u64()),
        (Some(44_000), Some(50_000))
    );
    assert!(
        close(&an["sides"]["seller"]["talk_ratio"], 32.0 / 44.0),
        "{an}"
    );
    assert!(
        close(&an["sides"]["customer"]["talk_ratio"], 12.0 / 44.0),
        "{an}"
    );
    let bob = an["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["speaker"] == "Bob")
        .unwrap();
    assert!(close(&bob["talk_ratio"], 12.0 / 44.0));
    assert_eq!(an["longest_monologue"]["speaker"], "Alice");
    assert_eq!(an["longest_monologue"]["duration_ms"], 20_000);
    assert_eq!(an["customer_questions"], 2);
    assert_eq!(an["speaker_switches"], 4);
    assert!(close(&an["switches_per_minute"], 4.8));
    assert!(close(&an["silence_share"], 0.12));
    let fired = |an: &Value, name: &str| -> Vec<(u64, u64, Value)> {
        an["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["segment_id"].as_u64().unwrap(),
                    h["start_ms"].as_u64().unwrap(),
                    h["speaker"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(fired(&an, "competitors"), vec![(2, 22_000, json!("Bob"))]);
    assert_eq!(
        fired(&an, "implementation"),
        vec![(1, 10_000, json!("Alice"))]
    );
    let pricing: Vec<u64> = fired(&an, "pricing").iter().map(|h| h.0).collect();
    assert_eq!(pricing, vec![0, 1, 4, 5]);
    assert_eq!(fired(&an, "timeline"), vec![(5, 44_000, json!("Alice"))]);

    // Mandarin: questions and trackers.
    let zh = analytics(&rep, &b);
    assert_eq!(zh["customer_questions"], 3, "{zh}");
    assert_eq!(fired(&zh, "competitors"), vec![(1, 6_000, json!("赵敏"))]);
    assert_eq!(fired(&zh, "security"), vec![(3, 18_000, json!("赵敏"))]);
    assert_eq!(fired(&zh, "timeline"), vec![(2, 12_000, json!("刘洋"))]);
    let zh_pricing: Vec<u64> = fired(&zh, "pricing").iter().map(|h| h.0).collect();
    assert_eq!(zh_pricing, vec![0, 1]);

    // One speaker; unattributed segments.
    let one = analytics(&rep, &d);
    assert_eq!(one["speaker_switches"], 0);
    assert_eq!(one["speakers"].as_array().unwrap().len(), 1);
    assert!(close(&one["sides"]["seller"]["talk_ratio"], 1.0));
    assert_eq!(one["longest_monologue"]["duration_ms"], 8_000);
    let un = analytics(&rep, &e);
    assert_eq!(un["speakers"][0]["speaker"], "unattributed");
    assert_eq!(un["speakers"][0]["side"], "unknown");
    assert!(close(&un["attributed_share"], 0.0));
    assert!(un["longest_monologue"].is_null());
    assert_eq!(un["customer_questions"], 0);

    // Scope: another rep and another region's manager do not see the call; its manager does.
    assert_eq!(
        server
            .get(&format!("/calls/{a}/analytics"), &other_rep)
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .get(&format!("/calls/{a}/analytics"), &far_manager)
            .status(),
        StatusCode::NOT_FOUND
    );
    analytics(&manager, &a);

    // Wait for the analyses (insights and tasks), then aggregate.
    for (token, id) in [
        (&rep, &a),
        (&rep, &b),
        (&other_rep, &c),
        (&rep, &d),
        (&rep, &e),
    ] {
        poll(Duration::from_secs(900), || {
            std::thread::sleep(Duration::from_millis(500));
            let call = ok(server.get(&format!("/calls/{id}"), token));
            assert_ne!(call["status"], "failed", "{call}");
            (call["status"] == "done").then_some(())
        });
    }
    let march = "/analytics/calls?from=2026-03-01&to=2026-03-31";
    let mine = ok(server.get(march, &rep));
    assert_eq!(mine["total"]["calls"], 2);
    assert!(
        close(&mine["total"]["sides"]["seller"]["talk_ratio"], 44.0 / 68.0),
        "{mine}"
    );
    assert_eq!(mine["total"]["customer_questions"], 5);
    assert_eq!(mine["by_rep"].as_array().unwrap().len(), 1);
    let resp = server.get(&format!("{march}&rep=rep-b"), &rep);
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.get("/analytics/calls?from=March", &rep).status(),
        StatusCode::BAD_REQUEST
    );
    let far = ok(server.get(march, &far_manager));
    assert_eq!(far["total"]["calls"], 0);

    // A commitment kept: the manager's aggregate matches the tasks and insights of the calls.
    let mut objections: BTreeMap<String, u64> = BTreeMap::new();
    let mut with_category: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut total, mut kept, mut overdue) = (0, 0, 0);
    let today = ok(server.get(march, &manager))["today"]
        .as_str()
        .unwrap()
        .to_string();
    for id in [&a, &b, &c, &d, &e] {
        let march_call = [&a, &b, &c].contains(&id);
        let tasks = ok(server.get(&format!("/calls/{id}/tasks"), &manager));
        if let Some(first) = tasks.as_array().unwrap().first() {
            let task = first["id"].as_str().unwrap();
            ok(server.post(
                &format!("/calls/{id}/tasks/{task}"),
                &manager,
                json!({"status": "done"}),
            ));
        }
        for t in ok(server.get(&format!("/calls/{id}/tasks"), &manager))
            .as_array()
            .unwrap()
        {
            if !march_call {
                continue;
            }
            total += 1;
            if t["status"] == "done" {
                kept += 1;
            } else if t["due_date"].as_str().is_some_and(|d| d < today.as_str()) {
                overdue += 1;
            }
        }
        for o in ok(server.get(&format!("/calls/{id}/insights"), &manager))["objections"]
            .as_array()
            .unwrap()
        {
            let cat = o["category"].as_str().unwrap().to_string();
            if march_call {
                *objections.entry(cat.clone()).or_default() += 1;
            }
            with_category.entry(cat).or_default().insert(id.clone());
        }
    }
    let team = ok(server.get(march, &manager));
    assert_eq!(team["total"]["calls"], 3);
    let reps: Vec<&str> = team["by_rep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rep"].as_str().unwrap())
        .collect();
    assert_eq!(reps, vec!["rep-a", "rep-b"]);
    let commitments = &team["total"]["commitments"];
    assert_eq!(
        (commitments["total"].as_u64(), commitments["kept"].as_u64()),
        (Some(total), Some(kept))
    );
    assert_eq!(commitments["overdue"].as_u64(), Some(overdue));
    assert!(
        kept >= 1,
        "the LLM found a commitment (\"I will send you a revised quote by Friday\")"
    );
    let counted: BTreeMap<String, u64> =
        serde_json::from_value(team["total"]["objections"].clone()).unwrap();
    assert_eq!(counted, objections);
    assert!(
        !objections.is_empty(),
        "the LLM found an objection (\"the price is too high\")"
    );
    assert_eq!(team["total"]["trackers"]["competitors"]["calls"], 2);

    // Search: scoped like GET /calls; stemming; Mandarin.
    let search = |token: &str, body: Value| ok(server.post("/calls/search", token, body));
    let r = search(&rep, json!({"query": "pricing"}));
    assert_eq!(hit_calls(&r), set(&[&a, &e]));
    let top = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["call_id"] == a.as_str() && h["segment_id"] == 4)
        .unwrap();
    assert_eq!(top["link"], format!("/calls/{a}?t=40000"));
    assert_eq!(top["speaker"], "Bob");
    assert!(
        top["snippet"].as_str().unwrap().contains("<b>price</b>"),
        "{top}"
    );
    assert_eq!(
        hit_calls(&search(&other_rep, json!({"query": "pricing"}))),
        set(&[&c])
    );
    assert_eq!(
        hit_calls(&search(&manager, json!({"query": "pricing"}))),
        set(&[&a, &c, &e])
    );
    assert!(hit_calls(&search(&far_manager, json!({"query": "pricing"}))).is_empty());
    let r = search(&rep, json!({"query": "价格"}));
    assert_eq!(hit_calls(&r), set(&[&b]));
    assert_eq!(r["hits"][0]["segment_id"], 1);
    assert!(
        r["hits"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<b>价格</b>")
    );
    // Filters: tracker, objection category (each against what the calls hold), customer, rep.
    let everything = json!("price 价格 quote 报价");
    assert_eq!(
        hit_calls(&search(
            &manager,
            json!({"query": everything, "tracker": "competitors"})
        )),
        set(&[&a, &b])
    );
    for (category, calls) in &with_category {
        let r = search(
            &manager,
            json!({"query": everything, "objection_category": category}),
        );
        assert_eq!(&hit_calls(&r), calls, "{category}");
    }
    assert_eq!(
        hit_calls(&search(
            &manager,
            json!({"query": everything, "customer": "顺达"})
        )),
        set(&[&b])
    );
    assert_eq!(
        hit_calls(&search(
            &manager,
            json!({"query": everything, "rep": "rep-b"})
        )),
        set(&[&c])
    );
    assert_eq!(
        server
            .post(
                "/calls/search",
                &rep,
                json!({"query": "price", "rep": "rep-b"})
            )
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server
            .post(
                "/calls/search",
                &rep,
                json!({"query": "price", "tracker": "weather"})
            )
            .status(),
        StatusCode::BAD_REQUEST
    );

    // The CLI acts as a named user with the same scope (the server holds the index writer).
    let out =
        run_ok(dealdesk(dir.path()).args(["calls", "search", "价格", "--as", "rep-a", "--json"]));
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(hit_calls(&cli), set(&[&b]));
    let out =
        run_ok(dealdesk(dir.path()).args(["calls", "analytics", &a, "--as", "rep-a", "--json"]));
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["speaker_switches"], 4);
    let out = run_ok(dealdesk(dir.path()).args([
        "calls",
        "analytics",
        "--rep",
        "rep-a",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--json",
    ]));
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["total"]["calls"], 2);
    let denied = dealdesk(dir.path())
        .args(["calls", "analytics", &a, "--as", "rep-b"])
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("no call"));

    // A transcript changed in the database is re-indexed before the next search.
    assert!(hit_calls(&search(&rep, json!({"query": "warranty"}))).is_empty());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = common::open_db(dir.path()).await;
        let mut t = acme();
        t["segments"][3]["text"] = json!("Yes, the warranty covers the batteries.");
        sqlx::query("UPDATE transcripts SET segments = $1, created_at = $2 WHERE call_id = $3")
            .bind(t["segments"].to_string())
            .bind(dealdesk::store::now_ms() + 1)
            .bind(&a)
            .execute(db.pool())
            .await
            .unwrap();
    });
    let r = search(&rep, json!({"query": "warranties"}));
    assert_eq!(hit_calls(&r), set(&[&a]));
    assert_eq!(r["hits"][0]["segment_id"], 3);
}
