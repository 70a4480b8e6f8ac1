//! What the call page adds around its transcript: each commitment's and objection's review
//! state (the recommendation recorded for it, what the reviewer changed, whether the signed-in
//! user may decide it), the speaker-label form, and the compact analytics panel.

use serde_json::Value;

use super::Tr;
use crate::calls::analytics::CallAnalytics;
use crate::calls::records;
use crate::calls::transcript::CallTranscript;
use crate::review::{Kind, Recommendation};
use crate::users::User;

/// The review of one commitment or objection, as the page shows it.
pub struct Review {
    /// The recommendation's id; empty when none was recorded (calls analyzed before review).
    pub id: String,
    /// proposed | approved | overridden | rejected (empty without a recommendation).
    pub state: String,
    pub state_label: String,
    /// The signed-in user may accept, edit or reject it now.
    pub may_decide: bool,
    /// Still proposed, but the rules give it to a manager (or it was escalated).
    pub needs_manager: bool,
    /// The AI's output as JSON: an edit replaces some of its fields.
    pub output: String,
    /// The reviewer's replacement, when overridden.
    replacement: Option<Value>,
}

impl Review {
    /// The review of the item of `kind` spoken in segment `turn` with this `quote`: the latest
    /// recommendation whose output is that item (a re-analysis proposes again).
    pub fn find(
        t: Tr,
        user: &User,
        recs: &[Recommendation],
        kind: Kind,
        turn: u32,
        quote: &str,
    ) -> Review {
        let rec = recs
            .iter()
            .rev()
            .find(|r| r.kind == kind && records::is_output_of(&r.output, turn, quote));
        let Some(rec) = rec else {
            return Review {
                id: String::new(),
                state: String::new(),
                state_label: String::new(),
                may_decide: false,
                needs_manager: false,
                output: String::new(),
                replacement: None,
            };
        };
        let proposed = rec.state == "proposed";
        let may_decide = proposed && rec.decidable_by(user);
        Review {
            id: rec.id.clone(),
            state: rec.state.clone(),
            state_label: t.d("state", &rec.state),
            may_decide,
            needs_manager: proposed && !may_decide,
            output: rec.output.to_string(),
            replacement: (rec.state == "overridden")
                .then(|| rec.final_output.clone())
                .flatten(),
        }
    }

    /// A text field of the reviewer's replacement, or `original` when it was not edited.
    pub fn value(&self, field: &str, original: &str) -> String {
        match self.replacement.as_ref().and_then(|r| r.get(field)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) => String::new(),
            _ => original.to_string(),
        }
    }

    /// Whether a reviewer replaced the item's values.
    pub fn edited(&self) -> bool {
        self.replacement.is_some()
    }
}

/// A field of the edit dialog: one key of the output it replaces.
pub struct EditField {
    /// The output's key.
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `date`, `select` or `textarea`.
    pub input: &'static str,
    pub value: String,
    /// A select's choices: (value, label).
    pub options: Vec<(String, String)>,
}

impl EditField {
    pub fn new(name: &'static str, label: &'static str, input: &'static str, value: &str) -> Self {
        EditField {
            name,
            label,
            input,
            value: value.to_string(),
            options: Vec::new(),
        }
    }

    /// A select of `options`; the current value is offered even when it is not among them.
    pub fn select(
        name: &'static str,
        label: &'static str,
        value: &str,
        options: Vec<(String, String)>,
    ) -> Self {
        let mut options = options;
        if !options.iter().any(|(v, _)| v == value) {
            options.insert(0, (value.to_string(), value.to_string()));
        }
        EditField {
            options,
            ..EditField::new(name, label, "select", value)
        }
    }
}

/// A diarized speaker label and the participant it is mapped to.
pub struct SpeakerRow {
    pub label: String,
    pub participant: String,
}

