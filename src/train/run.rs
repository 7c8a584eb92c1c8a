//! `unitok train`: the training loop around a compiled `TrainStep` — model initialisation (a
//! checkpoint or a fresh reference initialisation of a config), the data loader, the learning-
//! rate schedule, progress, a JSONL metrics log, atomic checkpoints and exact resumption.
//!
//! Resuming continues from `<out>/checkpoints/latest`: weights, AdamW moments, step, the
//! loader's epoch/position/crop generator and the drop-path generator, so the resumed run takes
//! exactly the steps the uninterrupted one would have. Metrics logged after that checkpoint by
//! the killed run are dropped from the log, so it holds each step once.

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::io::weights::write_f32;
use crate::model::WeightSource;
use crate::tensor::HostTensor;
use crate::train::checkpoint::{self, TrainCheckpoint};
use crate::train::data::{Dataset, Loader, LoaderState, Pcg32};
use crate::train::schedule::LrSchedule;
use crate::train::step::{StepOptions, TrainStep};
use crate::Gpu;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where the initial weights come from.
#[derive(Clone, Debug)]
pub enum InitFrom {
    /// A checkpoint (.safetensors with its config, or an official .pth).
    Weights(PathBuf),
    /// A fresh reference initialisation of a config (preset name or JSON file).
    Config(String),
}

/// Everything `unitok train` takes (the flag names of the CLI).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainArgs {
    pub data: PathBuf,
    #[serde(skip)]
    pub init: Option<InitFrom>,
    pub out: PathBuf,
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: u64,
    pub min_lr_ratio: f64,
    pub weight_decay: f32,
    pub clip_grad: f32,
    pub no_augment: bool,
    pub no_shuffle: bool,
    pub seed: u64,
    pub save_every: u64,
    pub resume: bool,
    pub dump_grads: Option<PathBuf>,
    /// Keep this many newest checkpoints.
    pub keep_checkpoints: usize,
    /// No progress bar (tests, logs).
    pub quiet: bool,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub first_step: u64,
    pub steps: u64,
    pub last: Option<crate::train::step::StepReport>,
    pub checkpoint: Option<PathBuf>,
    pub planned_bytes: u64,
    pub seconds: f64,
}

/// The trainer's own state in a checkpoint's `state.json` (besides the step).
#[derive(Serialize, Deserialize)]
struct RunState {
    loader: LoaderState,
    drop_rng: Pcg32,
    args: serde_json::Value,
}

/// The stream of the drop-path generator (the crop generator uses another).
const DROP_STREAM: u64 = 0xd509;

struct MapSource(HashMap<String, HostTensor>);

impl WeightSource for MapSource {
    fn tensor(&self, key: &str) -> Result<HostTensor> {
        self.0
            .get(key)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("checkpoint has no tensor {key}")))
    }
}

fn config_from(spec: &str) -> Result<UnitokConfig> {
    let path = Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg = UnitokConfig::from_json_str(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::format(path, m),
            other => other,
        })?;
        return Ok(cfg);
    }
    UnitokConfig::preset(spec).ok_or_else(|| {
        Error::Invalid(format!(
            "--config {spec:?} is neither a JSON file nor a preset (vitamin_large, vitamin_base, tiny64)"
        ))
    })
}

