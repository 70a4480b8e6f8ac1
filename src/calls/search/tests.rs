use super::*;
use crate::calls::extract::Objection;
use crate::calls::transcript::{Participant, Segment};
use crate::review::tests_support::World;
use crate::users::{self, Role};

struct Fixture {
    w: World,
    config: Config,
}

async fn fixture() -> Fixture {
    let w = World::new().await;
    let mut config = Config::default();
    config.data.dir = w._dir.path().join("data");
    Fixture { w, config }
}

fn who(name: &str, side: Side, role: Option<&str>) -> Participant {
    Participant {
        name: name.into(),
        side,
        role: role.map(str::to_string),
    }
}

async fn add_call(
    db: &Db,
    owner: &User,
    title: &str,
    (language, day): (&str, &str),
    participants: Vec<Participant>,
    lines: &[(Option<&str>, &str)],
) -> String {
    let t = CallTranscript {
        call_id: None,
        language: language.into(),
        call_date: Some(crate::calls::dates::Date::parse(day).unwrap()),
        title: title.into(),
        participants,
        segments: segments(lines),
        speakers: Default::default(),
    };
    records::import(db, owner, &t).await.unwrap().id
}

fn segments(lines: &[(Option<&str>, &str)]) -> Vec<Segment> {
    lines
        .iter()
        .enumerate()
        .map(|(i, (speaker, text))| Segment {
            id: i as u32,
            speaker: speaker.map(str::to_string),
            start_ms: i as u64 * 5_000,
            end_ms: i as u64 * 5_000 + 4_000,
            text: text.to_string(),
            label: None,
        })
        .collect()
}

async fn find(f: &Fixture, user: &User, req: SearchRequest) -> Result<SearchResponse> {
    search(&f.w.db, &f.config, user, &req).await
}

fn query(q: &str) -> SearchRequest {
    SearchRequest {
        query: q.into(),
        ..SearchRequest::default()
    }
}

