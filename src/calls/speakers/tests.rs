use super::*;
use crate::calls::transcript::Side;

fn people(names: &[&str]) -> Vec<Participant> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Participant {
            name: n.to_string(),
            side: if i % 2 == 0 {
                Side::Seller
            } else {
                Side::Customer
            },
            role: None,
        })
        .collect()
}

/// Maps speakers of `turns` (speaker index, text) to participant names.
fn map(names: &[&str], turns: &[(usize, &str)]) -> Vec<Option<String>> {
    let participants = people(names);
    let spoken: Vec<SpokenTurn<'_>> = turns
        .iter()
        .map(|&(speaker, text)| SpokenTurn { speaker, text })
        .collect();
    let speakers = turns.iter().map(|t| t.0 + 1).max().unwrap_or(0);
    map_speakers(&participants, &spoken, speakers)
        .into_iter()
        .map(|p| p.map(|p| participants[p].name.clone()))
        .collect()
}

/// Participants, turns (speaker, text), the expected name per speaker ("" for none).
type Case<'a> = (&'a [&'a str], Vec<(usize, &'a str)>, Vec<&'a str>);

fn some(names: &[&str]) -> Vec<Option<String>> {
    names
        .iter()
        .map(|n| (!n.is_empty()).then(|| n.to_string()))
        .collect()
}

#[test]
fn self_introductions_map_the_speaker() {
    let en = ["Daniel Okafor", "Susan Whitfield", "Priya Nair"];
    let zh = ["王磊", "李娜", "欧阳明华"];
    let cases: Vec<Case<'_>> = vec![
        (
            &en,
            vec![
                (
                    0,
                    "Hello everyone, I'm Priya, I look after the clinical side.",
                ),
                (1, "Great, let's start."),
            ],
            vec!["Priya Nair", ""],
        ),
        (
            &en,
            vec![
                (0, "Hi, this is Daniel from Halvern Medical."),
                (1, "Hello, good to hear you."),
            ],
            vec!["Daniel Okafor", ""],
        ),
        (
            &en,
            vec![
                (0, "Okay. My name is Susan Whitfield, procurement."),
                (1, "Welcome."),
            ],
            vec!["Susan Whitfield", ""],
        ),
        (
            &en,
            vec![(0, "Daniel here, can you hear me?"), (1, "Yes.")],
            vec!["Daniel Okafor", ""],
        ),
        (
            &zh,
            vec![(0, "大家好，我是王磊，负责这个项目。"), (1, "您好。")],
            vec!["王磊", ""],
        ),
        (
            &zh,
            vec![(0, "你好，我叫李娜。"), (1, "欢迎。")],
            vec!["李娜", ""],
        ),
        (
            &zh,
            vec![(0, "您好，我姓欧阳，是采购负责人。"), (1, "好的。")],
            vec!["欧阳明华", ""],
        ),
        // Not introductions: someone else's assistant, a sure-not-a-name, a colleague.
        (
            &zh,
            vec![(0, "我是王总的助理。"), (1, "好的。")],
            vec!["", ""],
        ),
        (
            &en,
            vec![(0, "I'm sure we can do that."), (1, "Good.")],
            vec!["", ""],
        ),
        (
            &en,
            vec![
                (0, "I'm Daniel's colleague, he asked me to join."),
                (1, "Sure."),
            ],
            vec!["", ""],
        ),
    ];
    for (names, turns, want) in cases {
        assert_eq!(map(names, &turns), some(&want), "{turns:?}");
    }
}

