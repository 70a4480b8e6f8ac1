//! Diarization on real audio with the real speaker encoder (`dealdesk models fetch` first).
//! Test recordings are assembled from turns of the evaluation calls, whose speakers are
//! different synthetic voices.

use std::path::Path;

use super::der::score;
use super::eval::read_turns;
use super::*;
use crate::asr::{Channels, decode_file};

const CALLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");

fn diarizer() -> Diarizer {
    let path = crate::config::ModelsConfig::default()
        .dir
        .join("resemblyzer-ge2e.safetensors");
    assert!(
        path.is_file(),
        "speaker encoder not found at {}: run `dealdesk models fetch`",
        path.display()
    );
    Diarizer::from_file(&path).unwrap()
}

/// The audio of the first `n` turns of `speaker` in call `call`.
fn turns_of(call: &str, speaker: usize, n: usize) -> Vec<Vec<f32>> {
    let dir = Path::new(CALLS).join(call);
    let audio = decode_file(&dir.join("call.wav"), Channels::Mix).unwrap();
    let wav = audio.channel(0);
    read_turns(&dir.join("turns.tsv"))
        .unwrap()
        .into_iter()
        .filter(|t| t.speaker == speaker)
        .take(n)
        .map(|t| wav[t.start_ms as usize * 16..(t.end_ms as usize * 16).min(wav.len())].to_vec())
        .collect()
}

/// Concatenates `(voice, clip)` with 400 ms of silence before each, returning the audio and
/// the reference turns.
fn assemble(clips: &[(usize, &[f32])]) -> (Vec<f32>, Vec<SpeakerTurn>) {
    let mut wav = Vec::new();
    let mut turns = Vec::new();
    for &(speaker, clip) in clips {
        wav.extend(std::iter::repeat_n(0.0, 16 * 400));
        let start_ms = wav.len() as u64 / 16;
        wav.extend_from_slice(clip);
        turns.push(SpeakerTurn {
            start_ms,
            end_ms: wav.len() as u64 / 16,
            speaker,
        });
    }
    wav.extend(std::iter::repeat_n(0.0, 16 * 400));
    (wav, turns)
}

fn speakers(turns: &[SpeakerTurn]) -> usize {
    turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0)
}

/// Alternates the clips of several voices: voice 0, 1, ..., 0, 1, ...
fn interleave(voices: &[Vec<Vec<f32>>]) -> (Vec<f32>, Vec<SpeakerTurn>) {
    let n = voices.iter().map(Vec::len).min().unwrap();
    let clips: Vec<(usize, &[f32])> = (0..n)
        .flat_map(|i| voices.iter().enumerate().map(move |(v, c)| (v, &c[i][..])))
        .collect();
    assemble(&clips)
}

#[test]
fn two_voices_are_told_apart_and_counted() {
    let d = diarizer();
    // An English male voice and a Mandarin female voice from two different calls.
    let (wav, reference) = interleave(&[turns_of("en-03", 0, 5), turns_of("zh-01", 3, 5)]);
    let hyp = d.diarize(&wav, &DiarizeOptions::default()).unwrap();
    assert_eq!(speakers(&hyp), 2, "{hyp:?}");
    let s = score(&reference, &hyp, 250);
    assert!(s.der() < 0.05, "DER {} ({s:?})", s.der());
    // The same with the count given.
    let fixed = DiarizeOptions {
        speakers: Some(2),
        ..DiarizeOptions::default()
    };
    let hyp = d.diarize(&wav, &fixed).unwrap();
    assert!(score(&reference, &hyp, 250).der() < 0.05);
}

#[test]
fn three_voices_are_counted_and_a_fixed_count_is_obeyed() {
    let d = diarizer();
    let (wav, reference) = interleave(&[
        turns_of("en-03", 0, 4),
        turns_of("en-03", 1, 4),
        turns_of("zh-01", 1, 4),
    ]);
    let hyp = d.diarize(&wav, &DiarizeOptions::default()).unwrap();
    assert_eq!(speakers(&hyp), 3, "{hyp:?}");
    assert!(score(&reference, &hyp, 250).der() < 0.1);
    for k in [1, 2, 5] {
        let opts = DiarizeOptions {
            speakers: Some(k),
            ..DiarizeOptions::default()
        };
        assert_eq!(speakers(&d.diarize(&wav, &opts).unwrap()), k);
    }
}

#[test]
fn one_speaker_stays_one_speaker() {
    let d = diarizer();
    let clips = turns_of("en-02", 0, 8);
    let (wav, reference) = assemble(&clips.iter().map(|c| (0, &c[..])).collect::<Vec<_>>());
    let hyp = d.diarize(&wav, &DiarizeOptions::default()).unwrap();
    assert!(hyp.iter().all(|t| t.speaker == 0), "{hyp:?}");
    assert!(score(&reference, &hyp, 250).der() < 0.05);
}

#[test]
fn a_speaker_change_splits_a_whisper_segment() {
    let d = diarizer();
    let (wav, reference) = interleave(&[turns_of("en-03", 0, 2), turns_of("zh-01", 3, 2)]);
    let turns = d.diarize(&wav, &DiarizeOptions::default()).unwrap();
    // One recogniser segment across the first change, with a word on each side of it.
    let (a, b) = (reference[0], reference[1]);
    let seg = TimedSegment {
        start_ms: a.start_ms,
        end_ms: b.end_ms,
        text: " Yes. 好的".into(),
        words: vec![
            Word {
                start_ms: a.end_ms - 600,
                end_ms: a.end_ms - 100,
                text: " Yes.".into(),
            },
            Word {
                start_ms: b.start_ms + 100,
                end_ms: b.start_ms + 700,
                text: " 好的".into(),
            },
        ],
    };
    let out = assign(&[seg], &turns);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_ne!(out[0].speaker, out[1].speaker);
    assert_eq!(
        (out[0].text.as_str(), out[1].text.as_str()),
        ("Yes.", "好的")
    );
}

#[test]
fn silence_and_bad_options() {
    let d = diarizer();
    assert!(
        d.diarize(&vec![0.0; 16_000 * 3], &DiarizeOptions::default())
            .unwrap()
            .is_empty()
    );
    assert!(
        d.diarize(&[], &DiarizeOptions::default())
            .unwrap()
            .is_empty()
    );
    let zero = DiarizeOptions {
        speakers: Some(0),
        ..DiarizeOptions::default()
    };
    let e = d.diarize(&[0.1; 1600], &zero).unwrap_err();
    assert!(matches!(e, crate::Error::InvalidInput(_)), "{e}");
    let e = d
        .diarize(&[f32::NAN; 1600], &DiarizeOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
}