/// Run (or resume) training as `args` says, on `gpu`.
pub fn train(gpu: &Arc<Gpu>, args: &TrainArgs) -> Result<TrainSummary> {
    let t_start = Instant::now();
    if args.batch_size == 0 || args.steps == 0 {
        return Err(Error::Invalid(
            "--steps and --batch-size must be at least 1".into(),
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let resumed = if args.resume {
        let ck = checkpoint::load_latest(&args.out)?;
        if ck.is_none() {
            return Err(Error::Invalid(format!(
                "--resume: no checkpoint under {}",
                args.out.join("checkpoints").display()
            )));
        }
        ck
    } else {
        None
    };

    // Model and optimizer state.
    let (cfg, source, start, run_state, moments) = match resumed {
        Some(ck) => {
            let st: RunState = serde_json::from_value(ck.state.clone()).map_err(|e| {
                Error::Invalid(format!("checkpoint state.json of step {}: {e}", ck.step))
            })?;
            let map = MapSource(ck.weights.into_iter().collect());
            (ck.config, map, ck.step, Some(st), Some(ck.moments))
        }
        None => {
            let (cfg, map) = match &args.init {
                Some(InitFrom::Weights(p)) => {
                    let (cfg, w) = crate::app::load_weights(p)?;
                    (cfg, MapSource(w.tensors.into_iter().collect()))
                }
                Some(InitFrom::Config(c)) => {
                    let cfg = config_from(c)?;
                    cfg.validate()?;
                    let init = crate::train::init::reference_init(&cfg, args.seed)?;
                    (cfg, MapSource(init.into_iter().collect()))
                }
                None => {
                    return Err(Error::Invalid(
                        "give --init WEIGHTS or --config PRESET|FILE (or --resume)".into(),
                    ))
                }
            };
            (cfg, map, 0, None, None)
        }
    };
    if start >= args.steps {
        return Err(Error::Invalid(format!(
            "the checkpoint is at step {start}, not before --steps {}",
            args.steps
        )));
    }

    let dataset = Dataset::open(&args.data)?;
    let (augment, shuffle) = (!args.no_augment, !args.no_shuffle);
    let (mut loader, mut drop_rng) = match run_state {
        Some(st) => (
            Loader::resume(
                dataset,
                cfg.img_size,
                args.batch_size,
                augment,
                shuffle,
                st.loader,
            )?,
            st.drop_rng,
        ),
        None => (
            Loader::new(
                dataset,
                cfg.img_size,
                args.batch_size,
                augment,
                shuffle,
                args.seed,
            )?,
            Pcg32::new(args.seed, DROP_STREAM),
        ),
    };

    let opts = StepOptions {
        weight_decay: args.weight_decay,
        clip_grad: args.clip_grad,
        keep_grads: args.dump_grads.is_some() && start == 0,
        ..StepOptions::reference(args.batch_size)
    };
    let mut step = TrainStep::build(gpu, &cfg, opts, &source)?;
    drop(source);
    if let Some(m) = &moments {
        step.load_moments(m, start)?;
    }
    let schedule = LrSchedule {
        peak: args.lr,
        warmup: args.warmup_steps,
        total: args.steps,
        min_ratio: args.min_lr_ratio,
    };

    let metrics_path = args.out.join("metrics.jsonl");
    trim_metrics(&metrics_path, start)?;
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| Error::io(&metrics_path, e))?;

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.steps)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(start);
    let args_json = serde_json::to_value(args).unwrap_or(serde_json::Value::Null);
    let mut last = None;
    let mut last_ckpt = None;
    for it in start..args.steps {
        let t0 = Instant::now();
        let batch = loader.next_batch()?;
        let ids = step.text_ids(&batch.texts)?;
        let lr = schedule.lr(it);
        let report = step.run(&batch.images, &ids, lr, &mut || drop_rng.next_f64())?;
        if it == 0 {
            if let Some(path) = &args.dump_grads {
                dump_grads(path, &step, &cfg)?;
            }
        }
        let dt = t0.elapsed().as_secs_f64();
        let img_s = args.batch_size as f64 / dt.max(1e-9);
        if !report.total.is_finite() {
            return Err(Error::Invalid(format!(
                "step {it}: the loss is {} (terms {:?}); lower --lr or check the data",
                report.total, report.terms
            )));
        }
        let mut line = serde_json::Map::new();
        line.insert("step".into(), (it + 1).into());
        line.insert("lr".into(), lr.into());
        for (n, v) in &report.terms {
            line.insert(n.clone(), (*v as f64).into());
        }
        line.insert("total".into(), (report.total as f64).into());
        line.insert("grad_norm".into(), (report.grad_norm as f64).into());
        line.insert("clip_coef".into(), (report.clip_coef as f64).into());
        line.insert(
            "codebook_usage".into(),
            (step.usage.percent() as f64).into(),
        );
        line.insert("img_per_s".into(), img_s.into());
        line.insert("epoch".into(), loader.epoch().0.into());
        writeln!(metrics, "{}", serde_json::Value::Object(line))
            .and_then(|_| metrics.flush())
            .map_err(|e| Error::io(&metrics_path, e))?;
        let terms: Vec<String> = report
            .terms
            .iter()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect();
        bar.set_message(format!(
            "{} | total {:.4} | {:.2} img/s | codes used {:.1}%",
            terms.join(" "),
            report.total,
            img_s,
            step.usage.percent()
        ));
        bar.inc(1);
        let done = it + 1;
        if done == args.steps || (args.save_every > 0 && done % args.save_every == 0) {
            let st = RunState {
                loader: loader.state(),
                drop_rng: drop_rng.clone(),
                args: args_json.clone(),
            };
            let ck = TrainCheckpoint {
                step: done,
                config: cfg.clone(),
                weights: step.state_dict()?,
                moments: step.moments()?,
                state: serde_json::to_value(st)
                    .map_err(|e| Error::Invalid(format!("checkpoint state: {e}")))?,
            };
            last_ckpt = Some(checkpoint::save(
                &args.out,
                &ck,
                args.keep_checkpoints.max(1),
            )?);
        }
        last = Some(report);
    }
    bar.finish();
    Ok(TrainSummary {
        first_step: start,
        steps: args.steps,
        last,
        checkpoint: last_ckpt,
        planned_bytes: step.planned_bytes(),
        seconds: t_start.elapsed().as_secs_f64(),
    })
}

/// Write the gradients of the last step (before clipping) as safetensors with official keys.
fn dump_grads(path: &Path, step: &TrainStep, cfg: &UnitokConfig) -> Result<()> {
    let grads = step.grads()?;
    let entries: Vec<(String, Vec<usize>)> = grads
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("unitok_config".to_string(), cfg.to_json_string());
    write_f32(path, &entries, &meta, |i| {
        Ok(std::borrow::Cow::Borrowed(grads[i].1.as_f32()?))
    })?;
    Ok(())
}

/// Keep only the metrics lines of steps ≤ `step` (the ones the resumed checkpoint includes).
fn trim_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    if kept.len() == text.lines().count() {
        return Ok(());
    }
    crate::io::write_atomic(path, |w| {
        for l in &kept {
            writeln!(w, "{l}").map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    })
}
