//! Diarization on real audio with the real speaker encoder (`dealdesk models fetch` first).
//! Test recordings are assembled from turns of the evaluation calls, whose speakers are
//! different synthetic voices.

use std::path::Path;

use super::cluster::cosine;
use super::der::score;
use super::eval::read_turns;
use super::*;
use crate::asr::{Channels, decode_file};

const CALLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");

fn diarizer() -> Diarizer {
    let path = crate::config::ModelsConfig::default()
        .dir
        .join(format!("{MODEL_ID}.safetensors"));
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

/// One embedding of a whole clip (mean-normalised fbank of all of it).
fn embedding(d: &Diarizer, clip: &[f32]) -> [f32; campplus::DIM] {
    let frames = d.fbank.frames(clip);
    d.encoder.embed(&[&frames]).unwrap()[0]
}

#[test]
fn real_voices_are_closer_to_themselves_than_to_others() {
    let d = diarizer();
    let audio = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/audio/");
    let clip = |name: &str| {
        decode_file(&Path::new(audio).join(name), Channels::Mix)
            .unwrap()
            .channel(0)
            .to_vec()
    };
    // President Kennedy (one speaker, 11 s) in two halves; two utterances of one AISHELL-1
    // speaker (S0764).
    let jfk = clip("en/jfk.wav");
    let (jfk_a, jfk_b) = jfk.split_at(jfk.len() / 2);
    let (jfk_a, jfk_b) = (embedding(&d, jfk_a), embedding(&d, jfk_b));
    let zh_a = embedding(&d, &clip("zh/BAC009S0764W0121.wav"));
    let zh_b = embedding(&d, &clip("zh/BAC009S0764W0122.wav"));
    let same = [cosine(&jfk_a, &jfk_b), cosine(&zh_a, &zh_b)];
    let different = [
        cosine(&jfk_a, &zh_a),
        cosine(&jfk_a, &zh_b),
        cosine(&jfk_b, &zh_a),
        cosine(&jfk_b, &zh_b),
    ];
    // Measured: same 0.74 (JFK, old broadcast audio) and 0.88; different 0.03-0.07.
    let lowest_same = same.iter().copied().fold(f32::MAX, f32::min);
    let highest_different = different.iter().copied().fold(f32::MIN, f32::max);
    assert!(
        lowest_same > 0.6 && highest_different < 0.3,
        "same {same:?} different {different:?}"
    );

    // Turns of the dev call zh-02: the two halves of a speaker's longest turn against
    // that speaker's and another speaker's other turns.
    let turn = |speaker| {
        let mut t = turns_of("zh-02", speaker, 20);
        t.sort_by_key(|c| std::cmp::Reverse(c.len()));
        t
    };
    let (first, second) = (turn(0), turn(1));
    let (a, b) = first[0].split_at(first[0].len() / 2);
    let (a, b) = (embedding(&d, a), embedding(&d, b));
    let own = embedding(&d, &first[1]);
    let other = embedding(&d, &second[0]);
    let same = [cosine(&a, &b), cosine(&a, &own), cosine(&b, &own)];
    let different = [cosine(&a, &other), cosine(&b, &other), cosine(&own, &other)];
    // Measured: same 0.87-0.91, different 0.26-0.35.
    let lowest_same = same.iter().copied().fold(f32::MAX, f32::min);
    let highest_different = different.iter().copied().fold(f32::MIN, f32::max);
    assert!(
        lowest_same > highest_different + 0.3,
        "same {same:?} different {different:?}"
    );
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
