//! Conversion of PyTorch checkpoints to safetensors: legacy (pre-1.6) files and the zip
//! format of `torch.save` since 1.6.
//!
//! A legacy `.pt` file is a sequence of pickles: the magic number, the protocol version, system
//! info, the object itself (tensors appear as persistent ids naming a storage), the list of
//! storage keys; then, for each key in that order, the element count (`i64`, little-endian) and
//! the raw little-endian data. Only the `f32` tensors of the dict under `key` (e.g.
//! `model_state`) are kept; their names are sorted so the output is byte-for-byte reproducible.

use std::collections::{BTreeMap, HashMap};

use std::io::Read;

use candle_core::DType;
use candle_core::pickle::{Object, Stack};

/// `PROTO 2`, `LONG1` 0x1950a86a20f9469cfc6c (torch's magic number), `STOP`.
const MAGIC: &[u8] = &[
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

struct TensorRef {
    storage: String,
    offset: usize,
    shape: Vec<usize>,
}

/// Converts the `key` dict of a legacy PyTorch checkpoint to a safetensors file.
pub fn legacy_to_safetensors(input: &[u8], key: &str) -> Result<Vec<u8>, String> {
    let mut r = input
        .strip_prefix(MAGIC)
        .ok_or("not a legacy PyTorch checkpoint (no torch magic number)")?;
    let mut next = |what: &str| -> Result<Object, String> {
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut r)
            .and_then(|()| stack.finalize())
            .map_err(|e| format!("reading the {what} pickle: {e}"))
    };
    let _protocol = next("protocol version")?;
    let _sys_info = next("system info")?;
    let root = next("checkpoint")?;
    let keys: Vec<String> = match next("storage keys")? {
        Object::List(keys) => keys
            .into_iter()
            .map(Object::unicode)
            .collect::<Result<_, _>>()
            .map_err(|o| format!("storage key {o:?} is not a string"))?,
        other => return Err(format!("storage keys are not a list: {other:?}")),
    };

    let dict = match root {
        Object::Dict(entries) => entries,
        other => return Err(format!("the checkpoint is not a dict: {other:?}")),
    };
    let state = dict
        .into_iter()
        .find(|(k, _)| *k == Object::Unicode(key.to_string()))
        .map(|(_, v)| v)
        .ok_or_else(|| format!("the checkpoint has no {key:?} entry"))?;
    let Object::Dict(state) = state else {
        return Err(format!("{key:?} is not a dict"));
    };
    let mut tensors = BTreeMap::new();
    for (name, value) in state {
        // The OrderedDict's `_metadata` attribute lands here too: keep tensors only.
        if !matches!(value, Object::Reduce { .. }) {
            continue;
        }
        let name = name
            .unicode()
            .map_err(|o| format!("tensor name {o:?} is not a string"))?;
        let t = tensor_ref(value).map_err(|e| format!("{name}: {e}"))?;
        tensors.insert(name, t);
    }

    // The storages follow the pickles, in the order of `keys`.
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for k in keys {
        let (n, rest) = r
            .split_first_chunk::<8>()
            .ok_or("truncated storage header")?;
        let bytes = usize::try_from(i64::from_le_bytes(*n))
            .ok()
            .and_then(|n| n.checked_mul(4))
            .filter(|&b| b <= rest.len())
            .ok_or_else(|| format!("storage {k} is truncated"))?;
        storages.insert(k, &rest[..bytes]);
        r = &rest[bytes..];
    }

    let mut out = BTreeMap::new();
    for (name, t) in tensors {
        let storage = storages
            .get(&t.storage)
            .ok_or_else(|| format!("{name}: storage {} is missing", t.storage))?;
        let len = t.shape.iter().product::<usize>() * 4;
        let bytes = storage
            .get(t.offset * 4..t.offset * 4 + len)
            .ok_or_else(|| format!("{name}: data outside its storage"))?;
        out.insert(name, (t.shape, bytes.to_vec()));
    }
    safetensors_f32(&out)
}

