//! A check of an MP4/M4A file's sample tables before symphonia reads them. symphonia's MP4
//! demuxer sizes a vector by each table's declared entry count (`Vec::with_capacity`), so a
//! file of a few hundred bytes declaring four billion entries makes it allocate tens of
//! gigabytes, and a failed allocation aborts the whole process (found by fuzzing, `fuzz/`).
//! A real table's entries are in the file, so a count that needs more bytes than the file has
//! left is corruption, refused here before any allocation.

use std::io::{Read, Seek, SeekFrom};

/// Boxes on the path from the top level to the sample tables.
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

/// Sample tables symphonia reads into a vector: type, and bytes per entry on disk.
const TABLES: [(&[u8; 4], u64); 5] = [
    (b"stsc", 12),
    (b"stts", 8),
    (b"stco", 4),
    (b"co64", 8),
    (b"stsz", 4),
];

/// `Err` (what is wrong) when an MP4 sample table declares more entries than the `len`-byte
/// input holds; `head` is its start, where symphonia's probe looks for the format marker.
/// Input that is not MP4, or that is malformed in other ways, passes: the demuxer reports
/// those itself. Leaves `input` at an unspecified position.
pub(super) fn check_sample_tables(
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
    walker.boxes(start as u64, len, 0).unwrap_or(Ok(()))
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

    /// Walks the boxes in `pos..end`; the outer `Err` is a read error (the walk stops there).
    fn boxes(
        &mut self,
        mut pos: u64,
        end: u64,
        depth: usize,
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
            let box_end = pos.saturating_add(size).min(end);
            if depth < CONTAINERS.len() && &kind == CONTAINERS[depth] {
                if let Err(e) = self.boxes(body, box_end, depth + 1)? {
                    return Ok(Err(e));
                }
            } else if let Some((_, entry)) = TABLES.iter().find(|(t, _)| *t == &kind) {
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
            }
            pos = pos.saturating_add(size);
        }
        Ok(Ok(()))
    }
}
