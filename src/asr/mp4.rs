//! A check of an MP4/M4A file's box sizes before symphonia reads them. symphonia's MP4 demuxer
//! trusts sizes stored in the file when it allocates, and a failed allocation aborts the whole
//! process:
//!
//! - it sizes a vector by each sample table's declared entry count (`Vec::with_capacity`), so
//!   a file of a few hundred bytes declaring four billion entries makes it allocate tens of
//!   gigabytes (found by fuzzing, `fuzz/`), and it reads each sample into a buffer of the size
//!   `stsz` gives it (up to 4 GiB);
//! - it reads a handler (`hdlr`) box and the `data`, `name` and `mean` boxes of the iTunes
//!   metadata (`ilst`) whole, into a buffer of the box's declared size, which may be 64 bits:
//!   a 101-byte file whose title claims 1 TB aborted it (found by reading symphonia).
//!
//! A real table's entries and a real box are in the file, inside their parent, so what needs
//! more is corruption, refused here before any allocation.

use std::io::{Read, Seek, SeekFrom};

/// Sample tables symphonia reads into a vector: type, and bytes per entry on disk.
const TABLES: [(&[u8; 4], u64); 5] = [
    (b"stsc", 12),
    (b"stts", 8),
    (b"stco", 4),
    (b"co64", 8),
    (b"stsz", 4),
];

/// Boxes symphonia reads whole into a buffer of their declared size.
const READ_WHOLE: [&[u8; 4]; 4] = [b"hdlr", b"data", b"name", b"mean"];

/// The parent of the top-level boxes, in [`children_at`].
const TOP: &[u8; 4] = b"\0\0\0\0";

/// Whether symphonia reads the children of a `kind` box inside `parent`, and if so how many
/// bytes come before the first child (a `meta` box's version and flags, which symphonia
/// always skips).
fn children_at(parent: &[u8; 4], kind: &[u8; 4]) -> Option<u64> {
    match (parent, kind) {
        (TOP, b"moov")
        | (b"moov", b"trak" | b"udta")
        | (b"trak", b"mdia")
        | (b"mdia", b"minf")
        | (b"minf", b"stbl")
        | (b"meta", b"ilst")
        | (b"ilst", _) => Some(0),
        (TOP | b"udta", b"meta") => Some(4),
        _ => None,
    }
}

/// `Err` (what is wrong) when an MP4 sample table declares more entries than the `len`-byte
/// input holds, or a box symphonia reads whole reaches past its parent or the input; `head` is
/// the input's start, where symphonia's probe looks for the format marker.
/// Input that is not MP4, or that is malformed in other ways, passes: the demuxer reports
/// those itself. Leaves `input` at an unspecified position.
pub(super) fn check_box_sizes(
    input: &mut (impl Read + Seek),
    head: &[u8],
    len: u64,
) -> std::result::Result<(), String> {
    let Some(start) = head
        .windows(4)
        .position(|w| w == b"ftyp")
        .and_then(|p| p.checked_sub(4))
    else {
        return Ok(());
    };
    let mut walker = Walker { input, len };
    walker.boxes(start as u64, len, TOP).unwrap_or(Ok(()))
}

struct Walker<'a, R> {
    input: &'a mut R,
    len: u64,
}

