//! The analysis of one call: recording → Whisper → transcript → extraction. Used by the
//! `call.analyze` job and by `dealdesk analyze`.

use std::path::Path;

use super::dates::Date;
use super::extract::{Extraction, extract};
use super::records;
use super::speakers;
use super::transcript::{CallTranscript, Participant};
use crate::asr::{self, Channels, Language};
use crate::config::Config;
use crate::diarize::DiarizeOptions;
use crate::engines::Engines;
use crate::error::Result;

/// What is known about a recording before it is analyzed.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    pub language: Language,
    pub call_date: Option<Date>,
    /// With [`Channels::Split`], channel `i` is `participants[i]`.
    pub participants: Vec<Participant>,
    pub channels: Channels,
}

/// Share of the progress bar taken by transcription.
const ASR_SHARE: f32 = 0.6;

/// Share of the transcription step taken by Whisper (the rest is diarization).
const WHISPER_SHARE: f32 = 0.85;

/// Transcribes a recording into a call transcript. Split channels: channel `i` is
/// `participants[i]`. Mixed (mono): the audio is decoded once, Whisper and the diarizer both
/// run on it, and segments get speaker labels mapped to participants on clear evidence
/// ([`super::speakers`]).
pub fn transcribe(
    engines: &Engines,
    path: &Path,
    info: &CallInfo,
    progress: &dyn Fn(f32),
) -> Result<CallTranscript> {
    // The participants' names as Whisper's vocabulary: spelled right, they can be recognised
    // as introductions and addresses (and read right in the transcript).
    let names: Vec<&str> = info.participants.iter().map(|p| p.name.as_str()).collect();
    let req = asr::TranscribeRequest {
        language: info.language,
        vocabulary: (!names.is_empty()).then(|| names.join(", ")),
        ..Default::default()
    };
    if info.channels == Channels::Split {
        // A corrupt or unsupported file fails here, before any model is loaded.
        let mut reader = asr::AudioReader::open(path, info.channels)?;
        let transcriber = engines.transcriber()?;
        let asr = transcriber.transcribe_reader(&mut reader, &req, &|p| progress(p * ASR_SHARE))?;
        return Ok(CallTranscript::from_asr(
            &asr,
            info.participants.clone(),
            info.call_date,
        ));
    }
    let audio = asr::decode_file(path, Channels::Mix)?;
    let transcriber = engines.transcriber()?;
    let diarizer = engines.diarizer()?;
    let asr = transcriber.transcribe(&audio, &req, &|p| progress(p * ASR_SHARE * WHISPER_SHARE))?;
    // The participants bound the count rather than fix it: a listed participant may not
    // speak, and on the dev calls the estimate scored better than the given count (DER 0.266
    // against 0.293, `eval/reports/diarization.md`).
    let defaults = DiarizeOptions::default();
    let opts = DiarizeOptions {
        max_speakers: match info.participants.len() {
            0 => defaults.max_speakers,
            n => n,
        },
        ..defaults
    };
    let turns = diarizer.diarize(audio.channel(0), &opts)?;
    progress(ASR_SHARE);
    Ok(speakers::attribute(
        &asr,
        &turns,
        info.participants.clone(),
        info.call_date,
    ))
}

/// Extraction over a transcript, reporting progress after transcription's share.
pub fn extract_from(
    engines: &Engines,
    config: &Config,
    t: &CallTranscript,
    progress: &dyn Fn(f32),
) -> Result<Extraction> {
    let llm = engines.llm()?;
    extract(t, &llm, &super::extract_options(config), &|p| {
        progress(ASR_SHARE + p * (1.0 - ASR_SHARE))
    })
}

/// The whole analysis of a recording.
pub fn analyze(
    engines: &Engines,
    config: &Config,
    path: &Path,
    info: &CallInfo,
    progress: &dyn Fn(f32),
) -> Result<(CallTranscript, Extraction)> {
    let t = transcribe(engines, path, info, progress)?;
    let ex = extract_from(engines, config, &t, progress)?;
    progress(1.0);
    Ok((t, ex))
}

/// Job kind: analyze a stored call (transcribe its recording unless it has an imported
/// transcript, extract, store insights, tasks and proposals, notify the CRM).
pub const ANALYZE_JOB: &str = "call.analyze";

/// The `call.analyze` job handler.
#[derive(Clone)]
pub struct Analyzer {
    pub db: crate::store::Db,
    pub blobs: crate::store::blobs::BlobStore,
    pub engines: Engines,
    pub config: std::sync::Arc<Config>,
}

impl Analyzer {
    pub fn run(&self, ctx: &crate::jobs::JobContext) -> Result<serde_json::Value> {
        let call_id = ctx.payload["call_id"]
            .as_str()
            .ok_or_else(|| crate::Error::InvalidInput("call.analyze needs a call_id".into()))?
            .to_string();
        let rt = &ctx.runtime;
        rt.block_on(records::set_status(&self.db, &call_id, "running", None))?;
        let result = self.analyze_call(ctx, &call_id);
        if let Err(e) = &result {
            rt.block_on(records::set_status(
                &self.db,
                &call_id,
                "failed",
                Some(&e.to_string()),
            ))?;
        }
        result
    }

