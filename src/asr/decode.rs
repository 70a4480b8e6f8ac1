//! Decoding audio files (WAV, MP3, M4A/AAC, Ogg Vorbis, FLAC) to 16 kHz `f32` PCM.
//!
//! The container is probed from the bytes (a file extension is only a hint), the first audio
//! track is decoded with symphonia, downmixed to mono or kept as separate channels
//! ([`Channels`]), and resampled to [`SAMPLE_RATE`] with a band-limited sinc filter.
//!
//! [`AudioReader`] does this incrementally: it holds one decoder packet and one resampler chunk
//! at a time and hands out 16 kHz blocks of a size the caller chooses, so an hour-long call is
//! transcribed in bounded memory. [`decode_file`] / [`decode_bytes`] read everything into an
//! [`Audio`] (16 kHz mono `f32` costs 230 MB per hour per channel; use the reader for long
//! files).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use symphonia::core::audio::{AudioBuffer, Signal};
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_VORBIS, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::{Hint, Probe};

use super::resample::StreamResampler;
use crate::error::{Error, Result};

/// The sample rate Whisper expects, and the rate of every decoded [`Audio`].
pub const SAMPLE_RATE: u32 = 16_000;

/// The formats [`decode_file`] accepts, for error messages and docs.
pub const SUPPORTED_FORMATS: &str = "WAV, MP3, M4A/AAC, Ogg Vorbis, FLAC";

/// The lowest source sample rate accepted (telephone audio is 8 kHz).
const MIN_SAMPLE_RATE: u32 = 4_000;

/// Packets that fail to decode before the input counts as corrupt (when they also outnumber
/// the good ones).
const MAX_BAD_PACKETS: u32 = 16;

/// How to treat a multi-channel recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    /// Average all channels into one.
    #[default]
    Mix,
    /// Keep every channel separate (a stereo call recording often has one party per channel);
    /// the transcript tags each segment with its channel.
    Split,
}

impl std::str::FromStr for Channels {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mix" | "mono" => Ok(Channels::Mix),
            "split" => Ok(Channels::Split),
            other => Err(Error::InvalidInput(format!(
                "unknown channel mode {other:?}: use `mix` or `split`"
            ))),
        }
    }
}

/// What the source file contained, before conversion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    /// The codec, e.g. `mp3`, `aac`, `pcm_s16le`.
    pub codec: String,
    /// The source sample rate in Hz.
    pub sample_rate: u32,
    /// The source channel count.
    pub channels: usize,
    /// The duration the container declares, if it declares one.
    pub declared_duration_ms: Option<u64>,
}

/// Decoded audio: one or more channels of 16 kHz mono `f32` samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct Audio {
    channels: Vec<Vec<f32>>,
    mode: Channels,
    source: Option<SourceInfo>,
}

impl Audio {
    /// Wraps 16 kHz mono samples (e.g. produced by another component, or in tests).
    pub fn from_mono(samples: Vec<f32>) -> Self {
        Audio {
            channels: vec![samples],
            mode: Channels::Mix,
            source: None,
        }
    }

    /// Wraps separate 16 kHz channels of equal length; segments will be tagged by channel.
    pub fn from_channels(channels: Vec<Vec<f32>>) -> Result<Self> {
        let len = channels.first().map(Vec::len);
        if channels.is_empty() || channels.iter().any(|c| Some(c.len()) != len) {
            return Err(Error::InvalidInput(
                "audio needs at least one channel, all of the same length".into(),
            ));
        }
        Ok(Audio {
            channels,
            mode: Channels::Split,
            source: None,
        })
    }

    /// Number of channels (1 in [`Channels::Mix`] mode).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The samples of channel `index`.
    pub fn channel(&self, index: usize) -> &[f32] {
        &self.channels[index]
    }

    /// Whether channels were mixed or kept separate.
    pub fn mode(&self) -> Channels {
        self.mode
    }

    /// Frames per channel.
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }

    /// What the file contained, when the audio was decoded from one.
    pub fn source(&self) -> Option<&SourceInfo> {
        self.source.as_ref()
    }
}

/// Decodes a whole audio file to 16 kHz. See [`AudioReader`] for long files.
pub fn decode_file(path: &Path, channels: Channels) -> Result<Audio> {
    AudioReader::open(path, channels)?.read_to_end()
}

/// The start of the input, where symphonia's probe looks for a format marker (empty when it
/// cannot be read): the size checks find their container's marker in it.
fn probe_window(input: &mut (impl Read + Seek)) -> Vec<u8> {
    const PROBE_WINDOW: u64 = 1024 * 1024 + 16;
    let mut head = Vec::new();
    if input.seek(SeekFrom::Start(0)).is_err()
        || input.take(PROBE_WINDOW).read_to_end(&mut head).is_err()
    {
        head.clear();
    }
    head
}

