//! A check of a Matroska/WebM file's element sizes before symphonia reads them. symphonia's
//! MKV demuxer reads a string or binary element into a buffer of its declared size, so a file
//! of 31 bytes declaring a 555 GB `DocType` makes it allocate that much, and the failed
//! allocation aborts the whole process (found by fuzzing, `fuzz/`). A real element's data is in
//! the file, so a size far beyond the file's end is corruption, refused here before any
//! allocation. A recording cut off mid-block (its last element a little short) still passes,
//! as symphonia decodes it up to the cut; master elements (which only hold other elements) are
//! descended into, not sized. The walk reaches what symphonia reaches: the elements in order,
//! the next top-level element after a damaged id (symphonia resynchronizes there), the
//! elements the seek head points to, and the elements after a child that overruns its parent
//! (symphonia reads on from where the child ended, not from the parent's declared end).
//!
//! Blocks are opened too: symphonia cuts a laced block (Xiph or EBML lacing) into frames by the
//! sizes stored at its start, allocating each size before reading it, so a frame claiming more
//! than what is left of its block is refused (the fuzzer's claimed 33 PB). A Vorbis track's
//! setup (`CodecPrivate`) is cut into packets the same way, by Xiph-coded sizes that claim up
//! to 255 times the setup's own size, and is checked the same way.
//!
//! One element's content is checked too: a FLAC track's setup (`CodecPrivate`). symphonia reads
//! its first metadata block's header once and skips blocks until it sees STREAMINFO, so a
//! first block of another type and 0 bytes makes it skip 0 bytes forever (upstream
//! pdeljanov/Symphonia#483), holding a thread that no `catch_unwind` frees. A real setup opens
//! with STREAMINFO, as every FLAC stream does. That check does not walk: it looks for the
//! bytes of such a setup anywhere in the file, so it holds even where the walk and symphonia's
//! parse part ways (the fuzzer's file reached its track through a seek-head child overrunning
//! its parent, which the walk did not follow then).

use std::io::{Read, Seek, SeekFrom};

/// The EBML header's id, which starts every Matroska/WebM file.
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// The ids of the master elements symphonia-format-mkv 0.5 knows (`element_ids.rs`).
const MASTERS: [u32; 30] = [
    0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1F43B675, 0xA0, 0x75A1, 0xA6,
    0x1654AE6B, 0xAE, 0xE0, 0xE1, 0x6D80, 0x6240, 0x5035, 0x47E7, 0x55B0, 0x55D0, 0x1C53BB6B, 0xBB,
    0xB7, 0x1043A770, 0x45B9, 0xB6, 0x80, 0x1254C367, 0x7373, 0x63C0, 0x67C8,
];

/// How far past the file's end an element may reach: a block cut off by a recording that
/// stopped. Allocations stay within the upload's size plus this.
const CUT_OFF_SLACK: u64 = 16 * 1024 * 1024;

/// Deeper than any real file nests.
const MAX_DEPTH: usize = 16;

/// The top-level elements symphonia resynchronizes on after a damaged id: Cluster, Cues, Info,
/// SeekHead, Tags, Tracks.
const TOP_LEVEL: [u32; 6] = [
    0x1F43B675, 0x1C53BB6B, 0x1549A966, 0x114D9B74, 0x1254C367, 0x1654AE6B,
];

const SEGMENT: u32 = 0x18538067;
const SEEK_POSITION: u32 = 0x53AC;

/// SimpleBlock and Block: the leaves whose data symphonia cuts into frames.
const BLOCKS: [u32; 2] = [0xA3, 0xA1];

const TRACK_ENTRY: u32 = 0xAE;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE_ID: u32 = 0x63A2;

/// `CodecPrivate`'s id, as written before its size and data.
const CODEC_PRIVATE: [u8; 2] = [0x63, 0xA2];

/// The FLAC stream marker that opens a FLAC track's `CodecPrivate`, followed by metadata blocks.
const FLAC_MARKER: &[u8] = b"fLaC";

/// More seek-head entries and overrun ends than this are not followed (a real file has a
/// handful of the first and none of the second).
const MAX_EXTRA_WALKS: usize = 64;

