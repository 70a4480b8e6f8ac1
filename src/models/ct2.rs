//! Reader for CTranslate2 `model.bin` files (format version 5/6).
//!
//! Layout, little-endian: u32 version; string spec name; u32 revision; u32 variable count;
//! per variable: string name, u8 rank, rank × u32 dims, u8 dtype, u32 byte count, raw data;
//! then u32 alias count and (alias, target) string pairs. A string is a u16 length that
//! counts a trailing NUL, then the bytes.

use std::collections::HashMap;

/// A CTranslate2 element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_u8(v: u8) -> Option<DType> {
        Some(match v {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
        }
    }
}

/// One variable, borrowing its data from the file bytes.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// The elements as f32 (from f32, f16 or bf16).
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        let d = self.data;
        Ok(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::Bf16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => return Err(format!("is {other:?}, not a float type")),
        })
    }

    /// A scalar integer (e.g. `encoder/num_heads`).
    pub fn scalar_int(&self) -> Result<i64, String> {
        if self.elem_count() != 1 {
            return Err(format!(
                "has {} elements, expected a scalar",
                self.elem_count()
            ));
        }
        let d = self.data;
        Ok(match self.dtype {
            DType::I8 => d[0] as i8 as i64,
            DType::I16 => i16::from_le_bytes([d[0], d[1]]) as i64,
            DType::I32 => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            other => return Err(format!("is {other:?}, expected an integer scalar")),
        })
    }
}

/// A parsed CTranslate2 model.
#[derive(Debug)]
pub struct Model<'a> {
    pub spec: String,
    pub variables: HashMap<String, Variable<'a>>,
    /// alias → target.
    pub aliases: HashMap<String, String>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "truncated at byte {} (wanted {n} more bytes of {})",
                    self.pos,
                    self.data.len()
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| format!("non-UTF-8 name near byte {}", self.pos))
    }
}

impl<'a> Model<'a> {
    /// Parses a whole `model.bin`.
    pub fn parse(data: &'a [u8]) -> Result<Model<'a>, String> {
        let mut c = Cursor { data, pos: 0 };
        let version = c.u32()?;
        if !(5..=6).contains(&version) {
            return Err(format!(
                "format version {version} (this reader knows versions 5 and 6)"
            ));
        }
        let spec = c.string()?;
        let _revision = c.u32()?;
        let count = c.u32()? as usize;
        let mut variables = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = c.string()?;
            let rank = c.u8()? as usize;
            let dims = (0..rank)
                .map(|_| c.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let code = c.u8()?;
            let dtype = DType::from_u8(code)
                .ok_or_else(|| format!("variable {name}: unknown dtype code {code}"))?;
            let nbytes = c.u32()? as usize;
            let elems: usize = dims.iter().product();
            if elems * dtype.size() != nbytes {
                return Err(format!(
                    "variable {name}: {nbytes} bytes for dims {dims:?} of {dtype:?}"
                ));
            }
            let data = c.take(nbytes)?;
            variables.insert(name, Variable { dims, dtype, data });
        }
        let mut aliases = HashMap::new();
        if c.pos < data.len() {
            let n = c.u32()?;
            for _ in 0..n {
                let alias = c.string()?;
                let target = c.string()?;
                aliases.insert(alias, target);
            }
        }
        if c.pos != data.len() {
            return Err(format!(
                "{} unexpected bytes after the alias table",
                data.len() - c.pos
            ));
        }
        Ok(Model {
            spec,
            variables,
            aliases,
        })
    }

    /// The variable `name` (following an alias), or an error naming it.
    pub fn get(&self, name: &str) -> Result<&Variable<'a>, String> {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.variables
            .get(target)
            .ok_or_else(|| format!("has no variable {name}"))
    }
}

/// Builds a CT2 file from `(name, dims, dtype code, bytes)` and aliases (for tests).
#[cfg(test)]
pub(crate) fn build(
    spec: &str,
    vars: &[(String, Vec<usize>, u8, Vec<u8>)],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&((v.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&6u32.to_le_bytes());
    s(&mut out, spec);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
    for (name, dims, dtype, data) in vars {
        s(&mut out, name);
        out.push(dims.len() as u8);
        for d in dims {
            out.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        out.push(*dtype);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (a, t) in aliases {
        s(&mut out, a);
        s(&mut out, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let w: Vec<u8> = [1.0f32, -2.0, 0.5, 4.0]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let bytes = build(
            "WhisperSpec",
            &[
                ("a/weight".into(), vec![2, 2], 4, w),
                ("a/num_heads".into(), vec![], 2, 6i16.to_le_bytes().to_vec()),
            ],
            &[("b/weight", "a/weight")],
        );
        let m = Model::parse(&bytes).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(
            m.get("b/weight").unwrap().to_f32().unwrap(),
            [1.0, -2.0, 0.5, 4.0]
        );
        assert_eq!(m.get("a/num_heads").unwrap().scalar_int().unwrap(), 6);
        assert!(m.get("c").is_err());
        // Truncation is reported, not a panic.
        let e = Model::parse(&bytes[..bytes.len() - 20]).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }
}
