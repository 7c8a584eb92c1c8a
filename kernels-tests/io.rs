//! Host-side I/O against the golden reference data: checkpoint conversion, weights, .npy,
//! image preprocessing and the tokenizer. No GPU needed.
//!
//! The goldens are found at `$UNITOK_GOLDENS/tiny64`, else at `<repo>/../shared/goldens/tiny64`.
//! When neither exists these tests fail (they never skip).

use std::path::{Path, PathBuf};
use unitok::config::UnitokConfig;
use unitok::io::image as img;
use unitok::io::npy::{self, NpyData};
use unitok::io::{convert, pth, weights::Weights};
use unitok::HostTensor;

fn goldens() -> PathBuf {
    let root = match std::env::var_os("UNITOK_GOLDENS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/goldens"),
    };
    let dir = root.join("tiny64");
    assert!(
        dir.join("config.json").is_file(),
        "golden data not found at {} (set UNITOK_GOLDENS to the folder holding tiny64/)",
        dir.display()
    );
    dir
}

/// A fresh temporary folder for one test.
fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unitok-io-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn golden_config() -> UnitokConfig {
    UnitokConfig::from_json_str(&std::fs::read_to_string(goldens().join("config.json")).unwrap())
        .unwrap()
}

#[test]
fn config_json_is_the_tiny64_preset() {
    assert_eq!(golden_config(), UnitokConfig::tiny64());
    // And our JSON layout is the golden metadata string, byte for byte.
    let w = Weights::load(&goldens().join("model.safetensors")).unwrap();
    assert_eq!(
        w.metadata["unitok_config"],
        UnitokConfig::tiny64().to_json_string()
    );
}

#[test]
fn read_golden_pth() {
    let ck = pth::read_pth(&goldens().join("model.pth")).unwrap();
    assert_eq!(ck.args["model"], "vitamin_tiny64");
    assert_eq!(ck.args["dtype"], "torch.float32");
    assert_eq!(ck.args["vocab_size"], 4096);
    assert_eq!(ck.args["resize_ratio"], 1.125);
    assert_eq!(UnitokConfig::from_args(&ck.args).unwrap(), golden_config());
    assert_eq!(ck.tensors.len(), 247);
    let numel: usize = ck.tensors.iter().map(|t| t.data.len()).sum();
    assert_eq!(numel, 3_688_644);
    assert_eq!(ck.tensors[0].name, "logit_scale");
    assert_eq!(ck.tensors[0].shape, Vec::<usize>::new());
    assert!((ck.tensors[0].data[0] - 2.65926).abs() < 1e-5);
    assert_eq!(
        (ck.tensors[1].name.as_str(), ck.tensors[1].shape.as_slice()),
        ("encoder.pos_embed", &[1, 1, 128][..])
    );
    for t in &ck.tensors {
        assert_eq!(
            t.data.len(),
            t.shape.iter().product::<usize>(),
            "{}",
            t.name
        );
    }
}

#[test]
fn convert_golden_pth_reproduces_golden_safetensors() {
    let g = goldens();
    let dir = tmp_dir("convert");
    let out = dir.join("model.safetensors");
    let report = convert::convert(&g.join("model.pth"), &out).unwrap();
    assert_eq!((report.tensors, report.numel), (247, 3_688_644));
    assert_eq!(report.config, golden_config());
    assert!(report.converted.is_empty());

    let ours = Weights::load(&out).unwrap();
    let gold = Weights::load(&g.join("model.safetensors")).unwrap();
    assert_eq!(ours.config.as_ref().unwrap(), &golden_config());
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(g.join("config.json")).unwrap()).unwrap();
    let embedded: serde_json::Value =
        serde_json::from_str(&ours.metadata["unitok_config"]).unwrap();
    assert_eq!(embedded, cfg_json);
    assert_eq!(
        ours.tensors.keys().collect::<Vec<_>>(),
        gold.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &gold.tensors {
        let o = &ours.tensors[name];
        assert_eq!(o.shape, t.shape, "{name}");
        let (a, b) = (o.as_f32().unwrap(), t.as_f32().unwrap());
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} differs"
        );
    }
    // Same layout as the safetensors library writes: the whole file is identical.
    let (a, b) = (
        std::fs::read(&out).unwrap(),
        std::fs::read(g.join("model.safetensors")).unwrap(),
    );
    assert_eq!(report.bytes, a.len() as u64);
    assert!(
        a == b,
        "converted file differs from the golden file byte-wise ({} vs {} bytes)",
        a.len(),
        b.len()
    );
    // Nothing but the output is left in the folder (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rebuild the golden archive with some entries replaced or dropped.
