//! CTranslate2 Whisper → whisper.cpp ggml conversion.
//!
//! Produces the file whisper.cpp's `convert-pt-to-ggml.py` writes (tensors in the PyTorch
//! module's order, 1-D tensors, conv biases and positional embeddings in f32, everything else
//! in f16), optionally followed by whisper.cpp's `quantize ... q8_0` (every 2-D tensor except
//! conv biases and positional embeddings in q8_0; conv weights are 3-D and stay f16, which
//! whisper.cpp requires). The result matches those tools byte for byte.

use std::io::Read;

use super::ct2;
use super::manifest::WhisperQuant;

const GGML_MAGIC: u32 = 0x6767_6d6c;
/// ggml's `GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR`, added to a quantized ftype.
const QNT_VERSION_OFFSET: i32 = 2 * 1000;
/// `GGML_FTYPE_MOSTLY_Q8_0`.
const FTYPE_Q8_0: i32 = 7;
const TYPE_F32: i32 = 0;
const TYPE_F16: i32 = 1;
const TYPE_Q8_0: i32 = 8;
/// Tensors `quantize` leaves alone although they are 2-D.
const NEVER_QUANTIZED: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

/// Whisper hyper-parameters in whisper.cpp's header order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
}

/// A tensor to write: whisper.cpp name, numpy-order dims, f32 values.
struct Tensor {
    name: String,
    dims: Vec<usize>,
    values: Vec<f32>,
}

/// Converts a CTranslate2 Whisper model to a whisper.cpp ggml file.
///
/// `mel_npz` is openai-whisper's `mel_filters.npz`; `tiktoken` its `multilingual.tiktoken`
/// (or `gpt2.tiktoken` for English-only models).
pub fn convert(
    ct2_bytes: &[u8],
    mel_npz: &[u8],
    tiktoken: &[u8],
    quant: WhisperQuant,
) -> Result<Vec<u8>, String> {
    let model = ct2::Model::parse(ct2_bytes).map_err(|e| format!("CTranslate2 model.bin: {e}"))?;
    if model.spec != "WhisperSpec" {
        return Err(format!(
            "CTranslate2 model.bin holds a {:?}, not a WhisperSpec",
            model.spec
        ));
    }
    let (hp, tensors) = map_tensors(&model)?;
    let mel = read_npz_f32(mel_npz, &format!("mel_{}", hp.n_mels))
        .map_err(|e| format!("mel_filters.npz: {e}"))?;
    let vocab = parse_tiktoken(tiktoken).map_err(|e| format!("tiktoken vocabulary: {e}"))?;
    Ok(write_ggml(&hp, &mel, &vocab, &tensors, quant))
}

fn layer_count(model: &ct2::Model, prefix: &str) -> i32 {
    let mut n = 0;
    while model
        .variables
        .keys()
        .any(|k| k.starts_with(&format!("{prefix}/layer_{n}/")))
    {
        n += 1;
    }
    n
}

