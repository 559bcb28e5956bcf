//! CTranslate2's `model.bin` (binary version 6, as `ctranslate2/specs/model_spec.py` writes it;
//! the faster-whisper repositories on the Hub ship Whisper this way):
//! `u32 version`, `string name`, `u32 revision`, `u32 count`, then per variable `string name`,
//! `u8 rank`, `u32 × rank shape`, `u8 dtype`, `u32 bytes`, the data; then `u32 count` aliases
//! (`string alias`, `string target`). A string is `u16 length` (with the NUL) and its bytes.
//! Only the header is walked here (names and shapes sit between the data, so it is read in
//! windows, skipping the data): the weights stay in the file and are read by range.

use std::collections::BTreeMap;

use crate::error::LoadError;
use crate::load::ByteSource;

/// One variable of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub shape: Vec<usize>,
    /// CTranslate2's `DataType`: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
    pub dtype: u8,
    pub offset: u64,
    pub len: u64,
    /// The value of a scalar (`num_heads`, flags), read with the header.
    pub scalar: Option<i64>,
}

/// The spec name (`WhisperSpec`) and every variable by name, aliases resolved.
pub struct Header {
    pub spec: String,
    pub variables: BTreeMap<String, Variable>,
}

/// Bytes read per window of the header walk.
const WINDOW: u64 = 64 << 10;

/// Reads `file` sequentially through windows of the source, so skipping a variable's data
/// costs nothing and a name after it costs one range read.
struct Reader<'a, S: ByteSource> {
    src: &'a S,
    file: &'a str,
    size: u64,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
}

impl<S: ByteSource> Reader<'_, S> {
    fn bad(&self, message: String) -> LoadError {
        LoadError::Safetensors {
            file: self.file.to_string(),
            message: format!("malformed CTranslate2 model: {message}"),
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, LoadError> {
        let end = self.pos + n as u64;
        if end > self.size {
            return Err(self.bad(format!("the header runs past the end of the {}-byte file", self.size)));
        }
        if self.pos < self.buf_start || end > self.buf_start + self.buf.len() as u64 {
            let len = (n as u64).max(WINDOW).min(self.size - self.pos);
            self.buf = self.src.read_range(self.file, self.pos, len).await?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        self.pos = end;
        Ok(self.buf[at..at + n].to_vec())
    }

    async fn u32(&mut self) -> Result<u32, LoadError> {
        let b = self.take(4).await?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    async fn string(&mut self) -> Result<String, LoadError> {
        let b = self.take(2).await?;
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        let s = self.take(n).await?;
        let s = s.strip_suffix(&[0]).unwrap_or(&s).to_vec();
        String::from_utf8(s).map_err(|_| self.bad("a name is not UTF-8".into()))
    }
}

/// Bytes of one value of CTranslate2's `DataType`.
fn dtype_bytes(d: u8) -> Option<usize> {
    match d {
        0 | 3 => Some(4),
        1 => Some(1),
        2 | 4 | 5 => Some(2),
        _ => None,
    }
}

/// The header of `file`: every variable's shape, type and place, aliases resolved.
pub async fn read_header<S: ByteSource>(src: &S, file: &str) -> Result<Header, LoadError> {
    let size = src
        .size(file)
        .await?
        .ok_or_else(|| LoadError::Io { file: src.describe(file), message: "the size of the file is unknown".into() })?;
    let mut r = Reader { src, file, size, buf: Vec::new(), buf_start: 0, pos: 0 };
    let version = r.u32().await?;
    if version != 6 {
        return Err(r.bad(format!("binary version {version} (only version 6 is read)")));
    }
    let spec = r.string().await?;
    let _revision = r.u32().await?;
    let count = r.u32().await?;
    if count > 100_000 {
        return Err(r.bad(format!("{count} variables is implausible")));
    }
    let mut variables = BTreeMap::new();
    for _ in 0..count {
        let name = r.string().await?;
        let rank = r.take(1).await?[0] as usize;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(r.u32().await? as usize);
        }
        let dtype = r.take(1).await?[0];
        let len = r.u32().await? as u64;
        let esize = dtype_bytes(dtype).ok_or_else(|| r.bad(format!("{name}: unknown data type {dtype}")))?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        if numel.and_then(|n| n.checked_mul(esize as u64)) != Some(len) {
            return Err(r.bad(format!("{name}: {len} bytes do not hold shape {shape:?}")));
        }
        let offset = r.pos;
        if offset + len > size {
            return Err(r.bad(format!("{name} ends at byte {} of a {size}-byte file (truncated?)", offset + len)));
        }
        let scalar = if rank == 0 {
            let b = r.take(len as usize).await?;
            Some(match dtype {
                1 => b[0] as i8 as i64,
                2 => i16::from_le_bytes([b[0], b[1]]) as i64,
                3 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
                _ => 0,
            })
        } else {
            r.pos = offset + len;
            None
        };
        variables.insert(name, Variable { shape, dtype, offset, len, scalar });
    }
    let aliases = r.u32().await?;
    for _ in 0..aliases.min(100_000) {
        let alias = r.string().await?;
        let target = r.string().await?;
        let v = variables.get(&target).cloned().ok_or_else(|| r.bad(format!("alias {alias} of missing {target}")))?;
        variables.insert(alias, v);
    }
    Ok(Header { spec, variables })
}
