//! Audio decoding of an upload: every container the product accepts (WAV, MP3, M4A/AAC, Ogg
//! Vorbis, FLAC; symphonia also probes MKV/WebM), probed from the bytes as `POST /calls` and the
//! `call.analyze` job do, then read to the end in bounded blocks like the transcriber.
//! Input: one selector byte (extension hint and channel mode), then the file.
#![no_main]
use dealdesk::asr::{AudioReader, Channels};
use libfuzzer_sys::fuzz_target;

const HINTS: [Option<&str>; 8] = [
    None,
    Some("wav"),
    Some("mp3"),
    Some("m4a"),
    Some("ogg"),
    Some("flac"),
    Some("mkv"),
    Some("bin"),
];

fuzz_target!(
    init: {
        // The reader turns a panic inside symphonia into an error (`catch_unwind`): only a panic
        // that escapes it is a crash, so replace libFuzzer's abort-on-any-panic hook with one
        // that only prints the message (an escaping panic still aborts, in libfuzzer-sys).
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    },
    |data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let hint = HINTS[usize::from(selector) % HINTS.len()];
    let mode = if selector & 0x80 == 0 {
        Channels::Mix
    } else {
        Channels::Split
    };
    let Ok(mut reader) = AudioReader::from_bytes(file.to_vec(), hint, mode) else {
        return;
    };
    let channels = reader.channel_count();
    assert!(channels >= 1);
    while let Ok(Some(block)) = reader.read(16_000) {
        assert_eq!(block.len(), channels);
        assert!(block.iter().all(|c| c.len() <= 16_000));
        let f = reader.fraction_read();
        assert!((0.0..=1.0).contains(&f), "fraction {f}");
    }
});
