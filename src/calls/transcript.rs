//! The transcript model and the import of the JSON format other tools write
//! (documented in the README: `call_id`, `language`, `call_date`, `title`, `participants`,
//! `segments`). Import validates everything, so downstream code can rely on it: speakers are
//! participants (or unattributed), times are ordered, the call date is a real date.

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

/// One turn (or one recognized stretch of speech).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: u32,
    /// A participant's name; `None` when not attributed (ASR without participants).
    #[serde(default)]
    pub speaker: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// A call transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallTranscript {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// `en` or `zh`.
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
        for s in &self.segments {
            if s.end_ms < s.start_ms {
                return bad(format!("segment {} ends before it starts", s.id));
            }
            if let Some(speaker) = &s.speaker
                && self.participant(speaker).is_none()
            {
                return bad(format!(
                    "segment {} is spoken by {speaker:?}, who is not among the participants",
                    s.id
                ));
            }
        }
        Ok(())
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