/// Decodes an in-memory audio file (e.g. an upload) to 16 kHz. `hint` is an optional file
/// extension (`"mp3"`); the format is probed from the content either way.
pub fn decode_bytes<B>(bytes: B, hint: Option<&str>, channels: Channels) -> Result<Audio>
where
    B: AsRef<[u8]> + Send + Sync + 'static,
{
    AudioReader::from_bytes(bytes, hint, channels)?.read_to_end()
}

/// Streaming decoder: reads an audio file packet by packet and returns 16 kHz blocks.
pub struct AudioReader {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    mode: Channels,
    source: SourceInfo,
    /// Channels handed out: 1 for `Mix`, the source's count for `Split`.
    out_channels: usize,
    resampler: StreamResampler,
    /// Resampled frames not yet handed out.
    ready: Vec<Vec<f32>>,
    /// Scratch for converting decoded packets.
    planar: Option<AudioBuffer<f32>>,
    mix: Vec<f32>,
    declared_frames: Option<u64>,
    decoded_frames: u64,
    good_packets: u32,
    bad_packets: u32,
    last_decode_error: Option<String>,
    ended: bool,
    finished: bool,
    bytes_read: Arc<AtomicU64>,
    byte_len: Option<u64>,
    /// The file name, for error messages.
    label: Option<String>,
}

