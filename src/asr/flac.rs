//! A check of a FLAC file's comment and picture blocks before symphonia reads them.
//!
//! symphonia reads a Vorbis comment, and a picture's media type, description and data, into a
//! zeroed buffer of its declared 32-bit size before reading it (symphonia-metadata 0.5.5
//! `read_comment_no_framing`, `read_picture_block`). The block holding them is at most
//! 16 MiB, yet a length inside it may claim 4 GiB: Linux hands such a block out lazily, but
//! where it will not (less than 4 GiB of memory and swap, `vm.overcommit_memory = 2`, an
//! address-space limit) the failed allocation aborts the whole process. A real field is inside
//! its block, so a length that reaches past the block is corruption, refused here.

use std::io::{Read, Seek, SeekFrom};

const VORBIS_COMMENT: u8 = 4;
const PICTURE: u8 = 6;

/// `Err` (what is wrong) when a comment or picture field of the FLAC file in the input claims
/// more bytes than its metadata block holds; `head` is the input's start, where symphonia's
/// probe looks for the `fLaC` marker. Anything else passes: the FLAC reader reports it.
/// Leaves `input` at an unspecified position.
pub(super) fn check_metadata_blocks(
    input: &mut (impl Read + Seek),
    head: &[u8],
) -> std::result::Result<(), String> {
    let Some(start) = head.windows(4).position(|w| w == b"fLaC") else {
        return Ok(());
    };
    // A read past the end stops the walk, as it stops symphonia.
    walk_blocks(input, start as u64 + 4).unwrap_or(Ok(()))
}

fn walk_blocks(
    input: &mut (impl Read + Seek),
    mut pos: u64,
) -> std::io::Result<std::result::Result<(), String>> {
    loop {
        let mut header = [0u8; 4];
        input.seek(SeekFrom::Start(pos))?;
        input.read_exact(&mut header)?;
        let (is_last, kind) = (header[0] & 0x80 != 0, header[0] & 0x7f);
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]);
        if matches!(kind, VORBIS_COMMENT | PICTURE) {
            let mut block = Vec::new();
            input
                .by_ref()
                .take(u64::from(size))
                .read_to_end(&mut block)?;
            let fields = if kind == PICTURE {
                picture_fields_fit(&block)
            } else {
                comments_fit(&block)
            };
            if let Some(Err(e)) = fields {
                return Ok(Err(e));
            }
        }
        if is_last {
            return Ok(Ok(()));
        }
        pos += 4 + u64::from(size);
    }
}

/// Reads a block's fields as symphonia does; `None` where symphonia stops with an error first.
struct Fields<'a> {
    block: &'a [u8],
    pos: usize,
}

impl Fields<'_> {
    fn u32(&mut self, big_endian: bool) -> Option<u32> {
        let bytes: [u8; 4] = self.block.get(self.pos..self.pos + 4)?.try_into().ok()?;
        self.pos += 4;
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    /// Skips a field of `len` bytes, which must be inside the block.
    fn field(&mut self, what: &str, len: u32) -> Result<(), String> {
        let left = self.block.len() - self.pos;
        if len as usize > left {
            return Err(format!(
                "its {what} declares {len} bytes, more than the {left} left in its {}-byte \
                 metadata block",
                self.block.len()
            ));
        }
        self.pos += len as usize;
        Ok(())
    }
}

/// The picture's media type, description and data (big-endian lengths).
fn picture_fields_fit(block: &[u8]) -> Option<Result<(), String>> {
    let mut fields = Fields {
        block,
        pos: 4, // the picture type
    };
    for what in ["picture's media type", "picture's description"] {
        let len = fields.u32(true)?;
        if let Err(e) = fields.field(what, len) {
            return Some(Err(e));
        }
    }
    fields.pos += 16; // width, height, colour depth, indexed colours
    let len = fields.u32(true)?;
    Some(fields.field("picture's data", len))
}

/// The comments (little-endian lengths, after the vendor string symphonia skips).
fn comments_fit(block: &[u8]) -> Option<Result<(), String>> {
    let mut fields = Fields { block, pos: 0 };
    let vendor = fields.u32(false)?;
    fields.field("vendor", vendor).ok()?;
    let count = fields.u32(false)?;
    for _ in 0..count {
        let len = fields.u32(false)?;
        if let Err(e) = fields.field("Vorbis comment", len) {
            return Some(Err(e));
        }
    }
    Some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: u8, is_last: bool, body: &[u8]) -> Vec<u8> {
        let size = (body.len() as u32).to_be_bytes();
        let mut b = vec![
            kind | if is_last { 0x80 } else { 0 },
            size[1],
            size[2],
            size[3],
        ];
        b.extend_from_slice(body);
        b
    }

    fn flac(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut f = b"fLaC".to_vec();
        f.extend_from_slice(&block(0, false, &[0; 34])); // STREAMINFO
        blocks.iter().for_each(|b| f.extend_from_slice(b));
        f
    }

    fn check(bytes: &[u8]) -> std::result::Result<(), String> {
        check_metadata_blocks(&mut std::io::Cursor::new(bytes), bytes)
    }

    fn picture(description_len: u32) -> Vec<u8> {
        let mut body = 3u32.to_be_bytes().to_vec();
        body.extend_from_slice(&9u32.to_be_bytes());
        body.extend_from_slice(b"image/png");
        body.extend_from_slice(&description_len.to_be_bytes());
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&2u32.to_be_bytes());
        body.extend_from_slice(&[0x89, 0x50]);
        body
    }

    #[test]
    fn a_picture_field_larger_than_its_block_is_refused() {
        let hostile = flac(&[block(PICTURE, true, &picture(u32::MAX))]);
        let err = check(&hostile).unwrap_err();
        assert!(
            err.contains("picture's description declares 4294967295 bytes, more than the 22 left"),
            "{err}"
        );
        assert_eq!(check(&flac(&[block(PICTURE, true, &picture(0))])), Ok(()));
    }

    #[test]
    fn a_comment_larger_than_its_block_is_refused_after_other_blocks() {
        let comments = |len: u32| {
            let mut body = 3u32.to_le_bytes().to_vec();
            body.extend_from_slice(b"ffm");
            body.extend_from_slice(&1u32.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(b"TITLE=call");
            body
        };
        let padding = block(1, false, &[0; 100]);
        let hostile = flac(&[
            padding.clone(),
            block(VORBIS_COMMENT, true, &comments(1 << 31)),
        ]);
        assert!(
            check(&hostile)
                .unwrap_err()
                .contains("its Vorbis comment declares 2147483648 bytes")
        );
        let real = flac(&[padding, block(VORBIS_COMMENT, true, &comments(10))]);
        assert_eq!(check(&real), Ok(()));
    }

    #[test]
    fn other_files_pass() {
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(b"fLaC"), Ok(()));
        assert_eq!(check(&flac(&[])[..20]), Ok(()));
    }
}