/// `Err` (what is wrong) when an element of a Matroska/WebM input declares more data than the
/// `len`-byte input holds, or when it holds a FLAC setup symphonia would loop on; `head` is its
/// start, where symphonia's probe looks for the format marker. Input that is not Matroska, or that is malformed in other ways, passes: the demuxer
/// reports those itself. Leaves `input` at an unspecified position.
pub(super) fn check_element_sizes(
    input: &mut (impl Read + Seek),
    head: &[u8],
    len: u64,
) -> std::result::Result<(), String> {
    let Some(start) = head.windows(4).position(|w| w == EBML_MAGIC) else {
        return Ok(());
    };
    let mut walker = Walker {
        input,
        len,
        segment_data: 0,
        seeks: Vec::new(),
        overruns: Vec::new(),
        extra_walks: 0,
        track: None,
    };
    walker.walk(start as u64)?;
    check_flac_setups(input).unwrap_or(Ok(()))
}

/// `Err` when the input holds a `CodecPrivate` element whose data is a FLAC setup opening
/// with an empty metadata block that is not STREAMINFO: the one symphonia spins on. Reads the
/// input from its start, in chunks, so a long recording is not held in memory.
fn check_flac_setups(
    input: &mut (impl Read + Seek),
) -> std::io::Result<std::result::Result<(), String>> {
    // Before a marker: the id and a size of up to 8 bytes; after it: a 4-byte block header.
    const BEFORE: usize = CODEC_PRIVATE.len() + 8;
    const AFTER: usize = 4;
    let finder = memchr::memmem::Finder::new(FLAC_MARKER);
    input.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 256 * 1024];
    // `buf[..kept]` are the previous chunk's last bytes, so a match across chunks is seen.
    let mut kept = 0;
    loop {
        let n = input.read(&mut buf[kept..])?;
        if n == 0 {
            return Ok(Ok(()));
        }
        let filled = kept + n;
        let window = &buf[..filled];
        for at in finder.find_iter(window) {
            let block = at + FLAC_MARKER.len();
            let Some(header) = window.get(block..block + AFTER) else {
                continue;
            };
            let block_type = header[0] & 0x7F;
            if block_type != 0 && header[1..] == [0, 0, 0] && is_codec_private(&window[..at]) {
                return Ok(Err(format!(
                    "a FLAC track's setup opens with an empty metadata block of type \
                     {block_type} instead of STREAMINFO"
                )));
            }
        }
        kept = filled.min(BEFORE + FLAC_MARKER.len() + AFTER);
        buf.copy_within(filled - kept..filled, 0);
    }
}

/// Whether `before` ends with a `CodecPrivate` id and a size (an EBML variable-length integer
/// of 1 to 8 bytes), so that what follows is that element's data.
fn is_codec_private(before: &[u8]) -> bool {
    (1..=8).any(|len| {
        before.len() >= CODEC_PRIVATE.len() + len && {
            let size_at = before.len() - len;
            before[size_at].leading_zeros() + 1 == len as u32
                && before[size_at - CODEC_PRIVATE.len()..size_at] == CODEC_PRIVATE
        }
    })
}

struct Walker<'a, R> {
    input: &'a mut R,
    len: u64,
    /// Where the segment's data starts: seek positions count from there.
    segment_data: u64,
    /// The seek head's positions, not walked yet.
    seeks: Vec<u64>,
    /// Where a master element's last child ended past the master's end, not walked yet.
    overruns: Vec<u64>,
    /// How many seeks and overruns were queued, up to `MAX_EXTRA_WALKS`.
    extra_walks: usize,
    /// The track entry being walked.
    track: Option<TrackSetup>,
}

/// What a track entry's children say about its codec, as symphonia keeps it: the last
/// `CodecID` and `CodecPrivate` win.
#[derive(Default)]
struct TrackSetup {
    /// The depth of the entry's children.
    depth: usize,
    vorbis: bool,
    /// Where the `CodecPrivate` data starts and its size.
    private: Option<(u64, u64)>,
}

/// What one level of the walk found: the outer `Err` is a read error or the end of the input
/// (the walk stops there, as the demuxer does); the inner `Err` an oversized element, the
/// inner `Ok` where the last element walked ended (past the level's end when it overran).
type Walked = std::io::Result<std::result::Result<u64, String>>;