impl std::fmt::Debug for AudioReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioReader")
            .field("source", &self.source)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl AudioReader {
    /// Opens `path`, probes its format and decodes the first packet (so unsupported or corrupt
    /// input fails here, before any transcription work).
    pub fn open(path: &Path, channels: Channels) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("opening audio file", path, e))?;
        let hint = path.extension().and_then(|e| e.to_str());
        let label = path.display().to_string();
        let mut r =
            Self::new(Box::new(file), hint, channels).map_err(|e| with_context(e, Some(&label)))?;
        r.label = Some(label);
        Ok(r)
    }

    /// Like [`AudioReader::open`], for an in-memory file.
    pub fn from_bytes<B>(bytes: B, hint: Option<&str>, channels: Channels) -> Result<Self>
    where
        B: AsRef<[u8]> + Send + Sync + 'static,
    {
        Self::new(Box::new(std::io::Cursor::new(bytes)), hint, channels)
    }

    fn new(inner: Box<dyn MediaSource>, hint: Option<&str>, mode: Channels) -> Result<Self> {
        catch_decoder_panic("reading the audio container", || {
            Self::probe(inner, hint, mode)
        })
    }

    fn probe(mut inner: Box<dyn MediaSource>, hint: Option<&str>, mode: Channels) -> Result<Self> {
        if inner.byte_len() == Some(0) {
            return Err(Error::InvalidInput("the audio file is empty".into()));
        }
        if inner.byte_len().is_some() {
            let tags = after_id3v2_tags(&probe_window(&mut inner));
            if tags > 0 {
                inner = Box::new(AfterTags::new(inner, tags).map_err(|e| {
                    Error::InvalidInput(format!("cannot read the audio file: {e}"))
                })?);
            }
        }
        let byte_len = inner.byte_len();
        if let Some(len) = byte_len {
            // Sizes symphonia would allocate by, checked against the file first: a failed
            // allocation aborts the process, which no `catch_unwind` stops.
            let head = probe_window(&mut inner);
            let checked = super::mp4::check_box_sizes(&mut inner, &head, len)
                .map_err(|e| format!("the MP4/M4A file is corrupt ({e})"))
                .and_then(|()| {
                    super::mkv::check_element_sizes(&mut inner, &head, len)
                        .map_err(|e| format!("the Matroska/WebM file is corrupt ({e})"))
                })
                .and_then(|()| {
                    super::riff::check_info_values(&mut inner, &head, len)
                        .map_err(|e| format!("the WAV file is corrupt ({e})"))
                })
                .and_then(|()| {
                    super::flac::check_metadata_blocks(&mut inner, &head)
                        .map_err(|e| format!("the FLAC file is corrupt ({e})"))
                });
            inner
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::InvalidInput(format!("cannot read the audio file: {e}")))?;
            if let Err(e) = checked {
                return Err(Error::InvalidInput(format!(
                    "{e}; re-export or re-upload it"
                )));
            }
        }
        let bytes_read = Arc::new(AtomicU64::new(0));
        let source = Counting {
            inner,
            pos: bytes_read.clone(),
        };
        let mss = MediaSourceStream::new(Box::new(source), Default::default());
        let mut h = Hint::new();
        if let Some(ext) = hint {
            h.with_extension(ext);
        }
        let probed = PROBE
            .format(
                &h,
                mss,
                &FormatOptions {
                    enable_gapless: true,
                    ..Default::default()
                },
                &MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::IoError(_) | SymError::Unsupported(_) => Error::InvalidInput(format!(
                    "not a recognised audio file (the content matches none of {SUPPORTED_FORMATS}): \
                     convert it to one of those"
                )),
                other => invalid("reading the audio container", other),
            })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| {
                t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some()
            })
            .or_else(|| {
                format
                    .tracks()
                    .iter()
                    .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            })
            .ok_or_else(|| Error::InvalidInput("the file contains no audio track".into()))?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map(|d| d.short_name.to_string())
            .unwrap_or_else(|| format!("{:?}", params.codec));
        if params.codec == CODEC_TYPE_VORBIS
            && let Some(extra_data) = &params.extra_data
        {
            super::vorbis::check_setup(extra_data).map_err(|e| {
                Error::InvalidInput(format!(
                    "the Vorbis stream is corrupt ({e}); re-export or re-upload it"
                ))
            })?;
        }
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymError::Unsupported(_) => Error::InvalidInput(format!(
                    "unsupported audio codec {codec} (supported: {SUPPORTED_FORMATS}): convert \
                     the file to one of those"
                )),
                other => invalid("opening the audio decoder", other),
            })?;
        let declared_frames = params.n_frames.filter(|&n| n > 0);
        let mut reader = AudioReader {
            format,
            decoder,
            track_id,
            mode,
            source: SourceInfo {
                codec,
                sample_rate: params.sample_rate.unwrap_or(0),
                channels: params.channels.map_or(0, |c| c.count()),
                declared_duration_ms: None,
            },
            out_channels: 0,
            resampler: StreamResampler::new(1, 1, 1)?,
            ready: Vec::new(),
            planar: None,
            mix: Vec::new(),
            declared_frames,
            decoded_frames: 0,
            good_packets: 0,
            bad_packets: 0,
            last_decode_error: None,
            ended: false,
            finished: false,
            bytes_read,
            byte_len,
            label: None,
        };
        // Decode until the first audio arrives: this fixes the real rate and channel count and
        // rejects undecodable input up front.
        while reader.out_channels == 0 {
            if !reader.decode_next()? {
                return Err(reader.no_audio_error());
            }
        }
        Ok(reader)
    }

    /// What the source contains.
    pub fn source(&self) -> &SourceInfo {
        &self.source
    }

    /// Channels in each block: 1 for [`Channels::Mix`], the source's count for `Split`.
    pub fn channel_count(&self) -> usize {
        self.out_channels
    }

    /// The channel mode.
    pub fn mode(&self) -> Channels {
        self.mode
    }

    /// The declared duration in 16 kHz frames, if the container declares one.
    pub fn declared_frames(&self) -> Option<u64> {
        self.source
            .declared_duration_ms
            .map(|ms| ms * u64::from(SAMPLE_RATE) / 1000)
    }

    /// Roughly how much of the input has been consumed, 0..=1 (by declared duration, else by
    /// bytes read).
    pub fn fraction_read(&self) -> f32 {
        if self.finished {
            return 1.0;
        }
        if let (Some(total), true) = (self.declared_frames, self.source.sample_rate > 0) {
            return (self.decoded_frames as f64 / total as f64).clamp(0.0, 1.0) as f32;
        }
        match self.byte_len {
            Some(len) if len > 0 => {
                (self.bytes_read.load(Ordering::Relaxed) as f64 / len as f64).clamp(0.0, 1.0) as f32
            }
            _ => 0.0,
        }
    }

    /// Returns the next block of up to `max_frames` 16 kHz frames per channel (exactly
    /// `max_frames` except for the last block), or `None` at the end.
    pub fn read(&mut self, max_frames: usize) -> Result<Option<Vec<Vec<f32>>>> {
        let read = catch_decoder_panic("decoding the audio", || self.read_inner(max_frames));
        if read.is_err() {
            // The decoder's state is unknown after a panic: nothing more comes out.
            self.finished = true;
            self.ready.iter_mut().for_each(Vec::clear);
        }
        read.map_err(|e| with_context(e, self.label.as_deref()))
    }

    fn read_inner(&mut self, max_frames: usize) -> Result<Option<Vec<Vec<f32>>>> {
        let max_frames = max_frames.max(1);
        while self.ready[0].len() < max_frames && !self.finished {
            if !self.decode_next()? {
                self.resampler.finish(&mut self.ready)?;
                self.finished = true;
                self.check_complete()?;
            }
        }
        if self.ready[0].is_empty() {
            return Ok(None);
        }
        let n = max_frames.min(self.ready[0].len());
        let block = self
            .ready
            .iter_mut()
            .map(|c| {
                let rest = c.split_off(n);
                std::mem::replace(c, rest)
            })
            .collect();
        Ok(Some(block))
    }

    /// Decodes everything that is left into an [`Audio`].
    pub fn read_to_end(mut self) -> Result<Audio> {
        let mut channels = vec![Vec::new(); self.out_channels];
        while let Some(block) = self.read(SAMPLE_RATE as usize * 60)? {
            for (c, b) in channels.iter_mut().zip(block) {
                c.extend_from_slice(&b);
            }
        }
        Ok(Audio {
            channels,
            mode: self.mode,
            source: Some(self.source),
        })
    }

    /// Decodes one more packet into `self.ready`. Returns `false` at the end of the stream.
    fn decode_next(&mut self) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.ended = true;
                    return Ok(false);
                }
                Err(SymError::ResetRequired) => {
                    self.ended = true;
                    return Ok(false);
                }
                Err(SymError::DecodeError(e)) => {
                    self.note_bad_packet(e)?;
                    continue;
                }
                Err(e) => return Err(invalid("reading the audio stream", e)),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymError::DecodeError(e)) => {
                    self.note_bad_packet(e)?;
                    continue;
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.ended = true;
                    return Ok(false);
                }
                Err(e) => return Err(invalid("decoding the audio", e)),
            };
            let spec = *decoded.spec();
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let capacity = decoded.capacity();
            match &mut self.planar {
                Some(buf) if buf.capacity() >= capacity && buf.spec() == &spec => {}
                slot => *slot = Some(AudioBuffer::new(capacity as u64, spec)),
            }
            let Some(buf) = self.planar.as_mut() else {
                unreachable!("planar buffer allocated above")
            };
            decoded.convert(buf);
            self.good_packets += 1;
            if self.out_channels == 0 {
                self.init_output(spec.rate, spec.channels.count())?;
            } else if spec.rate != self.source.sample_rate {
                return Err(Error::InvalidInput(format!(
                    "the sample rate changes mid-stream ({} Hz to {} Hz), which is not supported: \
                     convert the file to a constant rate",
                    self.source.sample_rate, spec.rate
                )));
            }
            let Some(buf) = self.planar.as_ref() else {
                unreachable!("planar buffer allocated above")
            };
            self.decoded_frames += frames as u64;
            let src_channels = buf.spec().channels.count();
            match self.mode {
                Channels::Mix => {
                    self.mix.clear();
                    self.mix.resize(frames, 0.0);
                    for c in 0..src_channels {
                        for (m, s) in self.mix.iter_mut().zip(buf.chan(c)) {
                            *m += *s;
                        }
                    }
                    let scale = 1.0 / src_channels as f32;
                    self.mix.iter_mut().for_each(|m| *m *= scale);
                    self.resampler.push(&[&self.mix], &mut self.ready)?;
                }
                Channels::Split => {
                    // A stream whose channel count changes keeps the first count: missing
                    // channels repeat the last one, extra ones are dropped.
                    let chans: Vec<&[f32]> = (0..self.out_channels)
                        .map(|c| buf.chan(c.min(src_channels - 1)))
                        .collect();
                    self.resampler.push(&chans, &mut self.ready)?;
                }
            }
            return Ok(true);
        }
    }

    fn init_output(&mut self, rate: u32, channels: usize) -> Result<()> {
        if rate == 0 || channels == 0 {
            return Err(Error::InvalidInput(
                "the audio stream declares no sample rate or no channels".into(),
            ));
        }
        if rate < MIN_SAMPLE_RATE {
            // Each source frame would become 16000/rate output frames: a tiny file declaring
            // 3 Hz expands ~5000-fold (found by fuzzing: a 300-byte WAV took minutes).
            return Err(Error::InvalidInput(format!(
                "the audio declares a sample rate of {rate} Hz, below the {MIN_SAMPLE_RATE} Hz \
                 that speech needs: the file is corrupt or not a voice recording"
            )));
        }
        self.source.sample_rate = rate;
        self.source.channels = channels;
        self.source.declared_duration_ms = self.declared_frames.map(|n| n * 1000 / u64::from(rate));
        self.out_channels = match self.mode {
            Channels::Mix => 1,
            Channels::Split => channels,
        };
        self.resampler = StreamResampler::new(rate, SAMPLE_RATE, self.out_channels)?;
        self.ready = vec![Vec::new(); self.out_channels];
        Ok(())
    }

    fn note_bad_packet(&mut self, e: &str) -> Result<()> {
        self.bad_packets += 1;
        self.last_decode_error = Some(e.to_string());
        if self.bad_packets > MAX_BAD_PACKETS && self.bad_packets > self.good_packets {
            return Err(Error::InvalidInput(format!(
                "the {} audio is corrupt: {} of {} packets failed to decode (last error: {e}); \
                 re-export or re-upload the file",
                self.source.codec,
                self.bad_packets,
                self.bad_packets + self.good_packets
            )));
        }
        Ok(())
    }

    fn no_audio_error(&self) -> Error {
        match &self.last_decode_error {
            Some(e) => Error::InvalidInput(format!(
                "the {} audio could not be decoded ({e}): the file is corrupt or truncated",
                self.source.codec
            )),
            None => Error::InvalidInput(format!(
                "the {} file contains no audio samples: it is empty or truncated",
                self.source.codec
            )),
        }
    }

    /// After the end of the stream: a container that declared a length much longer than what
    /// could be decoded is truncated (an interrupted upload or copy).
    fn check_complete(&self) -> Result<()> {
        let Some(declared) = self.declared_frames else {
            return Ok(());
        };
        let rate = u64::from(self.source.sample_rate.max(1));
        // Allow for encoder padding and a damaged last packet: 2% or 0.5 s, whichever is more.
        let slack = (declared / 50).max(rate / 2);
        if self.decoded_frames + slack < declared {
            return Err(Error::InvalidInput(format!(
                "the {} audio is truncated: the file declares {:.1} s but only {:.1} s could be \
                 decoded; upload the complete file",
                self.source.codec,
                declared as f64 / rate as f64,
                self.decoded_frames as f64 / rate as f64
            )));
        }
        Ok(())
    }
}

