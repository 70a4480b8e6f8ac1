use super::*;
use crate::calls::extract::{Category, Dropped, Extraction, PassStats};
use crate::calls::records::NewCall;
use crate::calls::tasks;
use crate::calls::transcript::{Participant, Segment};
use crate::review::Rules;
use crate::review::tests_support::World;

fn segment(id: u32, label: &str, text: &str) -> Segment {
    Segment {
        id,
        speaker: Some(label.into()),
        label: Some(label.into()),
        start_ms: id as u64 * 5000,
        end_ms: id as u64 * 5000 + 4000,
        text: text.into(),
    }
}

/// A diarized call of `w.rep` with nothing mapped: a commitment by Speaker 1, an objection by
/// each speaker (side unknown, so both kept).
async fn diarized_call(w: &World) -> String {
    let participants = vec![
        Participant {
            name: "Daniel Okafor".into(),
            side: Side::Seller,
            role: None,
        },
        Participant {
            name: "Susan Whitfield".into(),
            side: Side::Customer,
            role: None,
        },
    ];
    let call = records::create(
        &w.db,
        &w.rep,
        &NewCall {
            title: "pumps".into(),
            call_date: None,
            language: Some("en".into()),
            participants: participants.clone(),
            blob_sha256: None,
            source: "upload",
            channels: "mix".into(),
        },
    )
    .await
    .unwrap();
    let t = CallTranscript {
        call_id: None,
        language: "en".into(),
        call_date: None,
        title: String::new(),
        participants,
        segments: vec![
            segment(
                0,
                "Speaker 1",
                "I'll send the brochure tomorrow. The price is high for us.",
            ),
            segment(1, "Speaker 2", "The price is too high for our budget."),
        ],
        speakers: [("Speaker 1".into(), None), ("Speaker 2".into(), None)].into(),
    };
    t.validate().unwrap();
    records::save_transcript(&w.db, &call.id, &t, "whisper-base")
        .await
        .unwrap();
    let objection = |by: &str, quote: &str, turn: u32| Objection {
        category: Category::Price,
        raised_by: by.into(),
        needs_relabel: true,
        quote: quote.into(),
        turn,
        start_ms: 0,
        end_ms: 0,
        resolved: false,
        answer: "Walk through the value.".into(),
        confidence: 0.7,
    };
    let ex = Extraction {
        commitments: vec![Commitment {
            owner: "Speaker 1".into(),
            side: None,
            needs_relabel: true,
            action: "send the brochure".into(),
            due_date: None,
            due_text: None,
            quote: "I'll send the brochure tomorrow.".into(),
            turn: 0,
            start_ms: 0,
            end_ms: 4000,
            confidence: 0.7,
        }],
        objections: vec![
            objection("Speaker 1", "The price is high for us.", 0),
            objection("Speaker 2", "The price is too high for our budget.", 1),
        ],
        injections: vec![],
        dropped: Dropped::default(),
        stats: PassStats::default(),
        model_id: "qwen".into(),
        prompt_versions: vec!["c@1".into(), "o@1".into()],
    };
    records::save_analysis(&w.db, &call, &ex, &Rules::builtin())
        .await
        .unwrap();
    call.id
}

fn changes(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(l, n)| (l.to_string(), n.map(str::to_string)))
        .collect()
}

