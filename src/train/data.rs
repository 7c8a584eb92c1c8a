//! Training data: image–caption datasets, the reference augmentation, and a resumable loader.
//!
//! **Datasets** ([`Dataset::open`]) are either a folder of `*.png|*.jpg|*.jpeg` images, each
//! with its caption in a same-named `.txt` beside it, or a `.jsonl` manifest of
//! `{"image": path, "text": caption}` lines (relative paths resolve against the manifest's
//! folder). Captions are trimmed and must not be empty.
//!
//! **Transforms.** Training (`augment`) follows open_clip's `image_transform(is_train=True)`
//! as UniTok configures it: `RandomResizedCrop(S, scale=(0.9, 1.0), ratio=(3/4, 4/3),
//! interpolation=BICUBIC)` then the [-1, 1] mapping; no flip. The crop parameters are
//! torchvision's `get_params` step for step ([`crop_params`]), drawn from this module's
//! generator instead of torch's, so the distribution is the reference's but not its exact draws;
//! they are computed in f64 where torchvision rounds the log-ratio bounds to f32. The crop is
//! then resized to S × S with [`crate::io::image::resize_bicubic`], our bit-exact port of Pillow's 8-bit
//! bicubic resampling (cubic convolution a = −0.5, support stretched by the scale factor when
//! downscaling, i.e. antialiased, 22-bit fixed-point weights, horizontal then vertical pass) —
//! the same code as the inference path's bilinear resize, checked against Pillow fixtures in
//! the tests. (The `image` crate's `CatmullRom` resize was not used: it resamples in floating
//! point without Pillow's fixed-point weights and 8-bit intermediate; on the test pattern it
//! differs from Pillow by up to 2 levels when downscaling and up to 16 when upscaling.) Without
//! augmentation the eval transform is used: shorter side to S (bicubic), centre crop S × S; an
//! image that already is S × S goes straight to [`crate::io::image::to_tensor`], bit for bit.
//! Images are converted to RGB when decoded (the reference converts after the crop; that only
//! matters for images with alpha or a palette).
//!
//! **Randomness** comes from [`Pcg32`] (PCG-XSH-RR 64/32, O'Neill 2014): 16 bytes of state,
//! serialisable, with a published reference sequence (tested). Two independent generators
//! are used: the epoch permutation is drawn from a generator seeded from (seed, epoch), so it
//! never has to be stored; the crop parameters come from one stream that runs across epochs
//! and is part of [`LoaderState`].
//!
//! **Epochs and batches.** Each epoch visits the samples in a fresh seeded permutation
//! (`shuffle`) or in manifest order. A batch never spans two epochs: when fewer than
//! `batch_size` samples are left, they are dropped for this epoch and the next epoch starts
//! (with shuffling, different samples fall in the dropped tail each epoch). [`Loader::state`]
//! after any batch plus [`Loader::resume`] reproduce exactly the batches the uninterrupted
//! loader would have produced.
//!
//! Each batch decodes and transforms its images on up to `available_parallelism` threads; the
//! crop parameters are drawn in batch order in between, so the result does not depend on the
//! thread count.

use crate::error::{Error, Result};
use crate::io::image::{self as img, Resample};
use crate::tensor::HostTensor;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// RandomResizedCrop `scale` of the reference.
pub const CROP_SCALE: (f64, f64) = (0.9, 1.0);
/// RandomResizedCrop `ratio` of the reference.
pub const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// Stream (PCG increment selector) of the crop generator.
const CROP_STREAM: u64 = 0x0a06;
/// Stream of the per-epoch permutation generators.
const SHUFFLE_STREAM: u64 = 0x5f1e;

// ------------------------------------------------------------------------------------------------
// Datasets
// ------------------------------------------------------------------------------------------------

/// One image and its caption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub image: PathBuf,
    pub text: String,
}

/// An ordered list of samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Open a folder of images with `.txt` captions, or a `.jsonl` manifest (see the module
    /// doc). Every image's existence and every caption is checked here, so a bad dataset fails
    /// before training starts; an empty dataset is an error.
    pub fn open(path: &Path) -> Result<Dataset> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let samples = if meta.is_dir() {
            open_folder(path)?
        } else if has_ext(path, &["jsonl"]) {
            open_jsonl(path)?
        } else {
            return Err(Error::format(
                path,
                "a dataset is a folder of images with .txt captions or a .jsonl manifest",
            ));
        };
        if samples.is_empty() {
            return Err(Error::format(path, "the dataset has no samples"));
        }
        Ok(Dataset { samples })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn open_folder(dir: &Path) -> Result<Vec<Sample>> {
    let mut images = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        if has_ext(&p, &["png", "jpg", "jpeg"]) && p.is_file() {
            images.push(p);
        }
    }
    images.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    images
        .into_iter()
        .map(|image| {
            let txt = image.with_extension("txt");
            let text = match std::fs::read_to_string(&txt) {
                Ok(t) => t.trim().to_string(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::format(
                        &image,
                        format!("no caption: {} does not exist", txt.display()),
                    ))
                }
                Err(e) => return Err(Error::io(&txt, e)),
            };
            if text.is_empty() {
                return Err(Error::format(
                    &image,
                    format!("empty caption in {}", txt.display()),
                ));
            }
            Ok(Sample { image, text })
        })
        .collect()
}