fn map_tensors(model: &ct2::Model) -> Result<(Hparams, Vec<Tensor>), String> {
    let get = |name: &str| model.get(name).map_err(|e| format!("the CT2 model {e}"));
    let floats = |name: &str| -> Result<(Vec<usize>, Vec<f32>), String> {
        let v = get(name)?;
        let values = v.to_f32().map_err(|e| format!("CT2 variable {name} {e}"))?;
        Ok((v.dims.clone(), values))
    };
    let int = |name: &str| -> Result<i32, String> {
        get(name)?
            .scalar_int()
            .map(|v| v as i32)
            .map_err(|e| format!("CT2 variable {name} {e}"))
    };
    // An untied output projection cannot be represented in whisper.cpp's format.
    if model.variables.contains_key("decoder/projection/weight") {
        let proj = get("decoder/projection/weight")?;
        let emb = get("decoder/embeddings/weight")?;
        if proj.data != emb.data {
            return Err(
                "decoder/projection/weight differs from the token embedding; \
                        whisper.cpp needs them tied"
                    .into(),
            );
        }
    }

    let emb = get("decoder/embeddings/weight")?;
    let enc_pos = get("encoder/position_encodings/encodings")?;
    let dec_pos = get("decoder/position_encodings/encodings")?;
    let conv1 = get("encoder/conv1/weight")?;
    let dims2 = |v: &ct2::Variable, name: &str| -> Result<(i32, i32), String> {
        match v.dims[..] {
            [a, b] => Ok((a as i32, b as i32)),
            _ => Err(format!(
                "CT2 variable {name} has dims {:?}, expected 2",
                v.dims
            )),
        }
    };
    let (n_vocab, n_text_state) = dims2(emb, "decoder/embeddings/weight")?;
    let (n_audio_ctx, n_audio_state) = dims2(enc_pos, "encoder/position_encodings/encodings")?;
    let (n_text_ctx, _) = dims2(dec_pos, "decoder/position_encodings/encodings")?;
    let n_mels = match conv1.dims[..] {
        [_, m, 3] => m as i32,
        _ => return Err(format!("encoder/conv1/weight has dims {:?}", conv1.dims)),
    };
    let hp = Hparams {
        n_vocab,
        n_audio_ctx,
        n_audio_state,
        n_audio_head: int("encoder/num_heads")?,
        n_audio_layer: layer_count(model, "encoder"),
        n_text_ctx,
        n_text_state,
        n_text_head: int("decoder/num_heads")?,
        n_text_layer: layer_count(model, "decoder"),
        n_mels,
    };
    if hp.n_audio_layer == 0 || hp.n_text_layer == 0 {
        return Err("the CT2 model has no encoder or decoder layers".into());
    }

    let mut out: Vec<Tensor> = Vec::new();
    let mut push =
        |name: String, dims: Vec<usize>, values: Vec<f32>| out.push(Tensor { name, dims, values });
    let linear = |out: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                  dst: &str,
                  src: &str|
     -> Result<(), String> {
        let (wd, w) = floats(&format!("{src}/weight"))?;
        let (bd, b) = floats(&format!("{src}/bias"))?;
        out(format!("{dst}.weight"), wd, w);
        out(format!("{dst}.bias"), bd, b);
        Ok(())
    };
    let norm = |out: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                dst: &str,
                src: &str|
     -> Result<(), String> {
        let (gd, g) = floats(&format!("{src}/gamma"))?;
        let (bd, b) = floats(&format!("{src}/beta"))?;
        out(format!("{dst}.weight"), gd, g);
        out(format!("{dst}.bias"), bd, b);
        Ok(())
    };
    // A fused projection (rows stacked): the key part has no bias in Whisper, so CT2's
    // all-zero key bias is dropped.
    let fused = |out: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                 dsts: &[&str],
                 src: &str|
     -> Result<(), String> {
        let (wd, w) = floats(&format!("{src}/weight"))?;
        let (_, b) = floats(&format!("{src}/bias"))?;
        let k = dsts.len();
        if wd.len() != 2 || wd[0] % k != 0 || b.len() != wd[0] {
            return Err(format!(
                "CT2 variable {src}/weight has dims {wd:?}, expected [{k}·n, d]"
            ));
        }
        let (rows, cols) = (wd[0] / k, wd[1]);
        for (j, dst) in dsts.iter().enumerate() {
            let wpart = w[j * rows * cols..(j + 1) * rows * cols].to_vec();
            out(format!("{dst}.weight"), vec![rows, cols], wpart);
            let bpart = &b[j * rows..(j + 1) * rows];
            if dst.ends_with(".key") {
                if bpart.iter().any(|&x| x != 0.0) {
                    return Err(format!("{src}/bias has a non-zero key bias"));
                }
            } else {
                out(format!("{dst}.bias"), vec![rows], bpart.to_vec());
            }
        }
        Ok(())
    };
    let block = |out: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                 dst: &str,
                 src: &str,
                 cross: bool|
     -> Result<(), String> {
        let sa = format!("{src}/self_attention");
        fused(
            out,
            &[
                &format!("{dst}.attn.query"),
                &format!("{dst}.attn.key"),
                &format!("{dst}.attn.value"),
            ],
            &format!("{sa}/linear_0"),
        )?;
        let lin = linear;
        lin(out, &format!("{dst}.attn.out"), &format!("{sa}/linear_1"))?;
        norm(out, &format!("{dst}.attn_ln"), &format!("{sa}/layer_norm"))?;
        if cross {
            let ca = format!("{src}/attention");
            lin(
                out,
                &format!("{dst}.cross_attn.query"),
                &format!("{ca}/linear_0"),
            )?;
            fused(
                out,
                &[
                    &format!("{dst}.cross_attn.key"),
                    &format!("{dst}.cross_attn.value"),
                ],
                &format!("{ca}/linear_1"),
            )?;
            lin(
                out,
                &format!("{dst}.cross_attn.out"),
                &format!("{ca}/linear_2"),
            )?;
            norm(
                out,
                &format!("{dst}.cross_attn_ln"),
                &format!("{ca}/layer_norm"),
            )?;
        }
        lin(out, &format!("{dst}.mlp.0"), &format!("{src}/ffn/linear_0"))?;
        lin(out, &format!("{dst}.mlp.2"), &format!("{src}/ffn/linear_1"))?;
        norm(
            out,
            &format!("{dst}.mlp_ln"),
            &format!("{src}/ffn/layer_norm"),
        )?;
        Ok(())
    };

    // The order of PyTorch's `Whisper.state_dict()`, as convert-pt-to-ggml.py writes it.
    let (d, v) = floats("encoder/position_encodings/encodings")?;
    push("encoder.positional_embedding".into(), d, v);
    linear(&mut push, "encoder.conv1", "encoder/conv1")?;
    linear(&mut push, "encoder.conv2", "encoder/conv2")?;
    for i in 0..hp.n_audio_layer {
        block(
            &mut push,
            &format!("encoder.blocks.{i}"),
            &format!("encoder/layer_{i}"),
            false,
        )?;
    }
    norm(&mut push, "encoder.ln_post", "encoder/layer_norm")?;
    let (d, v) = floats("decoder/position_encodings/encodings")?;
    push("decoder.positional_embedding".into(), d, v);
    let (d, v) = floats("decoder/embeddings/weight")?;
    push("decoder.token_embedding.weight".into(), d, v);
    for i in 0..hp.n_text_layer {
        block(
            &mut push,
            &format!("decoder.blocks.{i}"),
            &format!("decoder/layer_{i}"),
            true,
        )?;
    }
    norm(&mut push, "decoder.ln", "decoder/layer_norm")?;

    // Conv biases are stored as [n, 1].
    for t in out.iter_mut() {
        if t.name == "encoder.conv1.bias" || t.name == "encoder.conv2.bias" {
            t.dims = vec![t.dims[0], 1];
        }
    }
    Ok((hp, out))
}