fn rezip(dst: &Path, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) {
    use std::io::{Read, Write};
    let mut src =
        zip::ZipArchive::new(std::fs::File::open(goldens().join("model.pth")).unwrap()).unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&name, data) {
            w.start_file(name, opts).unwrap();
            w.write_all(&data).unwrap();
        }
    }
    w.finish().unwrap();
}

#[test]
fn pth_errors_are_clear() {
    let g = goldens();
    let dir = tmp_dir("ptherr");
    let err = |p: &Path| {
        pth::PthArchive::open(p)
            .err()
            .expect("must fail")
            .to_string()
    };

    // A truncated file: the zip directory at the end is gone.
    let bytes = std::fs::read(g.join("model.pth")).unwrap();
    let cut = dir.join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&cut);
    assert!(e.contains("cut.pth") && e.contains("zip"), "{e}");

    // A truncated pickle.
    let p = dir.join("shortpkl.pth");
    rezip(&p, |n, d| {
        Some(if n.ends_with("data.pkl") {
            d[..d.len() / 2].to_vec()
        } else {
            d
        })
    });
    let e = err(&p);
    assert!(
        e.contains("shortpkl.pth") && e.contains("data.pkl") && e.contains("truncated"),
        "{e}"
    );

    // No data.pkl at all.
    let p = dir.join("nopkl.pth");
    rezip(&p, |n, d| (!n.ends_with("data.pkl")).then_some(d));
    let e = err(&p);
    assert!(e.contains("no data.pkl"), "{e}");

    // An unknown opcode.
    let p = dir.join("badop.pth");
    rezip(&p, |n, mut d| {
        if n.ends_with("data.pkl") {
            d[2] = 0xfe; // replaces EMPTY_DICT right after PROTO 2
        }
        Some(d)
    });
    let e = err(&p);
    assert!(e.contains("opcode 0xfe") && e.contains("byte 2"), "{e}");

    // A storage entry missing: the tensor that uses it names its key.
    let p = dir.join("nostorage.pth");
    rezip(&p, |n, d| (!n.ends_with("/data/5")).then_some(d));
    let e = err(&p);
    assert!(e.contains("bad storage key '5'"), "{e}");

    // A storage entry of the wrong size is caught when read.
    let p = dir.join("shortstorage.pth");
    rezip(&p, |n, d| {
        Some(if n.ends_with("/data/3") {
            d[..d.len() - 4].to_vec()
        } else {
            d
        })
    });
    let e = pth::read_pth(&p).expect_err("must fail").to_string();
    assert!(e.contains("data/3") && e.contains("bytes"), "{e}");

    // An unsupported storage dtype.
    let p = dir.join("complex.pth");
    rezip(&p, |n, d| {
        if !n.ends_with("data.pkl") {
            return Some(d);
        }
        let s = d.windows(12).position(|w| w == b"FloatStorage").unwrap();
        let mut d = d;
        d[s..s + 12].copy_from_slice(b"QUInt8Storag");
        Some(d)
    });
    let e = err(&p);
    assert!(
        e.contains("unsupported storage dtype torch.QUInt8Storag"),
        "{e}"
    );

    // Not a zip at all.
    let p = dir.join("text.pth");
    std::fs::write(&p, b"hello").unwrap();
    assert!(err(&p).contains("not a torch.save zip archive"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_key_mismatch_lists_everything() {
    let w = Weights::load(&goldens().join("model.safetensors")).unwrap();
    assert_eq!(w.len(), 247);
    let exact: Vec<(String, Vec<usize>)> = w
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    w.expect_keys(&exact).unwrap();

    let mut exp = exact.clone();
    exp.retain(|(k, _)| k != "fc_norm.bias" && k != "logit_scale"); // -> unexpected in the file
    exp.push(("decoder.extra.weight".into(), vec![3, 3])); // -> missing
    exp.push(("decoder.other.bias".into(), vec![7])); // -> missing
    for (k, s) in exp.iter_mut() {
        if k == "projection.weight" {
            *s = vec![128, 64]; // -> mis-shaped (file has [64, 128])
        }
    }
    let e = w.expect_keys(&exp).unwrap_err().to_string();
    for needle in [
        "2 missing",
        "decoder.extra.weight [3, 3]",
        "decoder.other.bias [7]",
        "2 unexpected",
        "fc_norm.bias [128]",
        "logit_scale []",
        "1 mis-shaped",
        "projection.weight: file has [64, 128], model expects [128, 64]",
        "model.safetensors",
    ] {
        assert!(e.contains(needle), "'{needle}' not in:\n{e}");
    }
}

#[test]
fn weights_accept_half_precision() {
    let dir = tmp_dir("half");
    let p = dir.join("h.safetensors");
    let vals = [1.0f32, -2.5, 0.333, 65504.0];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let views = vec![
        (
            "a",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![2, 2], &f16)
                .unwrap(),
        ),
        (
            "b",
            safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, vec![4], &bf16).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &p).unwrap();
    let w = Weights::load(&p).unwrap();
    assert!(w.config.is_none());
    assert!(w
        .config()
        .unwrap_err()
        .to_string()
        .contains("unitok_config"));
    let a = w.get("a").unwrap();
    assert_eq!(a.shape, vec![2, 2]);
    let want: Vec<f32> = vals
        .iter()
        .map(|v| half::f16::from_f32(*v).to_f32())
        .collect();
    assert_eq!(a.as_f32().unwrap(), want.as_slice());
    let want: Vec<f32> = vals
        .iter()
        .map(|v| half::bf16::from_f32(*v).to_f32())
        .collect();
    assert_eq!(w.get("b").unwrap().as_f32().unwrap(), want.as_slice());
    assert!(w
        .get("c")
        .unwrap_err()
        .to_string()
        .contains("no tensor 'c'"));
    // A truncated file is rejected with the reason.
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 2]).unwrap();
    assert!(Weights::load(&p)
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn npy_golden_files_and_round_trip() {
    let g = goldens();
    let input = npy::read_npy(&g.join("input.npy")).unwrap();
    assert_eq!(input.shape, vec![2, 3, 64, 64]);
    let NpyData::F32(x) = &input.data else {
        panic!("input.npy is not f32")
    };
    assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));

    let codes = npy::read_npy(&g.join("codes.npy")).unwrap();
    assert_eq!(codes.shape, vec![2, 8, 16]);
    let c = codes.to_i64(&g.join("codes.npy")).unwrap();
    assert!(c.iter().all(|&v| (0..512).contains(&v)));
    let cu = codes.clone().into_u32(&g.join("codes.npy")).unwrap();
    assert_eq!(cu.shape, vec![2, 8, 16]);
    assert!(npy::read_npy_f32(&g.join("codes.npy")).is_err());

    // Writing reproduces numpy's files byte for byte.
    let dir = tmp_dir("npy");
    npy::write_npy_f32(&dir.join("input.npy"), &input.shape, x).unwrap();
    assert!(
        std::fs::read(dir.join("input.npy")).unwrap()
            == std::fs::read(g.join("input.npy")).unwrap()
    );
    npy::write_npy_i64(&dir.join("codes.npy"), &codes.shape, &c).unwrap();
    assert!(
        std::fs::read(dir.join("codes.npy")).unwrap()
            == std::fs::read(g.join("codes.npy")).unwrap()
    );
    assert_eq!(npy::read_npy(&dir.join("codes.npy")).unwrap(), codes);

    // Shapes of every rank, and a size mismatch.
    for shape in [vec![], vec![5], vec![1, 0, 3]] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        let p = dir.join("r.npy");
        npy::write_npy_f32(&p, &shape, &data).unwrap();
        let back = npy::read_npy(&p).unwrap();
        assert_eq!((back.shape, back.data), (shape, NpyData::F32(data)));
    }
    assert!(npy::write_npy_f32(&dir.join("bad.npy"), &[2, 2], &[1.0]).is_err());
    assert!(!dir.join("bad.npy").exists());

    // f64 is read as f32 (a v2 header, hand-made).
    let mut f8 = b"\x93NUMPY\x02\x00".to_vec();
    let hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }          \n";
    f8.extend((hdr.len() as u32).to_le_bytes());
    f8.extend(hdr.as_bytes());
    f8.extend(0.1f64.to_le_bytes());
    f8.extend((-3.0f64).to_le_bytes());
    let p = dir.join("f8.npy");
    std::fs::write(&p, &f8).unwrap();
    assert_eq!(
        npy::read_npy(&p).unwrap().data,
        NpyData::F32(vec![0.1f64 as f32, -3.0])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn golden_pngs_preprocess_to_input_npy() {
    let g = goldens();
    let want = npy::read_npy_f32(&g.join("input.npy")).unwrap();
    let a = g.join("images/astronaut.png");
    let c = g.join("images/coffee.png");
    let batch = img::load_batch(&[a, c], 64).unwrap();
    assert_eq!(batch.shape, want.shape);
    let (x, y) = (batch.as_f32().unwrap(), want.as_f32().unwrap());
    let worst = x
        .iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(
        worst, 0.0,
        "preprocessed pixels differ from input.npy by up to {worst}"
    );
}

#[test]
fn recon_npy_saves_as_golden_recon_pngs() {
    let g = goldens();
    let recon = npy::read_npy_f32(&g.join("recon.npy")).unwrap();
    let data = recon.as_f32().unwrap();
    let dir = tmp_dir("recon");
    for (i, name) in ["astronaut", "coffee"].iter().enumerate() {
        let one = HostTensor::f32(
            &[3, 64, 64],
            data[i * 3 * 64 * 64..(i + 1) * 3 * 64 * 64].to_vec(),
        )
        .unwrap();
        let p = dir.join(format!("{name}.png"));
        img::save_png(&p, &one).unwrap();
        let ours = img::load_rgb(&p).unwrap();
        let gold = img::load_rgb(&g.join(format!("recon/{name}.png"))).unwrap();
        assert!(
            ours == gold,
            "{name}: saved reconstruction differs from recon/{name}.png"
        );
    }
    // Side by side: the original next to the reconstruction.
    let orig = img::load_and_preprocess(&g.join("images/astronaut.png"), 64).unwrap();
    let rec = HostTensor::f32(&[1, 3, 64, 64], data[..3 * 64 * 64].to_vec()).unwrap();
    let p = dir.join("pair.png");
    img::save_side_by_side(&p, &orig, &rec).unwrap();
    let pair = img::load_rgb(&p).unwrap();
    assert_eq!(pair.dimensions(), (128, 64));
    let left = image::imageops::crop_imm(&pair, 0, 0, 64, 64).to_image();
    assert!(left == img::load_rgb(&g.join("images/astronaut.png")).unwrap());
    let right = image::imageops::crop_imm(&pair, 64, 0, 64, 64).to_image();
    assert!(right == img::load_rgb(&g.join("recon/astronaut.png")).unwrap());
    let tall = HostTensor::zeros(&[3, 32, 64]);
    assert!(img::save_side_by_side(&dir.join("bad.png"), &orig, &tall).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A deterministic 45x30 RGB test pattern (the Pillow fixtures below were made from it).
fn synthetic() -> image::RgbImage {
    image::RgbImage::from_fn(45, 30, |x, y| {
        let v = |c: u32| ((x * 37 + y * 91 + c * 53 + ((x * y) % 17) * 11) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    })
}

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn resize_matches_pillow_bilinear() {
    let im = synthetic();
    let down = img::resize_bilinear(&im, 23, 13);
    assert_eq!(
        down.as_raw(),
        &unhex(PIL_DOWN_23X13),
        "downscale differs from Pillow"
    );
    let up = img::resize_bilinear(&im, 71, 50);
    assert_eq!(
        fnv1a(up.as_raw()),
        0xbcbebeb400a17464,
        "upscale differs from Pillow"
    );
    assert_eq!(
        fnv1a(img::resize_bilinear(&im, 20, 30).as_raw()),
        0x832da4ddb6964d8f,
        "width-only resize"
    );
    assert_eq!(
        fnv1a(img::resize_bilinear(&im, 45, 61).as_raw()),
        0xf60ce642df850246,
        "height-only resize"
    );
}

#[test]
fn preprocess_non_square() {
    // 45x30 at 16: shorter side -> int(16 * 1.125) = 18, longer int(18 * 45 / 30) = 27,
    // crop left round(5.5) = 6 (half to even), top round(1.0) = 1.
    let im = synthetic();
    let r = img::resize_shorter(&im, 18).unwrap();
    assert_eq!(r.dimensions(), (27, 18));
    assert_eq!(
        (
            img::center_crop_offset(27, 16),
            img::center_crop_offset(18, 16)
        ),
        (6, 1)
    );
    let t = img::preprocess(&im, 16).unwrap();
    assert_eq!(t.shape, vec![3, 16, 16]);
    let x = t.as_f32().unwrap();
    assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
    let pil = unhex(PIL_PRE_16);
    for c in 0..3 {
        for i in 0..256 {
            assert_eq!(
                x[c * 256 + i],
                pil[i * 3 + c] as f32 / 127.5 - 1.0,
                "channel {c} pixel {i}"
            );
        }
    }
    // Portrait orientation: the width is the shorter side.
    let tall = image::imageops::rotate90(&im);
    let r = img::resize_shorter(&tall, 18).unwrap();
    assert_eq!(r.dimensions(), (18, 27));
    assert_eq!(img::preprocess(&tall, 16).unwrap().shape, vec![3, 16, 16]);
    // 256 from a 640x480 photo: 288 x 384, crop offsets (64, 16).
    let photo = image::RgbImage::from_pixel(640, 480, image::Rgb([0, 255, 128]));
    assert_eq!(
        img::resize_shorter(&photo, 288).unwrap().dimensions(),
        (384, 288)
    );
    let t = img::preprocess(&photo, 256).unwrap();
    assert_eq!(t.shape, vec![3, 256, 256]);
    assert_eq!(&t.as_f32().unwrap()[..1], &[-1.0]);
}

#[test]
fn tokenizer_matches_text_ids() {
    let g = goldens();
    let captions: Vec<String> = std::fs::read_to_string(g.join("captions.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(captions.len(), 2);
    let ids = unitok::text::tokenize(&captions);
    let want = npy::read_npy(&g.join("text_ids.npy")).unwrap();
    assert_eq!(want.shape, vec![2, 77]);
    let want = want.to_i64(&g.join("text_ids.npy")).unwrap();
    let got: Vec<i64> = ids.iter().flatten().map(|&v| v as i64).collect();
    assert_eq!(got, want);
}

/// Pillow 13.0 `resize((23, 13), BILINEAR)` of [`synthetic`] (45x30), RGB bytes as hex.
const PIL_DOWN_23X13: &[&str] = &[
    "668493848a8e808a887b78795c62845d929bb193427a487b687d96698463847082748e8b728a8e92b27b8c595d507fa9",
    "9aa2599370636c76796b7b907aa17d8d8a8a75648b758f7a827e6e807d7b886c827b65985d68959b8175888b83a17f79",
    "7863817b6d778b83758da47178909ea76280827d6e8173788f8276887387707782737487747e919c7b687a9a8d887683",
    "777a887a63778f6095956c9e84768a996b76927f669d776a84609494817683927a528684a560948a7b81818d81669172",
    "8478858d978563897c75797592637e946c8f807294686b936480837d729f7c60957b6b796c7b7d877d8798857b7475aa",
    "978f787d967d7ba4827e658d6d839880969e6d907985878093818e6c876f8685809b847284829b8578a09b55888d7671",
    "6377848b8d66707c8d928b71647282898168706a9f896e8b788f68789b99866367809f8983988478817a897685a77980",
    "8b9070778690b09a709b747c8d847c917b8ca55c8cb64f779ab37e5c88ae8a54777c6a758c987c84917e9a6f797c9d8f",
    "4b70949b3c64ad9156798b7e836a948a8d6e85846f88667b9f65689cc2678895717aaa69939978868db5819ecd7eb3a2",
    "7aaeaf80977e75a17f7c9d8774a95e8f6b818e546c7a705ba62d5f8a3e597d596e836f8062906a749c5b897c867190b5",
    "659ac960927e87a1789b8761726c7f56749d73a8afadb051775669687d958a8e687c7c72726d8d8d9a80bb8b54994769",
    "4e76aa849986956b75688b97819880a165686d57784573a88f986e918b7786837d697f8f7a77766181a9908a6f587f94",
    "749286757789877a7490796c83756773a1a48270727790919c7c717b78777d7a8977726d756280717d924270807b868e",
    "8d8686868a8c846d7b926774826d8b96619289847e7a827a877a7d8d6a94978f6d81a47a5d9282876a85957f7974848d",
    "6c837d6d7d8e8973817b7090808084847f7a9971a5917c826d829b72838a91706c6973848b727e88617f99766f896c80",
    "6a7a7d8f89728f9172735e8a8e6ba07e7fa6688a9e7480878b76937a7aa361857c756484a56988878e7a74837e7e6183",
    "7d8b7c708e889279747d84867d758b7a756b6b78765f7dac98758a667f7f7284a391607b6e7e8874779d727b8583918a",
    "79668b7b8e72639381717162a0708e885e7f93618e6f75988d5172a78e586482a28b52668f84856c83898176aba35388",
    "9d66746699a283526f9fa45a717899946285a25f84ad7a7e899484806f6f9dc633",
];
/// Pillow: `resize((27, 18), BILINEAR).crop((6, 1, 22, 17))` = the preprocessing at 16.
const PIL_PRE_16: &[&str] = &[
    "507eb3af985f8d5b89869f827571866f7d6a7d6b79828a9393ac7d657e9aafab717f54827e9e8199665c857765836a78",
    "5b64999c8a7880957eb07d669b5f8574658e80657690895a719a7f8b90698b87bc8f54799061566c8c9292977c918a7b",
    "aa6ba07d6b8e9a5b80957a7b8f874ea471767a5f9495797f8b90815b8469726ea3a4698e8f84798e8e74568b706e7388",
    "6c689d8962777377647d9683a47179946c8c8876ab9e946e819a72709e76858e9783679c6780a07b909974987b8f6780",
    "9a5f845d768e898e83595e8f7f9769887d82657eb392797c789d7a8f8485697a9a8b84697f848188a1a8578c757da66b",
    "95ae4f647d95ab805d708d825d757c9f70756f64997c6e9c79866390b56e4f6196a39c51719aaf819a6b93747570698e",
    "9fbb77588db58c4b79a2415a8a936d8c8f8b8c8581a9636b8eae8a5a8fa06a5388c047479bb76c628a9375669b907777",
    "8cc1866ea3bb5489aa568ba05f949a76ab6c77ac617a7a926f548934557e6c3d6bb62b54b05536ab604aa4698e73985d",
    "72a7c08abfa2a7a0619e974c87a7787f907576ab609a647db76059b99e43c2494ca4316644497e52679c6982834f808d",
    "77acacb8c03b7c436353659a7982978e9c557b6976636b9480a09fa2a257c351594e598e5b90c59ca46baf526b60849c",
    "5a8bc09ca9624758896ca1967770896e877c867b70936c6894655a597eafa0b972555a8b7da69ba97b5e7c7d728b8081",
    "5871a6a25b7e6ba0956095728b6e9c776c9184797a9d8b687ca17e5a8b80979a888a5f84a0755e7c6d9b65728b688d8e",
    "907793985f949b6d857f867e848d63987f7f916398978d7687a0716b996b617d9276729595917f70987e6b8b7164848b",
    "4f7491897081877075965b84a2736c7e678c5c8176948d65958e5f766388906fa49a6fa47b74a95b89a1768b909b6891",
    "9e636870767285868b65666b95876a64598a5c8db29477857f84855e5788776ca182878c61668f738cba6a5b788da277",
    "9cad69758aa69a536c6b79915880766c8584726a9f8f78a06d707783b183666ea3b95c516588938963788b8f877c748d",
];