/// The call's speaker labels (empty when it has none: imported, or one party per channel).
pub fn speaker_rows(t: &CallTranscript) -> Vec<SpeakerRow> {
    t.speakers
        .iter()
        .map(|(label, participant)| SpeakerRow {
            label: label.clone(),
            participant: participant.clone().unwrap_or_default(),
        })
        .collect()
}

/// A speaker's share of the talk.
pub struct TalkRow {
    pub speaker: String,
    pub side: String,
    /// Whole percent, for the bar and the label.
    pub percent: u32,
}

/// The analytics panel: talk ratio per speaker and side, longest monologue, customer
/// questions, trackers hit.
pub struct Stats {
    pub talk: Vec<TalkRow>,
    pub seller: u32,
    pub customer: u32,
    pub unknown: u32,
    /// Speaker, start (ms) and length (`m:ss`) of the longest monologue.
    pub monologue: Option<(String, u64, String)>,
    pub customer_questions: usize,
    /// Trackers that fired, with how many times.
    pub trackers: Vec<(String, usize)>,
}

fn percent(ratio: f64) -> u32 {
    (ratio * 100.0).round().clamp(0.0, 100.0) as u32
}

impl Stats {
    pub fn new(t: Tr, a: &CallAnalytics) -> Stats {
        Stats {
            talk: a
                .speakers
                .iter()
                .map(|s| TalkRow {
                    speaker: s.speaker.clone(),
                    side: t.d("call_stats", &s.side),
                    percent: percent(s.talk_ratio),
                })
                .collect(),
            seller: percent(a.sides.seller.talk_ratio),
            customer: percent(a.sides.customer.talk_ratio),
            unknown: percent(a.sides.unknown.talk_ratio),
            monologue: a.longest_monologue.as_ref().map(|m| {
                let s = m.duration_ms / 1000;
                (
                    m.speaker.clone(),
                    m.start_ms,
                    format!("{}:{:02}", s / 60, s % 60),
                )
            }),
            customer_questions: a.customer_questions,
            trackers: a
                .trackers
                .iter()
                .filter(|h| h.count > 0)
                .map(|h| (h.name.clone(), h.count))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::trackers::Trackers;
    use crate::users::Role;
    use crate::web::Lang;
    use serde_json::json;

    fn user(id: &str, role: Role) -> User {
        serde_json::from_value(json!({
            "id": id, "name": id, "role": role, "region": "emea", "created_at": 0
        }))
        .unwrap()
    }

    fn rec(id: &str, kind: Kind, output: Value, state: &str, route: &str) -> Recommendation {
        Recommendation {
            id: id.into(),
            kind,
            subject_kind: "call".into(),
            subject_id: "c1".into(),
            region: "emea".into(),
            owner_id: Some("rep".into()),
            model_id: "m".into(),
            model_version: "m".into(),
            prompt_version: None,
            input_sha256: String::new(),
            output,
            explanation: None,
            confidence: Some(0.9),
            discount: None,
            deal_value: None,
            state: state.into(),
            route: Some(route.into()),
            rule: None,
            escalated_at: None,
            decided_by: None,
            decided_at: None,
            final_output: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn an_item_finds_its_latest_recommendation_and_who_may_decide_it() {
        let t = Tr(Lang::En);
        let rep = user("rep", Role::Rep);
        let quote = "I will send you a revised quote by Friday.";
        let output =
            json!({"turn": 2, "quote": quote, "owner": "Speaker 1", "action": "send a quote"});
        let mut edited = rec(
            "r2",
            Kind::Commitment,
            output.clone(),
            "overridden",
            "owner",
        );
        edited.final_output = Some(json!({"turn": 2, "quote": quote, "owner": "Dana Reyes",
            "action": "send the revised quote", "due_date": null}));
        let recs = [
            rec("r1", Kind::Commitment, output.clone(), "proposed", "owner"),
            rec(
                "r3",
                Kind::ObjectionAnswer,
                output.clone(),
                "proposed",
                "owner",
            ),
            edited,
            rec(
                "r4",
                Kind::Commitment,
                json!({"turn": 3, "quote": quote}),
                "proposed",
                "owner",
            ),
        ];
        let review = Review::find(t, &rep, &recs, Kind::Commitment, 2, quote);
        assert_eq!(
            (review.id.as_str(), review.state_label.as_str()),
            ("r2", "Overridden")
        );
        assert!(!review.may_decide && !review.needs_manager && review.edited());
        assert_eq!(review.value("owner", "Speaker 1"), "Dana Reyes");
        assert_eq!(review.value("due_date", "2026-03-13"), "");
        assert_eq!(review.value("category", "price"), "price");

        let open = Review::find(t, &rep, &recs[..2], Kind::Commitment, 2, quote);
        assert!(open.may_decide && !open.edited());
        assert_eq!(open.value("owner", "Speaker 1"), "Speaker 1");
        let other = user("someone-else", Role::Rep);
        let theirs = Review::find(t, &other, &recs[..2], Kind::Commitment, 2, quote);
        assert!(!theirs.may_decide && theirs.needs_manager);
        let managed = [rec("r5", Kind::Commitment, output, "proposed", "manager")];
        let review = Review::find(t, &rep, &managed, Kind::Commitment, 2, quote);
        assert!(!review.may_decide && review.needs_manager);
        assert!(
            Review::find(
                t,
                &user("boss", Role::Manager),
                &managed,
                Kind::Commitment,
                2,
                quote
            )
            .may_decide
        );

        let none = Review::find(t, &rep, &recs, Kind::Commitment, 9, quote);
        assert!(none.id.is_empty() && !none.may_decide && !none.needs_manager);
    }

    #[test]
    fn a_select_always_offers_the_current_value() {
        let names = vec![("Dana".to_string(), "Dana".to_string())];
        let kept = EditField::select("owner", "Owner", "Dana", names.clone());
        assert_eq!(kept.options.len(), 1);
        let label = EditField::select("owner", "Owner", "Speaker 1", names);
        let values: Vec<&str> = label.options.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(values, ["Speaker 1", "Dana"]);
        assert_eq!((label.input, label.value.as_str()), ("select", "Speaker 1"));
    }

    #[test]
    fn the_panel_rounds_shares_and_lists_only_trackers_that_fired() {
        let transcript = CallTranscript::from_json(
            &json!({
                "language": "en",
                "participants": [{"name": "Dana", "side": "seller"}, {"name": "Sam", "side": "customer"}],
                "segments": [
                    {"id": 0, "speaker": "Dana", "start_ms": 0, "end_ms": 2000, "text": "Hello Sam."},
                    {"id": 1, "speaker": "Sam", "start_ms": 2000, "end_ms": 3000, "text": "What does it cost?"},
                    {"id": 2, "speaker": "Dana", "start_ms": 3000, "end_ms": 65000,
                     "text": "The price depends on seats; our competitor charges more."}
                ]
            })
            .to_string(),
        )
        .unwrap();
        let trackers =
            Trackers::parse(crate::calls::trackers::BUILTIN, "the built-in trackers").unwrap();
        let a = crate::calls::analytics::analyze(&transcript, &trackers);
        let stats = Stats::new(Tr(Lang::En), &a);
        let talk: Vec<(&str, &str, u32)> = stats
            .talk
            .iter()
            .map(|r| (r.speaker.as_str(), r.side.as_str(), r.percent))
            .collect();
        assert_eq!(talk, [("Dana", "Seller", 98), ("Sam", "Customer", 2)]);
        assert_eq!((stats.seller, stats.customer, stats.unknown), (98, 2, 0));
        assert_eq!(
            stats.monologue,
            Some(("Dana".to_string(), 3000, "1:02".to_string()))
        );
        assert_eq!(stats.customer_questions, 1);
        assert!(!stats.trackers.is_empty());
        assert!(stats.trackers.iter().all(|(_, n)| *n > 0));
    }
}
