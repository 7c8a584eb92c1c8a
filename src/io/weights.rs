//! Weight files: safetensors with the official key names and an optional `unitok_config`
//! metadata entry (what `unitok convert` and training checkpoints write).
//!
//! [`write_f32`] is the one safetensors writer of the crate (used by `convert` and
//! `train::checkpoint`): f32 tensors in the caller's order, metadata sorted by key, header
//! padded with spaces to 8 bytes, written atomically.
//!
//! The header is parsed and validated by the safetensors library; each tensor is then read from
//! the file straight into its f32 vector (f16/bf16/f64 converted), so a 3.3 GB model is held
//! once, not twice.

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::io::convert::CONFIG_METADATA_KEY;
use crate::io::{werr, write_atomic};
use crate::tensor::HostTensor;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest header the safetensors library accepts.
const MAX_HEADER: u64 = 100_000_000;

/// All tensors of a weight file, as f32 host tensors, plus its metadata.
#[derive(Clone, Debug)]
pub struct Weights {
    pub path: PathBuf,
    /// Name → tensor (0-d tensors have shape `[]`).
    pub tensors: BTreeMap<String, HostTensor>,
    /// The `__metadata__` map of the file.
    pub metadata: HashMap<String, String>,
    /// The parsed and validated `unitok_config` entry, when the file has one.
    pub config: Option<UnitokConfig>,
}

impl Weights {
    /// Read a safetensors file. F32, F16, BF16 and F64 tensors are accepted (converted to f32);
    /// any other dtype is an error naming the tensor. A `unitok_config` entry that is present
    /// but not a valid config is an error too.
    pub fn load(path: &Path) -> Result<Weights> {
        Ok(Self::load_ordered(path)?.0)
    }