#[test]
fn a_name_addressed_at_the_start_of_a_turn_is_the_previous_speaker() {
    let en = ["Daniel Okafor", "Susan Whitfield", "Mark Delaney"];
    let zh = ["王志强", "赵敏", "黄建国"];
    let cases: Vec<Case<'_>> = vec![
        (
            &en,
            vec![
                (0, "Let's get started."),
                (1, "Morning Daniel. We have half an hour."),
            ],
            vec!["Daniel Okafor", ""],
        ),
        (
            &en,
            vec![
                (0, "The pumps ship in May."),
                (1, "Thanks, Susan. That helps."),
            ],
            vec!["Susan Whitfield", ""],
        ),
        (
            &en,
            vec![(0, "We need the specs."), (1, "Thank you, Ms Whitfield.")],
            vec!["Susan Whitfield", ""],
        ),
        (
            &zh,
            vec![
                (0, "价格还是偏高。"),
                (1, "王总，这个我们可以再谈。"),
                (0, "那好。"),
                (1, "王总您看这样行吗？"),
            ],
            vec!["王志强", ""],
        ),
        (
            &zh,
            vec![(0, "认证材料什么时候发？"), (1, "好的，谢谢黄工。")],
            vec!["黄建国", ""],
        ),
        // One bare vocative is not enough ...
        (
            &en,
            vec![(0, "What about support?"), (1, "Mark, we cover that.")],
            vec!["", ""],
        ),
        // ... a name in the middle of a turn is no address ...
        (
            &en,
            vec![
                (0, "What about support?"),
                (1, "We told Mark about that last week."),
            ],
            vec!["", ""],
        ),
        // ... and a greeting to several people says nothing about the previous speaker (the
        // greeter, who is neither of them, is the third participant by elimination).
        (
            &en,
            vec![
                (0, "Hi all."),
                (1, "Good morning Susan, good morning Mark."),
            ],
            vec!["", "Daniel Okafor"],
        ),
        // The first turn has no previous speaker.
        (&en, vec![(0, "Thanks, Susan."), (1, "Sure.")], vec!["", ""]),
    ];
    for (names, turns, want) in cases {
        assert_eq!(map(names, &turns), some(&want), "{turns:?}");
    }
}

#[test]
fn no_evidence_leaves_speakers_unmapped() {
    let names = ["Daniel Okafor", "Susan Whitfield"];
    let turns = [
        (0, "The price went up nine percent."),
        (1, "I understand. The uplift reflects new features."),
        (0, "We will think about it."),
        (2, "Can I add something?"),
    ];
    assert_eq!(map(&names, &turns), vec![None, None, None]);
    // No participants given: nothing to map to.
    assert_eq!(map(&[], &[(0, "I'm Daniel.")]), vec![None]);
}

#[test]
fn elimination_maps_the_last_pair() {
    let names = ["Lena Hoffmann", "Greg Thornton", "Aisha Bello"];
    // Speaker 1 is introduced as Greg, Speaker 2 as Aisha: Speaker 0 is Lena.
    let turns = [
        (0, "Let's start the renewal."),
        (1, "Sure. I'm Greg, operations."),
        (2, "And I'm Aisha from finance."),
        (0, "Good. The uplift is nine percent."),
    ];
    assert_eq!(
        map(&names, &turns),
        some(&["Lena Hoffmann", "Greg Thornton", "Aisha Bello"])
    );
    // A speaker who greets everyone else by name is the one left ...
    let turns = [
        (0, "Hi Greg, hi Aisha. Thanks for joining."),
        (1, "Sure, glad to."),
        (2, "Hello."),
    ];
    assert_eq!(map(&names, &turns), some(&["Lena Hoffmann", "", ""]));
    // ... but not when two speakers could be that one.
    let turns = [
        (0, "Hi Greg, hi Aisha."),
        (1, "Hello."),
        (2, "Aisha and Greg are both here."),
    ];
    assert_eq!(map(&names, &turns), vec![None, None, None]);
    // One speaker, one participant.
    assert_eq!(map(&["王磊"], &[(0, "今天先到这里。")]), some(&["王磊"]));
    // One speaker left but two participants: no guess.
    let turns = [(0, "I'm Lena."), (1, "Okay.")];
    assert_eq!(map(&names, &turns), some(&["Lena Hoffmann", ""]));
}

