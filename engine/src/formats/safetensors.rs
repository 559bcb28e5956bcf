//! safetensors: `u64 LE N`, N bytes of JSON header
//! (`{"name": {"dtype", "shape", "data_offsets": [start, end]}, "__metadata__": {…}}`), then the
//! data; offsets count from byte 8 + N. Only the header is parsed here; tensors are read one at a
//! time by range, so a file never has to fit in memory.

use std::collections::BTreeMap;

use crate::error::LoadError;
use crate::tensor::DType;

/// Headers larger than this are refused as hostile (real ones are well under 10 MB).
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

/// How a tensor's bytes are laid out in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// As the engine keeps them (safetensors, GGUF F32/F16/BF16).
    Raw,
    /// ggml quant blocks, repacked to the engine's aligned blocks on read.
    GgmlBlocks,
}

/// Where one tensor lives inside its file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub file: String,
    pub dtype: DType,
    pub encoding: Encoding,
    pub shape: Vec<usize>,
    /// Absolute byte offset in the file.
    pub offset: u64,
    pub len: u64,
}

#[derive(serde::Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// The header length from the first 8 bytes, checked against the file size when known.
pub fn header_len(file: &str, first8: &[u8], file_size: Option<u64>) -> Result<u64, LoadError> {
    let bad = |message: String| LoadError::Safetensors { file: file.to_string(), message };
    let bytes: [u8; 8] =
        first8.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("shorter than 8 bytes".into()))?;
    let n = u64::from_le_bytes(bytes);
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!("header of {n} bytes is implausibly large")));
    }
    if let Some(size) = file_size {
        if 8 + n > size {
            return Err(bad(format!("header of {n} bytes runs past the end of a {size}-byte file (truncated?)")));
        }
    }
    Ok(n)
}

/// Parses the JSON header of `file`. `file_size`, when known, bounds every tensor's range.
pub fn parse_header(file: &str, header: &[u8], file_size: Option<u64>) -> Result<Vec<TensorEntry>, LoadError> {
    let bad = |message: String| LoadError::Safetensors { file: file.to_string(), message };
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let data_start = 8 + header.len() as u64;
    let mut out = Vec::new();
    for (name, v) in raw {
        if name == "__metadata__" {
            continue;
        }
        let e: RawEntry = serde_json::from_value(v).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        let dtype = DType::from_safetensors(&e.dtype)
            .ok_or_else(|| LoadError::DType { tensor: name.clone(), dtype: e.dtype.clone() })?;
        let numel = e.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let [start, end] = e.data_offsets;
        let want = numel.and_then(|n| n.checked_mul(dtype.size_bytes() as u64));
        if end < start || want != Some(end - start) {
            return Err(bad(format!(
                "tensor {name}: offsets {start}..{end} do not hold shape {:?} of {}",
                e.shape, e.dtype
            )));
        }
        if let Some(size) = file_size {
            if data_start + end > size {
                return Err(bad(format!(
                    "tensor {name} ends at byte {} of a {size}-byte file (truncated?)",
                    data_start + end
                )));
            }
        }
        out.push(TensorEntry {
            name: name.clone(),
            file: file.to_string(),
            dtype,
            encoding: Encoding::Raw,
            shape: e.shape,
            offset: data_start + start,
            len: end - start,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(header: &str, data_len: usize) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.resize(f.len() + data_len, 0);
        f
    }

    #[test]
    fn parses_entries_with_absolute_offsets() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}"#;
        let f = file_with(h, 32);
        let n = header_len("m", &f, Some(f.len() as u64)).unwrap();
        let e = parse_header("m", &f[8..8 + n as usize], Some(f.len() as u64)).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].offset, 8 + h.len() as u64);
        assert_eq!((e[1].dtype, e[1].len), (DType::BF16, 8));
    }

    #[test]
    fn refuses_truncated_and_hostile_files() {
        let h = r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        let f = file_with(h, 10);
        let n = header_len("m", &f, Some(f.len() as u64)).unwrap();
        let err = parse_header("m", &f[8..8 + n as usize], Some(f.len() as u64)).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(header_len("m", &u64::MAX.to_le_bytes(), None).is_err());
        assert!(header_len("m", &[1, 2], None).is_err());
        let wrong = r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#;
        assert!(parse_header("m", wrong.as_bytes(), None).is_err());
        let overflow = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}"#;
        assert!(parse_header("m", overflow.as_bytes(), None).is_err());
        assert!(parse_header("m", b"{not json", None).is_err());
        let q = r#"{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}"#;
        assert!(matches!(parse_header("m", q.as_bytes(), None), Err(LoadError::DType { .. })));
    }
}
