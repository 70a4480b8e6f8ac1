//! The tables a Vorbis setup header makes symphonia build, checked before its decoder opens.
//!
//! symphonia's Vorbis decoder builds every codebook of the setup header up front: per entry a
//! code length, a codeword, a value and a node of its lookup tree, and for a vector-quantized
//! book a table of `entries × dimensions` floats it fills at once. A codebook header is a
//! dozen bytes, yet it may declare 16.7 M entries of 65,535 dimensions, and a setup holds up to
//! 256 of them: a Vorbis file of a few hundred bytes could make the decoder fill gigabytes
//! (up to terabytes) and take the process down. Real encoders stay far below this
//! ([`MAX_TABLE_BYTES`]), so this walk reads the codebook headers as symphonia does
//! (symphonia-codec-vorbis 0.5.5 `codebook.rs`) and refuses a setup whose tables would pass
//! the bound, before symphonia builds any of them.
//!
//! The same check covers Ogg and Matroska: both hand the decoder the identification and setup
//! headers in the track's `extra_data`.

use symphonia::core::io::{BitReaderRtl, ReadBitsRtl};

/// The most table memory a Vorbis setup may make the decoder build. The codebooks of real
/// encoders (libvorbis, ffmpeg's own) take well under 1 MiB.
pub(super) const MAX_TABLE_BYTES: u64 = 64 << 20;

/// Memory symphonia spends per codebook entry: code length, codeword, value, and its share of
/// the lookup tree and table (measured from symphonia-core's `CodebookBuilder`, rounded up).
const BYTES_PER_ENTRY: u64 = 48;

/// The identification header symphonia reads first is exactly this long.
const IDENT_HEADER_LEN: usize = 30;

const SETUP_SIGNATURE: &[u8] = b"\x05vorbis";

/// Refuses a Vorbis setup whose codebooks would take more than [`MAX_TABLE_BYTES`] to build.
/// Anything symphonia rejects before allocating (a missing or truncated header) passes here
/// and is left for symphonia to report.
pub(super) fn check_setup(extra_data: &[u8]) -> Result<(), String> {
    let table_bytes = setup_table_bytes(extra_data);
    if table_bytes > MAX_TABLE_BYTES {
        return Err(format!(
            "its Vorbis codebooks would need at least {} MiB of tables, more than the {} MiB any real \
             encoder uses",
            table_bytes >> 20,
            MAX_TABLE_BYTES >> 20
        ));
    }
    Ok(())
}

/// The table memory symphonia would build for the setup in `extra_data`, counted up to where
/// it passes [`MAX_TABLE_BYTES`] or symphonia would stop with an error.
fn setup_table_bytes(extra_data: &[u8]) -> u64 {
    let Some(setup) = extra_data
        .get(IDENT_HEADER_LEN..)
        .and_then(|rest| rest.strip_prefix(SETUP_SIGNATURE))
    else {
        return 0;
    };
    let mut table_bytes = 0;
    // A read past the end stops the walk: symphonia stops at the same place, with an error.
    let _ = walk_codebooks(&mut BitReaderRtl::new(setup), &mut table_bytes);
    table_bytes
}

/// Reads the codebooks, adding each one's table memory to `table_bytes`, and stops early once
/// it is over the bound (`Ok`) or the setup ends (`Err`).
fn walk_codebooks(bits: &mut BitReaderRtl<'_>, table_bytes: &mut u64) -> std::io::Result<()> {
    let count = bits.read_bits_leq32(8)? + 1;
    for _ in 0..count {
        if bits.read_bits_leq32(24)? != 0x564342 {
            return Ok(()); // symphonia refuses a codebook without its sync word
        }
        let dimensions = bits.read_bits_leq32(16)?;
        let entries = bits.read_bits_leq32(24)?;
        *table_bytes += u64::from(entries) * BYTES_PER_ENTRY;
        if *table_bytes > MAX_TABLE_BYTES {
            return Ok(());
        }
        skip_code_lengths(bits, entries)?;
        let lookup_type = bits.read_bits_leq32(4)?;
        if !matches!(lookup_type, 1 | 2) {
            if lookup_type != 0 {
                return Ok(()); // symphonia refuses other lookup types
            }
            continue;
        }
        // The VQ table: `entries × dimensions` floats, allocated and filled in one go.
        *table_bytes += u64::from(entries) * u64::from(dimensions) * 4;
        if *table_bytes > MAX_TABLE_BYTES {
            return Ok(());
        }
        bits.ignore_bits(64)?; // minimum and delta values
        let value_bits = bits.read_bits_leq32(4)? + 1;
        bits.read_bool()?; // sequence flag
        let Some(values) = (if lookup_type == 1 {
            lookup1_values(entries, dimensions)
        } else {
            Some(entries * dimensions) // within the bound checked above, so no overflow
        }) else {
            return Ok(()); // symphonia panics on these (caught) before allocating the table
        };
        let mut skip = u64::from(values) * u64::from(value_bits);
        while skip > 0 {
            let step = skip.min(1 << 30);
            bits.ignore_bits(step as u32)?;
            skip -= step;
        }
    }
    Ok(())
}