impl<R: Read + Seek> Walker<'_, R> {
    fn u32_at(&mut self, pos: u64) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.input.seek(SeekFrom::Start(pos))?;
        self.input.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// The largest of `count` big-endian `u32`s from `pos` (which the caller checked are in
    /// the input).
    fn largest_u32(&mut self, pos: u64, count: u64) -> std::io::Result<u32> {
        self.input.seek(SeekFrom::Start(pos))?;
        let mut table = std::io::BufReader::new(self.input.by_ref().take(count * 4));
        let mut largest = 0;
        let mut entry = [0u8; 4];
        for _ in 0..count {
            table.read_exact(&mut entry)?;
            largest = largest.max(u32::from_be_bytes(entry));
        }
        Ok(largest)
    }

    /// Walks the boxes in `pos..end`, children of a `parent` box; the outer `Err` is a read
    /// error (the walk stops there).
    fn boxes(
        &mut self,
        mut pos: u64,
        end: u64,
        parent: &[u8; 4],
    ) -> std::io::Result<std::result::Result<(), String>> {
        while pos.saturating_add(8) <= end {
            let size32 = self.u32_at(pos)?;
            let mut kind = [0u8; 4];
            self.input.read_exact(&mut kind)?;
            let (header, size) = match size32 {
                0 => (8, end - pos),
                1 => {
                    let mut b = [0u8; 8];
                    self.input.read_exact(&mut b)?;
                    (16, u64::from_be_bytes(b))
                }
                n => (8, u64::from(n)),
            };
            if size < header {
                return Ok(Ok(()));
            }
            let body = pos + header;
            let room = end.min(self.len) - pos;
            if parent != TOP && READ_WHOLE.contains(&&kind) && size > room {
                return Ok(Err(format!(
                    "its {} box declares {size} bytes, more than the {room} left in its parent",
                    String::from_utf8_lossy(&kind)
                )));
            }
            let box_end = pos.saturating_add(size).min(end);
            if let Some(skip) = children_at(parent, &kind) {
                if let Err(e) = self.boxes(body + skip, box_end, &kind)? {
                    return Ok(Err(e));
                }
            } else if parent == b"stbl"
                && let Some((_, entry)) = TABLES.iter().find(|(t, _)| *t == &kind)
            {
                // Version and flags, then (stsz) the constant sample size, then the count.
                let (count_at, variable) = if &kind == b"stsz" {
                    (body + 8, self.u32_at(body + 4)? == 0)
                } else {
                    (body + 4, true)
                };
                let count = u64::from(self.u32_at(count_at)?);
                let room = self.len.saturating_sub(count_at + 4);
                if variable && count.saturating_mul(*entry) > room {
                    return Ok(Err(format!(
                        "its {} table declares {count} entries, more than the file's {} bytes \
                         can hold",
                        String::from_utf8_lossy(&kind),
                        self.len
                    )));
                }
                // symphonia reads each sample into a buffer of its size before reading it.
                if &kind == b"stsz" {
                    let largest = if variable {
                        self.largest_u32(count_at + 4, count)?
                    } else {
                        self.u32_at(body + 4)?
                    };
                    if u64::from(largest) > self.len {
                        return Ok(Err(format!(
                            "its stsz table declares a sample of {largest} bytes, more than the \
                             file's {} bytes",
                            self.len
                        )));
                    }
                }
            }
            pos = pos.saturating_add(size);
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn check(bytes: &[u8]) -> std::result::Result<(), String> {
        check_box_sizes(&mut std::io::Cursor::new(bytes), bytes, bytes.len() as u64)
    }

    /// `ftyp`, then `moov` holding `children`.
    fn m4a(children: &[u8]) -> Vec<u8> {
        let mut file = mp4_box(b"ftyp", b"M4A \0\0\0\0M4A mp42isom");
        file.extend(mp4_box(b"moov", children));
        file
    }

    /// The iTunes title box, its `data` child declaring `data_size` bytes (a 64-bit size).
    fn title(data_size: u64) -> Vec<u8> {
        let mut data = 1u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"data");
        data.extend_from_slice(&data_size.to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        data.extend_from_slice(b"hello");
        let ilst = mp4_box(b"ilst", &mp4_box(b"\xa9nam", &data));
        mp4_box(
            b"udta",
            &mp4_box(b"meta", &[&[0; 4], ilst.as_slice()].concat()),
        )
    }

    #[test]
    fn a_metadata_box_larger_than_its_parent_is_refused() {
        // The 101-byte file whose title claimed 1 TB: symphonia asked for it and aborted.
        let hostile = m4a(&title(1 << 40));
        assert_eq!(hostile.len(), 101);
        let err = check(&hostile).unwrap_err();
        assert!(
            err.contains("its data box declares 1099511627776 bytes, more than the 29"),
            "{err}"
        );
        assert_eq!(check(&m4a(&title(29))), Ok(()));
    }

    #[test]
    fn a_handler_box_larger_than_the_file_is_refused() {
        let mut hdlr = u32::MAX.to_be_bytes().to_vec();
        hdlr.extend_from_slice(b"hdlr");
        hdlr.extend_from_slice(&[0; 24]);
        let trak = mp4_box(b"trak", &mp4_box(b"mdia", &hdlr));
        assert!(
            check(&m4a(&trak))
                .unwrap_err()
                .contains("its hdlr box declares 4294967295")
        );
        // A box symphonia only skips allocates nothing by its size: left to symphonia.
        let mut free = u32::MAX.to_be_bytes().to_vec();
        free.extend_from_slice(b"free");
        assert_eq!(check(&m4a(&mp4_box(b"trak", &free))), Ok(()));
    }

    #[test]
    fn a_sample_table_with_more_entries_than_the_file_is_refused() {
        let mut stsc = vec![0; 4];
        stsc.extend_from_slice(&u32::MAX.to_be_bytes());
        let stbl = mp4_box(b"stbl", &mp4_box(b"stsc", &stsc));
        let trak = mp4_box(b"trak", &mp4_box(b"mdia", &mp4_box(b"minf", &stbl)));
        assert!(
            check(&m4a(&trak))
                .unwrap_err()
                .contains("stsc table declares 4294967295 entries")
        );
    }

    #[test]
    fn a_sample_larger_than_the_file_is_refused() {
        let sizes = |constant: u32, sizes: &[u32]| {
            let mut stsz = vec![0; 4];
            stsz.extend_from_slice(&constant.to_be_bytes());
            stsz.extend_from_slice(&(sizes.len().max(1) as u32).to_be_bytes());
            sizes
                .iter()
                .for_each(|s| stsz.extend_from_slice(&s.to_be_bytes()));
            let stbl = mp4_box(b"stbl", &mp4_box(b"stsz", &stsz));
            m4a(&mp4_box(
                b"trak",
                &mp4_box(b"mdia", &mp4_box(b"minf", &stbl)),
            ))
        };
        let err = check(&sizes(0, &[400, u32::MAX, 371])).unwrap_err();
        assert!(
            err.contains("declares a sample of 4294967295 bytes"),
            "{err}"
        );
        assert!(check(&sizes(1 << 30, &[])).is_err());
        assert_eq!(check(&sizes(0, &[3, 5, 8])), Ok(()));
        assert_eq!(check(&sizes(2, &[])), Ok(()));
    }
}
