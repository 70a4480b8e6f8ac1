use super::*;
use crate::calls::trackers::BUILTIN;
use crate::calls::transcript::{Participant, Segment};

fn trackers() -> Trackers {
    Trackers::parse(BUILTIN, "builtin").unwrap()
}

fn seg(id: u32, speaker: Option<&str>, start_ms: u64, end_ms: u64, text: &str) -> Segment {
    Segment {
        id,
        speaker: speaker.map(str::to_string),
        start_ms,
        end_ms,
        text: text.into(),
        label: None,
    }
}

fn people(list: &[(&str, Side)]) -> Vec<Participant> {
    list.iter()
        .map(|(name, side)| Participant {
            name: name.to_string(),
            side: *side,
            role: None,
        })
        .collect()
}

fn transcript(
    language: &str,
    participants: Vec<Participant>,
    segments: Vec<Segment>,
) -> CallTranscript {
    CallTranscript {
        call_id: Some("c1".into()),
        language: language.into(),
        call_date: None,
        title: "t".into(),
        participants,
        segments,
        speakers: Default::default(),
    }
}

fn english_call() -> CallTranscript {
    transcript(
        "en",
        people(&[("Alice", Side::Seller), ("Bob", Side::Customer)]),
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
                "Our price is 40.5 dollars per seat.",
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
                "Yes, single sign-on is included.",
            ),
            seg(
                4,
                Some("Bob"),
                40_000,
                44_000,
                "what about the rollout timeline",
            ),
            seg(5, None, 44_000, 50_000, "Let's talk next week."),
        ],
    )
}

/// Where tracker `name` fired in `a`.
fn hits<'a>(a: &'a CallAnalytics, name: &str) -> &'a [crate::calls::trackers::TrackerHit] {
    &a.trackers.iter().find(|t| t.name == name).unwrap().hits
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn metrics_of_a_hand_built_call_have_the_known_values() {
    let a = analyze(&english_call(), &trackers());
    assert_eq!(a.talk_ms, 44_000);
    assert_eq!(a.span_ms, 50_000);
    let alice = a.speakers.iter().find(|s| s.speaker == "Alice").unwrap();
    assert_eq!(alice.talk_ms, 26_000);
    assert!(close(alice.talk_ratio, 26.0 / 44.0));
    assert_eq!(alice.side, "seller");
    let bob = a.speakers.iter().find(|s| s.speaker == "Bob").unwrap();
    assert_eq!(
        (bob.talk_ms, bob.questions, bob.side.as_str()),
        (12_000, 3, "customer")
    );
    let nobody = a
        .speakers
        .iter()
        .find(|s| s.speaker == UNATTRIBUTED)
        .unwrap();
    assert_eq!((nobody.talk_ms, nobody.side.as_str()), (6_000, "unknown"));
    assert!(close(a.sides.seller.talk_ratio, 26.0 / 44.0));
    assert!(close(a.sides.customer.talk_ratio, 12.0 / 44.0));
    assert!(close(a.sides.unknown.talk_ratio, 6.0 / 44.0));
    assert!(close(a.attributed_share, 38.0 / 44.0));
    let m = a.longest_monologue.unwrap();
    assert_eq!(
        (m.speaker.as_str(), m.start_ms, m.duration_ms),
        ("Alice", 0, 20_000)
    );
    assert_eq!(a.customer_questions, 3);
    assert_eq!(a.sides.seller.questions, 0);
    // Alice, Alice, Bob, Alice, Bob (the unattributed segment is skipped): 3 switches in 50 s.
    assert_eq!(a.speaker_switches, 3);
    assert!(close(a.switches_per_minute, 3.6));
    // Gaps 20–22 s and 36–40 s.
    assert_eq!(a.silence_ms, 6_000);
    assert!(close(a.silence_share, 0.12));
}

#[test]
fn trackers_fire_with_segment_time_and_speaker() {
    let a = analyze(&english_call(), &trackers());
    let fired = |name: &str| -> Vec<(u32, u64, Option<String>)> {
        hits(&a, name)
            .iter()
            .map(|h| (h.segment_id, h.start_ms, h.speaker.clone()))
            .collect()
    };
    let alice = Some("Alice".to_string());
    let bob = Some("Bob".to_string());
    assert_eq!(
        fired("pricing"),
        vec![(0, 0, alice.clone()), (1, 10_000, alice.clone())]
    );
    assert_eq!(fired("competitors"), vec![(2, 22_000, bob.clone())]);
    assert_eq!(
        fired("security"),
        vec![(2, 22_000, bob.clone()), (3, 30_000, alice)]
    );
    assert_eq!(fired("implementation"), vec![(4, 40_000, bob.clone())]);
    assert_eq!(fired("timeline"), vec![(4, 40_000, bob), (5, 44_000, None)]);
    assert!(fired("legal").is_empty());
    let pricing = a.trackers.iter().find(|t| t.name == "pricing").unwrap();
    assert_eq!(pricing.count, 2);
    assert_eq!(
        pricing.hits[1].phrases,
        vec!["price", "pricing", "per seat"]
    );
}