#[derive(Deserialize)]
struct JsonlRecord {
    image: PathBuf,
    text: String,
}

fn open_jsonl(path: &Path) -> Result<Vec<Sample>> {
    let body = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut samples = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = |msg: String| Error::format(path, format!("line {line_no}: {msg}"));
        let rec: JsonlRecord = serde_json::from_str(line).map_err(|e| {
            at(format!(
                "expected {{\"image\": path, \"text\": caption}}: {e}"
            ))
        })?;
        let image = if rec.image.is_absolute() {
            rec.image
        } else {
            base.join(rec.image)
        };
        if !image.is_file() {
            return Err(at(format!("image {} not found", image.display())));
        }
        let text = rec.text.trim().to_string();
        if text.is_empty() {
            return Err(at(format!("empty caption for {}", image.display())));
        }
        samples.push(Sample { image, text });
    }
    Ok(samples)
}

// ------------------------------------------------------------------------------------------------
// The generator
// ------------------------------------------------------------------------------------------------

/// PCG32 (PCG-XSH-RR with 64-bit state and 32-bit output, M. E. O'Neill, "PCG: A Family of
/// Simple Fast Space-Efficient Statistically Good Algorithms for Random Number Generation",
/// 2014), seeded as the reference `pcg32_srandom_r`. Chosen over a crate so the state is two
/// plain integers in the checkpoint's JSON and nothing changes under us with a dependency
/// update; the reference output for seed 42, stream 54 is a test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pcg32 {
    state: u64,
    inc: u64,
}

impl Pcg32 {
    const MUL: u64 = 6364136223846793005;

    /// `pcg32_srandom_r(seed, stream)`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Pcg32 {
            state: 0,
            inc: (stream << 1) | 1,
        };
        r.next_u32();
        r.state = r.state.wrapping_add(seed);
        r.next_u32();
        r
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MUL).wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in [0, 1) with 53 random bits (two draws).
    pub fn next_f64(&mut self) -> f64 {
        let hi = (self.next_u32() as u64) << 21;
        let lo = (self.next_u32() >> 11) as u64;
        (hi | lo) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi) (torch's `uniform_(lo, hi)`: lo + (hi − lo)·u).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in [0, n), unbiased (`pcg32_boundedrand_r`); n must be positive.
    pub fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0, "Pcg32::below(0)");
        let threshold = n.wrapping_neg() % n;
        loop {
            let r = self.next_u32();
            if r >= threshold {
                return r % n;
            }
        }
    }
}

/// SplitMix64 finaliser, to turn (seed, epoch) into a well-mixed generator seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

