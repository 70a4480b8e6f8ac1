//! The transcript model and the import of the JSON format other tools write
//! (documented in the README: `call_id`, `language`, `call_date`, `title`, `participants`,
//! `segments`, optionally `speakers`). Import validates everything, so downstream code can rely
//! on it: speakers are participants, diarized speaker labels not yet mapped to one, or
//! unattributed; times are ordered; the call date is a real date.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dates::Date;
use crate::error::{Error, Result};

/// Which side of the deal a participant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Seller,
    Customer,
}

/// Someone on the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Participant {
    pub name: String,
    pub side: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The longest segment text accepted, in characters: one turn's analysis asks the model about
/// each of its sentences, so a megabyte-long line would tie up the worker for hours.
pub const MAX_SEGMENT_CHARS: usize = 10_000;
/// The most text one transcript may carry, in characters (about four hours of speech).
pub const MAX_TRANSCRIPT_CHARS: usize = 250_000;

/// One turn (or one recognized stretch of speech).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: u32,
    /// A participant's name, or a diarized speaker label ("Speaker 2") that is not mapped to a
    /// participant yet; `None` when not attributed.
    #[serde(default)]
    pub speaker: Option<String>,
    /// The diarized speaker ("Speaker 1", numbered by first appearance) of a mono recording; it
    /// stays when the speaker is mapped to a participant or relabelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// A call transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "language": "en",
    "call_date": "2026-03-10",
    "title": "Renewal call",
    "participants": [
        {"name": "Dana Reyes", "side": "seller"},
        {"name": "Li Wei", "side": "customer", "role": "procurement"}
    ],
    "segments": [
        {"id": 0, "speaker": "Li Wei", "start_ms": 0, "end_ms": 4200,
         "text": "The price is still too high for our budget."},
        {"id": 1, "speaker": "Dana Reyes", "start_ms": 4200, "end_ms": 9000,
         "text": "I'll send you a revised quote by Friday."}
    ]
}))]
pub struct CallTranscript {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// `en` or `zh`.
    #[schema(pattern = "^(en|zh)$")]
    pub language: String,
    /// The date relative deadlines resolve against; `None` leaves dated deadlines unresolved.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub call_date: Option<Date>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub participants: Vec<Participant>,
    pub segments: Vec<Segment>,
    /// Diarized speaker labels and the participant each is mapped to (`null`: not known yet;
    /// `PUT /calls/{id}/speakers` relabels). Empty without diarization.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub speakers: BTreeMap<String, Option<String>>,
}

impl CallTranscript {
    /// Parses and validates the JSON import format.
    pub fn from_json(text: &str) -> Result<CallTranscript> {
        let t: CallTranscript = serde_json::from_str(text).map_err(|e| {
            Error::InvalidInput(format!(
                "not a transcript ({e}); expected {{language, call_date, participants, segments}} \
                 as documented in the README"
            ))
        })?;
        t.validate()?;
        Ok(t)
    }