#[tokio::test]
async fn relabel_reattributes_items_and_tasks_is_audited_and_scoped() {
    let w = World::new().await;
    let id = diarized_call(&w).await;
    let tasks_before = tasks::list(w.db.pool(), &id).await.unwrap();
    assert_eq!(
        (
            tasks_before[0].owner.as_str(),
            tasks_before[0].side.as_str()
        ),
        ("Speaker 1", "unknown")
    );
    let both = changes(&[
        ("Speaker 1", Some("daniel okafor")),
        ("Speaker 2", Some("Susan Whitfield")),
    ]);

    // Out of scope: another rep, a manager of another region — the call is not found.
    for user in [&w.other_rep, &w.other_manager] {
        let e = relabel(&w.db, user, &id, &both).await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    }
    // Bad input is refused with a reason and changes nothing.
    for (bad, why) in [
        (
            changes(&[("Speaker 9", Some("Daniel Okafor"))]),
            "not a speaker label",
        ),
        (
            changes(&[("Speaker 1", Some("Priya Nair"))]),
            "not a participant",
        ),
        (changes(&[]), "no labels given"),
    ] {
        let e = relabel(&w.db, &w.rep, &id, &bad).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
        assert!(e.to_string().contains(why), "{e}");
    }
    let untouched = records::insights(&w.db, &id).await.unwrap();
    assert_eq!(untouched.objections.len(), 2);
    assert!(
        audit::list(&w.db, Some(&format!("call:{id}")), 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.action != "call.speakers_relabelled")
    );

    // The rep maps both labels.
    let out = relabel(&w.db, &w.rep, &id, &both).await.unwrap();
    assert_eq!(out.speakers["Speaker 1"].as_deref(), Some("Daniel Okafor"));
    let c = &out.insights.commitments[0];
    assert_eq!(
        (c.owner.as_str(), c.side, c.needs_relabel),
        ("Daniel Okafor", Some(Side::Seller), false)
    );
    // Speaker 1 is on the seller side: their "objection" goes; Susan's stays, attributed.
    assert_eq!(out.objections_removed, 1);
    assert_eq!(out.insights.objections.len(), 1);
    let o = &out.insights.objections[0];
    assert_eq!(
        (o.raised_by.as_str(), o.needs_relabel),
        ("Susan Whitfield", false)
    );
    let task = &tasks::list(w.db.pool(), &id).await.unwrap()[0];
    assert_eq!(
        (task.owner.as_str(), task.side.as_str()),
        ("Daniel Okafor", "seller")
    );
    // The undecided recommendations follow: a reviewer decides the re-attributed items.
    let recs = crate::review::queue::for_subject(&w.db, &w.rep, "call", &id)
        .await
        .unwrap();
    let owners: Vec<&str> = recs
        .iter()
        .filter_map(|r| r.output.get("owner").or_else(|| r.output.get("raised_by")))
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(owners.contains(&"Daniel Okafor"), "{owners:?}");
    assert!(owners.contains(&"Susan Whitfield"), "{owners:?}");
    assert!(!owners.contains(&"Speaker 2"), "{owners:?}");
    assert_eq!(
        task.id, tasks_before[0].id,
        "the task itself is kept (status, link)"
    );
    let call = records::get(&w.db, &id).await.unwrap();
    let t = records::transcript(&w.db, &call).await.unwrap().unwrap();
    assert_eq!(t.segments[0].speaker.as_deref(), Some("Daniel Okafor"));
    assert_eq!(t.segments[0].label.as_deref(), Some("Speaker 1"));
    assert_eq!(t.segments[1].speaker.as_deref(), Some("Susan Whitfield"));

    // A manager of the region unmaps Speaker 1: the commitment goes back to the label.
    let out = relabel(&w.db, &w.manager, &id, &changes(&[("Speaker 1", None)]))
        .await
        .unwrap();
    let c = &out.insights.commitments[0];
    assert_eq!(
        (c.owner.as_str(), c.side, c.needs_relabel),
        ("Speaker 1", None, true)
    );
    let task = &tasks::list(w.db.pool(), &id).await.unwrap()[0];
    assert_eq!(
        (task.owner.as_str(), task.side.as_str()),
        ("Speaker 1", "unknown")
    );

    // Both changes are in the audit chain, with who did it and the mapping before and after.
    let events: Vec<_> = audit::list(&w.db, Some(&format!("call:{id}")), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "call.speakers_relabelled")
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let by_rep = events
        .iter()
        .find(|e| e.actor_id.as_deref() == Some(w.rep.id.as_str()))
        .unwrap();
    assert_eq!(
        by_rep.before.as_ref().unwrap()["Speaker 1"],
        serde_json::Value::Null
    );
    assert_eq!(by_rep.after.as_ref().unwrap()["Speaker 1"], "Daniel Okafor");
    assert_eq!(by_rep.details.as_ref().unwrap()["objections_removed"], 1);
    assert!(
        events
            .iter()
            .any(|e| e.actor_id.as_deref() == Some(w.manager.id.as_str()))
    );
    assert!(audit::verify(&w.db).await.unwrap().first_broken.is_none());
}

#[test]
fn cli_assignments_parse() {
    let got = parse_assignments(&["Speaker 1=Daniel Okafor".into(), "Speaker 2=".into()]).unwrap();
    assert_eq!(
        got,
        changes(&[("Speaker 1", Some("Daniel Okafor")), ("Speaker 2", None)])
    );
    assert!(parse_assignments(&["Speaker 1".into()]).is_err());
}

#[tokio::test]
async fn tasks_follow_the_review_of_their_commitment() {
    use crate::review::{Decision, Kind as RecKind};
    let w = World::new().await;
    let commitment = |id: &str| {
        let db = w.db.clone();
        let id = id.to_string();
        async move {
            let (rec,): (String,) = sqlx::query_as(
                "SELECT id FROM recommendations WHERE subject_id = $1 AND kind = $2",
            )
            .bind(&id)
            .bind(RecKind::Commitment.as_str())
            .fetch_one(db.pool())
            .await
            .unwrap();
            rec
        }
    };

    // An override's action, owner and due date replace the model's in the task.
    let edited = diarized_call(&w).await;
    let rec = commitment(&edited).await;
    let original = crate::review::queue::get(&w.db, &w.manager, &rec)
        .await
        .unwrap();
    let mut replacement = original.output.clone();
    replacement["action"] = "send the brochure and the price list".into();
    replacement["owner"] = "Daniel Okafor".into();
    replacement["due_date"] = "2026-12-04".into();
    let bad = Decision::Override {
        replacement: serde_json::json!({"quote": original.output["quote"], "due_date": "soon"}),
        reason: "wrong date".into(),
    };
    let e = crate::review::decide(&w.db, &w.manager, &rec, &bad)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    let decision = Decision::Override {
        replacement,
        reason: "the rep promised the price list too".into(),
    };
    crate::review::decide(&w.db, &w.manager, &rec, &decision)
        .await
        .unwrap();
    let task = &tasks::list(w.db.pool(), &edited).await.unwrap()[0];
    assert_eq!(
        (
            task.action.as_str(),
            task.owner.as_str(),
            task.due_date.as_deref()
        ),
        (
            "send the brochure and the price list",
            "Daniel Okafor",
            Some("2026-12-04")
        )
    );

    // A rejected commitment leaves no task behind; the recommendation keeps it.
    let rejected = diarized_call(&w).await;
    let rec = commitment(&rejected).await;
    let reject = Decision::Reject {
        reason: "small talk, not a promise".into(),
    };
    crate::review::decide(&w.db, &w.manager, &rec, &reject)
        .await
        .unwrap();
    assert!(
        tasks::list(w.db.pool(), &rejected)
            .await
            .unwrap()
            .is_empty()
    );
    let kept = crate::review::queue::get(&w.db, &w.manager, &rec)
        .await
        .unwrap();
    assert_eq!(kept.state, "rejected");
}
