//! A check of a WAV file's `LIST`/`INFO` values before symphonia reads them.
//!
//! symphonia's WAV reader reads each `INFO` value (a title, an artist …) into a zeroed buffer of
//! its declared 32-bit size before reading the value (symphonia-format-riff 0.5.5
//! `InfoChunk::parse`). A value may claim up to 4 GiB as long as its `LIST` and the `RIFF`
//! chunk claim more, so a 64-byte file asks for 4 GiB. Linux hands such a block out lazily,
//! but where it will not (less than 4 GiB of memory and swap, `vm.overcommit_memory = 2`, an
//! address-space limit) the failed allocation aborts the whole process. A real value is in the
//! file, so one that claims more than what is left of the file is corruption, refused here.
//!
//! The walk reads the chunks as symphonia does, including where it goes astray: its chunk
//! reader counts declared sizes (and pads by that count), while the format chunk's parser may
//! read fewer or more bytes than declared, and the next chunk header is read wherever the
//! parser stopped.

use std::io::{Read, Seek, SeekFrom};

/// `Err` (what is wrong) when an `INFO` value of the WAV file in the `len`-byte input claims
/// more bytes than the file has left; `head` is its start, where symphonia's probe looks for
/// the `RIFF` marker. Anything else passes: the WAV reader reports it. Leaves `input` at an
/// unspecified position.
pub(super) fn check_info_values(
    input: &mut (impl Read + Seek),
    head: &[u8],
    len: u64,
) -> std::result::Result<(), String> {
    let Some(start) = head.windows(4).position(|w| w == b"RIFF") else {
        return Ok(());
    };
    if head.get(start + 8..start + 12) != Some(b"WAVE") {
        return Ok(());
    }
    let mut walk = Walk {
        input,
        len,
        pos: start as u64 + 4,
    };
    // A read past the end stops the walk, as it stops symphonia.
    walk.riff().unwrap_or(Ok(()))
}

struct Walk<'a, R> {
    input: &'a mut R,
    len: u64,
    /// Where symphonia's reader is.
    pos: u64,
}

/// symphonia's `ChunksReader`: the chunks inside a parent of `len` bytes, with its `u32`
/// arithmetic as the release build does it.
struct Chunks {
    len: u32,
    consumed: u32,
}

impl Chunks {
    /// The next chunk's tag and declared size, or `None` where symphonia stops (the parent is
    /// used up, or the chunk does not fit it).
    fn next<R: Read + Seek>(
        &mut self,
        walk: &mut Walk<R>,
    ) -> std::io::Result<Option<([u8; 4], u32)>> {
        if self.consumed & 1 == 1 {
            walk.pos += 1;
            self.consumed = self.consumed.wrapping_add(1);
        }
        if self.consumed.wrapping_add(8) > self.len {
            return Ok(None);
        }
        let tag = walk.bytes::<4>()?;
        let size = u32::from_le_bytes(walk.bytes::<4>()?);
        self.consumed = self.consumed.wrapping_add(8);
        // ffmpeg writing to a pipe leaves both sizes at u32::MAX.
        if self.len.wrapping_sub(self.consumed) < size && !(self.len == size && size == u32::MAX) {
            return Ok(None);
        }
        self.consumed = self.consumed.saturating_add(size);
        Ok(Some((tag, size)))
    }

    /// Skips what is left of the parent, as symphonia's `finish` does.
    fn finish<R>(&self, walk: &mut Walk<R>) {
        walk.pos += u64::from(self.len.saturating_sub(self.consumed)) + u64::from(self.len & 1);
    }
}

