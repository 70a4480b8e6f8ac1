//! Conversion of a legacy (pre-1.6, non-zip) PyTorch checkpoint to safetensors.
//!
//! A legacy `.pt` file is a sequence of pickles: the magic number, the protocol version, system
//! info, the object itself (tensors appear as persistent ids naming a storage), the list of
//! storage keys; then, for each key in that order, the element count (`i64`, little-endian) and
//! the raw little-endian data. Only the `f32` tensors of the dict under `key` (e.g.
//! `model_state`) are kept; their names are sorted so the output is byte-for-byte reproducible.

use std::collections::{BTreeMap, HashMap};

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

    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in &tensors {
        let storage = storages
            .get(&t.storage)
            .ok_or_else(|| format!("{name}: storage {} is missing", t.storage))?;
        let len = t.shape.iter().product::<usize>() * 4;
        let bytes = storage
            .get(t.offset * 4..t.offset * 4 + len)
            .ok_or_else(|| format!("{name}: data outside its storage"))?;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": t.shape,
                "data_offsets": [data.len(), data.len() + len],
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
}