impl<R: Read + Seek> Walker<'_, R> {
    /// The file from `start`; then the elements the seek head points to (relative to the
    /// segment's data), one each, and the elements from each overrun end on. A read error or
    /// the input's end stops one of these walks, not the others: symphonia also goes on to the
    /// seek head's targets after a damaged element.
    fn walk(&mut self, start: u64) -> std::result::Result<(), String> {
        let mut walked = self.elements(start, self.len, 0, false);
        loop {
            if let Ok(Err(e)) = walked {
                return Err(e);
            }
            walked = if let Some(pos) = self.overruns.pop() {
                self.elements(pos, self.len, 1, false)
            } else if let Some(seek) = self.seeks.pop() {
                let target = self.segment_data.saturating_add(seek);
                self.elements(target, self.len, 1, true)
            } else {
                return Ok(());
            };
        }
    }

    /// Whether one more seek or overrun may be queued.
    fn may_queue(&mut self) -> bool {
        self.extra_walks += 1;
        self.extra_walks <= MAX_EXTRA_WALKS
    }

    /// An EBML variable-length integer at the current position: its value with the length
    /// marker kept (`keep_marker`, as ids are written) or removed (sizes), its length, and
    /// whether every value bit is set (an unknown size). `None` when it is malformed.
    fn vint(
        &mut self,
        keep_marker: bool,
        max_len: u32,
    ) -> std::io::Result<Option<(u64, u64, bool)>> {
        let mut first = [0u8; 1];
        self.input.read_exact(&mut first)?;
        let len = first[0].leading_zeros() + 1;
        if first[0] == 0 || len > max_len {
            return Ok(None);
        }
        let marker = 0x80u8 >> (len - 1);
        let mut value = u64::from(if keep_marker {
            first[0]
        } else {
            first[0] & !marker
        });
        let mut all_ones = first[0] & (marker - 1) == marker - 1;
        for _ in 1..len {
            let mut b = [0u8; 1];
            self.input.read_exact(&mut b)?;
            value = (value << 8) | u64::from(b[0]);
            all_ones &= b[0] == 0xFF;
        }
        Ok(Some((value, u64::from(len), all_ones)))
    }

    /// The position of the next top-level id at or after `from`, as symphonia finds it after
    /// a damaged id.
    fn next_top_level(&mut self, from: u64) -> std::io::Result<Option<u64>> {
        self.input.seek(SeekFrom::Start(from))?;
        let mut window = 0u32;
        let mut buf = [0u8; 64 * 1024];
        let mut pos = from;
        loop {
            let n = self.input.read(&mut buf)?;
            if n == 0 {
                return Ok(None);
            }
            for &b in &buf[..n] {
                window = (window << 8) | u32::from(b);
                pos += 1;
                if pos - from >= 4 && TOP_LEVEL.contains(&window) {
                    return Ok(Some(pos - 4));
                }
            }
        }
    }

    /// The unsigned integer of `size` bytes at the current position.
    fn uint(&mut self, size: u64) -> std::io::Result<u64> {
        let mut value = 0u64;
        for _ in 0..size {
            let mut b = [0u8; 1];
            self.input.read_exact(&mut b)?;
            value = (value << 8) | u64::from(b[0]);
        }
        Ok(value)
    }

    /// `Err` when the `size`-byte block at the current position declares laced frames larger
    /// than what is left of it: symphonia allocates each frame's declared size before reading
    /// it (a size of 33 PB aborted the process). A block too short for its own header passes;
    /// symphonia reports it.
    fn laced_frames_fit(&mut self, size: u64) -> std::io::Result<std::result::Result<(), String>> {
        self.sizes_fit(size, "a block's laced frame", |block| block.laced_sizes())
    }

    /// `Err` when the `size`-byte Vorbis setup at `at` (a `CodecPrivate`: a packet count, the
    /// Xiph-coded sizes of all packets but the last, the packets) declares a packet larger
    /// than what is left of it: symphonia allocates it before reading, and a setup of 0xFF
    /// bytes declares 255 times its own size.
    fn vorbis_packets_fit(
        &mut self,
        at: u64,
        size: u64,
    ) -> std::io::Result<std::result::Result<(), String>> {
        self.input.seek(SeekFrom::Start(at))?;
        self.sizes_fit(size, "a Vorbis track's setup packet", |setup| {
            let packets = setup.byte()?;
            setup.xiph_sizes(packets)
        })
    }

    /// `Err` when a size `sizes` reads from the start of the `size`-byte element at the
    /// current position is larger than what is left of the element after it; `what` names
    /// the thing sized. An element too short for its own sizes passes: symphonia reports it.
    fn sizes_fit(
        &mut self,
        size: u64,
        what: &str,
        sizes: impl FnOnce(&mut ElementBytes) -> std::io::Result<Vec<u64>>,
    ) -> std::io::Result<std::result::Result<(), String>> {
        let mut data = std::io::BufReader::with_capacity(64, (&mut *self.input).take(size));
        let mut element = ElementBytes {
            inner: &mut data,
            read: 0,
        };
        let sizes = match sizes(&mut element) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Ok(())),
            sizes => sizes?,
        };
        let mut left = size - element.read;
        for part in sizes {
            if part > left {
                return Ok(Err(format!(
                    "{what} declares {part} bytes, more than the {left} left of its {size} bytes"
                )));
            }
            left -= part;
        }
        Ok(Ok(()))
    }

    /// Walks the elements in `pos..end` (only the first with `once`); `Ok` holds where the
    /// last one walked ended, past `end` when it overran.
    fn elements(&mut self, mut pos: u64, end: u64, depth: usize, once: bool) -> Walked {
        while pos < end {
            self.input.seek(SeekFrom::Start(pos))?;
            let Some((id, id_len, _)) = self.vint(true, 4)? else {
                // symphonia skips to the next top-level element and reads on from there.
                match self.next_top_level(pos + 1)? {
                    Some(next) => {
                        pos = next;
                        continue;
                    }
                    None => return Ok(Ok(end)),
                }
            };
            let Some((size, size_len, unknown)) = self.vint(false, 8)? else {
                return Ok(Ok(end));
            };
            let body = pos + id_len + size_len;
            let master = MASTERS.contains(&(id as u32));
            if id as u32 == SEGMENT {
                self.segment_data = body;
            }
            if master && depth < MAX_DEPTH {
                // An element of unknown size (a live stream's segment or cluster) runs to its
                // parent's end.
                let inner_end = if unknown {
                    end
                } else {
                    body.saturating_add(size).min(end)
                };
                let outer_track = if id as u32 == TRACK_ENTRY {
                    self.track.replace(TrackSetup {
                        depth: depth + 1,
                        ..TrackSetup::default()
                    })
                } else {
                    None
                };
                let children_end = match self.elements(body, inner_end, depth + 1, false)? {
                    Ok(children_end) => children_end,
                    Err(e) => return Ok(Err(e)),
                };
                if id as u32 == TRACK_ENTRY
                    && let Some(TrackSetup {
                        vorbis: true,
                        private: Some((at, private_size)),
                        ..
                    }) = std::mem::replace(&mut self.track, outer_track)
                    && let Err(e) = self.vorbis_packets_fit(at, private_size)?
                {
                    return Ok(Err(e));
                }
                if unknown {
                    return Ok(Ok(end));
                }
                if children_end > body.saturating_add(size) && self.may_queue() {
                    self.overruns.push(children_end);
                }
            } else if unknown || size > self.len.saturating_sub(body).saturating_add(CUT_OFF_SLACK)
            {
                return Ok(Err(format!(
                    "element {id:#X} declares {} bytes of data, more than the file's {} bytes hold",
                    if unknown {
                        "an unknown number of".to_string()
                    } else {
                        size.to_string()
                    },
                    self.len
                )));
            } else if let Some(track) = self.track.as_mut().filter(|t| t.depth == depth) {
                match id as u32 {
                    CODEC_ID => {
                        // symphonia's strings end at the first NUL.
                        let mut text = Vec::new();
                        (&mut *self.input)
                            .take(size.min(64))
                            .read_to_end(&mut text)?;
                        track.vorbis = text.split(|&b| b == 0).next() == Some(b"A_VORBIS");
                    }
                    CODEC_PRIVATE_ID => track.private = Some((body, size)),
                    _ => {}
                }
            } else if BLOCKS.contains(&(id as u32)) {
                if let Err(e) = self.laced_frames_fit(size)? {
                    return Ok(Err(e));
                }
            } else if id as u32 == SEEK_POSITION && size <= 8 && self.may_queue() {
                let target = self.uint(size)?;
                self.seeks.push(target);
            }
            pos = body.saturating_add(size);
            if once {
                break;
            }
        }
        Ok(Ok(pos))
    }
}

