//! Training checkpoints, written atomically.
//!
//! A checkpoint is the folder `<out>/checkpoints/step-<N, 8 digits>/` holding
//! - `model.safetensors`: the weights under their official keys, in the caller's order, with
//!   the `unitok_config` metadata entry — the format [`Weights::load`] reads, so
//!   `unitok encode -w <dir>/model.safetensors` works on it — plus `unitok_step`;
//! - `optimizer.safetensors`: the AdamW moments as `m.<key>` and `v.<key>`, plus `unitok_step`;
//! - `state.json`: `{"step": N, ...}` with the caller's state object (loader, RNG, arguments)
//!   merged in.
//!
//! `<out>/checkpoints/latest` holds the name of the newest complete checkpoint.
//!
//! **Atomicity.** [`save`] writes everything into `<out>/checkpoints/.tmp-step-<N>/` (each file
//! itself written atomically and synced), syncs that folder, renames it to its final name,
//! syncs `checkpoints/`, and only then rewrites `latest` atomically. A crash at any point
//! leaves `latest` naming the previous complete checkpoint, untouched: a half-written
//! checkpoint is only ever a `.tmp-*` folder, and a renamed one that `latest` does not name yet
//! is ignored by [`load_latest`]. The next [`save`] removes leftover `.tmp-*` folders, replaces
//! a step folder left by a crashed run, and after moving `latest` prunes: it keeps the
//! `keep_last` newest step folders up to the new step and deletes the rest, including folders
//! of steps *after* the new one (left by a run that crashed before its `latest` moved, whose
//! timeline was abandoned when training resumed from `latest`).

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::io::convert::CONFIG_METADATA_KEY;
use crate::io::weights::{write_f32, Weights};
use crate::io::{werr, write_atomic};
use crate::tensor::HostTensor;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Folder under the output folder that holds the checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// File in [`CHECKPOINTS_DIR`] naming the newest complete checkpoint.
pub const LATEST_FILE: &str = "latest";
/// Weights file of a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimizer moments file of a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Step, loader, RNG and arguments of a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// Metadata entry of both safetensors files holding the step.
pub const STEP_METADATA_KEY: &str = "unitok_step";

/// Everything a training run needs to continue, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainCheckpoint {
    /// Optimizer steps taken.
    pub step: u64,
    pub config: UnitokConfig,
    /// Official keys, in order (the order is kept through save and load).
    pub weights: Vec<(String, HostTensor)>,
    /// AdamW moments (key, m, v); each key has a weight of the same shape.
    pub moments: Vec<(String, HostTensor, HostTensor)>,
    /// A JSON object (loader state, RNG, arguments), opaque to this module; its `step` key is
    /// reserved.
    pub state: serde_json::Value,
}