#[test]
fn mandarin_questions_trackers_and_diarizer_labels() {
    let t = transcript(
        "zh",
        people(&[("刘洋", Side::Seller), ("王志强", Side::Customer)]),
        vec![
            seg(0, Some("刘洋"), 0, 5_000, "王总好，今天聊一下报价。"),
            seg(
                1,
                Some("王志强"),
                5_000,
                9_000,
                "价格能不能再低一点？交付要多久",
            ),
            seg(2, Some("王志强"), 9_000, 12_000, "你们和友商比有什么优势吗"),
            seg(3, Some("Speaker 1"), 12_000, 15_000, "我们下周给您答复。"),
        ],
    );
    let a = analyze(&t, &trackers());
    assert_eq!(a.customer_questions, 3);
    let label = a
        .speakers
        .iter()
        .find(|s| s.speaker == "Speaker 1")
        .unwrap();
    assert_eq!(label.side, "unknown");
    assert!(close(a.sides.unknown.talk_ratio, 3.0 / 15.0));
    assert!(close(a.attributed_share, 1.0));
    assert_eq!(a.speaker_switches, 2);
    assert_eq!(a.silence_ms, 0);
    let segs = |name: &str| -> Vec<u32> { hits(&a, name).iter().map(|h| h.segment_id).collect() };
    assert_eq!(segs("pricing"), vec![0, 1]);
    assert_eq!(segs("implementation"), vec![1]);
    assert_eq!(segs("competitors"), vec![2]);
    assert_eq!(segs("timeline"), vec![3]);
}

#[test]
fn questions_in_both_languages() {
    let cases = [
        ("Can you send the contract", "en", 1),
        ("Can you send it? And what is the price?", "en", 2),
        ("We can send it. It costs 1.5 million.", "en", 0),
        ("Is it ready. Yes.", "en", 1),
        ("I wonder what it costs", "en", 0),
        ("这个价格可以吗", "zh", 1),
        ("你们怎么保证交付？", "zh", 1),
        ("预算是否已经批了", "zh", 1),
        ("你觉得呢。我们再看看。", "zh", 1),
        ("我们下周签合同。", "zh", 0),
        ("哪怕晚一点也可以。", "zh", 0),
        ("OK, 多少钱", "zh", 1),
    ];
    for (text, lang, want) in cases {
        assert_eq!(count_questions(text, lang), want, "{text}");
    }
}

#[test]
fn a_one_speaker_call_is_one_monologue_without_switches() {
    let t = transcript(
        "en",
        people(&[("Alice", Side::Seller)]),
        vec![
            seg(0, Some("Alice"), 1_000, 4_000, "Welcome to the demo."),
            seg(1, Some("Alice"), 5_000, 9_000, "Here is the dashboard."),
        ],
    );
    let a = analyze(&t, &trackers());
    assert_eq!(a.speakers.len(), 1);
    assert!(close(a.speakers[0].talk_ratio, 1.0));
    assert!(close(a.sides.seller.talk_ratio, 1.0));
    assert_eq!(a.speaker_switches, 0);
    assert_eq!(a.switches_per_minute, 0.0);
    let m = a.longest_monologue.unwrap();
    assert_eq!((m.start_ms, m.end_ms, m.duration_ms), (1_000, 9_000, 8_000));
    assert_eq!((a.span_ms, a.silence_ms), (8_000, 1_000));
    assert_eq!(a.customer_questions, 0);
}

#[test]
fn unattributed_and_odd_input_never_panics() {
    let empty = analyze(&transcript("en", vec![], vec![]), &trackers());
    assert_eq!(
        (empty.talk_ms, empty.span_ms, empty.speaker_switches),
        (0, 0, 0)
    );
    assert_eq!((empty.silence_share, empty.attributed_share), (0.0, 0.0));
    assert!(empty.longest_monologue.is_none());

    let t = transcript(
        "en",
        people(&[("Bob", Side::Customer)]),
        vec![
            seg(0, None, 0, 3_000, "Can you hear me?"),
            seg(1, None, 2_000, 6_000, "Yes."),
            // Reversed times are counted as zero length.
            seg(2, None, 9_000, 8_000, "Where were we?"),
        ],
    );
    let a = analyze(&t, &trackers());
    assert_eq!(a.speakers.len(), 1);
    assert_eq!(a.speakers[0].speaker, UNATTRIBUTED);
    assert!(close(a.sides.unknown.talk_ratio, 1.0));
    assert_eq!(a.attributed_share, 0.0);
    assert!(a.longest_monologue.is_none());
    // Unknown side: these questions are not customer questions.
    assert_eq!((a.customer_questions, a.sides.unknown.questions), (0, 2));
    // Span 0–9 s, covered 0–6 s (overlap once).
    assert_eq!((a.span_ms, a.silence_ms), (9_000, 3_000));
}