/// Runs a decoding step, turning a panic inside the demuxers and decoders into an
/// `InvalidInput`: a malformed file can trip an arithmetic overflow or a bounds check in
/// symphonia (found by fuzzing, `fuzz/`), and one bad upload must not take a worker down.
fn catch_decoder_panic<T>(what: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::InvalidInput(format!(
            "{what} failed: the decoder could not make sense of the file ({reason}); the file \
             is corrupt or not a supported audio file ({SUPPORTED_FORMATS})"
        )))
    })
}

fn invalid(what: &str, e: SymError) -> Error {
    Error::InvalidInput(format!(
        "{what} failed: {e}; the file is corrupt or not a supported audio file ({SUPPORTED_FORMATS})"
    ))
}

fn with_context(e: Error, name: Option<&str>) -> Error {
    match (e, name) {
        (Error::InvalidInput(m), Some(name)) => Error::InvalidInput(format!("{name}: {m}")),
        (other, _) => other,
    }
}

/// symphonia's probe for the containers dealdesk accepts, without symphonia's ID3v2 tag reader:
/// it allocates by frame sizes of up to 4 GiB before reading the frames (a failed allocation
/// aborts the process), and dealdesk uses no tags. Leading tags are cut off instead
/// ([`AfterTags`]); any others are skipped over like other bytes that are not audio.
static PROBE: LazyLock<Probe> = LazyLock::new(|| {
    use symphonia::default::formats::{
        AdtsReader, FlacReader, IsoMp4Reader, MkvReader, MpaReader, OggReader, WavReader,
    };
    let mut probe = Probe::default();
    probe.register_all::<AdtsReader>();
    probe.register_all::<FlacReader>();
    probe.register_all::<IsoMp4Reader>();
    probe.register_all::<MpaReader>();
    probe.register_all::<WavReader>();
    probe.register_all::<OggReader>();
    probe.register_all::<MkvReader>();
    probe
});