fn write_ggml(
    hp: &Hparams,
    mel: &NpyArray,
    vocab: &[Vec<u8>],
    tensors: &[Tensor],
    quant: WhisperQuant,
) -> Vec<u8> {
    let payload: usize = tensors.iter().map(|t| t.values.len() * 2 + 64).sum();
    let mut out = Vec::with_capacity(payload + mel.values.len() * 4 + vocab.len() * 16);
    let i32s = |out: &mut Vec<u8>, vs: &[i32]| {
        for v in vs {
            out.extend_from_slice(&v.to_le_bytes());
        }
    };
    let ftype = match quant {
        WhisperQuant::F16 => 1,
        WhisperQuant::Q8_0 => QNT_VERSION_OFFSET + FTYPE_Q8_0,
    };
    i32s(
        &mut out,
        &[
            GGML_MAGIC as i32,
            hp.n_vocab,
            hp.n_audio_ctx,
            hp.n_audio_state,
            hp.n_audio_head,
            hp.n_audio_layer,
            hp.n_text_ctx,
            hp.n_text_state,
            hp.n_text_head,
            hp.n_text_layer,
            hp.n_mels,
            ftype,
        ],
    );
    i32s(&mut out, &[mel.dims[0] as i32, mel.dims[1] as i32]);
    for v in &mel.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    i32s(&mut out, &[vocab.len() as i32]);
    for tok in vocab {
        i32s(&mut out, &[tok.len() as i32]);
        out.extend_from_slice(tok);
    }
    for t in tensors {
        let n_dims = t.dims.len();
        let keep_f32 = n_dims < 2 || NEVER_QUANTIZED.contains(&t.name.as_str());
        let q8 = quant == WhisperQuant::Q8_0
            && n_dims == 2
            && !NEVER_QUANTIZED.contains(&t.name.as_str());
        let ttype = if q8 {
            TYPE_Q8_0
        } else if keep_f32 {
            TYPE_F32
        } else {
            TYPE_F16
        };
        i32s(&mut out, &[n_dims as i32, t.name.len() as i32, ttype]);
        for d in t.dims.iter().rev() {
            i32s(&mut out, &[*d as i32]);
        }
        out.extend_from_slice(t.name.as_bytes());
        match ttype {
            TYPE_Q8_0 => quantize_q8_0_into(&t.values, &mut out),
            TYPE_F32 => {
                for v in &t.values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            _ => {
                for v in &t.values {
                    out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                }
            }
        }
    }
    out
}

/// ggml's `quantize_row_q8_0_ref`: per block of 32, an f16 scale `d = max|x| / 127`, then
/// 32 × i8 `round(x / d)` (computed as `x * (1/d)`, rounding half away from zero).
pub fn quantize_q8_0_into(xs: &[f32], out: &mut Vec<u8>) {
    assert!(
        xs.len().is_multiple_of(32),
        "q8_0 needs a multiple of 32 values"
    );
    for block in xs.chunks_exact(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        for x in block {
            out.push(((x * id).round() as i8) as u8);
        }
    }
}

/// An f32 numpy array.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// Reads array `name` (f32 or f64, C order) from an `.npz` (a zip of `.npy` files).
pub fn read_npz_f32(npz: &[u8], name: &str) -> Result<NpyArray, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(npz))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    let mut entry = zip
        .by_name(&format!("{name}.npy"))
        .map_err(|_| format!("has no array {name}"))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}.npy: {e}"))?;
    parse_npy_f32(&bytes).map_err(|e| format!("{name}.npy: {e}"))
}