fn calls_of(r: &SearchResponse) -> Vec<String> {
    let mut ids: Vec<String> = r.hits.iter().map(|h| h.call_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Three emea calls (two by `rep`, one by `other_rep`, one of them Mandarin) and an apac one.
async fn calls(f: &Fixture) -> [String; 4] {
    let db = &f.w.db;
    let a = add_call(
        db,
        &f.w.rep,
        "Acme renewal",
        ("en", "2026-03-02"),
        vec![
            who("Alice", Side::Seller, None),
            who("Bob", Side::Customer, Some("CTO, Acme Logistics")),
        ],
        &[
            (Some("Bob"), "What is the price per seat?"),
            (
                Some("Alice"),
                "It depends on volume. We connect to your CRM.",
            ),
            (None, "Sorry, you broke up there."),
        ],
    )
    .await;
    let b = add_call(
        db,
        &f.w.other_rep,
        "Globex pilot",
        ("en", "2026-03-10"),
        vec![
            who("Carol", Side::Seller, None),
            who("Dan", Side::Customer, Some("Head of IT, Globex")),
        ],
        &[
            (Some("Dan"), "Pricing for the pilot is fixed, right?"),
            (Some("Carol"), "Yes, the pilot pricing is fixed."),
        ],
    )
    .await;
    let c = add_call(
        db,
        &f.w.rep,
        "顺达物流车",
        ("zh", "2026-03-20"),
        vec![
            who("刘洋", Side::Seller, None),
            who("赵敏", Side::Customer, Some("财务经理，顺达同城配送")),
        ],
        &[
            (
                Some("赵敏"),
                "这个价格我们很难接受，比Salesforce的方案还贵。",
            ),
            (Some("刘洋"), "我们下周安排实施培训。"),
        ],
    )
    .await;
    let apac_rep = users::add(db, "apac-rep", Role::Rep, "apac")
        .await
        .unwrap()
        .user;
    let d = add_call(
        db,
        &apac_rep,
        "Initech pricing",
        ("en", "2026-03-11"),
        vec![who("Eve", Side::Seller, None)],
        &[(Some("Eve"), "Our price list for Initech.")],
    )
    .await;
    [a, b, c, d]
}

#[tokio::test]
async fn search_is_scoped_like_the_call_list() {
    let f = fixture().await;
    let [a, b, _, d] = calls(&f).await;
    let w = &f.w;
    // English stemming: "pricing" finds "price".
    let mine = find(&f, &w.rep, query("pricing")).await.unwrap();
    assert_eq!(calls_of(&mine), vec![a.clone()]);
    let hit = &mine.hits[0];
    assert_eq!(hit.snippet, "What is the <b>price</b> per seat?");
    assert_eq!(hit.link, format!("/calls/{a}?t=0"));
    assert_eq!(
        (hit.speaker.as_deref(), hit.side.as_str()),
        (Some("Bob"), "customer")
    );
    assert_eq!(hit.call_title, "Acme renewal");
    let theirs = find(&f, &w.other_rep, query("pricing")).await.unwrap();
    assert_eq!(calls_of(&theirs), vec![b.clone()]);
    let region = find(&f, &w.manager, query("pricing")).await.unwrap();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(calls_of(&region), both);
    let far = find(&f, &w.other_manager, query("pricing")).await.unwrap();
    assert_eq!(calls_of(&far), vec![d.clone()]);
    let all = find(&f, &w.admin, query("price")).await.unwrap();
    assert_eq!(calls_of(&all).len(), 3);
    // A rep may not name another rep; a manager may not name a rep of another region.
    let other = SearchRequest {
        rep: Some("other-rep".into()),
        ..query("pricing")
    };
    assert!(matches!(
        find(&f, &w.rep, other.clone()).await,
        Err(Error::Forbidden(_))
    ));
    assert_eq!(
        calls_of(&find(&f, &w.manager, other).await.unwrap()),
        vec![b]
    );
    let apac = SearchRequest {
        rep: Some("apac-rep".into()),
        ..query("pricing")
    };
    assert!(matches!(
        find(&f, &w.manager, apac).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        find(&f, &w.rep, query("  ")).await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn mandarin_queries_and_latin_words_in_mandarin_calls() {
    let f = fixture().await;
    let [_, _, c, _] = calls(&f).await;
    let r = find(&f, &f.w.rep, query("价格")).await.unwrap();
    assert_eq!(calls_of(&r), vec![c.clone()]);
    assert!(r.hits[0].snippet.contains("<b>价格</b>"), "{:?}", r.hits[0]);
    let r = find(&f, &f.w.rep, query("实施培训")).await.unwrap();
    assert_eq!(r.hits.len(), 1);
    assert_eq!((r.hits[0].segment_id, r.hits[0].start_ms), (1, 5_000));
    assert_eq!(r.hits[0].link, format!("/calls/{c}?t=5000"));
    // An English brand name said inside Mandarin speech.
    let r = find(&f, &f.w.rep, query("salesforce")).await.unwrap();
    assert_eq!(calls_of(&r), vec![c]);
}

#[tokio::test]
async fn filters_by_customer_date_tracker_and_objection_category() {
    let f = fixture().await;
    let [a, b, c, _] = calls(&f).await;
    let w = &f.w;
    let with = |req: SearchRequest| async { calls_of(&find(&f, &w.manager, req).await.unwrap()) };
    let customer = SearchRequest {
        customer: Some("ACME".into()),
        ..query("price")
    };
    assert_eq!(with(customer).await, vec![a.clone()]);
    let dates = SearchRequest {
        from: Some("2026-03-05".into()),
        to: Some("2026-03-31".into()),
        ..query("price")
    };
    assert_eq!(with(dates).await, vec![b.clone()]);
    // Tracker: calls where "implementation" fired (Globex: "pilot"; 顺达: 实施) — not Acme.
    let tracker = SearchRequest {
        tracker: Some("implementation".into()),
        ..query("pricing 价格")
    };
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(with(tracker).await, want);
    let unknown = SearchRequest {
        tracker: Some("weather".into()),
        ..query("price")
    };
    let err = find(&f, &w.manager, unknown).await.unwrap_err().to_string();
    assert!(err.contains("pricing"), "{err}");
    // Objection category: only calls with a stored objection of that category.
    let objection = Objection {
        category: Category::Price,
        raised_by: "Bob".into(),
        quote: "What is the price per seat?".into(),
        turn: 0,
        start_ms: 0,
        end_ms: 4_000,
        resolved: false,
        answer: "…".into(),
        confidence: 0.9,
        needs_relabel: false,
    };
    sqlx::query(
        "INSERT INTO insights (id, call_id, kind, body, quote, start_ms, end_ms, created_at) \
         VALUES ('i1', $1, 'objection', $2, $3, 0, 4000, 1)",
    )
    .bind(&a)
    .bind(serde_json::to_string(&objection).unwrap())
    .bind(&objection.quote)
    .execute(w.db.pool())
    .await
    .unwrap();
    let price = SearchRequest {
        objection_category: Some("price".into()),
        ..query("price")
    };
    assert_eq!(with(price).await, vec![a]);
    let budget = SearchRequest {
        objection_category: Some("budget".into()),
        ..query("price")
    };
    assert!(with(budget).await.is_empty());
    let bad = SearchRequest {
        objection_category: Some("cost".into()),
        ..query("price")
    };
    assert!(matches!(
        find(&f, &w.manager, bad).await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn changes_are_reindexed_and_a_missing_index_is_rebuilt() {
    let f = fixture().await;
    let [a, ..] = calls(&f).await;
    let w = &f.w;
    assert_eq!(
        find(&f, &w.rep, query("warranty"))
            .await
            .unwrap()
            .hits
            .len(),
        0
    );
    // A transcript stored again (new revision) is picked up by the next search.
    let call = records::get(&w.db, &a).await.unwrap();
    let mut t = records::transcript(&w.db, &call).await.unwrap().unwrap();
    t.segments[2].text = "Does the warranty cover batteries?".into();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    records::save_transcript(&w.db, &a, &t, "import")
        .await
        .unwrap();
    let r = find(&f, &w.rep, query("warranty")).await.unwrap();
    assert_eq!((r.hits.len(), r.hits[0].segment_id), (1, 2));
    // A change in place (same revision, e.g. speakers relabelled) needs reindex_call.
    t.segments[2].speaker = Some("Bob".into());
    sqlx::query("UPDATE transcripts SET segments = $1 WHERE call_id = $2")
        .bind(serde_json::to_string(&t.segments).unwrap())
        .bind(&a)
        .execute(w.db.pool())
        .await
        .unwrap();
    let before = find(&f, &w.rep, query("warranty")).await.unwrap();
    assert_eq!(before.hits[0].speaker, None);
    reindex_call(&w.db, &f.config, &a).await.unwrap();
    let after = find(&f, &w.rep, query("warranty")).await.unwrap();
    assert_eq!(after.hits[0].speaker.as_deref(), Some("Bob"));
    assert_eq!(after.hits[0].side, "customer");

    // A fresh (missing) index is rebuilt from the database.
    let fresh = CallIndex::open(&w._dir.path().join("fresh")).unwrap();
    let trackers = Trackers::load(&f.config).unwrap();
    let repair = fresh.reconcile(&w.db, &trackers).await.unwrap();
    assert_eq!((repair.reindexed, repair.removed), (4, 0));
    assert_eq!(fresh.num_docs(), 8);
    let again = fresh.reconcile(&w.db, &trackers).await.unwrap();
    assert_eq!(again.reindexed, 0);

    // Edited trackers relabel every call.
    let file = w._dir.path().join("trackers.toml");
    std::fs::write(&file, "[[tracker]]\nname = \"crm\"\nen = [\"CRM\"]\n").unwrap();
    let mut edited = f.config.clone();
    edited.calls.trackers = file.display().to_string();
    let crm = SearchRequest {
        tracker: Some("crm".into()),
        ..query("price")
    };
    let r = search(&w.db, &edited, &w.rep, &crm).await.unwrap();
    assert_eq!(calls_of(&r), vec![a]);
}

#[tokio::test]
async fn a_second_process_searches_read_only_and_takes_the_writer_when_free() {
    let f = fixture().await;
    calls(&f).await;
    let dir = f.w._dir.path().join("shared-index");
    let trackers = Trackers::load(&f.config).unwrap();
    let first = CallIndex::open(&dir).unwrap();
    let second = CallIndex::open(&dir).unwrap();
    // The first holds the writer: the second cannot write, and sees the first's commits.
    assert_eq!(
        second
            .reconcile(&f.w.db, &trackers)
            .await
            .unwrap()
            .reindexed,
        0
    );
    assert_eq!(
        first.reconcile(&f.w.db, &trackers).await.unwrap().reindexed,
        4
    );
    assert!(matches!(
        second.reindex(&f.w.db, &trackers, "x").await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        second
            .reconcile(&f.w.db, &trackers)
            .await
            .unwrap()
            .reindexed,
        0
    );
    assert_eq!(second.num_docs(), 8);
    drop(first);
    // Free again: the second takes over from the first's last commit.
    assert_eq!(
        second
            .reconcile(&f.w.db, &trackers)
            .await
            .unwrap()
            .reindexed,
        0
    );
    second.reindex(&f.w.db, &trackers, "x").await.unwrap();
    assert_eq!(second.num_docs(), 8);
}