/// The visiting order of one epoch: a seeded Fisher–Yates permutation, or 0..n.
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng = Pcg32::new(mix(seed ^ mix(epoch)), SHUFFLE_STREAM);
        for i in (1..n).rev() {
            let j = rng.below(i as u32 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

// ------------------------------------------------------------------------------------------------
// Transforms
// ------------------------------------------------------------------------------------------------

/// A crop box: rows `top..top + height`, columns `left..left + width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropParams {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// Python's `int(round(x))` for x ≥ 0 (half to even).
fn py_round(x: f64) -> usize {
    x.round_ties_even() as usize
}

/// torchvision `RandomResizedCrop.get_params` for a `width` × `height` image: up to 10
/// attempts of target area = area · U(scale), aspect = exp(U(log ratio)), w = round(√(area·r)),
/// h = round(√(area / r)), accepted when 0 < w ≤ W and 0 < h ≤ H, then top and left uniform;
/// otherwise a centre crop with the aspect clamped to the ratio range.
pub fn crop_params(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Pcg32,
) -> CropParams {
    let area = (width * height) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.uniform(scale.0, scale.1);
        let aspect = rng.uniform(log_lo, log_hi).exp();
        let w = py_round((target_area * aspect).sqrt());
        let h = py_round((target_area / aspect).sqrt());
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.below((height - h + 1) as u32) as usize;
            let left = rng.below((width - w + 1) as u32) as usize;
            return CropParams {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0.min(ratio.1) {
        (width, py_round(width as f64 / ratio.0.min(ratio.1)))
    } else if in_ratio > ratio.0.max(ratio.1) {
        (py_round(height as f64 * ratio.0.max(ratio.1)), height)
    } else {
        (width, height)
    };
    CropParams {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// The training transform: [`crop_params`] with the reference's scale and ratio, crop, Pillow
/// bicubic resize to `size` × `size`, [-1, 1]. f32 (3, S, S).
pub fn train_transform(image: &RgbImage, size: usize, rng: &mut Pcg32) -> Result<HostTensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if size == 0 || w == 0 || h == 0 {
        return Err(Error::Invalid(format!(
            "cannot crop a {w}x{h} image to {size}x{size}"
        )));
    }
    let c = crop_params(w, h, CROP_SCALE, CROP_RATIO, rng);
    resized_crop(image, c, size)
}

/// torchvision `resized_crop` on a PIL image: crop `c`, Pillow bicubic resize to `size` ×
/// `size`, [-1, 1]. f32 (3, S, S).
pub fn resized_crop(image: &RgbImage, c: CropParams, size: usize) -> Result<HostTensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if size == 0 || c.width == 0 || c.height == 0 || c.left + c.width > w || c.top + c.height > h {
        return Err(Error::Invalid(format!(
            "cannot crop {c:?} from a {w}x{h} image and resize it to {size}x{size}"
        )));
    }
    let crop = image::imageops::crop_imm(
        image,
        c.left as u32,
        c.top as u32,
        c.width as u32,
        c.height as u32,
    )
    .to_image();
    let resized = img::resize_bicubic(&crop, size as u32, size as u32);
    Ok(img::to_tensor(&resized))
}

/// The eval transform (`--no-augment`): shorter side to `size` (Pillow bicubic), centre crop
/// `size` × `size`, [-1, 1]. An image that already is `size` × `size` is used as is.
pub fn eval_transform(image: &RgbImage, size: usize) -> Result<HostTensor> {
    if size == 0 {
        return Err(Error::Invalid("image size must be positive".into()));
    }
    if image.width() as usize == size && image.height() as usize == size {
        return Ok(img::to_tensor(image));
    }
    let resized = img::resize_shorter_with(image, size, Resample::Bicubic)?;
    Ok(img::to_tensor(&img::center_crop(&resized, size)?))
}

// ------------------------------------------------------------------------------------------------
// The loader
// ------------------------------------------------------------------------------------------------

/// One batch: images f32 (B, 3, S, S) in [-1, 1], their captions, and their dataset indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: HostTensor,
    pub texts: Vec<String>,
    pub indices: Vec<usize>,
}

/// Where a loader stands: enough to continue exactly where it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// The seed the loader was created with (it determines every epoch's permutation).
    pub seed: u64,
    /// Number of samples of the dataset it ran on (checked on resume).
    pub dataset_len: usize,
    /// Current epoch, from 0.
    pub epoch: u64,
    /// Samples of the current epoch already handed out.
    pub position: usize,
    /// The crop generator.
    pub rng: Pcg32,
}

/// Batches from a dataset; see the module doc for epochs, transforms and resuming.
pub struct Loader {
    dataset: Dataset,
    img_size: usize,
    batch_size: usize,
    augment: bool,
    shuffle: bool,
    seed: u64,
    epoch: u64,
    position: usize,
    order: Vec<usize>,
    rng: Pcg32,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("samples", &self.dataset.len())
            .field("img_size", &self.img_size)
            .field("batch_size", &self.batch_size)
            .field("augment", &self.augment)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .field("epoch", &self.epoch)
            .field("position", &self.position)
            .finish()
    }
}

impl Loader {
    /// A loader at the start of epoch 0. `batch_size` must be in 1..=dataset length.
    pub fn new(
        dataset: Dataset,
        img_size: usize,
        batch_size: usize,
        augment: bool,
        shuffle: bool,
        seed: u64,
    ) -> Result<Loader> {
        let state = LoaderState {
            seed,
            dataset_len: dataset.len(),
            epoch: 0,
            position: 0,
            rng: Pcg32::new(mix(seed), CROP_STREAM),
        };
        Self::resume(dataset, img_size, batch_size, augment, shuffle, state)
    }