/// An element's data, read a byte at a time and counted, as symphonia-format-mkv 0.5 reads
/// it (`lacing.rs`, `ebml.rs`, `demuxer.rs`), its wrapping arithmetic included.
struct ElementBytes<'a> {
    inner: &'a mut dyn Read,
    read: u64,
}

impl ElementBytes<'_> {
    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.read += 1;
        Ok(b[0])
    }

    /// An EBML variable-length integer as symphonia decodes it, and its length: `0xFF` alone
    /// is "unknown" (`u64::MAX`), a first byte of 0 is followed by 8 more.
    fn vint(&mut self) -> std::io::Result<(u64, u32)> {
        let first = self.byte()?;
        if first == 0xFF {
            return Ok((u64::MAX, 1));
        }
        let width = first.leading_zeros();
        let mut value = u64::from(first) ^ 1u64.wrapping_shl(7u32.wrapping_sub(width));
        for _ in 0..width {
            value = (value << 8) | u64::from(self.byte()?);
        }
        Ok((value, width + 1))
    }

    /// The sizes a laced block declares for its frames but the last (none without Xiph or
    /// EBML lacing), after the track number, timecode and flags.
    fn laced_sizes(&mut self) -> std::io::Result<Vec<u64>> {
        self.vint()?;
        self.byte()?;
        self.byte()?;
        let lacing = (self.byte()? >> 1) & 0b11;
        if lacing != XIPH_LACING && lacing != EBML_LACING {
            return Ok(Vec::new());
        }
        let frames = self.byte()?;
        if lacing == XIPH_LACING {
            return self.xiph_sizes(frames);
        }
        let mut sizes = Vec::with_capacity(usize::from(frames));
        while sizes.len() < usize::from(frames) {
            let size = if let Some(&last) = sizes.last() {
                let (delta, len) = self.vint()?;
                let half_range = (1i64 << (len * 7 - 1)) - 1;
                (last as i64).wrapping_add((delta as i64).wrapping_sub(half_range)) as u64
            } else {
                self.vint()?.0
            };
            sizes.push(size);
        }
        Ok(sizes)
    }

    /// `count` Xiph-coded sizes: runs of 255 ended by a smaller byte, summed.
    fn xiph_sizes(&mut self, count: u8) -> std::io::Result<Vec<u64>> {
        let mut sizes = Vec::with_capacity(usize::from(count));
        while sizes.len() < usize::from(count) {
            let mut size = 0u64;
            loop {
                let b = self.byte()?;
                size += u64::from(b);
                if b != 0xFF {
                    break;
                }
            }
            sizes.push(size);
        }
        Ok(sizes)
    }
}

