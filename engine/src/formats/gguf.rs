//! GGUF v3 (llama.cpp's `gguf.md`): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
//! count, metadata key/values, tensor infos (name, dims with `ne[0]` innermost, ggml type,
//! offset), then the data aligned to `general.alignment` (default 32). Only the header is
//! parsed here; tensors are read by range like safetensors ones. llama.cpp's names for the
//! Qwen-VL text towers are mapped to the Hugging Face names in [`hf_name`], the one table.

use std::collections::BTreeMap;

use crate::formats::safetensors::{Encoding, TensorEntry};
use crate::tensor::{DType, QK, QK_K};

/// Bounds that keep a hostile header from asking for absurd allocations.
const MAX_COUNT: u64 = 1 << 24;
const MAX_STRING: u64 = 64 << 20;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

/// The parsed header.
#[derive(Debug)]
pub struct Header {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorEntry>,
}

/// Why parsing stopped: bad bytes, or more bytes needed than were given.
#[derive(Debug)]
pub enum ParseError {
    NeedMore,
    Bad(String),
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], ParseError> {
        let n = usize::try_from(n).map_err(|_| ParseError::Bad("length overflows".into()))?;
        let end = self.pos.checked_add(n).ok_or_else(|| ParseError::Bad("length overflows".into()))?;
        let s = self.b.get(self.pos..end).ok_or(ParseError::NeedMore)?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| ParseError::NeedMore)?))
    }
    fn u64(&mut self) -> Result<u64, ParseError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| ParseError::NeedMore)?))
    }
    fn count(&mut self, what: &str) -> Result<u64, ParseError> {
        let n = self.u64()?;
        if n > MAX_COUNT {
            return Err(ParseError::Bad(format!("{what} count {n} is implausible")));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, ParseError> {
        let n = self.u64()?;
        if n > MAX_STRING {
            return Err(ParseError::Bad(format!("string of {n} bytes is implausible")));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| ParseError::Bad(e.to_string()))
    }
    fn value(&mut self, ty: u32, depth: u32) -> Result<Value, ParseError> {
        let le = |b: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(b);
            a
        };
        Ok(match ty {
            0 => Value::UInt(self.take(1)?[0] as u64),
            1 => Value::Int(self.take(1)?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes([self.take(1)?[0], self.take(1)?[0]]) as u64),
            3 => Value::Int(i16::from_le_bytes([self.take(1)?[0], self.take(1)?[0]]) as i64),
            4 => Value::UInt(self.u32()? as u64),
            5 => Value::Int(self.u32()? as i32 as i64),
            6 => Value::Float(f32::from_bits(self.u32()?) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                if depth > 2 {
                    return Err(ParseError::Bad("arrays nested too deep".into()));
                }
                let elem = self.u32()?;
                let n = self.count("array")?;
                let mut v = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::UInt(self.u64()?),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_le_bytes(le(self.take(8)?))),
            other => return Err(ParseError::Bad(format!("unknown metadata type {other}"))),
        })
    }
}

/// The engine's storage type for a ggml type, and how its bytes are laid out in the file.
fn ggml_type(t: u32) -> Option<(DType, Encoding)> {
    Some(match t {
        0 => (DType::F32, Encoding::Raw),
        1 => (DType::F16, Encoding::Raw),
        2 => (DType::Q4_0, Encoding::GgmlBlocks),
        8 => (DType::Q8_0, Encoding::GgmlBlocks),
        12 => (DType::Q4_K, Encoding::Raw),
        14 => (DType::Q6_K, Encoding::GgmlBlocks),
        30 => (DType::BF16, Encoding::Raw),
        _ => return None,
    })
}

const GGML_TYPE_NAMES: [(u32, &str); 6] =
    [(10, "Q2_K"), (11, "Q3_K"), (13, "Q5_K"), (3, "Q4_1"), (6, "Q5_0"), (7, "Q5_1")];

