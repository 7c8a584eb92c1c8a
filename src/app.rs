//! What each command-line verb does, as library functions (main.rs only parses arguments).
//!
//! Every verb loads the weights once (safetensors with an embedded config, or an official
//! `.pth` training checkpoint), checks them strictly against the model's key list, builds one
//! graph for a fixed batch, uploads the weights once, and streams the inputs through it in
//! batches (the last one padded), with a progress bar. Unreadable images are reported and
//! skipped; outputs are written atomically (temp file + rename).

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::io::{image as img, npy, pth, weights::Weights};
use crate::model::{self, ImageHeads, ModelGraph, ModelPlan};
use crate::tensor::HostTensor;
use crate::Gpu;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Load weights from `.safetensors` (config from its `unitok_config` metadata) or from an
/// official `.pth` checkpoint (config from its `args`), validate the config and check that the
/// keys are exactly the model's.
pub fn load_weights(path: &Path) -> Result<(UnitokConfig, Weights)> {
    let is_zip = std::fs::read(path)
        .map(|b| b.starts_with(b"PK"))
        .unwrap_or(false)
        || path.extension().is_some_and(|e| e == "pth" || e == "pt");
    let (cfg, w) = if is_zip {
        let ck = pth::read_pth(path)?;
        let cfg = UnitokConfig::from_args(&ck.args)?;
        let mut tensors = BTreeMap::new();
        for t in ck.tensors {
            tensors.insert(t.name, HostTensor::f32(&t.shape, t.data)?);
        }
        let w = Weights {
            path: path.to_path_buf(),
            tensors,
            metadata: HashMap::new(),
            config: Some(cfg.clone()),
        };
        (cfg, w)
    } else {
        let w = Weights::load(path)?;
        let cfg = w.config.clone().ok_or_else(|| {
            Error::format(
                path,
                "no `unitok_config` metadata: convert the checkpoint with `unitok convert`",
            )
        })?;
        (cfg, w)
    };
    cfg.validate()?;
    w.expect_keys(&model::expected_keys(&cfg)?)
        .map_err(|e| match e {
            Error::Invalid(m) => Error::format(path, m),
            other => other,
        })?;
    Ok((cfg, w))
}

/// Image files named by the arguments: files as given, folders expanded (sorted, images only).
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                    })
                })
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid("no input images".into()));
    }
    Ok(out)
}

/// A batch source: image files (preprocessed at `size`) or one `.npy` float32 (B, 3, H, W).
pub struct Images {
    pub size: usize,
    /// One label per image (file name or `npy[i]`).
    pub names: Vec<String>,
    items: Vec<Item>,
}

enum Item {
    File(PathBuf),
    Array(HostTensor),
}