/// A torch zip checkpoint (`archive/data.pkl` plus one `archive/data/KEY` member per storage)
/// → safetensors with its contiguous f32 tensors, sorted by name. The state dict is the pickled
/// object itself, or its entry `key`. Integer buffers (BatchNorm's `num_batches_tracked`) are
/// dropped; any other dtype or a strided tensor is an error.
pub fn zip_to_safetensors(input: &[u8], key: Option<&str>) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(input))
        .map_err(|e| format!("not a zip-format PyTorch checkpoint: {e}"))?;
    let pkl = zip
        .file_names()
        .flatten()
        .find(|n| n.ends_with("/data.pkl"))
        .map(|n| n.into_owned())
        .ok_or("the zip has no */data.pkl: not a PyTorch checkpoint")?;
    let dir = pkl.trim_end_matches(".pkl").to_string();
    let mut stack = Stack::empty();
    {
        let member = zip.by_name(&pkl).map_err(|e| format!("{pkl}: {e}"))?;
        stack
            .read_loop(&mut std::io::BufReader::new(member))
            .map_err(|e| format!("reading {pkl}: {e}"))?;
    }
    let root = stack
        .finalize()
        .map_err(|e| format!("reading {pkl}: {e}"))?;
    let state = match (root, key) {
        (Object::Dict(entries), None) => entries,
        (Object::Dict(entries), Some(key)) => entries
            .into_iter()
            .find(|(k, _)| *k == Object::Unicode(key.to_string()))
            .ok_or_else(|| format!("the checkpoint has no {key:?} entry"))?
            .1
            .dict()
            .map_err(|_| format!("{key:?} is not a dict"))?,
        (other, _) => return Err(format!("the checkpoint is not a dict: {other:?}")),
    };
    let mut out = BTreeMap::new();
    for (name, value) in state {
        let label = format!("{name:?}");
        let Some(info) = value
            .into_tensor_info(name, std::path::Path::new(&dir))
            .map_err(|e| format!("{label}: {e}"))?
        else {
            continue;
        };
        match info.dtype {
            DType::F32 => {}
            DType::I64 | DType::U8 => continue,
            other => {
                return Err(format!(
                    "{}: {other:?} tensors are not supported",
                    info.name
                ));
            }
        }
        if !info.layout.is_contiguous() {
            return Err(format!("{}: non-contiguous tensor", info.name));
        }
        // candle's layout holds the storage offset in bytes here.
        let start = info.layout.start_offset();
        let len = info.layout.shape().elem_count() * 4;
        let mut member = zip
            .by_name(&info.path)
            .map_err(|e| format!("{}: storage {}: {e}", info.name, info.path))?;
        let mut bytes = Vec::with_capacity(start + len);
        member
            .by_ref()
            .take((start + len) as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{}: {e}", info.name))?;
        if bytes.len() != start + len {
            return Err(format!("{}: data outside its storage", info.name));
        }
        bytes.drain(..start);
        out.insert(info.name, (info.layout.dims().to_vec(), bytes));
    }
    if out.is_empty() {
        return Err("the checkpoint has no float32 tensors".into());
    }
    safetensors_f32(&out)
}

/// A safetensors file of f32 tensors (`name → (shape, little-endian data)`), in name order.
pub(super) fn safetensors_f32(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
) -> Result<Vec<u8>, String> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, (shape, bytes)) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": shape,
                "data_offsets": [data.len(), data.len() + bytes.len()],
            }),
        );
        data.extend_from_slice(bytes);
    }
    let mut header = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    Ok(out)
}