/// Where the audio starts after the ID3v2 tags (title, artist, cover art) at the start of
/// `head`, as an MP3 or FLAC file may have them: 0 when there are none.
fn after_id3v2_tags(head: &[u8]) -> u64 {
    let mut start = 0u64;
    loop {
        let Some(header) = usize::try_from(start)
            .ok()
            .and_then(|at| head.get(at..at.checked_add(10)?))
        else {
            return start;
        };
        // "ID3", version, flags, then the size in four 7-bit bytes.
        let size = &header[6..10];
        if !header.starts_with(b"ID3") || size.iter().any(|b| b & 0x80 != 0) {
            return start;
        }
        let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
        start += 10 + size.iter().fold(0, |n, &b| n << 7 | u64::from(b)) + footer;
    }
}

/// A media source without its first `start` bytes: leading ID3v2 tags, which symphonia is
/// not given (see [`PROBE`]). Without them its probe would search the tags' bytes (a cover
/// image, say) for the start of the audio.
struct AfterTags {
    inner: Box<dyn MediaSource>,
    start: u64,
}

impl AfterTags {
    fn new(mut inner: Box<dyn MediaSource>, start: u64) -> std::io::Result<Self> {
        let start = start.min(inner.byte_len().unwrap_or(u64::MAX));
        inner.seek(SeekFrom::Start(start))?;
        Ok(AfterTags { inner, start })
    }
}

