//! `unitok convert IN.pth -o OUT.safetensors`: an official checkpoint to our weight file.
//!
//! The output has the official state-dict key names and f32 data (f16/bf16/f64 storages are
//! converted), and one metadata entry, `unitok_config`, holding the full config JSON (the
//! checkpoint's `args` completed from the model's preset, see [`UnitokConfig::from_args`]).
//! The layout is the one the safetensors library writes (tensors sorted by name, header padded
//! with spaces to 8 bytes; written by [`write_f32`]), so converting the golden `model.pth` reproduces the golden
//! `model.safetensors` byte for byte.
//!
//! Memory: the header is computed from the pickle alone; then each tensor is read from the
//! archive and written out before the next one is read, so only the largest tensor is held.

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::io::pth::{PthArchive, StorageDType};
use crate::io::weights::write_f32;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// The metadata key holding the config JSON.
pub const CONFIG_METADATA_KEY: &str = "unitok_config";

/// What [`convert`] wrote.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    /// Tensors written.
    pub tensors: usize,
    /// Elements over all tensors (parameters plus saved buffers).
    pub numel: u64,
    /// Size of the output file.
    pub bytes: u64,
    /// The config embedded in the output.
    pub config: UnitokConfig,
    /// Tensors whose storage was not f32 and was converted, with the source type.
    pub converted: Vec<(String, StorageDType)>,
}

/// Convert an official training checkpoint to a safetensors weight file, atomically.
pub fn convert(input: &Path, output: &Path) -> Result<ConvertReport> {
    let mut ar = PthArchive::open(input)?;
    let config = UnitokConfig::from_args(ar.args()).map_err(|e| {
        Error::format(
            input,
            format!("cannot build the model config from the checkpoint's args: {e}"),
        )
    })?;

    // The safetensors library's order (dtype alignment, then name; all f32 here).
    let mut order: Vec<usize> = (0..ar.tensors().len()).collect();
    order.sort_by(|&a, &b| ar.tensors()[a].name.cmp(&ar.tensors()[b].name));
    for w in order.windows(2) {
        let (a, b) = (&ar.tensors()[w[0]].name, &ar.tensors()[w[1]].name);
        if a == b {
            return Err(Error::format(
                input,
                format!("trainer.unitok has the key '{a}' twice"),
            ));
        }
    }
    let mut entries = Vec::with_capacity(order.len());
    let mut numel = 0u64;
    let mut converted = Vec::new();
    for &i in &order {
        let t = &ar.tensors()[i];
        entries.push((t.name.clone(), t.shape.clone()));
        numel += t.numel() as u64;
        if t.dtype != StorageDType::F32 {
            converted.push((t.name.clone(), t.dtype));
        }
    }
    let meta = BTreeMap::from([(CONFIG_METADATA_KEY.to_string(), config.to_json_string())]);
    let bytes = write_f32(output, &entries, &meta, |k| {
        Ok(Cow::Owned(ar.read_f32(order[k])?))
    })?;
    Ok(ConvertReport {
        tensors: order.len(),
        numel,
        bytes,
        config,
        converted,
    })
}