/// Parses a `.npy` file holding a little-endian f32 or f64 array in C order.
pub fn parse_npy_f32(b: &[u8]) -> Result<NpyArray, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = b
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 header")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| format!("header lacks {key}"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let elem = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(format!("dtype {descr:.6} is not <f4 or <f8"));
    };
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = field("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad shape")?;
    let dims = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape dim {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count: usize = dims.iter().product();
    let data = &b[start + hlen..];
    if data.len() != count * elem {
        return Err(format!(
            "{} data bytes for shape {dims:?}, expected {}",
            data.len(),
            count * elem
        ));
    }
    let values = if elem == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok(NpyArray { dims, values })
}

/// Parses a tiktoken file (`base64(token) rank` per line) into tokens in file order,
/// checking that ranks count up from 0.
pub fn parse_tiktoken(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let line = std::str::from_utf8(line).map_err(|_| format!("line {} is not UTF-8", i + 1))?;
        let (tok, rank) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {} is not \"BASE64 RANK\"", i + 1))?;
        // Like Python's lenient b64decode: openai-whisper's files have a line "= 50256"
        // (an empty token), so padding is dropped before decoding.
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(tok.trim_end_matches('='))
            .map_err(|e| format!("line {}: bad base64: {e}", i + 1))?;
        let rank: usize = rank
            .trim()
            .parse()
            .map_err(|_| format!("line {}: bad rank {rank:?}", i + 1))?;
        if rank != out.len() {
            return Err(format!(
                "line {}: rank {rank}, expected {}",
                i + 1,
                out.len()
            ));
        }
        out.push(bytes);
    }
    if out.is_empty() {
        return Err("no tokens".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(vals: &[f32]) -> Vec<u8> {
        vals.iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect()
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| ((i % 17) as f32 - 8.0) * scale).collect()
    }

    /// A one-layer Whisper with n_state 32, 2 heads, 4 mels, vocab 3, ctx 5/6.
    pub(crate) fn tiny_ct2() -> Vec<u8> {
        let s = 32usize;
        let mut vars: Vec<(String, Vec<usize>, u8, Vec<u8>)> = Vec::new();
        let mut f16v = |name: &str, dims: Vec<usize>| {
            let n: usize = dims.iter().product();
            let mut vals = ramp(n, 0.01);
            if name.ends_with("linear_0/bias") && name.contains("self_attention") {
                vals[s..2 * s].iter_mut().for_each(|v| *v = 0.0);
            }
            if name.ends_with("attention/linear_1/bias") && !name.contains("self_") {
                vals[..s].iter_mut().for_each(|v| *v = 0.0);
            }
            vars.push((name.to_string(), dims, 4, f16_bytes(&vals)));
        };
        f16v("encoder/conv1/weight", vec![s, 4, 3]);
        f16v("encoder/conv1/bias", vec![s]);
        f16v("encoder/conv2/weight", vec![s, s, 3]);
        f16v("encoder/conv2/bias", vec![s]);
        f16v("encoder/position_encodings/encodings", vec![5, s]);
        f16v("decoder/position_encodings/encodings", vec![6, s]);
        f16v("decoder/embeddings/weight", vec![3, s]);
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            f16v(
                &format!("{l}/self_attention/linear_0/weight"),
                vec![3 * s, s],
            );
            f16v(&format!("{l}/self_attention/linear_0/bias"), vec![3 * s]);
            f16v(&format!("{l}/self_attention/linear_1/weight"), vec![s, s]);
            f16v(&format!("{l}/self_attention/linear_1/bias"), vec![s]);
            for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
                f16v(&format!("{l}/{ln}/gamma"), vec![s]);
                f16v(&format!("{l}/{ln}/beta"), vec![s]);
            }
            f16v(&format!("{l}/ffn/linear_0/weight"), vec![4 * s, s]);
            f16v(&format!("{l}/ffn/linear_0/bias"), vec![4 * s]);
            f16v(&format!("{l}/ffn/linear_1/weight"), vec![s, 4 * s]);
            f16v(&format!("{l}/ffn/linear_1/bias"), vec![s]);
            f16v(&format!("{side}/layer_norm/gamma"), vec![s]);
            f16v(&format!("{side}/layer_norm/beta"), vec![s]);
        }
        let l = "decoder/layer_0/attention";
        f16v(&format!("{l}/linear_0/weight"), vec![s, s]);
        f16v(&format!("{l}/linear_0/bias"), vec![s]);
        f16v(&format!("{l}/linear_1/weight"), vec![2 * s, s]);
        f16v(&format!("{l}/linear_1/bias"), vec![2 * s]);
        f16v(&format!("{l}/linear_2/weight"), vec![s, s]);
        f16v(&format!("{l}/linear_2/bias"), vec![s]);
        f16v(&format!("{l}/layer_norm/gamma"), vec![s]);
        f16v(&format!("{l}/layer_norm/beta"), vec![s]);
        vars.push((
            "encoder/num_heads".into(),
            vec![],
            2,
            2i16.to_le_bytes().to_vec(),
        ));
        vars.push((
            "decoder/num_heads".into(),
            vec![],
            2,
            2i16.to_le_bytes().to_vec(),
        ));
        ct2::build(
            "WhisperSpec",
            &vars,
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    pub(crate) fn npy(dims: &[usize], vals: &[f32]) -> Vec<u8> {
        let shape = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
            shape.trim_end_matches(' ')
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in vals {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub(crate) fn npz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated),
            )
            .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// Reads back a ggml file: (hparams, mel dims, vocab, [(name, ttype, ne)]).
    #[allow(clippy::type_complexity)]
    fn read_ggml(
        b: &[u8],
    ) -> (
        Vec<i32>,
        (i32, i32),
        Vec<Vec<u8>>,
        Vec<(String, i32, Vec<i32>)>,
    ) {
        let mut p = 0usize;
        let i32_ = |p: &mut usize| {
            let v = i32::from_le_bytes(b[*p..*p + 4].try_into().unwrap());
            *p += 4;
            v
        };
        let hp: Vec<i32> = (0..12).map(|_| i32_(&mut p)).collect();
        let mel = (i32_(&mut p), i32_(&mut p));
        p += (mel.0 * mel.1) as usize * 4;
        let n = i32_(&mut p);
        let mut vocab = Vec::new();
        for _ in 0..n {
            let l = i32_(&mut p) as usize;
            vocab.push(b[p..p + l].to_vec());
            p += l;
        }
        let mut tensors = Vec::new();
        while p < b.len() {
            let nd = i32_(&mut p);
            let nl = i32_(&mut p) as usize;
            let tt = i32_(&mut p);
            let ne: Vec<i32> = (0..nd).map(|_| i32_(&mut p)).collect();
            let name = String::from_utf8(b[p..p + nl].to_vec()).unwrap();
            p += nl;
            let n: usize = ne.iter().product::<i32>() as usize;
            p += match tt {
                0 => n * 4,
                1 => n * 2,
                8 => n / 32 * 34,
                _ => panic!("type {tt}"),
            };
            tensors.push((name, tt, ne));
        }
        assert_eq!(p, b.len());
        (hp, mel, vocab, tensors)
    }

    #[test]
    fn converts_a_tiny_ct2_whisper() {
        let mel = npz(&[
            ("mel_4", npy(&[4, 3], &[0.5; 12])),
            ("mel_80", npy(&[1], &[0.0])),
        ]);
        let tik = b"IQ== 0\nIg== 1\nIw== 2\n";
        let ct2 = tiny_ct2();
        for quant in [WhisperQuant::F16, WhisperQuant::Q8_0] {
            let out = convert(&ct2, &mel, tik, quant).unwrap();
            let (hp, mel_dims, vocab, tensors) = read_ggml(&out);
            let ftype = if quant == WhisperQuant::F16 { 1 } else { 2007 };
            assert_eq!(hp, [0x67676d6c, 3, 5, 32, 2, 1, 6, 32, 2, 1, 4, ftype]);
            assert_eq!(mel_dims, (4, 3));
            assert_eq!(vocab, [b"!".to_vec(), b"\"".to_vec(), b"#".to_vec()]);
            let find = |n: &str| {
                tensors
                    .iter()
                    .find(|t| t.0 == n)
                    .unwrap_or_else(|| panic!("{n}"))
            };
            let wt = if quant == WhisperQuant::F16 { 1 } else { 8 };
            assert_eq!(
                tensors[0],
                ("encoder.positional_embedding".into(), 0, vec![32, 5])
            );
            assert_eq!(
                *find("encoder.conv1.weight"),
                ("encoder.conv1.weight".into(), 1, vec![3, 4, 32])
            );
            assert_eq!(
                *find("encoder.conv1.bias"),
                ("encoder.conv1.bias".into(), 0, vec![1, 32])
            );
            assert_eq!(
                *find("encoder.blocks.0.attn.key.weight"),
                ("encoder.blocks.0.attn.key.weight".into(), wt, vec![32, 32])
            );
            assert_eq!(
                *find("encoder.blocks.0.mlp.0.weight"),
                ("encoder.blocks.0.mlp.0.weight".into(), wt, vec![32, 128])
            );
            assert_eq!(
                *find("encoder.blocks.0.mlp.2.weight"),
                ("encoder.blocks.0.mlp.2.weight".into(), wt, vec![128, 32])
            );
            assert_eq!(
                *find("decoder.blocks.0.cross_attn.value.bias"),
                ("decoder.blocks.0.cross_attn.value.bias".into(), 0, vec![32])
            );
            assert_eq!(
                *find("decoder.token_embedding.weight"),
                ("decoder.token_embedding.weight".into(), wt, vec![32, 3])
            );
            assert_eq!(
                *find("decoder.positional_embedding"),
                ("decoder.positional_embedding".into(), 0, vec![32, 6])
            );
            assert!(!tensors.iter().any(|t| t.0.ends_with("key.bias")));
            // 5 + 15 per encoder block + 2, then 2 + 24 per decoder block + 2.
            assert_eq!(tensors.len(), 5 + 15 + 2 + 2 + 24 + 2);
            assert_eq!(tensors.last().unwrap().0, "decoder.ln.bias");
        }
    }

    #[test]
    fn conversion_errors_name_the_problem() {
        let mel = npz(&[("mel_4", npy(&[4, 3], &[0.5; 12]))]);
        let e = convert(b"junk", &mel, b"IQ== 0\n", WhisperQuant::F16).unwrap_err();
        assert!(e.contains("model.bin"), "{e}");
        let e = convert(&tiny_ct2(), &npz(&[]), b"IQ== 0\n", WhisperQuant::F16).unwrap_err();
        assert!(e.contains("mel_4"), "{e}");
    }

    #[test]
    fn q8_0_matches_a_hand_computed_block() {
        let mut xs = [0f32; 32];
        xs[0] = 1.27;
        xs[1] = -0.635; // exactly -63.5 steps: rounds away from zero
        xs[2] = 0.004; // 0.4 steps → 0
        xs[3] = 0.006; // 0.6 steps → 1
        xs[31] = -1.27;
        let mut out = Vec::new();
        quantize_q8_0_into(&xs, &mut out);
        assert_eq!(out.len(), 34);
        let d = half::f16::from_le_bytes([out[0], out[1]]);
        assert_eq!(d, half::f16::from_f32(0.01));
        let q: Vec<i8> = out[2..].iter().map(|&b| b as i8).collect();
        assert_eq!(&q[..4], &[127, -64, 0, 1]);
        assert_eq!(q[31], -127);
        assert!(q[4..31].iter().all(|&v| v == 0));
        // An all-zero block has scale 0 and zero quants.
        let mut out = Vec::new();
        quantize_q8_0_into(&[0.0; 32], &mut out);
        assert_eq!(out, vec![0u8; 34]);
    }

    #[test]
    fn npy_and_npz_parse() {
        let vals: Vec<f32> = (0..6).map(|i| i as f32 * 0.25).collect();
        let a = parse_npy_f32(&npy(&[2, 3], &vals)).unwrap();
        assert_eq!(a.dims, [2, 3]);
        assert_eq!(a.values, vals);
        let z = npz(&[("mel_80", npy(&[2, 3], &vals))]);
        assert_eq!(read_npz_f32(&z, "mel_80").unwrap(), a);
        assert!(read_npz_f32(&z, "mel_128").unwrap_err().contains("mel_128"));
        assert!(parse_npy_f32(b"nope").is_err());
    }

    #[test]
    fn tiktoken_lines_parse() {
        let toks = parse_tiktoken(b"IQ== 0\nIGhlbGxv 1\n= 2\n\n").unwrap();
        assert_eq!(toks, [b"!".to_vec(), b" hello".to_vec(), vec![]]);
        assert!(parse_tiktoken(b"IQ== 1\n").unwrap_err().contains("rank"));
        assert!(parse_tiktoken(b"@@@ 0\n").unwrap_err().contains("base64"));
        assert!(parse_tiktoken(b"").is_err());
    }
}