/// Skips a codebook's codeword lengths, in any of the three layouts.
fn skip_code_lengths(bits: &mut BitReaderRtl<'_>, entries: u32) -> std::io::Result<()> {
    if !bits.read_bool()? {
        if bits.read_bool()? {
            // Sparse: a used flag per entry, then the length of a used one.
            for _ in 0..entries {
                if bits.read_bool()? {
                    bits.ignore_bits(5)?;
                }
            }
            return Ok(());
        }
        return bits.ignore_bits(entries * 5); // dense: 5 bits each (entries < 2^24)
    }
    // Length-ordered: runs of entries sharing a length, each run's size in as many bits as
    // the entries left need.
    bits.ignore_bits(5)?;
    let mut entry = 0;
    while entry < entries {
        entry += bits.read_bits_leq32(32 - (entries - entry).leading_zeros())?;
        if entry > entries {
            return Err(std::io::ErrorKind::InvalidData.into()); // symphonia refuses it here
        }
    }
    Ok(())
}

/// The Vorbis `lookup1_values`, computed as symphonia does (in `f32`); `None` where its
/// consistency asserts would fail.
fn lookup1_values(entries: u32, dimensions: u32) -> Option<u32> {
    let value = (entries as f32).powf(1.0 / dimensions as f32).floor() as u32;
    let fits = value.checked_pow(dimensions)? <= entries;
    let next_exceeds = (value + 1)
        .checked_pow(dimensions)
        .is_none_or(|next| next > entries);
    (fits && next_exceeds).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::testutil::ffmpeg;

    /// Writes bits least-significant first, as Vorbis packs them.
    #[derive(Default)]
    struct Bits {
        bytes: Vec<u8>,
        used: u32,
    }

    impl Bits {
        fn put(&mut self, value: u64, width: u32) -> &mut Self {
            for i in 0..width {
                if self.used.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (self.used % 8);
                self.used += 1;
            }
            self
        }
    }

    /// The track's extra data: a plain identification header, then a setup of `books`.
    fn extra_data(books: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut data = b"\x01vorbis\0\0\0\0\x01\x80\x3e\0\0".to_vec();
        data.extend_from_slice(&[0; 12]);
        data.extend_from_slice(&[0xb8, 0x01]);
        assert_eq!(data.len(), IDENT_HEADER_LEN);
        data.extend_from_slice(SETUP_SIGNATURE);
        let mut bits = Bits::default();
        bits.put(books.len() as u64 - 1, 8);
        for &(dimensions, entries, lookup_type) in books {
            bits.put(0x564342, 24).put(dimensions.into(), 16);
            bits.put(entries.into(), 24);
            // Length-ordered, in one run: all entries as long as a complete tree of them needs.
            let code_len = (32 - entries.saturating_sub(1).leading_zeros()).max(1);
            bits.put(1, 1).put((code_len - 1).into(), 5);
            bits.put(entries.into(), 32 - entries.leading_zeros());
            bits.put(lookup_type.into(), 4);
            if lookup_type != 0 {
                bits.put(0, 64).put(0, 4).put(0, 1);
                let values = lookup1_values(entries, dimensions).unwrap();
                bits.put(0, values);
            }
        }
        data.extend_from_slice(&bits.bytes);
        data
    }

    #[test]
    fn a_setup_claiming_gigabytes_of_tables_is_refused() {
        // 2^24 - 1 entries of 16 dimensions: a 1 GiB VQ table, declared in 20 bytes.
        let err = check_setup(&extra_data(&[(16, (1 << 24) - 1, 1)])).unwrap_err();
        assert!(err.contains("Vorbis codebooks would need"), "{err}");
        // The same number of entries spread over many small books adds up too.
        let many = vec![(1, 1 << 20, 0); 100];
        assert!(check_setup(&extra_data(&many)).is_err());
        // Modest books pass, and so does what is not a Vorbis setup at all.
        assert_eq!(check_setup(&extra_data(&[(2, 81, 1), (1, 256, 0)])), Ok(()));
        assert_eq!(check_setup(b"\x01vorbis"), Ok(()));
        assert_eq!(check_setup(&[]), Ok(()));
    }

    /// An Ogg page of one logical stream (`flags`: 2 first page, 4 last page).
    fn ogg_page(sequence: u32, flags: u8, granule: u64, packets: &[&[u8]]) -> Vec<u8> {
        let mut lacing = Vec::new();
        for packet in packets {
            lacing.extend(std::iter::repeat_n(255, packet.len() / 255));
            lacing.push((packet.len() % 255) as u8);
        }
        let mut page = b"OggS\0".to_vec();
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&1u32.to_le_bytes());
        page.extend_from_slice(&sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        packets.iter().for_each(|p| page.extend_from_slice(p));
        // Ogg's CRC-32: polynomial 0x04c11db7, most significant bit first, no reflection.
        let crc = page.iter().fold(0u32, |mut crc, &byte| {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 1 << 31 != 0 {
                    crc << 1 ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
            crc
        });
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        page
    }

    /// A whole Ogg Vorbis file whose 123-byte setup would make symphonia fill 2.5 GB (measured
    /// on symphonia 0.5.5 alone): the upload is refused before the decoder is built.
    #[test]
    fn an_ogg_file_with_a_hostile_setup_is_a_clear_error() {
        let headers = extra_data(&[(16, 1 << 23, 1); 4]);
        let (ident, setup) = headers.split_at(IDENT_HEADER_LEN);
        let comment = b"\x03vorbis\0\0\0\0\0\0\0\0\x01";
        let mut ogg = ogg_page(0, 2, 0, &[ident]);
        ogg.extend(ogg_page(1, 0, 0, &[comment, setup]));
        ogg.extend(ogg_page(2, 4, 256, &[&[0]]));
        let err = crate::asr::decode_bytes(ogg, None, crate::asr::Channels::Mix)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "Vorbis stream is corrupt (its Vorbis codebooks would need at least 384 MiB"
            ),
            "{err}"
        );
    }

    #[test]
    fn lookup1_matches_the_vorbis_definition() {
        assert_eq!(lookup1_values(81, 2), Some(9));
        assert_eq!(lookup1_values(80, 4), Some(2));
        assert_eq!(lookup1_values(625, 4), Some(5));
        assert_eq!(lookup1_values(1, 0), None);
    }

    /// Real encoders' setups decode, with tables far below the bound.
    #[test]
    fn libvorbis_setups_pass_at_every_quality() {
        use symphonia::core::{formats::FormatOptions, io::MediaSourceStream, probe::Hint};
        let dir = tempfile::tempdir().unwrap();
        for (quality, rate, channels) in [
            ("-1", "8000", "1"),
            ("4", "44100", "2"),
            ("10", "48000", "2"),
        ] {
            let path = dir.path().join(format!("q{quality}.ogg"));
            let source = format!("sine=frequency=440:duration=1:sample_rate={rate}");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                &source,
                "-ac",
                channels,
                "-c:a",
                "libvorbis",
                "-q:a",
                quality,
                path.to_str().unwrap(),
            ]);
            let file = std::fs::File::open(&path).unwrap();
            let probed = symphonia::default::get_probe()
                .format(
                    &Hint::new(),
                    MediaSourceStream::new(Box::new(file), Default::default()),
                    &FormatOptions::default(),
                    &Default::default(),
                )
                .unwrap();
            let extra_data = probed.format.tracks()[0]
                .codec_params
                .extra_data
                .clone()
                .unwrap();
            let table_bytes = setup_table_bytes(&extra_data);
            eprintln!("libvorbis q{quality} {rate} Hz x{channels}: {table_bytes} bytes of tables");
            assert!(table_bytes > 0 && table_bytes < 1 << 20, "{table_bytes}");
            let audio = crate::asr::decode_file(&path, crate::asr::Channels::Mix)
                .unwrap_or_else(|e| panic!("quality {quality}: {e}"));
            assert!(audio.frames() > 0);
        }
    }
}
