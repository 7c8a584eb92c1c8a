//! Training data and checkpoints: datasets (folder and JSONL), the augmentation against Pillow
//! and torchvision's crop rules, the resumable loader, and atomic checkpoints. No GPU needed.

use std::path::{Path, PathBuf};
use unitok::io::image as img;
use unitok::io::weights::{write_f32, Weights};
use unitok::train::checkpoint::{self as ckpt, TrainCheckpoint};
use unitok::train::data::{
    crop_params, eval_transform, train_transform, Dataset, Loader, LoaderState, Pcg32, CROP_RATIO,
    CROP_SCALE,
};
use unitok::{HostTensor, UnitokConfig};

/// A fresh temporary folder for one test.
fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unitok-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data/train")
}

/// A deterministic RGB test pattern (the Pillow fixtures below were made from the 45x30 one,
/// the same pattern as io.rs uses).
fn pattern(w: u32, h: u32, salt: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = |c: u32| ((x * 37 + y * 91 + c * 53 + ((x * y) % 17) * 11 + salt) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    })
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100000001b3)
    })
}

fn err_text<T: std::fmt::Debug>(r: unitok::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// `n` images of assorted sizes with captions in a folder.
fn make_folder(tag: &str, n: usize) -> PathBuf {
    let d = tmp_dir(tag);
    for i in 0..n {
        let (w, h) = [(45, 30), (20, 40), (33, 33), (64, 48)][i % 4];
        pattern(w, h, i as u32 * 7)
            .save(d.join(format!("img{i:02}.png")))
            .unwrap();
        std::fs::write(d.join(format!("img{i:02}.txt")), format!("caption {i}\n")).unwrap();
    }
    d
}

// ------------------------------------------------------------------------------------------------
// Datasets
// ------------------------------------------------------------------------------------------------

#[test]
fn shipped_train_folder_is_a_dataset_of_8() {
    let ds = Dataset::open(&shipped()).unwrap();
    assert_eq!(ds.len(), 8);
    for s in &ds.samples {
        assert!(!s.text.is_empty(), "{}", s.image.display());
        assert!(s.text.len() < 80);
        let im = img::load_rgb(&s.image).unwrap();
        assert_eq!(im.dimensions(), (32, 32), "{}", s.image.display());
    }
    let names: Vec<_> = ds
        .samples
        .iter()
        .map(|s| s.image.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(ds
        .samples
        .iter()
        .any(|s| s.text == "a photo of a cat." && s.image.ends_with("chelsea.png")));

    // Without augmentation a 32x32 image at 32 is to_tensor exactly.
    let mut l = Loader::new(ds.clone(), 32, 8, false, false, 0).unwrap();
    let b = l.next_batch().unwrap();
    assert_eq!(b.images.shape, vec![8, 3, 32, 32]);
    assert_eq!(b.indices, (0..8).collect::<Vec<_>>());
    let x = b.images.as_f32().unwrap();
    for (k, s) in ds.samples.iter().enumerate() {
        let want = img::to_tensor(&img::load_rgb(&s.image).unwrap());
        assert_eq!(
            &x[k * 3072..(k + 1) * 3072],
            want.as_f32().unwrap(),
            "{}",
            s.image.display()
        );
        assert_eq!(b.texts[k], s.text);
    }
    // With augmentation: right shape, in range, not the plain image.
    let mut l = Loader::new(ds, 32, 4, true, true, 5).unwrap();
    let b = l.next_batch().unwrap();
    assert_eq!(b.images.shape, vec![4, 3, 32, 32]);
    assert!(b
        .images
        .as_f32()
        .unwrap()
        .iter()
        .all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn folder_dataset() {
    let d = tmp_dir("folder");
    pattern(8, 8, 0).save(d.join("b.png")).unwrap();
    std::fs::write(d.join("b.txt"), "  second\n").unwrap();
    pattern(8, 8, 1).save(d.join("a.PNG")).unwrap();
    std::fs::write(d.join("a.txt"), "first").unwrap();
    pattern(8, 8, 2).save(d.join("c.jpeg")).unwrap();
    std::fs::write(d.join("c.txt"), "third").unwrap();
    std::fs::write(d.join("notes.md"), "not an image").unwrap();
    std::fs::write(d.join("orphan.txt"), "no image").unwrap();
    let ds = Dataset::open(&d).unwrap();
    let got: Vec<_> = ds
        .samples
        .iter()
        .map(|s| {
            (
                s.image.file_name().unwrap().to_str().unwrap(),
                s.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("a.PNG", "first"), ("b.png", "second"), ("c.jpeg", "third")]
    );

    // Missing caption: the error names the image.
    pattern(8, 8, 3).save(d.join("d.jpg")).unwrap();
    let e = err_text(Dataset::open(&d));
    assert!(e.contains("d.jpg") && e.contains("d.txt"), "{e}");
    // Empty caption.
    std::fs::write(d.join("d.txt"), " \n").unwrap();
    let e = err_text(Dataset::open(&d));
    assert!(e.contains("d.jpg") && e.contains("empty caption"), "{e}");

    // Empty folder, missing folder, not a dataset file.
    let empty = tmp_dir("folder-empty");
    assert!(err_text(Dataset::open(&empty)).contains("no samples"));
    assert!(err_text(Dataset::open(&empty.join("nope"))).contains("nope"));
    let e = err_text(Dataset::open(&d.join("a.txt")));
    assert!(e.contains("jsonl"), "{e}");
    for p in [d, empty] {
        std::fs::remove_dir_all(p).unwrap();
    }
}

#[test]
fn jsonl_dataset() {
    let d = tmp_dir("jsonl");
    std::fs::create_dir_all(d.join("imgs")).unwrap();
    pattern(8, 8, 0).save(d.join("imgs/x.png")).unwrap();
    let abs = d.join("abs.png");
    pattern(8, 8, 1).save(&abs).unwrap();
    let m = d.join("train.jsonl");
    let abs_json = serde_json::to_string(abs.to_str().unwrap()).unwrap();
    std::fs::write(
        &m,
        format!(
            "{{\"image\": \"imgs/x.png\", \"text\": \" a cat \"}}\n\n{{\"text\": \"abs\", \"image\": {abs_json}, \"extra\": 1}}\n"
        ),
    )
    .unwrap();
    let ds = Dataset::open(&m).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.samples[0].image, d.join("imgs/x.png"));
    assert_eq!(ds.samples[0].text, "a cat");
    assert_eq!(ds.samples[1].image, abs);

    let bad = |body: &str| {
        std::fs::write(&m, body).unwrap();
        err_text(Dataset::open(&m))
    };
    let ok = "{\"image\": \"imgs/x.png\", \"text\": \"a\"}\n";
    let e = bad(&format!("{ok}{{\"image\": \"imgs/x.png\", \"text\": \n"));
    assert!(e.contains("train.jsonl") && e.contains("line 2"), "{e}");
    let e = bad(&format!("{ok}\n{{\"image\": \"imgs/x.png\"}}\n"));
    assert!(
        e.contains("train.jsonl") && e.contains("line 3") && e.contains("text"),
        "{e}"
    );
    let e = bad(&format!(
        "{{\"image\": \"imgs/y.png\", \"text\": \"a\"}}\n{ok}"
    ));
    assert!(
        e.contains("train.jsonl") && e.contains("line 1") && e.contains("y.png"),
        "{e}"
    );
    let e = bad(&format!(
        "{ok}{{\"image\": \"imgs/x.png\", \"text\": \"  \"}}\n"
    ));
    assert!(e.contains("line 2") && e.contains("empty caption"), "{e}");
    let e = bad("\n  \n");
    assert!(e.contains("no samples"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

// ------------------------------------------------------------------------------------------------
// Transforms
// ------------------------------------------------------------------------------------------------

#[test]
fn crop_params_follow_torchvision() {
    let mut rng = Pcg32::new(7, 0);
    for &(w, h) in &[
        (45usize, 30usize),
        (32, 32),
        (640, 480),
        (480, 640),
        (33, 44),
    ] {
        let area = (w * h) as f64;
        let (mut min_top, mut max_top) = (usize::MAX, 0);
        for _ in 0..3000 {
            let c = crop_params(w, h, CROP_SCALE, CROP_RATIO, &mut rng);
            assert!(c.width > 0 && c.height > 0);
            assert!(c.left + c.width <= w && c.top + c.height <= h, "{c:?}");
            // w = round(√(A·r)), h = round(√(A/r)) with A in [0.9, 1)·area and r in [3/4, 4/3]:
            // each side is within half a pixel of its real value, which bounds area and ratio.
            let (cw, ch) = (c.width as f64, c.height as f64);
            assert!(
                cw * ch >= 0.9 * area - 0.5 * (cw + ch) - 0.25,
                "{c:?} of {w}x{h}: area too small"
            );
            assert!((cw + 0.5) / (ch - 0.5) >= 0.75, "{c:?}: too narrow");
            assert!((cw - 0.5) / (ch + 0.5) <= 4.0 / 3.0, "{c:?}: too wide");
            min_top = min_top.min(c.top);
            max_top = max_top.max(c.top + c.height);
        }
        assert_eq!(min_top, 0, "{w}x{h}: top 0 never drawn");
        assert_eq!(max_top, h, "{w}x{h}: bottom edge never drawn");
    }
    // Scale and ratio cover their ranges: the crop area fraction spans most of [0.9, 1].
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for _ in 0..2000 {
        let c = crop_params(640, 480, CROP_SCALE, CROP_RATIO, &mut rng);
        let f = (c.width * c.height) as f64 / (640.0 * 480.0);
        lo = lo.min(f);
        hi = hi.max(f);
    }
    assert!(
        lo < 0.905 && lo > 0.895 && hi > 0.97,
        "area fraction {lo}..{hi}"
    );

    // Fallback: an image far outside the ratio range fails all 10 attempts and is centre
    // cropped to the nearest allowed ratio: h = 10, w = round(10 · 4/3) = 13, left (1000−13)//2.
    for _ in 0..20 {
        let c = crop_params(1000, 10, CROP_SCALE, CROP_RATIO, &mut rng);
        assert_eq!((c.top, c.left, c.height, c.width), (0, 493, 10, 13));
        let c = crop_params(10, 1000, CROP_SCALE, CROP_RATIO, &mut rng);
        assert_eq!((c.top, c.left, c.height, c.width), (493, 0, 13, 10));
    }
    // Chelsea's 451x300 (ratio 0.665 < 3/4): at scale >= 0.9 no attempt fits, always the
    // fallback: w = 300, h = round(300 / 0.75) = 400, top (451 − 400)//2 = 25.
    let c = crop_params(300, 451, CROP_SCALE, CROP_RATIO, &mut rng);
    assert_eq!((c.top, c.left, c.height, c.width), (25, 0, 400, 300));
    // Fallback with a ratio inside the range: the whole image (scale (2, 3) is never feasible).
    let c = crop_params(40, 30, (2.0, 3.0), CROP_RATIO, &mut rng);
    assert_eq!((c.top, c.left, c.height, c.width), (0, 0, 30, 40));
}

#[test]
fn bicubic_matches_pillow() {
    // Fixtures: Pillow 13.0.0 `Image.resize((w, h), Image.BICUBIC)` of the 45x30 pattern.
    let im = pattern(45, 30, 0);
    for (w, h, hash) in [
        (23, 13, 0x5aceee58ebb0e154u64), // downscale (antialiased support)
        (71, 50, 0x01ab37a8ba9d68df),    // upscale
        (20, 30, 0x0bde01f758e3a764),    // width only
        (45, 61, 0xec53b1b946a22786),    // height only
        (7, 5, 0xc0a9bcd3e374c73e),      // strong downscale
        (16, 16, 0xc144bc046f21a40b),
    ] {
        assert_eq!(
            fnv1a(img::resize_bicubic(&im, w, h).as_raw()),
            hash,
            "{w}x{h} differs from Pillow"
        );
    }
    // torchvision resized_crop on a PIL image: crop (left 3, top 2, 37x26), then resize 16x16.
    let crop = image::imageops::crop_imm(&im, 3, 2, 37, 26).to_image();
    assert_eq!(
        fnv1a(img::resize_bicubic(&crop, 16, 16).as_raw()),
        0x4d22b29e03a1c822
    );
    // Eval transform: Resize(16) bicubic gives 24x16, then CenterCrop(16) at left 4.
    let r = img::resize_shorter_with(&im, 16, img::Resample::Bicubic).unwrap();
    assert_eq!(r.dimensions(), (24, 16));
    assert_eq!(fnv1a(r.as_raw()), 0x8902e1718cf410eb);
    let want = img::to_tensor(&image::imageops::crop_imm(&r, 4, 0, 16, 16).to_image());
    assert_eq!(eval_transform(&im, 16).unwrap(), want);
    // An S x S image is used as is.
    let sq = pattern(16, 16, 9);
    assert_eq!(eval_transform(&sq, 16).unwrap(), img::to_tensor(&sq));
    // A constant image stays constant through the training transform.
    let flat = image::RgbImage::from_pixel(50, 37, image::Rgb([10, 128, 250]));
    let t = train_transform(&flat, 16, &mut Pcg32::new(1, 1)).unwrap();
    let x = t.as_f32().unwrap();
    assert_eq!(t.shape, vec![3, 16, 16]);
    assert!(x[..256].iter().all(|&v| v == 10.0 / 127.5 - 1.0));
    assert!(x[512..].iter().all(|&v| v == 250.0 / 127.5 - 1.0));
}

// ------------------------------------------------------------------------------------------------
// Loader
// ------------------------------------------------------------------------------------------------

#[test]
fn loader_is_deterministic_and_drops_the_tail() {
    let d = make_folder("det", 7);
    let ds = Dataset::open(&d).unwrap();
    let run = |seed: u64| {
        let mut l = Loader::new(ds.clone(), 16, 3, true, true, seed).unwrap();
        (0..6).map(|_| l.next_batch().unwrap()).collect::<Vec<_>>()
    };
    let (a, b, c) = (run(11), run(11), run(12));
    assert_eq!(a, b, "same seed, same batches");
    assert_ne!(a, c, "another seed, other batches");
    // 7 samples, batch 3: two batches per epoch, one sample dropped, never a mixed batch.
    for epoch in a.chunks(2) {
        let mut seen: Vec<usize> = epoch.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6, "an epoch repeats a sample: {seen:?}");
    }
    assert_ne!(
        a[0].indices, a[2].indices,
        "epochs must be shuffled differently"
    );
    // Without shuffling: manifest order, the tail dropped.
    let mut l = Loader::new(ds.clone(), 16, 3, false, false, 0).unwrap();
    assert_eq!(l.batches_per_epoch(), 2);
    let idx: Vec<_> = (0..4).map(|_| l.next_batch().unwrap().indices).collect();
    assert_eq!(
        idx,
        [vec![0, 1, 2], vec![3, 4, 5], vec![0, 1, 2], vec![3, 4, 5]]
    );
    assert_eq!(l.epoch(), (1, 6));
    // Texts follow the indices.
    let b = Loader::new(ds.clone(), 16, 2, false, true, 3)
        .unwrap()
        .next_batch()
        .unwrap();
    for (t, &i) in b.texts.iter().zip(&b.indices) {
        assert_eq!(t, &format!("caption {i}"));
    }
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn resumed_loader_equals_uninterrupted() {
    let d = make_folder("resume", 5);
    let ds = Dataset::open(&d).unwrap();
    for (augment, shuffle) in [(true, true), (true, false), (false, true)] {
        let mut full = Loader::new(ds.clone(), 12, 2, augment, shuffle, 42).unwrap();
        let all: Vec<_> = (0..9).map(|_| full.next_batch().unwrap()).collect();
        for cut in [0, 1, 2, 3, 5] {
            let mut l = Loader::new(ds.clone(), 12, 2, augment, shuffle, 42).unwrap();
            for _ in 0..cut {
                l.next_batch().unwrap();
            }
            // Through JSON, as a checkpoint stores it.
            let json = serde_json::to_string(&l.state()).unwrap();
            drop(l);
            let state: LoaderState = serde_json::from_str(&json).unwrap();
            let mut r = Loader::resume(ds.clone(), 12, 2, augment, shuffle, state).unwrap();
            for (k, want) in all.iter().enumerate().skip(cut) {
                assert_eq!(
                    &r.next_batch().unwrap(),
                    want,
                    "augment {augment} shuffle {shuffle}: batch {k} after resuming at {cut}"
                );
            }
        }
    }
    // A state from another dataset is refused.
    let state = Loader::new(ds.clone(), 12, 2, true, true, 1)
        .unwrap()
        .state();
    let mut smaller = ds.clone();
    smaller.samples.pop();
    let e = err_text(Loader::resume(smaller, 12, 2, true, true, state));
    assert!(e.contains('5') && e.contains('4'), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn loader_errors() {
    let d = make_folder("lerr", 3);
    let ds = Dataset::open(&d).unwrap();
    assert!(err_text(Loader::new(ds.clone(), 16, 0, true, true, 0)).contains("batch size"));
    let e = err_text(Loader::new(ds.clone(), 16, 4, true, true, 0));
    assert!(e.contains('4') && e.contains('3'), "{e}");
    assert!(Loader::new(ds.clone(), 0, 1, true, true, 0).is_err());
    // A file that does not decode: the error names it, and the loader does not advance.
    std::fs::write(d.join("img01.png"), b"not a png").unwrap();
    let mut l = Loader::new(ds, 16, 3, false, false, 0).unwrap();
    let e = err_text(l.next_batch());
    assert!(e.contains("img01.png"), "{e}");
    assert_eq!(l.epoch(), (0, 0));
    std::fs::remove_dir_all(d).unwrap();
}

// ------------------------------------------------------------------------------------------------
// Checkpoints
// ------------------------------------------------------------------------------------------------

fn tensor(shape: &[usize], seed: f32) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::f32(shape, (0..n).map(|i| seed + i as f32 * 0.25).collect()).unwrap()
}

/// A small checkpoint: keys deliberately not in sorted order, moments for two of three.
fn small_checkpoint(step: u64) -> TrainCheckpoint {
    let s = step as f32;
    TrainCheckpoint {
        step,
        config: UnitokConfig::tiny64(),
        weights: vec![
            ("z.weight".into(), tensor(&[2, 3], s)),
            ("a.bias".into(), tensor(&[3], s + 1.0)),
            ("logit_scale".into(), tensor(&[], s + 2.0)),
        ],
        moments: vec![
            ("a.bias".into(), tensor(&[3], -s), tensor(&[3], s * 0.5)),
            (
                "z.weight".into(),
                tensor(&[2, 3], 0.1),
                tensor(&[2, 3], 0.2),
            ),
        ],
        state: serde_json::json!({
            "loader": {"seed": 1, "epoch": 2, "position": 4},
            "rng": [1, 2],
            "args": {"lr": 5e-4, "data": "somewhere"},
        }),
    }
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn checkpoint_round_trip() {
    let out = tmp_dir("ck-round");
    assert!(ckpt::load_latest(&out).unwrap().is_none());
    let ck = small_checkpoint(12);
    let dir = ckpt::save(&out, &ck, 3).unwrap();
    assert_eq!(dir, out.join("checkpoints/step-00000012"));
    assert_eq!(
        std::fs::read_to_string(out.join("checkpoints/latest"))
            .unwrap()
            .trim(),
        "step-00000012"
    );
    assert_eq!(
        dir_names(&dir),
        ["model.safetensors", "optimizer.safetensors", "state.json"]
    );
    assert_eq!(ckpt::load(&dir).unwrap(), ck);
    assert_eq!(ckpt::load_latest(&out).unwrap().unwrap(), ck);
    // The weights file is an ordinary weight file with the config.
    let w = Weights::load(&dir.join("model.safetensors")).unwrap();
    assert_eq!(w.config.as_ref().unwrap(), &ck.config);
    assert_eq!(w.len(), 3);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(st["step"], 12);
    assert_eq!(st["args"]["data"], "somewhere");
    // Byte-for-byte reproducible.
    let a = std::fs::read(dir.join("model.safetensors")).unwrap();
    let out2 = tmp_dir("ck-round2");
    let dir2 = ckpt::save(&out2, &ck, 3).unwrap();
    assert_eq!(a, std::fs::read(dir2.join("model.safetensors")).unwrap());
    // Bad inputs.
    let mut bad = small_checkpoint(13);
    bad.moments[0].1 = tensor(&[4], 0.0);
    assert!(err_text(ckpt::save(&out, &bad, 3)).contains("a.bias"));
    let mut bad = small_checkpoint(13);
    bad.moments
        .push(("nope".into(), tensor(&[1], 0.0), tensor(&[1], 0.0)));
    assert!(err_text(ckpt::save(&out, &bad, 3)).contains("nope"));
    let mut bad = small_checkpoint(13);
    bad.state = serde_json::json!([1, 2]);
    assert!(err_text(ckpt::save(&out, &bad, 3)).contains("object"));
    assert!(ckpt::save(&out, &small_checkpoint(13), 0).is_err());
    // A failure while writing leaves no temporary folder and `latest` where it was.
    let mut bad = small_checkpoint(13);
    bad.weights[2].1 = HostTensor::u32(&[], vec![1]).unwrap();
    let e = err_text(ckpt::save(&out, &bad, 3));
    assert!(e.contains("logit_scale") && e.contains("f32"), "{e}");
    assert_eq!(
        dir_names(&out.join("checkpoints")),
        ["latest", "step-00000012"]
    );
    assert_eq!(ckpt::load_latest(&out).unwrap().unwrap(), ck);
    let e = err_text(ckpt::save(&out, &ck, 3));
    assert!(e.contains("latest"), "re-saving the latest step: {e}");
    for p in [out, out2] {
        std::fs::remove_dir_all(p).unwrap();
    }
}

#[test]
fn checkpoint_of_a_whole_model_loads_as_weights() {
    // `unitok encode -w <ckpt>/model.safetensors` goes through app::load_weights: strict keys.
    let cfg = UnitokConfig::tiny64();
    let keys = unitok::model::expected_keys(&cfg).unwrap();
    let weights: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, s))| (k.clone(), tensor(s, i as f32 * 1e-3)))
        .collect();
    let moments = weights
        .iter()
        .take(5)
        .map(|(k, t)| (k.clone(), t.clone(), t.clone()))
        .collect();
    let ck = TrainCheckpoint {
        step: 1,
        config: cfg.clone(),
        weights,
        moments,
        state: serde_json::json!({}),
    };
    let out = tmp_dir("ck-model");
    let dir = ckpt::save(&out, &ck, 1).unwrap();
    let (got_cfg, w) = unitok::app::load_weights(&dir.join("model.safetensors")).unwrap();
    assert_eq!(got_cfg, cfg);
    assert_eq!(w.len(), keys.len());
    let back = ckpt::load(&dir).unwrap();
    let order: Vec<_> = back.weights.iter().map(|(k, _)| k.clone()).collect();
    let want: Vec<_> = keys.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(order, want, "the official key order survives");
    assert_eq!(back, ck);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn checkpoint_keep_last_prunes() {
    let out = tmp_dir("ck-prune");
    for step in [100, 200, 300, 400, 500] {
        ckpt::save(&out, &small_checkpoint(step), 2).unwrap();
    }
    assert_eq!(
        dir_names(&out.join("checkpoints")),
        ["latest", "step-00000400", "step-00000500"]
    );
    assert_eq!(ckpt::load_latest(&out).unwrap().unwrap().step, 500);
    ckpt::save(&out, &small_checkpoint(600), 1).unwrap();
    assert_eq!(
        dir_names(&out.join("checkpoints")),
        ["latest", "step-00000600"]
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn checkpoint_survives_a_crash() {
    let out = tmp_dir("ck-crash");
    ckpt::save(&out, &small_checkpoint(1), 5).unwrap();
    ckpt::save(&out, &small_checkpoint(2), 5).unwrap();
    let root = out.join("checkpoints");
    // A crash while writing step 3: a partial .tmp folder.
    let tmp = root.join(".tmp-step-00000003");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("model.safetensors"), b"partial").unwrap();
    // A crash between the rename and `latest`: step 4 complete but not named by latest.
    let d4 = ckpt::save(&tmp_dir("ck-crash-src"), &small_checkpoint(4), 1).unwrap();
    std::fs::rename(&d4, root.join("step-00000004")).unwrap();
    // An unrenamed partial folder under a step name (e.g. copied by hand, interrupted).
    let p5 = root.join("step-00000005");
    std::fs::create_dir_all(&p5).unwrap();
    std::fs::write(p5.join("state.json"), b"{\"step\": 5}").unwrap();
    // `latest` still names the last complete checkpoint.
    assert_eq!(
        ckpt::load_latest(&out).unwrap().unwrap(),
        small_checkpoint(2)
    );
    // The next save (training resumed from step 2) cleans everything up.
    ckpt::save(&out, &small_checkpoint(3), 5).unwrap();
    assert_eq!(
        dir_names(&root),
        ["latest", "step-00000001", "step-00000002", "step-00000003"]
    );
    assert_eq!(
        ckpt::load_latest(&out).unwrap().unwrap(),
        small_checkpoint(3)
    );
    // Resaving a step that exists but is not the latest replaces it.
    std::fs::write(root.join("latest"), "step-00000002\n").unwrap();
    ckpt::save(&out, &small_checkpoint(3), 5).unwrap();
    assert_eq!(ckpt::load_latest(&out).unwrap().unwrap().step, 3);
    std::fs::remove_dir_all(out).unwrap();
    std::fs::remove_dir_all(tmp_dir("ck-crash-src")).unwrap();
}

#[test]
fn checkpoint_load_errors() {
    let out = tmp_dir("ck-errors");
    let ck = small_checkpoint(7);
    let fresh = || {
        let _ = std::fs::remove_dir_all(out.join("checkpoints"));
        ckpt::save(&out, &ck, 1).unwrap()
    };
    // A missing file.
    let dir = fresh();
    std::fs::remove_file(dir.join("optimizer.safetensors")).unwrap();
    let e = err_text(ckpt::load(&dir));
    assert!(e.contains("optimizer.safetensors"), "{e}");
    let e = err_text(ckpt::load_latest(&out));
    assert!(e.contains("optimizer.safetensors"), "{e}");
    // state.json disagrees with the folder and the files.
    let dir = fresh();
    std::fs::write(dir.join("state.json"), b"{\"step\": 8}").unwrap();
    let e = err_text(ckpt::load(&dir));
    assert!(
        e.contains("state.json") && e.contains('8') && e.contains('7'),
        "{e}"
    );
    let moved = out.join("elsewhere");
    std::fs::rename(&dir, &moved).unwrap();
    let e = err_text(ckpt::load(&moved));
    assert!(
        e.contains("model.safetensors") && e.contains("unitok_step"),
        "{e}"
    );
    std::fs::remove_dir_all(&moved).unwrap();
    // state.json is not JSON / has no step.
    let dir = fresh();
    std::fs::write(dir.join("state.json"), b"{\"step\": ").unwrap();
    assert!(err_text(ckpt::load(&dir)).contains("state.json"));
    std::fs::write(dir.join("state.json"), b"{}").unwrap();
    assert!(err_text(ckpt::load(&dir)).contains("no \"step\""));
    // Moments that do not fit the weights.
    let step = std::collections::BTreeMap::from([("unitok_step".to_string(), "7".to_string())]);
    let write_opt = |dir: &Path, entries: &[(&str, Vec<usize>)]| {
        let e: Vec<(String, Vec<usize>)> = entries
            .iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect();
        let p = dir.join("optimizer.safetensors");
        write_f32(&p, &e, &step, |i| {
            Ok(std::borrow::Cow::Owned(vec![0.0; e[i].1.iter().product()]))
        })
        .unwrap();
    };
    let dir = fresh();
    write_opt(&dir, &[("m.foo", vec![3]), ("v.foo", vec![3])]);
    let e = err_text(ckpt::load(&dir));
    assert!(
        e.contains("optimizer.safetensors") && e.contains("foo"),
        "{e}"
    );
    write_opt(&dir, &[("m.a.bias", vec![4]), ("v.a.bias", vec![4])]);
    let e = err_text(ckpt::load(&dir));
    assert!(e.contains("a.bias") && e.contains("[4]"), "{e}");
    write_opt(&dir, &[("m.a.bias", vec![3])]);
    let e = err_text(ckpt::load(&dir));
    assert!(e.contains("v.a.bias"), "{e}");
    write_opt(&dir, &[("v.a.bias", vec![3])]);
    let e = err_text(ckpt::load(&dir));
    assert!(e.contains("m.a.bias"), "{e}");
    write_opt(&dir, &[("x.a.bias", vec![3])]);
    assert!(err_text(ckpt::load(&dir)).contains("x.a.bias"));
    // A `latest` naming nonsense.
    std::fs::write(out.join("checkpoints/latest"), "../../etc").unwrap();
    let e = err_text(ckpt::load_latest(&out));
    assert!(e.contains("latest"), "{e}");
    std::fs::remove_dir_all(out).unwrap();
}