    /// [`Weights::load`], plus the tensor names in file order (by data offset), which is the
    /// order [`write_f32`] was given.
    pub fn load_ordered(path: &Path) -> Result<(Weights, Vec<String>)> {
        let fmt = |msg: String| Error::format(path, msg);
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut r = BufReader::with_capacity(1 << 20, file);
        let rerr = |e: std::io::Error| Error::io(path, e);

        if file_len < 8 {
            return Err(fmt(format!(
                "not a safetensors file: {file_len} bytes, shorter than the 8-byte header length"
            )));
        }
        let mut n8 = [0u8; 8];
        r.read_exact(&mut n8).map_err(rerr)?;
        let n = u64::from_le_bytes(n8);
        if n > MAX_HEADER || 8 + n > file_len {
            return Err(fmt(format!("not a safetensors file: header length {n} does not fit the file of {file_len} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        r.read_exact(&mut header).map_err(rerr)?;
        if header.first() != Some(&b'{') {
            return Err(fmt(
                "not a safetensors file: the header is not a JSON object".into(),
            ));
        }
        let meta: Metadata = serde_json::from_slice(&header)
            .map_err(|e| fmt(format!("bad safetensors header: {e}")))?;
        let data_start = 8 + n;
        let expect_len = data_start + meta.data_len() as u64;
        if expect_len != file_len {
            return Err(fmt(format!(
                "safetensors data section is {} bytes but the header describes {} (truncated or padded file)",
                file_len - data_start,
                meta.data_len()
            )));
        }

        let mut tensors = BTreeMap::new();
        let order = meta.offset_keys();
        for name in &order {
            let info = meta.info(name).expect("listed key");
            let numel: usize = info.shape.iter().product();
            let (start, end) = info.data_offsets;
            let mut data = vec![0f32; numel];
            r.seek(SeekFrom::Start(data_start + start as u64))
                .map_err(rerr)?;
            match info.dtype {
                Dtype::F32 => {
                    r.read_exact(bytemuck::cast_slice_mut(&mut data))
                        .map_err(rerr)?;
                    if cfg!(target_endian = "big") {
                        for v in data.iter_mut() {
                            *v = f32::from_bits(u32::from_le(v.to_bits()));
                        }
                    }
                }
                Dtype::F16 | Dtype::BF16 | Dtype::F64 => {
                    let mut buf = vec![0u8; end - start];
                    r.read_exact(&mut buf).map_err(rerr)?;
                    match info.dtype {
                        Dtype::F16 => {
                            for (o, c) in data.iter_mut().zip(buf.chunks_exact(2)) {
                                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                            }
                        }
                        Dtype::BF16 => {
                            for (o, c) in data.iter_mut().zip(buf.chunks_exact(2)) {
                                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
                            }
                        }
                        _ => {
                            for (o, c) in data.iter_mut().zip(buf.chunks_exact(8)) {
                                *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
                            }
                        }
                    }
                }
                other => {
                    return Err(fmt(format!(
                        "tensor '{name}' has dtype {other:?}; weights must be F32, F16, BF16 or F64"
                    )))
                }
            }
            tensors.insert(name.clone(), HostTensor::f32(&info.shape, data)?);
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        let config = match metadata.get(CONFIG_METADATA_KEY) {
            Some(json) => Some(
                UnitokConfig::from_json_str(json)
                    .map_err(|e| fmt(format!("metadata '{CONFIG_METADATA_KEY}': {e}")))?,
            ),
            None => None,
        };
        let w = Weights {
            path: path.to_path_buf(),
            tensors,
            metadata,
            config,
        };
        Ok((w, order))
    }

    /// The embedded config, or an error saying the file has none.
    pub fn config(&self) -> Result<&UnitokConfig> {
        self.config.as_ref().ok_or_else(|| {
            Error::format(&self.path, format!("no '{CONFIG_METADATA_KEY}' metadata entry (convert the checkpoint with `unitok convert`)"))
        })
    }

    /// A tensor by name; the error names the file and the key.
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::format(&self.path, format!("no tensor '{name}'")))
    }

    /// Remove and return a tensor (to move it into a model without a copy).
    pub fn take(&mut self, name: &str) -> Result<HostTensor> {
        self.tensors
            .remove(name)
            .ok_or_else(|| Error::format(&self.path, format!("no tensor '{name}'")))
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Check the file against the keys and shapes a model expects. The error lists every
    /// missing, unexpected and mis-shaped key, not just the first.
    pub fn expect_keys(&self, expected: &[(String, Vec<usize>)]) -> Result<()> {
        let want: HashMap<&str, &[usize]> = expected
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect();
        let mut missing = Vec::new();
        let mut misshaped = Vec::new();
        for (k, s) in expected {
            match self.tensors.get(k) {
                None => missing.push(format!("  {k} {s:?}")),
                Some(t) if t.shape != *s => misshaped.push(format!(
                    "  {k}: file has {:?}, model expects {s:?}",
                    t.shape
                )),
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = self
            .tensors
            .iter()
            .filter(|(k, _)| !want.contains_key(k.as_str()))
            .map(|(k, t)| format!("  {k} {:?}", t.shape))
            .collect();
        if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
            return Ok(());
        }
        let mut msg = String::from("weights do not match the model:");
        for (what, list) in [
            ("missing", &missing),
            ("unexpected", &unexpected),
            ("mis-shaped", &misshaped),
        ] {
            if !list.is_empty() {
                msg.push_str(&format!("\n{} {what}:\n{}", list.len(), list.join("\n")));
            }
        }
        Err(Error::format(&self.path, msg))
    }
}

/// Write f32 tensors as a safetensors file at `path`, atomically. `entries` lists name and shape
/// in the order the data is laid out (and [`Weights::load_ordered`] gives back); `data(i)` yields
/// the elements of entry `i` and is called once per entry, in order, so a caller can stream
/// tensors from elsewhere and hold one at a time. The `__metadata__` map is written first, its
/// keys sorted, so the output is byte-for-byte reproducible; with entries sorted by name and the
/// single `unitok_config` entry this is exactly the layout the safetensors library writes.
/// Returns the file size. Duplicate names and data of the wrong length are errors naming the key.
pub fn write_f32<'a, F>(
    path: &Path,
    entries: &[(String, Vec<usize>)],
    metadata: &BTreeMap<String, String>,
    mut data: F,
) -> Result<u64>
where
    F: FnMut(usize) -> Result<Cow<'a, [f32]>>,
{
    let json = |e: serde_json::Error| Error::Invalid(format!("safetensors header: {e}"));
    let mut seen = HashSet::with_capacity(entries.len());
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":");
        header.push_str(&serde_json::to_string(metadata).map_err(json)?);
    }
    let mut offset = 0usize;
    for (name, shape) in entries {
        if !seen.insert(name.as_str()) {
            return Err(Error::Invalid(format!(
                "{}: tensor '{name}' listed twice",
                path.display()
            )));
        }
        let n = shape.iter().product::<usize>() * 4;
        let info = TensorInfo {
            dtype: Dtype::F32,
            shape: shape.clone(),
            data_offsets: (offset, offset + n),
        };
        offset += n;
        if header.len() > 1 {
            header.push(',');
        }
        header.push_str(&serde_json::to_string(name).map_err(json)?);
        header.push(':');
        header.push_str(&serde_json::to_string(&info).map_err(json)?);
    }
    header.push('}');
    let mut header = header.into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let bytes = 8 + header.len() as u64 + offset as u64;

    write_atomic(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(werr(path))?;
        w.write_all(&header).map_err(werr(path))?;
        for (i, (name, shape)) in entries.iter().enumerate() {
            let d = data(i)?;
            let numel: usize = shape.iter().product();
            if d.len() != numel {
                return Err(Error::Invalid(format!(
                    "{}: tensor '{name}' of shape {shape:?} needs {numel} values, got {}",
                    path.display(),
                    d.len()
                )));
            }
            if cfg!(target_endian = "little") {
                w.write_all(bytemuck::cast_slice(&d)).map_err(werr(path))?;
            } else {
                for v in d.iter() {
                    w.write_all(&v.to_le_bytes()).map_err(werr(path))?;
                }
            }
        }
        Ok(())
    })?;
    Ok(bytes)
}