    /// A loader continuing from `state` (from [`Loader::state`]); with the same dataset and
    /// arguments it yields exactly the batches the original loader would have yielded next.
    pub fn resume(
        dataset: Dataset,
        img_size: usize,
        batch_size: usize,
        augment: bool,
        shuffle: bool,
        state: LoaderState,
    ) -> Result<Loader> {
        let n = dataset.len();
        if img_size == 0 {
            return Err(Error::Invalid("image size must be positive".into()));
        }
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be positive".into()));
        }
        if batch_size > n {
            return Err(Error::Invalid(format!(
                "batch size {batch_size} is larger than the dataset ({n} samples)"
            )));
        }
        if u32::try_from(n).is_err() {
            return Err(Error::Invalid(format!(
                "the dataset has {n} samples; at most {} are supported",
                u32::MAX
            )));
        }
        if state.dataset_len != n {
            return Err(Error::Invalid(format!(
                "cannot resume: the loader state is for a dataset of {} samples, this one has {n}",
                state.dataset_len
            )));
        }
        if state.position > n {
            return Err(Error::Invalid(format!(
                "cannot resume: loader position {} is past the dataset's {n} samples",
                state.position
            )));
        }
        Ok(Loader {
            order: epoch_order(n, state.seed, state.epoch, shuffle),
            dataset,
            img_size,
            batch_size,
            augment,
            shuffle,
            seed: state.seed,
            epoch: state.epoch,
            position: state.position,
            rng: state.rng,
        })
    }

    /// The state to store in a checkpoint (taken between batches).
    pub fn state(&self) -> LoaderState {
        LoaderState {
            seed: self.seed,
            dataset_len: self.dataset.len(),
            epoch: self.epoch,
            position: self.position,
            rng: self.rng.clone(),
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Current epoch (from 0) and samples of it already handed out.
    pub fn epoch(&self) -> (u64, usize) {
        (self.epoch, self.position)
    }

    /// Batches per epoch: ⌊len / batch_size⌋ (the tail is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        self.dataset.len() / self.batch_size
    }

    /// The next batch. A decode error names the file; the loader does not advance then, so a
    /// retry yields the same batch.
    pub fn next_batch(&mut self) -> Result<Batch> {
        let (mut epoch, mut position) = (self.epoch, self.position);
        if position + self.batch_size > self.dataset.len() {
            epoch += 1;
            position = 0;
            self.order = epoch_order(self.dataset.len(), self.seed, epoch, self.shuffle);
            self.epoch = epoch;
            self.position = 0;
        }
        let indices = self.order[position..position + self.batch_size].to_vec();
        let paths: Vec<&Path> = indices
            .iter()
            .map(|&i| self.dataset.samples[i].image.as_path())
            .collect();
        let images = par_map(&paths, |p| img::load_rgb(p))
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        // Crop parameters in batch order, so the stream does not depend on the thread count.
        let mut rng = self.rng.clone();
        let jobs: Vec<(&RgbImage, Option<CropParams>)> = images
            .iter()
            .map(|im| {
                let (w, h) = (im.width() as usize, im.height() as usize);
                let crop = self
                    .augment
                    .then(|| crop_params(w, h, CROP_SCALE, CROP_RATIO, &mut rng));
                (im, crop)
            })
            .collect();
        let s = self.img_size;
        let tensors = par_map(&jobs, |&(im, crop)| match crop {
            Some(c) => resized_crop(im, c, s),
            None => eval_transform(im, s),
        });
        let mut data = Vec::with_capacity(indices.len() * 3 * s * s);
        for (t, p) in tensors.into_iter().zip(&paths) {
            let t = t.map_err(|e| Error::format(p, e.to_string()))?;
            data.extend_from_slice(t.as_f32()?);
        }
        self.rng = rng;
        self.position = position + self.batch_size;
        Ok(Batch {
            images: HostTensor::f32(&[indices.len(), 3, s, s], data)?,
            texts: indices
                .iter()
                .map(|&i| self.dataset.samples[i].text.clone())
                .collect(),
            indices,
        })
    }
}

/// `f` over `items` on up to `available_parallelism` threads, results in input order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|sc| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| sc.spawn(move || c.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a data loading thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcg32_reference_sequence() {
        // pcg32-demo / rand_pcg: pcg32_srandom_r(42, 54).
        let mut r = Pcg32::new(42, 54);
        let got: Vec<u32> = (0..6).map(|_| r.next_u32()).collect();
        assert_eq!(
            got,
            [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e]
        );
    }

    #[test]
    fn permutations_are_permutations() {
        for n in [1, 2, 7, 100] {
            let mut p = epoch_order(n, 3, 1, true);
            p.sort();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
        assert_ne!(epoch_order(50, 3, 0, true), epoch_order(50, 3, 1, true));
        assert_eq!(epoch_order(5, 3, 0, false), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn below_is_in_range() {
        let mut r = Pcg32::new(1, 2);
        for n in [1u32, 2, 3, 1000, u32::MAX] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
    }

    #[test]
    fn loader_can_move_to_a_prefetch_thread() {
        fn send<T: Send>() {}
        send::<Loader>();
        send::<Batch>();
    }

    #[test]
    fn python_round_is_half_to_even() {
        assert_eq!((py_round(0.5), py_round(1.5), py_round(2.5)), (0, 2, 2));
    }
}
