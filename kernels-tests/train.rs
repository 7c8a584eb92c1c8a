//! Training-step parity against the official implementation's recorded step
//! (goldens/tiny64/train_step): the loss terms, every parameter's gradient before clipping, the
//! clip coefficient and every tensor of the state dict after clipping + AdamW + the logit-scale
//! clamp. The golden checkpoint is loaded through the `.pth` → safetensors conversion.

use crate::common::*;
use crate::model::goldens;
use std::collections::HashMap;
use unitok::io::{convert, npy, weights::Weights};
use unitok::train::step::{decays, is_frozen, StepOptions, TrainStep};
use unitok::HostTensor;

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[test]
fn one_training_step_matches_the_reference() {
    check_step_against_reference(&gpu(), false);
}

/// The same step with the storage-binding limit lowered to 3 MiB for planning: the 49408-row
/// text token table, its gradient and its AdamW moments are split into 3 row chunks (gather,
/// table gradient, Σg², AdamW per chunk), and everything still matches the reference.
#[test]
fn one_training_step_with_a_chunked_token_table_matches_the_reference() {
    let small = unitok::Gpu::new_with_max_binding(3 << 20).unwrap();
    check_step_against_reference(&small, true);
}

fn check_step_against_reference(gpu: &std::sync::Arc<unitok::Gpu>, chunked: bool) {
    let dir = goldens();
    let ts = dir.join("train_step");
    let hp = json(&ts.join("hparams.json"));
    let losses = json(&ts.join("losses.json"));

    let tmp = std::env::temp_dir().join(format!(
        "unitok-train-parity-{}-{}",
        std::process::id(),
        if chunked { "chunked" } else { "whole" }
    ));
    std::fs::create_dir_all(&tmp).unwrap();
    let converted = tmp.join("model.safetensors");
    convert::convert(&dir.join("model.pth"), &converted).unwrap();
    let w = Weights::load(&converted).unwrap();
    let cfg = w.config().unwrap().clone();

    // The weight-decay rule reproduces the reference's own grouping.
    let shapes: HashMap<String, Vec<usize>> = unitok::model::expected_keys(&cfg)
        .unwrap()
        .into_iter()
        .collect();
    for (list, want) in [("decay_params", true), ("no_decay_params", false)] {
        for k in hp[list].as_array().unwrap() {
            let k = k.as_str().unwrap();
            assert_eq!(decays(k, shapes[k].len()), want, "{k} in {list}");
        }
    }
    for k in hp["frozen_params"].as_array().unwrap() {
        assert!(is_frozen(k.as_str().unwrap()));
    }

    let group = &hp["param_groups"][0];
    let mut opts = StepOptions::reference(2);
    opts.weight_decay = group["weight_decay"].as_f64().unwrap() as f32;
    opts.beta1 = group["betas"][0].as_f64().unwrap() as f32;
    opts.beta2 = group["betas"][1].as_f64().unwrap() as f32;
    opts.eps = group["eps"].as_f64().unwrap() as f32;
    opts.clip_grad = hp["grad_clip_max_norm"].as_f64().unwrap() as f32;
    opts.keep_grads = true;
    let lr = group["lr"].as_f64().unwrap();

    let t0 = std::time::Instant::now();
    let mut step = TrainStep::build(gpu, &cfg, opts, &w).unwrap();
    eprintln!(
        "training step: {} dispatches, {:.1} MiB planned ({} B row-chunked intermediates)",
        step.plan().dispatch_count(),
        step.planned_bytes() as f64 / (1 << 20) as f64,
        step.plan().chunked_bytes()
    );
    let table_grad = (cfg.text_vocab_size * cfg.text_width * 4) as u64;
    assert_eq!(
        step.plan().chunked_bytes(),
        if chunked { table_grad } else { 0 }
    );
    eprintln!("build {:?}", t0.elapsed());
    let images = npy::read_npy_f32(&dir.join("input.npy")).unwrap();
    let ids = npy::read_npy(&dir.join("text_ids.npy"))
        .unwrap()
        .into_u32(&dir.join("text_ids.npy"))
        .unwrap();
    let report = step
        .run(&images, &ids, lr, &mut || panic!("no drop-path at rate 0"))
        .unwrap();

    eprintln!("step {:?}", t0.elapsed());
    // Losses.
    let mut worst_loss = 0.0f64;
    for (name, v) in report
        .terms
        .iter()
        .map(|(n, v)| (n.as_str(), *v))
        .chain([("total", report.total)])
    {
        let want = losses[name].as_f64().unwrap();
        let rel = ((v as f64 - want) / want).abs();
        eprintln!("loss {name:<6} {v:.7} ref {want:.7} rel err {rel:.1e}");
        worst_loss = worst_loss.max(rel);
    }
    assert!(worst_loss <= 2e-5, "loss relative error {worst_loss:.2e}");
    let norm_ref = losses["grad_global_norm_before_clip"].as_f64().unwrap();
    let coef_ref = losses["clip_coefficient"].as_f64().unwrap();
    eprintln!(
        "grad norm {} ref {norm_ref}, clip coef {} ref {coef_ref}",
        report.grad_norm, report.clip_coef
    );
    assert!(((report.grad_norm as f64 - norm_ref) / norm_ref).abs() <= 2e-5);
    assert!(((report.clip_coef as f64 - coef_ref) / coef_ref).abs() <= 2e-5);

    // Gradients before clipping: per tensor max|g − g_ref| ≤ 1e-4 · max|g_ref|.
    let gref = Weights::load(&ts.join("grads.safetensors")).unwrap();
    let grads = step.grads().unwrap();
    assert_eq!(grads.len(), gref.len(), "gradient tensor count");
    let mut worst = (0.0f32, String::new());
    for (k, g) in &grads {
        let want = gref.get(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        assert_eq!(g.numel(), want.numel(), "{k}");
        let (gv, wv) = (g.as_f32().unwrap(), want.as_f32().unwrap());
        let (abs, _, _) = errors(gv, wv);
        let rel = abs / max_abs(wv).max(1e-30);
        if rel > worst.0 {
            worst = (rel, k.clone());
        }
        assert!(
            rel <= 1e-4,
            "gradient of {k}: max abs err {abs:.3e} = {rel:.2e} of max |g_ref| {:.3e}",
            max_abs(wv)
        );
    }
    eprintln!(
        "gradients: worst tensor {} at {:.2e} of its max |g_ref|",
        worst.1, worst.0
    );

    // Every tensor of the state dict after the step.
    let after = Weights::load(&ts.join("params_after.safetensors")).unwrap();
    let state = step.state_dict().unwrap();
    assert_eq!(state.len(), after.len(), "state dict size");
    let mut worst = (0.0f32, String::new());
    for (k, p) in &state {
        let want = after.get(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        assert_eq!(p.shape, want.shape, "{k}");
        let (pv, wv) = (p.as_f32().unwrap(), want.as_f32().unwrap());
        // AdamW's first step moves by about lr·g/(|g| + eps): where the clipped gradient is
        // tiny, its relative error shows in the update (golden README §7).
        let small = gref
            .get(k)
            .map(|g| max_abs(g.as_f32().unwrap()) * coef_ref as f32 <= 1e-5)
            .unwrap_or(false);
        let atol = if small { 2e-4 } else { 5e-6 };
        for (i, (a, b)) in pv.iter().zip(wv).enumerate() {
            let e = (a - b).abs();
            let tol = if gref.get(k).is_ok() {
                let gi = gref.get(k).unwrap().as_f32().unwrap()[i].abs() * coef_ref as f32;
                if gi >= 1e-5 {
                    5e-6
                } else {
                    2e-4
                }
            } else {
                atol
            };
            if e / tol > worst.0 {
                worst = (e / tol, format!("{k}[{i}] err {e:.2e} tol {tol:.0e}"));
            }
            assert!(
                e <= tol,
                "{k}[{i}] after the step: {a} vs {b} (err {e:.2e}, tol {tol:.0e})"
            );
        }
    }
    eprintln!(
        "params after: worst {} ({:.2} of its tolerance)",
        worst.1, worst.0
    );
    let ls: &HostTensor = after.get("logit_scale").unwrap();
    let want_ls = losses["logit_scale_after"].as_f64().unwrap() as f32;
    assert!((ls.as_f32().unwrap()[0] - want_ls).abs() < 1e-6);
    std::fs::remove_dir_all(&tmp).ok();
}

/// A reference safetensors file as f32 tensors by key, plus its int64 tensors (the used-row
/// ids of the text token table, which is stored as `<key>.rows` + `<key>.row_ids`; see
/// kernels-tests/data/alt/train_step/README.md).
struct RefFile {
    f32s: HashMap<String, HostTensor>,
    i64s: HashMap<String, Vec<i64>>,
}

impl RefFile {
    fn load(path: &std::path::Path) -> RefFile {
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (mut f32s, mut i64s) = (HashMap::new(), HashMap::new());
        for (k, v) in st.tensors() {
            let d = v.data();
            match v.dtype() {
                safetensors::Dtype::F32 => {
                    let x = d
                        .chunks(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
                    f32s.insert(k, HostTensor::f32(v.shape(), x.collect()).unwrap());
                }
                safetensors::Dtype::I64 => {
                    let x = d
                        .chunks(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()));
                    i64s.insert(k, x.collect());
                }
                other => panic!("{}: {k} has dtype {other:?}", path.display()),
            }
        }
        RefFile { f32s, i64s }
    }
    fn get(&self, key: &str) -> &HostTensor {
        self.f32s
            .get(key)
            .unwrap_or_else(|| panic!("reference has no {key}"))
    }
    /// (row ids, rows) when `key` is stored by its used rows only.
    fn rows(&self, key: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let rows = self.f32s.get(&format!("{key}.rows"))?;
        let ids = self.i64s.get(&format!("{key}.row_ids"))?;
        Some((
            ids.iter().map(|v| *v as usize).collect(),
            rows.as_f32().unwrap().to_vec(),
        ))
    }
}

/// The same step for a second configuration (kernels-tests/data/alt: 96 px, 2 codebooks, other
/// widths, depths and heads), through the real binary: `unitok train` on the reference batch
/// with --dump-grads, compared with our float64 reference training step.
#[test]
fn alt_config_step_through_the_cli_matches_the_reference() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data/alt");
    let ts = root.join("train_step");
    let hp = json(&ts.join("hparams.json"));
    let losses = json(&ts.join("losses.json"));
    let out = crate::cli::tmp("train-alt");
    let dump = out.join("grads.safetensors");
    let s = |v: f64| v.to_string();
    crate::cli::unitok(&[
        "train",
        "--data",
        ts.join("manifest.jsonl").to_str().unwrap(),
        "--init",
        root.join("model.pth").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--no-augment",
        "--no-shuffle",
        "--lr",
        &s(hp["lr"].as_f64().unwrap()),
        "--warmup-steps",
        "0",
        "--weight-decay",
        &s(hp["weight_decay"].as_f64().unwrap()),
        "--clip-grad",
        &s(hp["grad_clip_max_norm"].as_f64().unwrap()),
        "--dump-grads",
        dump.to_str().unwrap(),
        "--quiet",
    ]);

    // Losses, from the metrics log.
    let line = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    for name in ["l1", "l2", "vq", "clip", "total"] {
        let (got, want) = (m[name].as_f64().unwrap(), losses[name].as_f64().unwrap());
        let rel = ((got - want) / want).abs();
        eprintln!("alt loss {name:<6} {got:.7} ref {want:.7} rel err {rel:.1e}");
        assert!(rel <= 2e-5, "alt loss {name}: {got} vs {want}");
    }
    let norm_ref = losses["grad_global_norm_before_clip"].as_f64().unwrap();
    let norm = m["grad_norm"].as_f64().unwrap();
    assert!(
        ((norm - norm_ref) / norm_ref).abs() <= 2e-5,
        "grad norm {norm} vs {norm_ref}"
    );

    // Gradients before clipping.
    let gref = RefFile::load(&ts.join("grads.safetensors"));
    let grads = Weights::load(&dump).unwrap();
    let mut worst = (0.0f32, String::new());
    let mut checked = 0;
    for (k, g) in &grads.tensors {
        let gv = g.as_f32().unwrap();
        let (got, want): (Vec<f32>, Vec<f32>) = match gref.rows(k) {
            Some((ids, rows)) => {
                // every row outside the batch's ids has zero gradient
                let w = g.shape[1];
                let mut dense = vec![0.0f32; gv.len()];
                for (r, id) in ids.iter().enumerate() {
                    dense[id * w..(id + 1) * w].copy_from_slice(&rows[r * w..(r + 1) * w]);
                }
                (gv.to_vec(), dense)
            }
            None => (gv.to_vec(), gref.get(k).as_f32().unwrap().to_vec()),
        };
        assert_eq!(got.len(), want.len(), "{k}");
        let (abs, _, _) = errors(&got, &want);
        let rel = abs / max_abs(&want).max(1e-30);
        if rel > worst.0 {
            worst = (rel, k.clone());
        }
        assert!(rel <= 1e-4, "alt gradient of {k}: {rel:.2e} of max |g_ref|");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} gradients dumped");
    eprintln!(
        "alt gradients: {checked} tensors, worst {} at {:.2e}",
        worst.1, worst.0
    );

    // Every tensor after the step, from the checkpoint the run wrote.
    let after = RefFile::load(&ts.join("params_after.safetensors"));
    let ck = Weights::load(&out.join("checkpoints/step-00000001/model.safetensors")).unwrap();
    let lr = hp["lr"].as_f64().unwrap() as f32;
    let wd = hp["weight_decay"].as_f64().unwrap() as f32;
    let (_, before) = unitok::app::load_weights(&root.join("model.pth")).unwrap();
    let coef = losses["clip_coefficient"].as_f64().unwrap() as f32;
    let mut worst = 0.0f32;
    for (k, p) in &ck.tensors {
        let pv = p.as_f32().unwrap();
        let want: Vec<f32> = match after.rows(k) {
            Some((ids, rows)) => {
                // untouched rows only decay: p0 · (1 − lr·wd)
                let w = p.shape[1];
                let p0 = before.get(k).unwrap().as_f32().unwrap();
                let mut dense: Vec<f32> = p0.iter().map(|v| v * (1.0 - lr * wd)).collect();
                for (r, id) in ids.iter().enumerate() {
                    dense[id * w..(id + 1) * w].copy_from_slice(&rows[r * w..(r + 1) * w]);
                }
                dense
            }
            None => after.get(k).as_f32().unwrap().to_vec(),
        };
        let g = grads.get(k).ok().map(|g| g.as_f32().unwrap().to_vec());
        for (i, (a, b)) in pv.iter().zip(&want).enumerate() {
            let tiny = g.as_ref().map(|g| g[i].abs() * coef < 1e-5).unwrap_or(true);
            let tol = if tiny { 2e-4 } else { 5e-6 };
            let e = (a - b).abs();
            worst = worst.max(e / tol);
            assert!(e <= tol, "alt {k}[{i}] after the step: {a} vs {b}");
        }
    }
    eprintln!("alt params after: worst {worst:.2} of tolerance");
    std::fs::remove_dir_all(&out).ok();
}

/// Proof that training learns, and that it runs in constant device memory: a micro model
/// (kernels-tests/data/micro32.json, 32 px, fresh reference initialisation) trained on the 8
/// real photo–caption pairs of kernels-tests/data/train. The reconstruction loss must fall well
/// below its start, the CLIP head must match images to their own captions above chance, and
/// the device memory held must not change from step 2 on.
#[test]
fn training_learns_on_real_images_in_flat_memory() {
    use unitok::model::{eot_positions, ImageHeads, ModelGraph};
    use unitok::train::data::{Dataset, Loader};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data");
    let cfg = unitok::UnitokConfig::from_json_str(
        &std::fs::read_to_string(data.join("micro32.json")).unwrap(),
    )
    .unwrap();
    let init: HashMap<String, HostTensor> = unitok::train::init::reference_init(&cfg, 0)
        .unwrap()
        .into_iter()
        .collect();
    let source = MapWeights(init);
    let dataset = Dataset::open(&data.join("train")).unwrap();
    let n = dataset.len();
    assert_eq!(n, 8);
    let mut loader = Loader::new(dataset.clone(), cfg.img_size, n, true, true, 0).unwrap();
    // A device of its own: the shared test device's pool also serves tests running in parallel.
    let gpu = unitok::Gpu::new().unwrap();
    let mut opts = StepOptions::reference(n);
    opts.clip_grad = 1.0;
    let mut step = TrainStep::build(&gpu, &cfg, opts, &source).unwrap();
    let schedule = unitok::train::schedule::LrSchedule {
        peak: 3e-3,
        warmup: 5,
        total: 60,
        min_ratio: 0.1,
    };
    let mut recon = Vec::new();
    let mut memory = Vec::new();
    for it in 0..schedule.total {
        let batch = loader.next_batch().unwrap();
        let ids = step.text_ids(&batch.texts).unwrap();
        let r = step
            .run(&batch.images, &ids, schedule.lr(it), &mut || 0.5)
            .unwrap();
        let l2 = r.terms.iter().find(|(n, _)| n == "l2").unwrap().1;
        recon.push(l2);
        let m = gpu.memory();
        memory.push(m.live_bytes + m.pooled_bytes);
    }
    eprintln!("l2 per step: {recon:?}");
    eprintln!("device memory per step: {memory:?}");
    // Flat memory: identical from the end of step 2 on.
    for (i, m) in memory.iter().enumerate().skip(1) {
        assert_eq!(
            *m,
            memory[1],
            "device memory changed at step {} ({} vs {})",
            i + 1,
            m,
            memory[1]
        );
    }
    let start = recon[0];
    let end = recon[recon.len() - 5..].iter().sum::<f32>() / 5.0;
    eprintln!("reconstruction MSE: {start:.4} → {end:.4}");
    assert!(
        end < 0.5 * start,
        "reconstruction loss {start} → {end} did not fall by half"
    );

    // Image–text matching with the trained weights through the inference graphs.
    let trained = MapWeights(step.state_dict().unwrap().into_iter().collect());
    let images =
        unitok::train::data::Loader::new(dataset.clone(), cfg.img_size, n, false, false, 0)
            .unwrap()
            .next_batch()
            .unwrap();
    let heads = ImageHeads {
        decoder: false,
        clip: true,
        taps: false,
    };
    let mut img = ModelGraph::image(&cfg, n, cfg.img_size, heads)
        .unwrap()
        .compile(&gpu, &trained)
        .unwrap();
    let ie = img
        .run(&[("image", &images.images)], &["image_embed"])
        .unwrap();
    let ids = step.text_ids(&images.texts).unwrap();
    let eot = eot_positions(ids.as_u32().unwrap(), cfg.text_context_length);
    let eot = HostTensor::u32(&[n], eot).unwrap();
    let mut txt = ModelGraph::text(&cfg, n, false)
        .unwrap()
        .compile(&gpu, &trained)
        .unwrap();
    let te = txt
        .run(&[("text_ids", &ids), ("eot", &eot)], &["text_embed"])
        .unwrap();
    let (ie, te) = (ie[0].as_f32().unwrap(), te[0].as_f32().unwrap());
    let e = cfg.embed_dim;
    let mut correct = 0;
    for i in 0..n {
        let sims: Vec<f32> = (0..n)
            .map(|j| (0..e).map(|k| ie[i * e + k] * te[j * e + k]).sum())
            .collect();
        let best = (0..n).fold(0, |b, j| if sims[j] > sims[b] { j } else { b });
        correct += (best == i) as usize;
    }
    eprintln!("image→text top-1: {correct}/{n} (chance 1/{n})");
    assert!(
        correct * 2 >= n,
        "CLIP accuracy {correct}/{n} is not clearly above chance"
    );
}

struct MapWeights(HashMap<String, HostTensor>);

impl unitok::model::WeightSource for MapWeights {
    fn tensor(&self, key: &str) -> unitok::Result<HostTensor> {
        self.0
            .get(key)
            .cloned()
            .ok_or_else(|| unitok::Error::Invalid(format!("no {key}")))
    }
}

/// `unitok train --resume` continues a killed run exactly: a run of 4 steps (random crops,
/// shuffled epochs, drop-path 0.1, checkpoints every 2 steps) against the same run killed after
/// its step-2 checkpoint and resumed — same weights bit for bit, same optimizer state, same
/// logged losses.
#[test]
fn resumed_training_equals_the_uninterrupted_run() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data");
    let dir = crate::cli::tmp("train-resume");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("micro32.json")).unwrap()).unwrap();
    cfg["drop_path"] = 0.1.into();
    let cfg_path = dir.join("micro32-dp.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let train_dir = data.join("train");
    let run = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            train_dir.to_str().unwrap(),
            "--config",
            cfg_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--lr",
            "2e-3",
            "--warmup-steps",
            "1",
            "--save-every",
            "2",
            "--seed",
            "7",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        crate::cli::unitok(&args)
    };
    let full = dir.join("full");
    run(&full, &[]);
    // The killed run: everything the full run had written when its step-2 checkpoint was the
    // latest, plus the log line of the step-3 it was killed after.
    let killed = dir.join("killed");
    std::fs::create_dir_all(killed.join("checkpoints")).unwrap();
    let ck2 = "checkpoints/step-00000002";
    std::fs::create_dir_all(killed.join(ck2)).unwrap();
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        std::fs::copy(full.join(ck2).join(f), killed.join(ck2).join(f)).unwrap();
    }
    std::fs::write(killed.join("checkpoints/latest"), "step-00000002").unwrap();
    let log = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let first3: Vec<&str> = log.lines().take(3).collect();
    std::fs::write(killed.join("metrics.jsonl"), first3.join("\n") + "\n").unwrap();
    run(&killed, &["--resume"]);

    let ck4 = "checkpoints/step-00000004";
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let a = Weights::load(&full.join(ck4).join(f)).unwrap();
        let b = Weights::load(&killed.join(ck4).join(f)).unwrap();
        assert_eq!(a.len(), b.len(), "{f}");
        for (k, t) in &a.tensors {
            assert_eq!(
                t.as_f32().unwrap(),
                b.get(k).unwrap().as_f32().unwrap(),
                "{f}: {k} differs after resuming"
            );
        }
    }
    let lines = |p: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (lines(&full), lines(&killed));
    assert_eq!(b.len(), 4, "the resumed log holds each step once");
    for (x, y) in a.iter().zip(&b) {
        for k in ["step", "l1", "l2", "vq", "clip", "total", "grad_norm", "lr"] {
            assert_eq!(x[k], y[k], "metrics {k} of step {}", x["step"]);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