    fn analyze_call(
        &self,
        ctx: &crate::jobs::JobContext,
        call_id: &str,
    ) -> Result<serde_json::Value> {
        let rt = &ctx.runtime;
        let call = rt.block_on(records::get(&self.db, call_id))?;
        let progress = |p: f32| ctx.set_progress(p);
        let transcript = match rt.block_on(records::transcript(&self.db, &call))? {
            Some(t) => t,
            None => {
                let sha = call.blob_sha256.as_deref().ok_or_else(|| {
                    crate::Error::InvalidInput(format!(
                        "call {call_id} has neither a recording nor a transcript"
                    ))
                })?;
                let info = CallInfo {
                    language: call.language.as_deref().unwrap_or("auto").parse()?,
                    call_date: call.call_date.as_deref().map(Date::parse).transpose()?,
                    participants: call.participants.clone(),
                    channels: if call.channels == "split" {
                        Channels::Split
                    } else {
                        Channels::Mix
                    },
                };
                let recording = rt.block_on(self.blobs.local_file(sha))?;
                let t = transcribe(&self.engines, recording.path(), &info, &progress)?;
                drop(recording);
                rt.block_on(records::save_transcript(
                    &self.db,
                    call_id,
                    &t,
                    &self.config.asr.model,
                ))?;
                t
            }
        };
        let ex = extract_from(&self.engines, &self.config, &transcript, &progress)?;
        let rules = crate::review::rules_source(&self.config)?.current();
        let tasks = rt.block_on(records::save_analysis(&self.db, &call, &ex, &rules))?;
        rt.block_on(super::search::refresh(&self.db, &self.config, call_id));
        let webhook = self.notify(call_id, &tasks);
        Ok(serde_json::json!({
            "call_id": call_id,
            "commitments": ex.commitments.len(),
            "objections": ex.objections.len(),
            "injections_ignored": ex.injections.len(),
            "dropped": ex.dropped,
            "webhook": webhook,
        }))
    }

    /// Pushes the call's tasks to the configured CRM; a failure is reported in the job's
    /// result (the analysis itself stands).
    fn notify(&self, call_id: &str, tasks: &[super::tasks::Task]) -> serde_json::Value {
        let c = &self.config.calls;
        if c.webhook_url.is_empty() {
            return serde_json::Value::Null;
        }
        let hook = super::tasks::Webhook {
            url: c.webhook_url.clone(),
            attempts: c.webhook_attempts,
            backoff: std::time::Duration::from_secs_f64(c.webhook_backoff_secs.max(0.0)),
            timeout: std::time::Duration::from_secs(10),
        };
        match super::tasks::deliver(
            &hook,
            &serde_json::json!({"call_id": call_id, "tasks": tasks}),
        ) {
            Ok(attempts) => serde_json::json!({"delivered": true, "attempts": attempts}),
            Err(e) => {
                tracing::warn!(error = %e, "CRM webhook failed");
                serde_json::json!({"delivered": false, "error": e.to_string()})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::asr::testutil::{shared_dir, write_wav};
    use crate::calls::transcript::Side;
    use crate::diarize::eval::read_turns;
    use crate::models::Manifest;

    /// A recording of one voice only: five turns of one speaker of a dev call, with pauses.
    fn one_voice(dir: &Path) -> std::path::PathBuf {
        let call = shared_dir().join("eval/calls/en-02");
        let audio = asr::decode_file(&call.join("call.wav"), Channels::Mix).unwrap();
        let wav = audio.channel(0);
        let mut out = Vec::new();
        for t in read_turns(&call.join("turns.tsv"))
            .unwrap()
            .into_iter()
            .filter(|t| t.speaker == 0)
            .take(5)
        {
            out.extend_from_slice(&wav[t.start_ms as usize * 16..t.end_ms as usize * 16]);
            out.extend(std::iter::repeat_n(0.0, 16 * 700));
        }
        let path = dir.join("one-voice.wav");
        write_wav(&path, 16_000, &[out]);
        path
    }

    #[test]
    fn a_one_speaker_recording_gets_one_label() {
        let config = Arc::new(Config::default());
        let engines = Engines::new(config, Arc::new(Manifest::builtin()));
        let dir = tempfile::tempdir().unwrap();
        let path = one_voice(dir.path());
        let mut info = CallInfo {
            language: asr::Language::En,
            ..CallInfo::default()
        };
        // Nobody named: the count is estimated, one label, mapped to nobody.
        let t = transcribe(&engines, &path, &info, &|_| {}).unwrap();
        t.validate().unwrap();
        assert!(t.segments.len() >= 3, "{t:#?}");
        assert_eq!(t.speakers, [("Speaker 1".to_string(), None)].into());
        assert!(
            t.segments
                .iter()
                .all(|s| s.speaker.as_deref() == Some("Speaker 1")),
            "{t:#?}"
        );
        // One participant given: the one speaker is that participant.
        info.participants = vec![Participant {
            name: "Lena Hoffmann".into(),
            side: Side::Seller,
            role: None,
        }];
        let t = transcribe(&engines, &path, &info, &|_| {}).unwrap();
        assert_eq!(
            t.speakers["Speaker 1"].as_deref(),
            Some("Lena Hoffmann"),
            "{t:#?}"
        );
        assert!(
            t.segments
                .iter()
                .all(|s| s.speaker.as_deref() == Some("Lena Hoffmann"))
        );
    }
}