impl Read for AfterTags {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for AfterTags {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let to = match to {
            SeekFrom::Start(n) => SeekFrom::Start(self.start.saturating_add(n)),
            relative => relative,
        };
        let at = self.inner.seek(to)?;
        at.checked_sub(self.start).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the audio")
        })
    }
}

impl MediaSource for AfterTags {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner
            .byte_len()
            .map(|len| len.saturating_sub(self.start))
    }
}

/// A media source that counts the bytes consumed, for progress reporting.
struct Counting {
    inner: Box<dyn MediaSource>,
    pos: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for Counting {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = self.inner.seek(to)?;
        self.pos.store(p, Ordering::Relaxed);
        Ok(p)
    }
}

impl MediaSource for Counting {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::testutil::{eval_clip, ffmpeg, sine, tone_amplitude, write_wav};

    fn err_text(r: Result<Audio>) -> String {
        match r {
            Err(Error::InvalidInput(m)) => m,
            Err(other) => panic!("expected InvalidInput, got {other:?}"),
            Ok(a) => panic!("expected an error, decoded {} ms", a.duration_ms()),
        }
    }

    /// A 3 s 48 kHz stereo MP3: 440 Hz on the left, 1 kHz on the right.
    fn stereo_mp3(dir: &Path) -> PathBuf {
        let wav = dir.join("stereo48k.wav");
        write_wav(
            &wav,
            48_000,
            &[
                sine(440.0, 48_000, 3.0, 0.5),
                sine(1000.0, 48_000, 3.0, 0.25),
            ],
        );
        let mp3 = dir.join("stereo48k.mp3");
        ffmpeg(&[
            "-i",
            wav.to_str().unwrap(),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            mp3.to_str().unwrap(),
        ]);
        mp3
    }

    use std::path::PathBuf;

    #[test]
    fn wav_16k_mono_passes_through() {
        let a = decode_file(&eval_clip("en/jfk.wav"), Channels::Mix).unwrap();
        assert_eq!(a.channel_count(), 1);
        assert_eq!(a.frames(), 176_000);
        assert_eq!(a.duration_ms(), 11_000);
        let src = a.source().unwrap();
        assert_eq!((src.sample_rate, src.channels), (16_000, 1));
        assert_eq!(src.declared_duration_ms, Some(11_000));
        assert!(a.channel(0).iter().all(|v| v.abs() <= 1.0));
    }

    #[test]
    fn stereo_48k_mp3_split_and_mix() {
        let dir = tempfile::tempdir().unwrap();
        let mp3 = stereo_mp3(dir.path());

        let split = decode_file(&mp3, Channels::Split).unwrap();
        let src = split.source().unwrap();
        assert_eq!(src.codec, "mp3");
        assert_eq!((src.sample_rate, src.channels), (48_000, 2));
        assert_eq!(split.channel_count(), 2);
        assert_eq!(split.mode(), Channels::Split);
        // 3 s at 16 kHz, give or take the encoder's padding.
        assert!(
            (split.frames() as i64 - 48_000).abs() < 1_600,
            "{} frames",
            split.frames()
        );
        let mid = |x: &[f32]| x[8_000..40_000].to_vec();
        let (l, r) = (mid(split.channel(0)), mid(split.channel(1)));
        assert!((tone_amplitude(&l, 440.0) - 0.5).abs() < 0.05);
        assert!(tone_amplitude(&l, 1000.0) < 0.01);
        assert!((tone_amplitude(&r, 1000.0) - 0.25).abs() < 0.03);
        assert!(tone_amplitude(&r, 440.0) < 0.01);

        let mix = decode_file(&mp3, Channels::Mix).unwrap();
        assert_eq!(mix.channel_count(), 1);
        let m = mid(mix.channel(0));
        assert!((tone_amplitude(&m, 440.0) - 0.25).abs() < 0.03);
        assert!((tone_amplitude(&m, 1000.0) - 0.125).abs() < 0.02);
    }