    /// Reads and validates a transcript file.
    pub fn load(path: &Path) -> Result<CallTranscript> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read the transcript", path, e))?;
        Self::from_json(&text).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
    }

    /// A transcript from Whisper's output. Segments stay unattributed unless the recording
    /// was transcribed per channel, in which case channel `i` is `participants[i]`; names are
    /// never invented.
    pub fn from_asr(
        asr: &crate::asr::Transcript,
        participants: Vec<Participant>,
        call_date: Option<Date>,
    ) -> CallTranscript {
        let segments = asr
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| Segment {
                id: i as u32,
                speaker: s
                    .channel
                    .and_then(|c| participants.get(c as usize))
                    .map(|p| p.name.clone()),
                label: None,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text.trim().to_string(),
            })
            .collect();
        CallTranscript {
            call_id: None,
            language: asr.language.clone(),
            call_date,
            title: String::new(),
            participants,
            segments,
            speakers: BTreeMap::new(),
        }
    }

    /// Checks the invariants the pipeline relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if !matches!(self.language.as_str(), "en" | "zh") {
            return bad(format!(
                "language {:?}: use \"en\" or \"zh\"",
                self.language
            ));
        }
        if self.segments.is_empty() {
            return bad("the transcript has no segments".into());
        }
        for (i, p) in self.participants.iter().enumerate() {
            if p.name.trim().is_empty() {
                return bad(format!("participant {i} has no name"));
            }
            if self.participants[..i]
                .iter()
                .any(|q| same_name(&q.name, &p.name))
            {
                return bad(format!("participant {:?} is listed twice", p.name));
            }
        }
        for (label, name) in &self.speakers {
            if self.participant(label).is_some() {
                return bad(format!(
                    "speaker label {label:?} is also a participant's name: labels are \"Speaker N\""
                ));
            }
            if let Some(name) = name
                && self.participant(name).is_none()
            {
                return bad(format!(
                    "speaker label {label:?} is mapped to {name:?}, who is not among the participants"
                ));
            }
        }
        let mut chars = 0;
        for s in &self.segments {
            let len = s.text.chars().count();
            chars += len;
            if len > MAX_SEGMENT_CHARS {
                return bad(format!(
                    "segment {} has {len} characters; a segment may have at most \
                     {MAX_SEGMENT_CHARS}: split long turns into segments",
                    s.id
                ));
            }
            if chars > MAX_TRANSCRIPT_CHARS {
                return bad(format!(
                    "the transcript has more than {MAX_TRANSCRIPT_CHARS} characters of text \
                     (about four hours of speech); import long calls in parts"
                ));
            }
            if s.text.contains('\0') {
                return bad(format!(
                    "segment {} contains a NUL character; remove it and import again",
                    s.id
                ));
            }
            if s.end_ms < s.start_ms {
                return bad(format!("segment {} ends before it starts", s.id));
            }
            if let Some(label) = &s.label
                && !self.speakers.contains_key(label)
            {
                return bad(format!(
                    "segment {} has speaker label {label:?}, which is not in `speakers`",
                    s.id
                ));
            }
            if let Some(speaker) = &s.speaker
                && self.participant(speaker).is_none()
                && self.unmapped_label(speaker).is_none()
            {
                return bad(format!(
                    "segment {} is spoken by {speaker:?}, who is not among the participants",
                    s.id
                ));
            }
        }
        Ok(())
    }

    /// `label` as stored, when it is a diarized speaker label not mapped to a participant.
    pub fn unmapped_label(&self, label: &str) -> Option<&str> {
        self.speakers
            .iter()
            .find(|(l, p)| p.is_none() && same_name(l, label))
            .map(|(l, _)| l.as_str())
    }

    /// Who spoke a segment: a participant (with their side) or an unmapped speaker label
    /// (side unknown); `None` when the segment is unattributed.
    pub fn speaker_of(&self, segment: &Segment) -> Option<(String, Option<Side>)> {
        let name = segment.speaker.as_deref()?;
        match self.participant(name) {
            Some(p) => Some((p.name.clone(), Some(p.side))),
            None => self.unmapped_label(name).map(|l| (l.to_string(), None)),
        }
    }

    /// Whether `name` may own an item of this call: a participant, or a diarized speaker label
    /// not yet mapped to one.
    pub fn is_speaker(&self, name: &str) -> bool {
        self.participant(name).is_some() || self.unmapped_label(name).is_some()
    }

    /// Sets every labelled segment's speaker from the `speakers` map: the mapped participant,
    /// else the label itself.
    pub fn apply_speakers(&mut self) {
        for s in &mut self.segments {
            if let Some(label) = &s.label {
                s.speaker = Some(match self.speakers.get(label) {
                    Some(Some(name)) => name.clone(),
                    _ => label.clone(),
                });
            }
        }
    }

    /// The participant with this name (case and spacing ignored).
    pub fn participant(&self, name: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| same_name(&p.name, name))
    }

    /// The side of a segment's speaker, when known.
    pub fn side_of(&self, segment: &Segment) -> Option<Side> {
        segment
            .speaker
            .as_deref()
            .and_then(|s| self.participant(s))
            .map(|p| p.side)
    }

    /// Whole text, turns joined (a space for English, nothing for Mandarin).
    pub fn text(&self) -> String {
        crate::asr::join_texts(
            &self.language,
            self.segments.iter().map(|s| s.text.as_str()),
        )
    }
}

/// Names compared after case and whitespace normalization.
pub fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");

    #[test]
    fn imports_every_dev_transcript() {
        for call in ["en-01", "en-02", "en-03", "en-04", "zh-01", "zh-02"] {
            let t =
                CallTranscript::load(&Path::new(EVAL).join(call).join("transcript.json")).unwrap();
            assert!(t.segments.len() >= 30, "{call}");
            assert!(t.call_date.is_some());
            assert!(t.segments.iter().all(|s| t.side_of(s).is_some()));
        }
    }

    #[test]
    fn rejects_bad_transcripts_with_a_reason() {
        let ok = r#"{"language":"en","call_date":"2026-03-10","participants":[{"name":"A","side":"seller"}],
                    "segments":[{"id":0,"speaker":"A","start_ms":0,"end_ms":10,"text":"hi"}]}"#;
        CallTranscript::from_json(ok).unwrap();
        for (bad, why) in [
            (ok.replace("\"en\"", "\"fr\""), "language"),
            (ok.replace("2026-03-10", "2026-13-10"), "date"),
            (
                ok.replace("\"speaker\":\"A\"", "\"speaker\":\"B\""),
                "not among the participants",
            ),
            (
                ok.replace("\"end_ms\":10", "\"end_ms\":0,\"x\":1")
                    .replace("\"start_ms\":0", "\"start_ms\":5"),
                "ends before",
            ),
            (ok.replace("\"seller\"", "\"buyer\""), "not a transcript"),
            ("{}".to_string(), "not a transcript"),
        ] {
            let err = CallTranscript::from_json(&bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn unattributed_segments_are_kept() {
        let t = CallTranscript::from_json(
            r#"{"language":"zh","segments":[{"id":0,"start_ms":0,"end_ms":10,"text":"你好"}]}"#,
        )
        .unwrap();
        assert_eq!(t.segments[0].speaker, None);
        assert_eq!(t.side_of(&t.segments[0]), None);
    }
}