#[test]
fn conflicting_evidence_maps_nothing() {
    let names = ["Daniel Okafor", "Priya Nair"];
    // Two speakers both introduced as Priya.
    let turns = [(0, "I'm Priya."), (1, "Hi, I'm Priya Nair.")];
    assert_eq!(map(&names, &turns), vec![None, None]);
    // Introduced as Priya but thanked as Daniel.
    let turns = [(0, "I'm Priya, clinical lead."), (1, "Thanks, Daniel.")];
    assert_eq!(map(&names, &turns), vec![None, None]);
    // Introduced as Daniel in one turn, talks about Daniel in another: not clear, and not
    // Priya by elimination either.
    let turns = [
        (0, "I'm Daniel."),
        (1, "Okay."),
        (0, "Daniel will send the brochure."),
    ];
    assert_eq!(map(&names, &turns), vec![None, None]);
    // Two participants share a first name: the first name says nothing.
    let turns = [(0, "Pumps ship in May."), (1, "Thanks, Daniel.")];
    assert_eq!(
        map(&["Daniel Okafor", "Daniel Berg"], &turns),
        vec![None, None]
    );
    // The same surname + title fits two Mandarin participants.
    let turns = [(0, "价格偏高。"), (1, "谢谢王总。")];
    assert_eq!(map(&["王磊", "王志强"], &turns), vec![None, None]);
}

fn asr_segment(start_ms: u64, end_ms: u64, text: &str) -> asr::Segment {
    asr::Segment {
        start_ms,
        end_ms,
        text: text.into(),
        avg_prob: 0.9,
        avg_logprob: -0.1,
        no_speech_prob: 0.0,
        channel: None,
        words: vec![],
    }
}

fn turn(start_ms: u64, end_ms: u64, speaker: usize) -> SpeakerTurn {
    SpeakerTurn {
        start_ms,
        end_ms,
        speaker,
    }
}

#[test]
fn attribute_labels_by_first_appearance_and_maps_on_evidence() {
    let mut second = asr_segment(5000, 9000, "Morning Daniel. Let's go through the pumps.");
    second.words = vec![
        asr::Word {
            start_ms: 5000,
            end_ms: 5600,
            text: " Morning".into(),
        },
        asr::Word {
            start_ms: 5600,
            end_ms: 6200,
            text: " Daniel.".into(),
        },
        asr::Word {
            start_ms: 6900,
            end_ms: 9000,
            text: " Let's go through the pumps.".into(),
        },
    ];
    let asr = asr::Transcript {
        language: "en".into(),
        duration_ms: 12_000,
        segments: vec![
            asr_segment(0, 4000, "Good morning, thanks for making time."),
            second,
            asr_segment(9500, 12_000, "Sure."),
        ],
    };
    // The diarizer numbered the speakers 1, 0, 2 in time order; the second Whisper segment
    // holds a speaker change at 6.5 s.
    let turns = [
        turn(0, 4000, 1),
        turn(5000, 6500, 0),
        turn(6700, 9000, 2),
        turn(9500, 12_000, 0),
    ];
    let t = attribute(
        &asr,
        &turns,
        people(&["Daniel Okafor", "Susan Whitfield", "Mark Delaney"]),
        None,
    );
    t.validate().unwrap();
    let got: Vec<(Option<&str>, Option<&str>, &str)> = t
        .segments
        .iter()
        .map(|s| (s.label.as_deref(), s.speaker.as_deref(), s.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Some("Speaker 1"),
                Some("Daniel Okafor"),
                "Good morning, thanks for making time."
            ),
            (Some("Speaker 2"), Some("Speaker 2"), "Morning Daniel."),
            (
                Some("Speaker 3"),
                Some("Speaker 3"),
                "Let's go through the pumps."
            ),
            (Some("Speaker 2"), Some("Speaker 2"), "Sure."),
        ]
    );
    assert_eq!(
        t.segments.iter().map(|s| s.id).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(t.speakers["Speaker 1"].as_deref(), Some("Daniel Okafor"));
    assert_eq!(t.speakers["Speaker 2"], None);
    assert_eq!(
        t.speaker_of(&t.segments[1]),
        Some(("Speaker 2".into(), None))
    );
    assert_eq!(
        t.speaker_of(&t.segments[0]),
        Some(("Daniel Okafor".into(), Some(Side::Seller)))
    );
}