    /// An ID3v2 tag: version 2.`version`, `flags`, `body` (its size in 7-bit bytes).
    fn id3v2_tag(version: u8, flags: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut tag = vec![b'I', b'D', b'3', version, 0, flags];
        tag.extend([n >> 21, n >> 14, n >> 7, n].map(|b| (b & 0x7f) as u8));
        tag.extend_from_slice(body);
        tag
    }

    #[test]
    fn id3v2_tags_are_cut_off_unread() {
        let dir = tempfile::tempdir().unwrap();
        let mp3 = std::fs::read(stereo_mp3(dir.path())).unwrap();
        // A title frame claiming 4 GiB: symphonia's own ID3v2 reader allocated that before
        // reading it (an abort where the memory is not there) and then refused the file.
        let mut title = b"TIT2".to_vec();
        title.extend_from_slice(&0xffff_ff00u32.to_be_bytes());
        title.extend_from_slice(b"\0\0\0title");
        // Then a tag with a footer whose "cover image" is full of MPEG frame-sync look-alikes
        // (FF FB 90 64), where a probe searching the tag's bytes would find a false start.
        let cover = [0xff, 0xfb, 0x90, 0x64].repeat(1024);
        let mut tagged = id3v2_tag(3, 0, &title);
        tagged.extend(id3v2_tag(4, 0x10, &cover));
        tagged.extend_from_slice(b"3DI\x04\0\x10\0\0\x20\0"); // the footer
        assert_eq!(after_id3v2_tags(&tagged), tagged.len() as u64);
        tagged.extend_from_slice(&mp3);
        let plain = decode_bytes(mp3, None, Channels::Split).unwrap();
        let cut = decode_bytes(tagged, None, Channels::Split).unwrap();
        assert!(plain.frames() > 40_000);
        assert_eq!(cut.frames(), plain.frames());
        assert_eq!(cut.channel(1), plain.channel(1));
        // Not a tag: a size byte with its high bit set.
        assert_eq!(after_id3v2_tags(b"ID3\x04\0\0\x80\0\0\0"), 0);
    }