const XIPH_LACING: u8 = 0b01;
const EBML_LACING: u8 = 0b11;

#[cfg(test)]
mod tests {
    use super::*;

    /// An EBML header holding a `DocType` string of `doctype_size` declared bytes and "webm".
    fn header(doctype_size: &[u8]) -> Vec<u8> {
        let mut doctype = vec![0x42, 0x82];
        doctype.extend_from_slice(doctype_size);
        doctype.extend_from_slice(b"webm");
        let mut file = EBML_MAGIC.to_vec();
        file.push(0x80 | doctype.len() as u8);
        file.extend(doctype);
        file
    }

    /// A file whose segment holds one track entry with `children`.
    fn with_track(children: &[u8]) -> Vec<u8> {
        let mut entry = vec![0xAE, 0x80 | children.len() as u8];
        entry.extend_from_slice(children);
        let mut tracks = vec![0x16, 0x54, 0xAE, 0x6B, 0x80 | entry.len() as u8];
        tracks.extend(entry);
        let mut file = header(&[0x84]);
        file.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x80 | tracks.len() as u8]);
        file.extend(tracks);
        file
    }

    /// A `CodecPrivate` element holding `data`.
    fn codec_private(data: &[u8]) -> Vec<u8> {
        let mut private = vec![0x63, 0xA2, 0x80 | data.len() as u8];
        private.extend_from_slice(data);
        private
    }

    fn check(bytes: &[u8]) -> std::result::Result<(), String> {
        check_element_sizes(&mut std::io::Cursor::new(bytes), bytes, bytes.len() as u64)
    }

    #[test]
    fn a_leaf_larger_than_the_file_is_refused_and_a_real_one_passes() {
        assert_eq!(check(&header(&[0x84])), Ok(()));
        // A six-byte size of about 555 GB, as the fuzzer found it.
        let err = check(&header(&[0x04, 0x81, 0x42, 0x85, 0x81, 0x81])).unwrap_err();
        assert!(err.contains("element 0x4282 declares"), "{err}");
        // Not Matroska at all.
        assert_eq!(check(b"RIFF....WAVEfmt "), Ok(()));
    }

    #[test]
    fn the_seek_heads_targets_are_checked_too() {
        // A segment holding a seek head whose one entry points `seek_to` bytes into the
        // segment, then a Void element whose 12 bytes hide a Tracks element with a track whose
        // codec id claims 32 MiB. In order, the walk skips the Void; symphonia seeks to it.
        let file = |seek_to: u8| {
            let mut file = header(&[0x84]);
            file.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x80 | 26]);
            file.extend_from_slice(&[0x11, 0x4D, 0x9B, 0x74, 0x87]);
            file.extend_from_slice(&[0x4D, 0xBB, 0x84, 0x53, 0xAC, 0x81, seek_to]);
            file.extend_from_slice(&[0xEC, 0x8C, 0x16, 0x54, 0xAE, 0x6B, 0x87]);
            file.extend_from_slice(&[0xAE, 0x85, 0x86, 0x12, 0x00, 0x00, 0x00]);
            file
        };
        assert_eq!(check(&file(0)), Ok(()));
        let err = check(&file(14)).unwrap_err();
        assert!(
            err.contains("element 0x86 declares 33554432 bytes"),
            "{err}"
        );
        // A last element cut off in its id ends the walk in order, not the seek head's.
        let mut cut_off = file(14);
        cut_off.push(0x40);
        let err = check(&cut_off).unwrap_err();
        assert!(
            err.contains("element 0x86 declares 33554432 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_segment_of_unknown_size_is_descended_into() {
        let mut file = header(&[0x84]);
        // Segment, unknown size, holding a Void element of 2 bytes, then a block cut off
        // (100 bytes declared, 2 there): a recording that stopped, accepted.
        file.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0xFF, 0xEC, 0x82, 0, 0]);
        let mut cut_off = file.clone();
        cut_off.extend_from_slice(&[0xA3, 0xE4, 0, 0]);
        assert_eq!(check(&cut_off), Ok(()));
        // One claiming 32 MiB in a file of a few bytes is refused.
        file.extend_from_slice(&[0xA3, 0x12, 0x00, 0x00, 0x00]);
        let err = check(&file).unwrap_err();
        assert!(
            err.contains("element 0xA3 declares 33554432 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_flac_setup_must_open_with_streaminfo() {
        let file = |setup: &[u8]| with_track(&codec_private(setup));
        // As the fuzzer found it: a 0-byte SEEKTABLE block first.
        let err = check(&file(b"fLaC\x03\0\0\0")).unwrap_err();
        assert!(
            err.contains("block of type 3 instead of STREAMINFO"),
            "{err}"
        );
        // Not empty: symphonia skips it, reaches the setup's end and reports an error itself.
        assert_eq!(check(&file(b"fLaC\x03\0\0\x02\0\0")), Ok(()));
        // A real setup: the last-block flag set, STREAMINFO's 34 bytes.
        let mut streaminfo = b"fLaC\x80\0\0\x22".to_vec();
        streaminfo.extend_from_slice(&[0x10; 34]);
        assert_eq!(check(&file(&streaminfo)), Ok(()));
        // Another codec's setup is not FLAC's business.
        assert_eq!(check(&file(b"\x02\x1e\x10vorbis")), Ok(()));
    }

    #[test]
    fn a_flac_setup_is_found_across_the_scans_chunks() {
        let setup = b"\x63\xA2\x88fLaC\x04\0\0\0";
        for shift in 0..setup.len() {
            let mut file = header(&[0x84]);
            file.resize(256 * 1024 - shift, 0);
            file.extend_from_slice(setup);
            let err = check(&file).unwrap_err();
            assert!(err.contains("type 4"), "{shift}: {err}");
        }
    }

    #[test]
    fn a_vorbis_setups_packets_must_fit_it() {
        let vorbis = [0x86, 0x88, b'A', b'_', b'V', b'O', b'R', b'B', b'I', b'S'];
        // Three packets: 2 sizes, then the packets (a real setup's are 30, ~100 and ~3000).
        let real = [2, 3, 2, 1, 1, 1, 2, 2, 3, 3, 3];
        // 25 runs of 255: 6,375 bytes claimed in a setup of 28, 1 of them left after the sizes.
        let mut claiming = vec![1];
        claiming.extend_from_slice(&[0xFF; 25]);
        claiming.extend_from_slice(&[0, 7]);
        for id_first in [true, false] {
            let track = |setup: &[u8], codec: &[u8]| {
                let (a, b) = (codec.to_vec(), codec_private(setup));
                with_track(&if id_first { [a, b] } else { [b, a] }.concat())
            };
            assert_eq!(check(&track(&real, &vorbis)), Ok(()));
            let err = check(&track(&claiming, &vorbis)).unwrap_err();
            assert!(
                err.contains("a Vorbis track's setup packet declares 6375 bytes, more than the 1 left of its 28 bytes"),
                "{err}"
            );
            // The same bytes are another codec's business.
            let opus = [0x86, 0x86, b'A', b'_', b'O', b'P', b'U', b'S'];
            assert_eq!(check(&track(&claiming, &opus)), Ok(()));
        }
    }

    #[test]
    fn laced_frames_must_fit_their_block() {
        // A cluster holding one SimpleBlock whose data is `block`: track 1, timecode 0, the
        // flags (lacing in bits 1-2), then for Xiph or EBML lacing the number of frames but
        // the last and their sizes.
        let file = |block: &[u8]| {
            let mut simple = vec![0xA3, 0x80 | block.len() as u8];
            simple.extend_from_slice(block);
            let mut file = header(&[0x84]);
            file.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0x80 | simple.len() as u8]);
            file.extend(simple);
            file
        };
        let refused = |block: &[u8]| check(&file(block)).unwrap_err();
        // As the fuzzer found it: EBML lacing, a first frame of 33 PB in an 8-byte size.
        let err = refused(&[
            0x81, 0, 0, 0x06, 1, 0x01, 0x76, 0xF3, 0xF3, 0xF3, 0xF3, 0xF3, 0xF3,
        ]);
        assert!(
            err.contains("frame declares 33482276347311091 bytes, more than the 0 left"),
            "{err}"
        );
        // EBML lacing: 3 bytes, then 3 + 1 (a signed delta), then the last frame's 1 byte.
        let ebml = [0x81, 0, 0, 0x06, 2, 0x83, 0xC0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(check(&file(&ebml)), Ok(()));
        // A delta below zero wraps to a size no block holds.
        let err = refused(&[0x81, 0, 0, 0x06, 2, 0x83, 0x80, 1, 2, 3]);
        assert!(
            err.contains("more than the 0 left of its 10 bytes"),
            "{err}"
        );
        // Xiph lacing: 255 + 255 + 5 bytes claimed in a block of 10.
        let err = refused(&[0x81, 0, 0, 0x02, 1, 0xFF, 0xFF, 0x05, 1, 2]);
        assert!(err.contains("frame declares 515 bytes"), "{err}");
        assert_eq!(check(&file(&[0x81, 0, 0, 0x02, 1, 2, 1, 2, 3])), Ok(()));
        // Fixed-size lacing and none split what is there; a block cut short is symphonia's.
        assert_eq!(check(&file(&[0x81, 0, 0, 0x04, 1, 1, 2])), Ok(()));
        assert_eq!(check(&file(&[0x81, 0, 0, 0x00, 1])), Ok(()));
        assert_eq!(check(&file(&[0x81, 0, 0, 0x06])), Ok(()));
    }

    #[test]
    fn the_elements_after_an_overrunning_child_are_checked_too() {
        // A segment of unknown size holding a seek head of 2 bytes whose one child, a Void of
        // 5 bytes, overruns it. In order, the walk goes on at the seek head's end and finds a
        // Void of 15 bytes; symphonia goes on at the child's end and finds an Info element
        // whose Title claims 32 MiB.
        let mut file = header(&[0x84]);
        file.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0xFF]);
        file.extend_from_slice(&[0x11, 0x4D, 0x9B, 0x74, 0x82, 0xEC, 0x85]);
        file.extend_from_slice(&[0xEC, 0x8F, 0, 0, 0]);
        file.extend_from_slice(&[0x15, 0x49, 0xA9, 0x66, 0x86]);
        file.extend_from_slice(&[0x7B, 0xA9, 0x12, 0x00, 0x00, 0x00, 0]);
        let err = check(&file).unwrap_err();
        assert!(
            err.contains("element 0x7BA9 declares 33554432 bytes"),
            "{err}"
        );
    }
}