/// `_rebuild_tensor_v2(persistent_id, offset, size, stride, ...)` of a contiguous f32 tensor.
fn tensor_ref(value: Object) -> Result<TensorRef, String> {
    let (callable, args) = value.reduce().map_err(|o| format!("not a tensor: {o:?}"))?;
    match callable {
        Object::Class {
            module_name,
            class_name,
        } if module_name == "torch._utils" && class_name == "_rebuild_tensor_v2" => {}
        other => return Err(format!("not a tensor: {other:?}")),
    }
    let mut args = args.tuple().map_err(|o| format!("bad tensor args {o:?}"))?;
    if args.len() < 4 {
        return Err("too few tensor args".into());
    }
    let ints = |o: Object| -> Result<Vec<usize>, String> {
        o.tuple()
            .map_err(|o| format!("not a tuple: {o:?}"))?
            .into_iter()
            .map(|v| {
                v.int_or_long()
                    .ok()
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or("not a size")
            })
            .collect::<Result<_, _>>()
            .map_err(str::to_string)
    };
    let stride = ints(args.remove(3))?;
    let shape = ints(args.remove(2))?;
    let offset = args
        .remove(1)
        .int_or_long()
        .ok()
        .and_then(|v| usize::try_from(v).ok())
        .ok_or("bad storage offset")?;
    let mut id = args
        .remove(0)
        .persistent_load()
        .and_then(Object::tuple)
        .map_err(|o| format!("bad storage id {o:?}"))?;
    if id.len() < 3 {
        return Err("bad storage id".into());
    }
    match id.remove(1) {
        Object::Class { class_name, .. } if class_name == "FloatStorage" => {}
        other => return Err(format!("only float32 tensors are supported, not {other:?}")),
    }
    let storage = id
        .remove(1)
        .unicode()
        .map_err(|o| format!("bad storage key {o:?}"))?;
    let mut expected = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        expected[i] = expected[i + 1] * shape[i + 1];
    }
    if stride != expected {
        return Err(format!(
            "non-contiguous tensor (stride {stride:?}) is not supported"
        ));
    }
    Ok(TensorRef {
        storage,
        offset,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_legacy_checkpoint() {
        let e = legacy_to_safetensors(b"PK\x03\x04zip", "model_state").unwrap_err();
        assert!(e.contains("legacy PyTorch"), "{e}");
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&[0x80, 0x02]);
        let e = legacy_to_safetensors(&truncated, "model_state").unwrap_err();
        assert!(e.contains("protocol version"), "{e}");
    }

    /// Pickle opcodes (protocol 2) for a short string.
    fn unicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// `name: _rebuild_tensor_v2(storage(class, key, numel), 0, shape, stride, False, OrderedDict())`
    /// as `torch.save` pickles it; `shape`/`stride` are given as pickle opcodes.
    fn tensor_entry(
        name: &str,
        class: &str,
        key: &str,
        numel: u8,
        shape: &[u8],
        stride: &[u8],
    ) -> Vec<u8> {
        let mut v = unicode(name);
        v.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        v.extend(unicode("storage"));
        v.extend_from_slice(format!("ctorch\n{class}\n").as_bytes());
        v.extend(unicode(key));
        v.extend(unicode("cpu"));
        v.extend_from_slice(&[b'K', numel, b't', b'Q', b'K', 0]);
        v.extend_from_slice(shape);
        v.extend_from_slice(stride);
        v.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
        v
    }

    /// A zip checkpoint as `torch.save({...})` writes it (stored members under `archive/`).
    fn zip_checkpoint(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("archive/data.pkl", stored).unwrap();
        w.write_all(pickle).unwrap();
        for (key, data) in storages {
            w.start_file(format!("archive/data/{key}"), stored).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn a_zip_checkpoint_becomes_safetensors_of_its_float_tensors() {
        // {"w": 2×3 f32, "bn.num_batches_tracked": i64 scalar}
        let mut pickle = b"\x80\x02}(".to_vec();
        pickle.extend(tensor_entry(
            "w",
            "FloatStorage",
            "0",
            6,
            b"K\x02K\x03\x86",
            b"K\x03K\x01\x86",
        ));
        pickle.extend(tensor_entry(
            "bn.num_batches_tracked",
            "LongStorage",
            "1",
            1,
            b")",
            b")",
        ));
        pickle.extend_from_slice(b"u.");
        let values = [1.5f32, -2.0, 0.25, 3.0, 4.0, -0.5];
        let floats: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let ckpt = zip_checkpoint(
            &pickle,
            &[("0", floats), ("1", 7i64.to_le_bytes().to_vec())],
        );

        let out = zip_to_safetensors(&ckpt, None).unwrap();
        let t = candle_core::safetensors::load_buffer(&out, &candle_core::Device::Cpu).unwrap();
        assert_eq!(t.len(), 1, "the integer counter is dropped");
        let w = &t["w"];
        assert_eq!(w.dims(), &[2, 3]);
        assert_eq!(
            w.to_vec2::<f32>().unwrap(),
            vec![values[..3].to_vec(), values[3..].to_vec()]
        );
        // Deterministic: the pinned sha256 of the result depends on it.
        assert_eq!(zip_to_safetensors(&ckpt, None).unwrap(), out);

        let e = zip_to_safetensors(&ckpt, Some("state_dict")).unwrap_err();
        assert!(e.contains("no \"state_dict\" entry"), "{e}");
        let short = zip_checkpoint(&pickle, &[("0", vec![0; 8]), ("1", vec![0; 8])]);
        let e = zip_to_safetensors(&short, None).unwrap_err();
        assert!(e.contains("outside its storage"), "{e}");
        let e = zip_to_safetensors(b"\x80\x02legacy", None).unwrap_err();
        assert!(e.contains("not a zip-format"), "{e}");
    }
}