impl Images {
    pub fn open(inputs: &[PathBuf], cfg: &UnitokConfig) -> Result<Images> {
        if inputs.len() == 1 && inputs[0].extension().is_some_and(|e| e == "npy") {
            let t = npy::read_npy_f32(&inputs[0])?;
            let s = &t.shape;
            if s.len() != 4 || s[1] != 3 || s[2] != s[3] || s[2] % 16 != 0 {
                return Err(Error::format(
                    &inputs[0],
                    format!("expected float32 (B, 3, S, S) with S divisible by 16, got {s:?}"),
                ));
            }
            let (b, size) = (s[0], s[2]);
            let data = t.into_f32()?;
            let per = 3 * size * size;
            let items = (0..b)
                .map(|i| {
                    HostTensor::f32(&[3, size, size], data[i * per..(i + 1) * per].to_vec())
                        .map(Item::Array)
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Images {
                size,
                names: (0..b).map(|i| format!("npy[{i}]")).collect(),
                items,
            });
        }
        let files = collect_images(inputs)?;
        Ok(Images {
            size: cfg.img_size,
            names: files.iter().map(|f| f.display().to_string()).collect(),
            items: files.into_iter().map(Item::File).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn load(&self, i: usize) -> Result<HostTensor> {
        match &self.items[i] {
            Item::File(p) => img::load_and_preprocess(p, self.size),
            Item::Array(t) => Ok(t.clone()),
        }
    }
}

fn progress(n: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {per_sec}, eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// Run an image graph over every image: `f` gets (image indices, outputs of this batch).
/// Returns the indices of the images that could be read.
fn for_each_batch(
    images: &Images,
    plan: &mut ModelPlan,
    batch: usize,
    want: &[&str],
    what: &str,
    mut f: impl FnMut(&[usize], &[HostTensor], &[HostTensor]) -> Result<()>,
) -> Result<Vec<usize>> {
    let pb = progress(images.len(), what);
    let size = images.size;
    let per = 3 * size * size;
    let mut ok = Vec::new();
    let mut pending: Vec<(usize, HostTensor)> = Vec::new();
    let mut flush = |pending: &mut Vec<(usize, HostTensor)>, plan: &mut ModelPlan| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut data = vec![0.0f32; batch * per];
        for (k, (_, t)) in pending.iter().enumerate() {
            data[k * per..(k + 1) * per].copy_from_slice(t.as_f32()?);
        }
        let input = HostTensor::f32(&[batch, 3, size, size], data)?;
        let outs = plan.run(&[("image", &input)], want)?;
        let idx: Vec<usize> = pending.iter().map(|(i, _)| *i).collect();
        let originals: Vec<HostTensor> = pending.drain(..).map(|(_, t)| t).collect();
        f(&idx, &outs, &originals)?;
        pb.inc(idx.len() as u64);
        Ok(())
    };
    for i in 0..images.len() {
        match images.load(i) {
            Ok(t) => {
                ok.push(i);
                pending.push((i, t));
            }
            Err(e) => {
                pb.suspend(|| eprintln!("skipping {}: {e}", images.names[i]));
                pb.inc(1);
            }
        }
        if pending.len() == batch {
            flush(&mut pending, plan)?;
        }
    }
    flush(&mut pending, plan)?;
    pb.finish_and_clear();
    if ok.is_empty() {
        return Err(Error::Invalid("none of the inputs could be read".into()));
    }
    Ok(ok)
}

/// Rows `k` of a batched output (first dim = batch).
fn rows(t: &HostTensor, k: usize, per_item: usize) -> Result<&[f32]> {
    Ok(&t.as_f32()?[k * per_item..(k + 1) * per_item])
}

fn batch_for(n: usize, batch: usize) -> usize {
    batch.clamp(1, n.max(1))
}

/// `unitok encode`: images → int64 codes (B, codebooks, tokens) in the official layout.
pub fn encode(
    gpu: &Arc<Gpu>,
    weights: &Path,
    inputs: &[PathBuf],
    out: &Path,
    batch: usize,
) -> Result<()> {
    let (cfg, w) = load_weights(weights)?;
    let images = Images::open(inputs, &cfg)?;
    let b = batch_for(images.len(), batch);
    let heads = ImageHeads {
        decoder: false,
        clip: false,
        taps: false,
    };
    let mut plan = ModelGraph::image(&cfg, b, images.size, heads)?.compile(gpu, &w)?;
    let (g, l) = (cfg.num_codebooks, cfg.tokens_for(images.size)?);
    let mut codes: Vec<i64> = Vec::new();
    let ok = for_each_batch(
        &images,
        &mut plan,
        b,
        &["indices"],
        "encoding",
        |idx, outs, _| {
            let all = model::indices_to_official(outs[0].as_u32()?, b, g);
            codes.extend_from_slice(&all[..idx.len() * g * l]);
            Ok(())
        },
    )?;
    npy::write_npy_i64(out, &[ok.len(), g, l], &codes)?;
    eprintln!(
        "wrote {} ({} images x {g} codebooks x {l} tokens)",
        out.display(),
        ok.len()
    );
    Ok(())
}

/// `unitok decode`: int64 codes (B, codebooks, tokens) → images (.npy float32 or PNGs).
pub fn decode(
    gpu: &Arc<Gpu>,
    weights: &Path,
    codes_path: &Path,
    out: &Path,
    batch: usize,
) -> Result<()> {
    let (cfg, w) = load_weights(weights)?;
    let arr = npy::read_npy(codes_path)?;
    let shape = arr.shape.clone();
    let codes = arr.to_i64(codes_path)?;
    if shape.len() != 3 || shape[1] != cfg.num_codebooks {
        return Err(Error::format(
            codes_path,
            format!(
                "expected codes (B, {}, tokens), got {shape:?}",
                cfg.num_codebooks
            ),
        ));
    }
    let (n, g, l) = (shape[0], shape[1], shape[2]);
    let side = (l as f64).sqrt() as usize;
    if side * side != l {
        return Err(Error::format(
            codes_path,
            format!("{l} tokens do not form a square grid"),
        ));
    }
    let size = side * crate::config::DOWNSAMPLE;
    let b = batch_for(n, batch);
    let heads = ImageHeads {
        decoder: true,
        clip: false,
        taps: false,
    };
    let mut plan = ModelGraph::codes(&cfg, b, l, heads)?.compile(gpu, &w)?;
    let per = 3 * size * size;
    let mut recon = Vec::with_capacity(n * per);
    let pb = progress(n, "decoding");
    for start in (0..n).step_by(b) {
        let m = b.min(n - start);
        let mut chunk = codes[start * g * l..(start + m) * g * l].to_vec();
        chunk.resize(b * g * l, 0);
        let idx = model::indices_from_official(&chunk, b, g, cfg.codebook_size())
            .map_err(|e| Error::format(codes_path, e.to_string()))?;
        let idx = HostTensor::u32(&[b * l, g], idx)?;
        let outs = plan.run(&[("indices", &idx)], &["recon"])?;
        recon.extend_from_slice(&outs[0].as_f32()?[..m * per]);
        pb.inc(m as u64);
    }
    pb.finish_and_clear();
    write_images(out, n, size, &recon)
}

/// Images (N, 3, S, S) in [-1, 1] → `.npy` when `out` ends in .npy, one PNG when `out` ends in
/// .png and N = 1, else PNGs `0000.png`, ... in the folder `out`.
fn write_images(out: &Path, n: usize, size: usize, data: &[f32]) -> Result<()> {
    let per = 3 * size * size;
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("npy") => npy::write_npy_f32(out, &[n, 3, size, size], data)?,
        Some("png") if n == 1 => {
            img::save_png(out, &HostTensor::f32(&[3, size, size], data.to_vec())?)?
        }
        Some("png") => {
            return Err(Error::Invalid(format!(
                "{}: {n} images need a folder or a .npy output",
                out.display()
            )))
        }
        _ => {
            std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
            for i in 0..n {
                let t = HostTensor::f32(&[3, size, size], data[i * per..(i + 1) * per].to_vec())?;
                img::save_png(&out.join(format!("{i:04}.png")), &t)?;
            }
        }
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// PSNR in dB of two images in [-1, 1] (measured on the [0, 1] scale).
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (((x - y) / 2.0) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// `unitok reconstruct`: images → codes → images; PNGs of original and reconstruction side by
/// side, PSNR printed per image.
pub fn reconstruct(
    gpu: &Arc<Gpu>,
    weights: &Path,
    inputs: &[PathBuf],
    out: &Path,
    batch: usize,
) -> Result<()> {
    let (cfg, w) = load_weights(weights)?;
    let images = Images::open(inputs, &cfg)?;
    let b = batch_for(images.len(), batch);
    let size = images.size;
    let heads = ImageHeads {
        decoder: true,
        clip: false,
        taps: false,
    };
    let mut plan = ModelGraph::image(&cfg, b, size, heads)?.compile(gpu, &w)?;
    let single = images.len() == 1 && out.extension().is_some_and(|e| e == "png");
    if !single {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    let per = 3 * size * size;
    let mut results = Vec::new();
    for_each_batch(
        &images,
        &mut plan,
        b,
        &["recon"],
        "reconstructing",
        |idx, outs, originals| {
            for (k, i) in idx.iter().enumerate() {
                let r = HostTensor::f32(&[3, size, size], rows(&outs[0], k, per)?.to_vec())?;
                let p = psnr(originals[k].as_f32()?, r.as_f32()?);
                let name = &images.names[*i];
                let dest = if single {
                    out.to_path_buf()
                } else {
                    let stem = Path::new(name)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("image")
                        .to_string();
                    out.join(format!("{i:04}_{stem}.png"))
                };
                img::save_side_by_side(&dest, &originals[k], &r)?;
                results.push((name.clone(), p, dest));
            }
            Ok(())
        },
    )?;
    for (name, p, dest) in &results {
        println!("{name}: PSNR {p:.2} dB -> {}", dest.display());
    }
    let mean = results.iter().map(|r| r.1).sum::<f64>() / results.len() as f64;
    println!("mean PSNR {mean:.2} dB over {} images", results.len());
    Ok(())
}

fn image_embeddings(
    gpu: &Arc<Gpu>,
    cfg: &UnitokConfig,
    w: &Weights,
    images: &Images,
    batch: usize,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let b = batch_for(images.len(), batch);
    let heads = ImageHeads {
        decoder: false,
        clip: true,
        taps: false,
    };
    let mut plan = ModelGraph::image(cfg, b, images.size, heads)?.compile(gpu, w)?;
    let e = cfg.embed_dim;
    let mut emb = Vec::new();
    let ok = for_each_batch(
        images,
        &mut plan,
        b,
        &["image_embed"],
        "embedding",
        |idx, outs, _| {
            emb.extend_from_slice(&outs[0].as_f32()?[..idx.len() * e]);
            Ok(())
        },
    )?;
    Ok((ok, emb))
}

/// `unitok embed-image`: images → L2-normalised CLIP embeddings (B, embed_dim) as .npy.
pub fn embed_image(
    gpu: &Arc<Gpu>,
    weights: &Path,
    inputs: &[PathBuf],
    out: &Path,
    batch: usize,
) -> Result<()> {
    let (cfg, w) = load_weights(weights)?;
    let images = Images::open(inputs, &cfg)?;
    let (ok, emb) = image_embeddings(gpu, &cfg, &w, &images, batch)?;
    npy::write_npy_f32(out, &[ok.len(), cfg.embed_dim], &emb)?;
    eprintln!("wrote {} ({} x {})", out.display(), ok.len(), cfg.embed_dim);
    Ok(())
}

fn text_embeddings(
    gpu: &Arc<Gpu>,
    cfg: &UnitokConfig,
    w: &Weights,
    texts: &[String],
) -> Result<Vec<f32>> {
    if texts.is_empty() {
        return Err(Error::Invalid("no text given".into()));
    }
    let ctx = cfg.text_context_length;
    let b = texts.len();
    let mut ids = Vec::with_capacity(b * ctx);
    for t in texts {
        ids.extend(crate::text::tokenize_to(t, ctx));
    }
    let eot = HostTensor::u32(&[b], model::eot_positions(&ids, ctx))?;
    let ids = HostTensor::u32(&[b, ctx], ids)?;
    let mut plan = ModelGraph::text(cfg, b, false)?.compile(gpu, w)?;
    let outs = plan.run(&[("text_ids", &ids), ("eot", &eot)], &["text_embed"])?;
    outs.into_iter()
        .next()
        .ok_or_else(|| Error::Graph("no text output".into()))?
        .into_f32()
}

/// `unitok embed-text`: captions → L2-normalised CLIP embeddings (B, embed_dim) as .npy.
pub fn embed_text(gpu: &Arc<Gpu>, weights: &Path, texts: &[String], out: &Path) -> Result<()> {
    let (cfg, w) = load_weights(weights)?;
    let emb = text_embeddings(gpu, &cfg, &w, texts)?;
    npy::write_npy_f32(out, &[texts.len(), cfg.embed_dim], &emb)?;
    eprintln!(
        "wrote {} ({} x {})",
        out.display(),
        texts.len(),
        cfg.embed_dim
    );
    Ok(())
}

/// `unitok zero-shot`: for each image, the top-k labels by CLIP similarity (logits = 100·cos,
/// as the reference's zero-shot evaluation), with softmax probabilities.
/// Each image's top-k (label, probability) pairs.
pub type Ranking = Vec<(String, Vec<(String, f32)>)>;

pub fn zero_shot(
    gpu: &Arc<Gpu>,
    weights: &Path,
    inputs: &[PathBuf],
    labels: &[String],
    top_k: usize,
    batch: usize,
) -> Result<Ranking> {
    let (cfg, w) = load_weights(weights)?;
    let labels: Vec<String> = labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() {
        return Err(Error::Invalid("--labels: no labels given".into()));
    }
    let prompts: Vec<String> = labels
        .iter()
        .map(|l| format!("a photo of a {l}."))
        .collect();
    let text = text_embeddings(gpu, &cfg, &w, &prompts)?;
    let images = Images::open(inputs, &cfg)?;
    let (ok, emb) = image_embeddings(gpu, &cfg, &w, &images, batch)?;
    let e = cfg.embed_dim;
    let mut results = Vec::new();
    for (k, i) in ok.iter().enumerate() {
        let im = &emb[k * e..(k + 1) * e];
        let logits: Vec<f32> = (0..labels.len())
            .map(|j| {
                100.0
                    * im.iter()
                        .zip(&text[j * e..(j + 1) * e])
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
            })
            .collect();
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = logits.iter().map(|l| ((l - max) as f64).exp()).collect();
        let z: f64 = exps.iter().sum();
        let mut ranked: Vec<(String, f32)> = labels
            .iter()
            .cloned()
            .zip(exps.iter().map(|x| (x / z) as f32))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(top_k.max(1));
        results.push((images.names[*i].clone(), ranked));
    }
    Ok(results)
}

/// `unitok convert`: official `.pth` → safetensors with the config embedded.
pub fn convert(input: &Path, output: &Path) -> Result<()> {
    let r = crate::io::convert::convert(input, output)?;
    // Strict key check of what was written, so a wrong checkpoint fails here, not later.
    load_weights(output)?;
    eprintln!(
        "wrote {} ({} tensors, {} values; config {})",
        output.display(),
        r.tensors,
        r.numel,
        r.config.model
    );
    Ok(())
}