/// Parses the header of `file` from its first `bytes`; [`ParseError::NeedMore`] asks for a
/// longer prefix. `file_size`, when known, bounds every tensor.
pub fn parse(file: &str, bytes: &[u8], file_size: Option<u64>) -> Result<Header, ParseError> {
    let mut c = Cursor { b: bytes, pos: 0 };
    if c.take(4)? != b"GGUF" {
        return Err(ParseError::Bad("not a GGUF file (bad magic)".into()));
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(ParseError::Bad(format!("GGUF version {version} is not supported (2 or 3)")));
    }
    let n_tensors = c.count("tensor")?;
    let n_kv = c.count("metadata")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = c.string()?;
        let ty = c.u32()?;
        metadata.insert(key, c.value(ty, 0)?);
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string()?;
        let n_dims = c.u32()?;
        if n_dims == 0 || n_dims > 4 {
            return Err(ParseError::Bad(format!("tensor {name}: {n_dims} dimensions")));
        }
        let mut ne = Vec::new();
        for _ in 0..n_dims {
            ne.push(c.u64()?);
        }
        let ty = c.u32()?;
        let offset = c.u64()?;
        infos.push((name, ne, ty, offset));
    }
    let alignment = match metadata.get("general.alignment") {
        Some(Value::UInt(a)) if *a > 0 && a.is_power_of_two() => *a,
        Some(other) => return Err(ParseError::Bad(format!("general.alignment {other:?}"))),
        None => 32,
    };
    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let mut tensors = Vec::new();
    for (name, ne, ty, offset) in infos {
        let (dtype, encoding) = ggml_type(ty).ok_or_else(|| {
            let tname =
                GGML_TYPE_NAMES.iter().find(|(t, _)| *t == ty).map_or(format!("type {ty}"), |(_, n)| n.to_string());
            ParseError::Bad(format!("tensor {name}: {tname} is not supported yet"))
        })?;
        // ggml's ne[0] is the innermost dimension: reversed, it is the row-major shape.
        let shape: Vec<usize> = ne.iter().rev().map(|&d| d as usize).collect();
        let numel = ne
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| ParseError::Bad(format!("tensor {name}: size overflows")))?;
        if ne[0] % dtype.block_len() as u64 != 0 {
            return Err(ParseError::Bad(format!("tensor {name}: rows of {} are not whole blocks", ne[0])));
        }
        let len = match dtype {
            DType::Q8_0 => numel / QK as u64 * 34,
            DType::Q4_0 => numel / QK as u64 * 18,
            DType::Q4_K => numel / QK_K as u64 * 144,
            DType::Q6_K => numel / QK_K as u64 * 210,
            d => numel * d.size_bytes() as u64,
        };
        if offset % alignment != 0 {
            return Err(ParseError::Bad(format!("tensor {name}: offset {offset} is not aligned to {alignment}")));
        }
        let start = data_start.checked_add(offset).ok_or_else(|| ParseError::Bad("offset overflows".into()))?;
        if let Some(size) = file_size {
            if start + len > size {
                return Err(ParseError::Bad(format!(
                    "tensor {name} ends at byte {} of a {size}-byte file (truncated?)",
                    start + len
                )));
            }
        }
        tensors.push(TensorEntry { name, file: file.to_string(), dtype, encoding, shape, offset: start, len });
    }
    Ok(Header { version, metadata, tensors })
}

/// Re-lays a tensor's ggml blocks into the engine's word-aligned ones: Q8_0 and Q4_0 (34 and
/// 18 bytes) get their f16 scale padded to a word (36, 20); Q6_K (210 bytes, scale last) gets
/// it moved to the front and padded (212).
pub fn repack_blocks(dtype: DType, data: &[u8]) -> Vec<u8> {
    if dtype == DType::Q6_K {
        let mut out = Vec::with_capacity(data.len() / 210 * 212);
        for block in data.chunks_exact(210) {
            out.extend_from_slice(&block[208..210]);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&block[..208]);
        }
        return out;
    }
    let (from, to) = match dtype {
        DType::Q8_0 => (34, 36),
        DType::Q4_0 => (18, 20),
        _ => return data.to_vec(),
    };
    let mut out = Vec::with_capacity(data.len() / from * to);
    for block in data.chunks_exact(from) {
        out.extend_from_slice(&block[..2]);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&block[2..]);
    }
    out
}