/// The folder name of the checkpoint at `step`: `step-00001234`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The step of a checkpoint folder name, if it is one.
pub fn parse_step_dir(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Write `ck` as `<out_dir>/checkpoints/step-<N>/`, atomically (see the module doc), point
/// `latest` at it and prune to the `keep_last` (≥ 1) newest. Returns the checkpoint folder.
pub fn save(out_dir: &Path, ck: &TrainCheckpoint, keep_last: usize) -> Result<PathBuf> {
    if keep_last == 0 {
        return Err(Error::Invalid(
            "keep_last must be at least 1 (the checkpoint being written)".into(),
        ));
    }
    let state = match &ck.state {
        serde_json::Value::Object(m) => m,
        other => {
            return Err(Error::Invalid(format!(
                "checkpoint state must be a JSON object, got {other}"
            )))
        }
    };
    if let Some(s) = state.get("step") {
        if s.as_u64() != Some(ck.step) {
            return Err(Error::Invalid(format!(
                "checkpoint state has \"step\": {s} but the checkpoint is step {}",
                ck.step
            )));
        }
    }
    check_moments(&ck.weights, &ck.moments)
        .map_err(|m| Error::Invalid(format!("checkpoint step {}: {m}", ck.step)))?;

    let root = out_dir.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    for entry in std::fs::read_dir(&root).map_err(|e| Error::io(&root, e))? {
        let entry = entry.map_err(|e| Error::io(&root, e))?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove_any(&entry.path())?;
        }
    }
    let name = step_dir_name(ck.step);
    if read_latest(&root)?.as_deref() == Some(name.as_str()) {
        return Err(Error::Invalid(format!(
            "{}: checkpoint {name} exists and is the latest; refusing to overwrite it",
            root.display()
        )));
    }

    let tmp = root.join(format!(".tmp-{name}"));
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let written = write_files(&tmp, ck, state);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;

    let dir = root.join(&name);
    if dir.exists() {
        // Left by a run that crashed before `latest` named it; `latest` does not point here.
        remove_any(&dir)?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    sync_dir(&root)?;
    let latest = root.join(LATEST_FILE);
    write_atomic(&latest, |w| {
        w.write_all(format!("{name}\n").as_bytes())
            .map_err(werr(&latest))
    })?;
    sync_dir(&root)?;

    let mut steps = list_steps(&root)?;
    steps.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    let mut kept = 0;
    for (s, path) in steps {
        if s <= ck.step && kept < keep_last {
            kept += 1;
        } else {
            remove_any(&path)?;
        }
    }
    Ok(dir)
}

/// The three files of `ck` into the (new, empty) folder `tmp`, synced.
fn write_files(
    tmp: &Path,
    ck: &TrainCheckpoint,
    state: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let step_meta = (STEP_METADATA_KEY.to_string(), ck.step.to_string());

    let model = tmp.join(MODEL_FILE);
    let entries: Vec<(String, Vec<usize>)> = ck
        .weights
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    let meta = BTreeMap::from([
        (CONFIG_METADATA_KEY.to_string(), ck.config.to_json_string()),
        step_meta.clone(),
    ]);
    write_f32(&model, &entries, &meta, |i| {
        let (k, t) = &ck.weights[i];
        f32_of(t).map_err(|m| Error::Invalid(format!("weight '{k}': {m}")))
    })?;

    let opt = tmp.join(OPTIMIZER_FILE);
    let mut entries = Vec::with_capacity(2 * ck.moments.len());
    let mut tensors = Vec::with_capacity(2 * ck.moments.len());
    for (k, m, v) in &ck.moments {
        entries.push((format!("m.{k}"), m.shape.clone()));
        entries.push((format!("v.{k}"), v.shape.clone()));
        tensors.push(m);
        tensors.push(v);
    }
    write_f32(&opt, &entries, &BTreeMap::from([step_meta]), |i| {
        f32_of(tensors[i]).map_err(|m| Error::Invalid(format!("moment '{}': {m}", entries[i].0)))
    })?;

    let st = tmp.join(STATE_FILE);
    let mut obj = serde_json::Map::new();
    obj.insert("step".into(), ck.step.into());
    for (k, v) in state {
        obj.insert(k.clone(), v.clone());
    }
    let body = serde_json::to_vec_pretty(&serde_json::Value::Object(obj))
        .map_err(|e| Error::Invalid(format!("checkpoint state: {e}")))?;
    write_atomic(&st, |w| w.write_all(&body).map_err(werr(&st)))?;
    sync_dir(tmp)?;
    Ok(())
}

/// The checkpoint `latest` names under `<out_dir>/checkpoints`, or `None` when there is none
/// yet (no folder or no `latest`). A `latest` naming a missing or broken checkpoint is an error.
pub fn load_latest(out_dir: &Path) -> Result<Option<TrainCheckpoint>> {
    let root = out_dir.join(CHECKPOINTS_DIR);
    match read_latest(&root)? {
        None => Ok(None),
        Some(name) => load(&root.join(name)).map(Some),
    }
}

/// Load one checkpoint folder, checking that its three files exist, that their steps (and the
/// folder name's) agree, and that every moment has a weight of the same shape.
pub fn load(dir: &Path) -> Result<TrainCheckpoint> {
    let model = dir.join(MODEL_FILE);
    let opt = dir.join(OPTIMIZER_FILE);
    let st = dir.join(STATE_FILE);
    for f in [&model, &opt, &st] {
        if !f.is_file() {
            return Err(Error::format(
                f,
                format!("missing: {} is not a complete checkpoint", dir.display()),
            ));
        }
    }

    let body = std::fs::read(&st).map_err(|e| Error::io(&st, e))?;
    let mut state: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| Error::format(&st, format!("not a JSON object: {e}")))?;
    let step = match state.remove("step") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Error::format(&st, format!("\"step\" is {v}, not a step number")))?,
        None => return Err(Error::format(&st, "no \"step\"")),
    };
    if let Some(s) = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_step_dir)
    {
        if s != step {
            return Err(Error::format(
                &st,
                format!("step {step}, but the folder is step {s}"),
            ));
        }
    }

    let (mut w, order) = Weights::load_ordered(&model)?;
    check_step(&w, step)?;
    let config = w.config()?.clone();
    let (mut o, opt_order) = Weights::load_ordered(&opt)?;
    check_step(&o, step)?;

    let has_m: HashSet<&str> = opt_order
        .iter()
        .filter_map(|n| n.strip_prefix("m."))
        .collect();
    let mut moments = Vec::new();
    for name in &opt_order {
        let bad = |msg: String| Error::format(&opt, format!("'{name}': {msg}"));
        if let Some(key) = name.strip_prefix("m.") {
            let v = o
                .take(&format!("v.{key}"))
                .map_err(|_| bad(format!("no matching 'v.{key}'")))?;
            let m = o.take(name)?;
            let wt = w
                .tensors
                .get(key)
                .ok_or_else(|| bad(format!("no weight '{key}' in {}", model.display())))?;
            if m.shape != wt.shape || v.shape != wt.shape {
                return Err(bad(format!(
                    "m {:?} and v {:?} do not match the weight's shape {:?}",
                    m.shape, v.shape, wt.shape
                )));
            }
            moments.push((key.to_string(), m, v));
        } else if let Some(key) = name.strip_prefix("v.") {
            if !has_m.contains(key) {
                return Err(bad(format!("no matching 'm.{key}'")));
            }
        } else {
            return Err(bad("moment keys start with 'm.' or 'v.'".into()));
        }
    }
    let weights = order
        .iter()
        .map(|k| Ok((k.clone(), w.take(k)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(TrainCheckpoint {
        step,
        config,
        weights,
        moments,
        state: serde_json::Value::Object(state),
    })
}

/// f32 data of a host tensor, borrowed.
fn f32_of(t: &HostTensor) -> std::result::Result<Cow<'_, [f32]>, String> {
    t.as_f32()
        .map(Cow::Borrowed)
        .map_err(|_| format!("must be f32, is {:?}", t.dtype()))
}

/// Every moment key names a weight of the same shape, and appears once.
fn check_moments(
    weights: &[(String, HostTensor)],
    moments: &[(String, HostTensor, HostTensor)],
) -> std::result::Result<(), String> {
    let shapes: HashMap<&str, &[usize]> = weights
        .iter()
        .map(|(k, t)| (k.as_str(), t.shape.as_slice()))
        .collect();
    for (k, m, v) in moments {
        match shapes.get(k.as_str()) {
            None => return Err(format!("moment '{k}' has no weight")),
            Some(s) if m.shape != *s || v.shape != *s => {
                return Err(format!(
                    "moment '{k}': m {:?} and v {:?} do not match the weight's shape {s:?}",
                    m.shape, v.shape
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The `unitok_step` metadata of a checkpoint file equals `step`.
fn check_step(w: &Weights, step: u64) -> Result<()> {
    match w.metadata.get(STEP_METADATA_KEY) {
        Some(s) if s.parse::<u64>().ok() == Some(step) => Ok(()),
        Some(s) => Err(Error::format(
            &w.path,
            format!("'{STEP_METADATA_KEY}' is {s}, but {STATE_FILE} says step {step}"),
        )),
        None => Err(Error::format(
            &w.path,
            format!("no '{STEP_METADATA_KEY}' metadata entry"),
        )),
    }
}

/// The folder name in `<root>/latest`, `None` when the file does not exist.
fn read_latest(root: &Path) -> Result<Option<String>> {
    let latest = root.join(LATEST_FILE);
    match std::fs::read_to_string(&latest) {
        Ok(s) => {
            let name = s.trim();
            if parse_step_dir(name).is_none() {
                return Err(Error::format(
                    &latest,
                    format!("expected a checkpoint folder name like step-00000100, got {name:?}"),
                ));
            }
            Ok(Some(name.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&latest, e)),
    }
}

/// The step folders under `root`.
fn list_steps(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        if let Some(s) = entry.file_name().to_str().and_then(parse_step_dir) {
            if entry.path().is_dir() {
                out.push((s, entry.path()));
            }
        }
    }
    Ok(out)
}

fn remove_any(path: &Path) -> Result<()> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    r.map_err(|e| Error::io(path, e))
}

/// Make a folder's entries (renames, new files) durable. Directories cannot be opened for
/// syncing on Windows; there the rename itself is all we have.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