#[test]
fn objections_are_counted_per_monday_week_with_empty_weeks_kept() {
    // 2026-03-02 is a Monday; the range starts mid-week and ends on a Sunday.
    let raised = [
        ("2026-03-04", "price"),
        ("2026-03-08", "price"),  // Sunday: same week
        ("2026-03-09", "timing"), // next Monday
        ("2026-03-23", "price"),
        ("2026-03-01", "price"), // before the range: left out
        ("2026-03-30", "price"), // after it
        ("not a day", "price"),
    ];
    let trend = weekly("2026-03-03", "2026-03-29", raised).unwrap();
    let weeks: Vec<(&str, usize)> = trend
        .weeks
        .iter()
        .map(|w| (w.week.as_str(), w.total()))
        .collect();
    assert_eq!(
        weeks,
        [
            ("2026-03-02", 2),
            ("2026-03-09", 1),
            ("2026-03-16", 0),
            ("2026-03-23", 1)
        ]
    );
    assert_eq!(trend.weeks[1].counts["timing"], 1);
    assert_eq!(
        trend.categories,
        [("price".to_string(), 3), ("timing".to_string(), 1)]
    );
    assert_eq!(trend.total, 4);
    assert!(weekly("2026-03-10", "2026-03-01", []).is_err());
    assert!(
        weekly("2024-01-01", "2026-03-01", []).is_err(),
        "over two years"
    );
    assert!(weekly("2026-02-30", "2026-03-01", []).is_err());
}

#[tokio::test]
async fn weekly_objections_follow_the_viewers_scope() {
    use crate::users::{self, Role};
    let (_dir, db) = crate::store::temp_db().await;
    let add = |name: &'static str, role, region: &'static str| {
        let db = db.clone();
        async move { users::add(&db, name, role, region).await.unwrap().user }
    };
    let rep = add("rita", Role::Rep, "emea").await;
    let apac = add("kenji", Role::Rep, "apac").await;
    let manager = add("maria", Role::Manager, "emea").await;
    let admin = add("ada", Role::Admin, "hq").await;
    for (owner, day, category) in [
        (&rep, "2026-03-04", "price"),
        (&rep, "2026-03-11", "competitor"),
        (&apac, "2026-03-04", "timing"),
    ] {
        let mut t = english_call();
        t.call_date = Some(Date::parse(day).unwrap());
        let call = records::import(&db, owner, &t).await.unwrap();
        sqlx::query(
            "INSERT INTO insights (id, call_id, kind, body, quote, created_at) \
             VALUES ($1, $2, 'objection', $3, 'q', 0)",
        )
        .bind(crate::store::new_id())
        .bind(&call.id)
        .bind(
            serde_json::json!({"category": category, "raised_by": "Bob", "quote": "q",
                "turn": 0, "start_ms": 0, "end_ms": 1, "resolved": false, "answer": "a",
                "confidence": 0.9})
            .to_string(),
        )
        .execute(db.pool())
        .await
        .unwrap();
    }
    let count = |viewer: User, region: Option<&'static str>| {
        let db = db.clone();
        async move {
            let t = objections_by_week(&db, &viewer, region, "2026-03-01", "2026-03-31")
                .await
                .unwrap();
            (
                t.total,
                t.categories.into_iter().map(|c| c.0).collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(
        count(manager.clone(), None).await,
        (2, vec!["competitor".into(), "price".into()])
    );
    assert_eq!(count(apac.clone(), None).await, (1, vec!["timing".into()]));
    assert_eq!(count(admin.clone(), None).await.0, 3);
    assert_eq!(count(admin, Some("apac")).await.0, 1);
    let trend = objections_by_week(&db, &rep, None, "2026-03-01", "2026-03-31")
        .await
        .unwrap();
    assert_eq!(trend.weeks.len(), 6, "weeks of Feb 23 to Mar 30");
    assert!(
        objections_by_week(&db, &rep, None, "", "2026-03-31")
            .await
            .is_err()
    );
}