impl<R: Read + Seek> Walk<'_, R> {
    /// Reads `N` bytes at the reader's position and moves past them.
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.input.seek(SeekFrom::Start(self.pos))?;
        self.input.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u16_at(&mut self, pos: u64) -> std::io::Result<u16> {
        let here = std::mem::replace(&mut self.pos, pos);
        let value = u16::from_le_bytes(self.bytes::<2>()?);
        self.pos = here;
        Ok(value)
    }

    /// The `RIFF` chunk, up to its `data` chunk (where symphonia stops reading chunks).
    fn riff(&mut self) -> std::io::Result<std::result::Result<(), String>> {
        let riff_len = u32::from_le_bytes(self.bytes::<4>()?);
        self.pos += 4; // "WAVE"
        let mut chunks = Chunks {
            len: riff_len,
            consumed: 0,
        };
        while let Some((tag, size)) = chunks.next(self)? {
            match &tag {
                b"fmt " => match self.format_chunk_read(size)? {
                    Some(read) => self.pos += read,
                    None => break,
                },
                b"fact" if size == 4 => self.pos += 4,
                b"LIST" if size >= 4 => {
                    let form = self.bytes::<4>()?;
                    let list = Chunks {
                        len: size - 4,
                        consumed: 0,
                    };
                    if &form == b"INFO" {
                        if let Err(e) = self.info_values(list)? {
                            return Ok(Err(e));
                        }
                    } else {
                        list.finish(self);
                    }
                }
                b"fact" | b"LIST" | b"data" => break,
                _ => self.pos += u64::from(size),
            }
        }
        Ok(Ok(()))
    }

    /// How many bytes symphonia's parser reads of a format chunk declaring `size`, or `None`
    /// where it refuses the chunk.
    fn format_chunk_read(&mut self, size: u32) -> std::io::Result<Option<u64>> {
        if size < 16 {
            return Ok(None);
        }
        let start = self.pos;
        let format = self.u16_at(start)?;
        let extra = |walk: &mut Self| walk.u16_at(start + 16).map(|n| 18 + u64::from(n));
        Ok(match format {
            // PCM and IEEE float: exactly one of three sizes, read whole.
            0x0001 | 0x0003 if matches!(size, 16 | 18 | 40) => Some(u64::from(size)),
            // Microsoft and IMA ADPCM: the extra data size they declare, whatever the chunk's.
            0x0002 | 0x0011 if size >= 20 => Some(extra(self)?),
            // A-law and µ-law: 18 bytes, then the extra data they declare.
            0x0006 | 0x0007 if size == 18 => Some(extra(self)?),
            // Extensible: 40 bytes, whatever the chunk's size.
            0xfffe if size >= 40 => Some(40),
            _ => None,
        })
    }

    /// The values of an `INFO` list: each must fit in what is left of the file.
    fn info_values(
        &mut self,
        mut list: Chunks,
    ) -> std::io::Result<std::result::Result<(), String>> {
        while let Some((tag, size)) = list.next(self)? {
            let left = self.len.saturating_sub(self.pos);
            if u64::from(size) > left {
                return Ok(Err(format!(
                    "its INFO value {} declares {size} bytes, more than the {left} left in the \
                     file",
                    String::from_utf8_lossy(&tag)
                )));
            }
            self.pos += u64::from(size);
        }
        list.finish(self);
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(tag: &[u8; 4], size: u32, body: &[u8]) -> Vec<u8> {
        let mut c = tag.to_vec();
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(body);
        c
    }

    /// A 16 kHz mono 16-bit format chunk.
    fn pcm_format() -> Vec<u8> {
        let mut body = Vec::new();
        for field in [1u16, 1] {
            body.extend_from_slice(&field.to_le_bytes());
        }
        body.extend_from_slice(&16_000u32.to_le_bytes());
        body.extend_from_slice(&32_000u32.to_le_bytes());
        body.extend_from_slice(&2u16.to_le_bytes());
        body.extend_from_slice(&16u16.to_le_bytes());
        chunk(b"fmt ", 16, &body)
    }

    fn wav(riff_size: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        chunks.iter().for_each(|c| body.extend_from_slice(c));
        chunk(b"RIFF", riff_size, &body)
    }

    fn check(bytes: &[u8]) -> std::result::Result<(), String> {
        check_info_values(&mut std::io::Cursor::new(bytes), bytes, bytes.len() as u64)
    }

    #[test]
    fn an_info_value_larger_than_the_file_is_refused() {
        // As in the regression file that made symphonia ask for 4 GiB (an abort under a 2 GB
        // address-space limit).
        let info = chunk(b"INAM", 0xffff_fe00, b"x");
        let list = chunk(b"LIST", 0xffff_ff00, &[b"INFO".as_slice(), &info].concat());
        let hostile = wav(u32::MAX, &[pcm_format(), list]);
        let err = check(&hostile).unwrap_err();
        assert!(
            err.contains("INFO value INAM declares 4294966784 bytes"),
            "{err}"
        );
        // With a real size, the same value passes, as do the data and what follows.
        let info = chunk(b"INAM", 5, b"title\0");
        let list = chunk(b"LIST", 18, &[b"INFO".as_slice(), &info].concat());
        let data = chunk(b"data", 4, &[0; 4]);
        let real = wav(4 + 24 + 26 + 12, &[pcm_format(), list, data]);
        assert_eq!(check(&real), Ok(()));
    }

    #[test]
    fn the_walk_follows_symphonias_reads_not_the_declared_sizes() {
        // An extensible format chunk declaring 48 bytes: symphonia's parser reads 40 of them
        // and the next chunk header is read from there, eight bytes early, so the LIST hidden
        // inside the format chunk is what it would read.
        let mut format = pcm_format();
        format[4..8].copy_from_slice(&48u32.to_le_bytes());
        format[8..10].copy_from_slice(&0xfffeu16.to_le_bytes());
        format.extend_from_slice(&22u16.to_le_bytes());
        format.extend_from_slice(&[0; 22]);
        let info = chunk(b"INAM", 0xffff_0000, b"");
        format.extend_from_slice(&chunk(b"LIST", 0xffff_f000, b"INFO"));
        format.extend_from_slice(&info);
        let hostile = wav(u32::MAX, &[format]);
        assert!(check(&hostile).is_err());
        // And an odd-sized unknown chunk is padded by one byte before the next.
        let odd = chunk(b"junk", 3, b"abc\0");
        let info = chunk(b"INAM", 1 << 30, b"");
        let list = chunk(b"LIST", 1 << 31, &[b"INFO".as_slice(), &info].concat());
        assert!(check(&wav(u32::MAX, &[pcm_format(), odd, list])).is_err());
    }

    #[test]
    fn other_files_pass() {
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(b"RIFF\x04\0\0\0AVI "), Ok(()));
        assert_eq!(check(&wav(u32::MAX, &[pcm_format()])[..30]), Ok(()));
    }
}