    #[test]
    fn every_supported_container_decodes_by_content() {
        let jfk = eval_clip("en/jfk.wav");
        let reference = decode_file(&jfk, Channels::Mix).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, &[&str])] = &[
            ("m4a", &["-c:a", "aac", "-b:a", "64k"]),
            ("ogg", &["-c:a", "libvorbis", "-q:a", "4"]),
            ("flac", &["-c:a", "flac"]),
            ("mp3", &["-c:a", "libmp3lame", "-b:a", "64k"]),
            ("wav", &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s24le"]),
        ];
        for (ext, codec) in cases {
            let out = dir.path().join(format!("jfk.{ext}"));
            let mut args = vec!["-i", jfk.to_str().unwrap()];
            args.extend_from_slice(codec);
            args.push(out.to_str().unwrap());
            ffmpeg(&args);
            // A misleading name: the content decides the format.
            let renamed = dir.path().join(format!("upload-{ext}.bin"));
            std::fs::rename(&out, &renamed).unwrap();
            let a = decode_file(&renamed, Channels::Mix).unwrap_or_else(|e| panic!("{ext}: {e}"));
            let ms = a.duration_ms() as i64;
            assert!((ms - 11_000).abs() <= 120, "{ext}: {ms} ms");
            // Same signal: correlation with the original (allowing for codec delay).
            let best = (0..2000)
                .step_by(8)
                .map(|lag| correlation(reference.channel(0), &a.channel(0)[lag.min(a.frames())..]))
                .chain(
                    (0..2000)
                        .step_by(8)
                        .map(|lag| correlation(&reference.channel(0)[lag..], a.channel(0))),
                )
                .fold(f32::MIN, f32::max);
            assert!(best > 0.8, "{ext}: correlation {best}");

            let bytes = std::fs::read(&renamed).unwrap();
            let b = decode_bytes(bytes, None, Channels::Mix).unwrap();
            assert_eq!(b.frames(), a.frames(), "{ext}: bytes vs file");
        }
    }

    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len()).min(160_000);
        let (a, b) = (&a[..n], &b[..n]);
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb).max(1e-9)
    }

    #[test]
    fn streaming_reader_matches_whole_decode() {
        let dir = tempfile::tempdir().unwrap();
        let mp3 = stereo_mp3(dir.path());
        let whole = decode_file(&mp3, Channels::Split).unwrap();
        let mut r = AudioReader::open(&mp3, Channels::Split).unwrap();
        assert_eq!(r.channel_count(), 2);
        let mut got = [Vec::new(), Vec::new()];
        let mut last_fraction = 0.0;
        while let Some(block) = r.read(5_000).unwrap() {
            assert!(block[0].len() <= 5_000);
            for (g, b) in got.iter_mut().zip(block) {
                g.extend(b);
            }
            assert!(r.fraction_read() >= last_fraction);
            last_fraction = r.fraction_read();
        }
        assert_eq!(r.fraction_read(), 1.0);
        assert_eq!(got[0], whole.channel(0));
        assert_eq!(got[1], whole.channel(1));
    }

    #[test]
    fn truncated_mp3_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mp3 = stereo_mp3(dir.path());
        let bytes = std::fs::read(&mp3).unwrap();

        let half = dir.path().join("half.mp3");
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        let msg = err_text(decode_file(&half, Channels::Mix));
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains("half.mp3"), "{msg}");

        let stub = dir.path().join("stub.mp3");
        std::fs::write(&stub, &bytes[..200]).unwrap();
        let msg = err_text(decode_file(&stub, Channels::Mix));
        assert!(
            msg.contains("truncated") || msg.contains("not a recognised"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_wav_is_a_clear_error() {
        let bytes = std::fs::read(eval_clip("en/jfk.wav")).unwrap();
        let msg = err_text(decode_bytes(
            bytes[..bytes.len() / 3].to_vec(),
            Some("wav"),
            Channels::Mix,
        ));
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn random_bytes_and_empty_input_are_clear_errors() {
        use rand::{RngCore, SeedableRng};
        for seed in 0..8u64 {
            let mut bytes = vec![0u8; 64 * 1024];
            rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
            for hint in [None, Some("mp3"), Some("wav")] {
                let msg = err_text(decode_bytes(bytes.clone(), hint, Channels::Mix));
                assert!(
                    msg.contains("not a recognised audio file")
                        || msg.contains("corrupt")
                        || msg.contains("truncated"),
                    "seed {seed}, hint {hint:?}: {msg}"
                );
            }
        }
        let msg = err_text(decode_bytes(Vec::new(), None, Channels::Mix));
        assert!(msg.contains("empty"), "{msg}");
        let msg = err_text(decode_bytes(
            b"hello, this is text".to_vec(),
            Some("mp3"),
            Channels::Mix,
        ));
        assert!(msg.contains("not a recognised audio file"), "{msg}");
    }

    /// Inputs that crashed or hung the `audio_decode` fuzz target (`fuzz/`), without its
    /// selector byte: each is a quick, clear error, never a panic or a hang.
    #[test]
    fn fuzz_regressions_are_clear_errors() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/asr/fuzz_regressions");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty());
        for file in files {
            for mode in [Channels::Mix, Channels::Split] {
                let bytes = std::fs::read(&file).unwrap();
                let msg = err_text(decode_bytes(bytes, None, mode));
                assert!(
                    msg.contains("corrupt") || msg.contains("not a recognised"),
                    "{}: {msg}",
                    file.display()
                );
                // The streaming reader, as the transcriber uses it.
                let opened = AudioReader::open(&file, mode);
                if let Ok(mut r) = opened {
                    while r.read(16_000).transpose().is_some_and(|b| b.is_ok()) {}
                }
            }
        }
    }

    /// The checks made before symphonia (MP4 sample tables, Matroska element sizes) pass real
    /// files: the fuzzer's seeds, made by ffmpeg (`fuzz/make-seeds`), after their selector byte.
    #[test]
    fn real_m4a_and_matroska_files_pass_the_size_checks() {
        for seed in ["seed-m4a", "seed-mka", "seed-mka-vorbis"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/audio_decode")
                .join(seed);
            let bytes = std::fs::read(&path).unwrap()[1..].to_vec();
            let audio =
                decode_bytes(bytes, None, Channels::Mix).unwrap_or_else(|e| panic!("{seed}: {e}"));
            assert!(
                !audio.channels[0].is_empty(),
                "{seed}: {}",
                audio.channels[0].len()
            );
        }
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = decode_file(Path::new("/nonexistent/call.mp3"), Channels::Mix).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
    }

    #[test]
    fn channel_mode_parses() {
        assert_eq!("split".parse::<Channels>().unwrap(), Channels::Split);
        assert_eq!("MIX".parse::<Channels>().unwrap(), Channels::Mix);
        assert!("both".parse::<Channels>().is_err());
    }
}