/// llama.cpp's names of the text tower's whole-model tensors beside the Hugging Face ones.
const MODEL_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// llama.cpp's names of a layer's tensors (`blk.N.<stem>`) beside the Hugging Face ones
/// (`model.layers.N.<stem>`).
const LAYER_NAMES: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// The Hugging Face name of a llama.cpp text-tower tensor (under `model.`), or None for names
/// the text tower does not use.
pub fn hf_name(gguf: &str) -> Option<String> {
    if let Some((_, hf)) = MODEL_NAMES.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let (layer, leaf) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, kind) = leaf.rsplit_once('.')?;
    let (_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == stem)?;
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// llama.cpp's name of a Hugging Face text-tower tensor (under `model.` or Qwen3-VL's
/// `model.language_model.`), or None for names outside the table.
pub fn gguf_name(hf: &str) -> Option<String> {
    let hf = hf.strip_prefix("model.language_model.").map_or_else(|| hf.to_string(), |r| format!("model.{r}"));
    if let Some((g, _)) = MODEL_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let (layer, leaf) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, kind) = leaf.rsplit_once('.')?;
    let (g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == stem)?;
    Some(format!("blk.{layer}.{g}.{kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF with one metadata string and one F32 tensor of ne = [4, 2].
    fn tiny() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, x: &str| {
            b.extend((x.len() as u64).to_le_bytes());
            b.extend(x.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "qwen3vl");
        s(&mut b, "blk.0.attn_q.weight");
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.resize(b.len().div_ceil(32) * 32, 0);
        b.extend(std::iter::repeat_n(0u8, 32));
        b
    }

    #[test]
    fn parses_metadata_and_tensor_infos() {
        let b = tiny();
        let h = parse("m.gguf", &b, Some(b.len() as u64)).unwrap();
        assert_eq!(h.metadata["general.architecture"], Value::String("qwen3vl".into()));
        let t = &h.tensors[0];
        assert_eq!((t.shape.clone(), t.len, t.offset % 32), (vec![2, 4], 32, 0));
        assert_eq!(hf_name(&t.name).unwrap(), "model.layers.0.self_attn.q_proj.weight");
    }

    #[test]
    fn short_prefix_asks_for_more_and_hostile_headers_fail() {
        let b = tiny();
        assert!(matches!(parse("m", &b[..40], None), Err(ParseError::NeedMore)));
        assert!(matches!(parse("m", b"GGUX", None), Err(ParseError::Bad(_))));
        let mut huge = b[..16].to_vec();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse("m", &huge, None), Err(ParseError::Bad(_))));
        let truncated = &b[..b.len() - 8];
        let e = parse("m", truncated, Some(truncated.len() as u64)).unwrap_err();
        assert!(matches!(e, ParseError::Bad(m) if m.contains("truncated")));
    }

    #[test]
    fn names_map_both_ways_of_the_table() {
        assert_eq!(hf_name("blk.12.ffn_down.weight").unwrap(), "model.layers.12.mlp.down_proj.weight");
        assert_eq!(hf_name("blk.3.attn_k.bias").unwrap(), "model.layers.3.self_attn.k_proj.bias");
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(hf_name("v.blk.0.attn_q.weight"), None);
        for g in ["token_embd.weight", "output.weight", "blk.7.attn_k_norm.weight", "blk.0.attn_v.bias"] {
            assert_eq!(gguf_name(&hf_name(g).unwrap()).unwrap(), g);
        }
        assert_eq!(gguf_name("model.language_model.layers.2.mlp.up_proj.weight").unwrap(), "blk.2.ffn_up.weight");
        assert_eq!(gguf_name("model.visual.blocks.0.attn.qkv.weight"), None);
    }

    #[test]
    fn repacks_blocks_to_word_alignment() {
        let block: Vec<u8> = (0..34).collect();
        let r = repack_blocks(DType::Q8_0, &block);
        assert_eq!((r.len(), &r[..4], &r[4..6]), (36, &[0, 1, 0, 0][..], &[2, 3][..]));
    }
}
