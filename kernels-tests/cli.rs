//! The user-facing route, end to end through the real `unitok` binary: convert the official
//! `.pth`, then encode / decode / embed from the command line, compared with reference data —
//! the official goldens (tiny64) and an independent-reference set for a different
//! configuration (kernels-tests/data/alt: other widths, depths, heads, codebook count and
//! size, image size; see tools/reference/README.md).

use crate::common::assert_close;
use std::path::{Path, PathBuf};
use std::process::Command;
use unitok::io::npy;
use unitok::HostTensor;

pub fn unitok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_unitok"))
        .args(args)
        .output()
        .expect("run unitok");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "unitok {args:?} failed:\n{text}");
    text
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unitok-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn f32npy(p: &Path) -> HostTensor {
    npy::read_npy_f32(p).unwrap_or_else(|e| panic!("{e}"))
}

fn i64npy(p: &Path) -> (Vec<usize>, Vec<i64>) {
    let a = npy::read_npy(p).unwrap();
    (a.shape.clone(), a.to_i64(p).unwrap())
}

/// The reference data set at `dir` checked through the CLI.
fn check_set(dir: &Path, name: &str) {
    let tol: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tolerances.json")).unwrap())
            .unwrap();
    let atol = |k: &str| tol[k]["suggested_atol"].as_f64().unwrap() as f32;
    let t = tmp(name);
    let p = |f: &str| t.join(f).to_string_lossy().into_owned();
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();

    unitok(&["convert", &d("model.pth"), "-o", &p("model.safetensors")]);
    let w = p("model.safetensors");

    // Encode the PNGs (a folder) and the .npy batch: codes identical to the reference wherever
    // its margin is at least 1e-5.
    let (shape, want) = i64npy(&dir.join("codes.npy"));
    let margin = f32npy(&dir.join("code_margin.npy"));
    for (src, out) in [
        (d("images"), "codes_png.npy"),
        (d("input.npy"), "codes_npy.npy"),
    ] {
        unitok(&["encode", "-w", &w, &src, "-o", &p(out), "--batch", "2"]);
        let (gs, got) = i64npy(&t.join(out));
        assert_eq!(gs, shape, "{name}: codes shape");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            if margin.as_f32().unwrap()[i] >= 1e-5 {
                assert_eq!(a, b, "{name}: code {i} from {src}");
            }
        }
    }

    // Decode the reference codes (batch 1 exercises the multi-batch loop).
    unitok(&[
        "decode",
        "-w",
        &w,
        &d("codes.npy"),
        "-o",
        &p("recon.npy"),
        "--batch",
        "1",
    ]);
    assert_close(
        &format!("{name} recon"),
        &f32npy(&t.join("recon.npy")),
        &f32npy(&dir.join("recon.npy")),
        atol("recon"),
        0.0,
    );
    unitok(&["decode", "-w", &w, &d("codes.npy"), "-o", &p("recon_png")]);
    assert!(t.join("recon_png/0000.png").is_file() && t.join("recon_png/0001.png").is_file());

    unitok(&[
        "embed-image",
        "-w",
        &w,
        &d("input.npy"),
        "-o",
        &p("img.npy"),
    ]);
    assert_close(
        &format!("{name} image_embed"),
        &f32npy(&t.join("img.npy")),
        &f32npy(&dir.join("image_embed.npy")),
        atol("image_embed"),
        0.0,
    );

    let captions: Vec<String> = std::fs::read_to_string(dir.join("captions.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut args = vec!["embed-text", "-w", &w, "-o"];
    let out = p("txt.npy");
    args.push(&out);
    for c in &captions {
        args.push("--text");
        args.push(c);
    }
    unitok(&args);
    assert_close(
        &format!("{name} text_embed"),
        &f32npy(&t.join("txt.npy")),
        &f32npy(&dir.join("text_embed.npy")),
        atol("text_embed"),
        0.0,
    );

    // Reconstruct and zero-shot run on the official checkpoint directly.
    let text = unitok(&[
        "reconstruct",
        "-w",
        &d("model.pth"),
        &d("images"),
        "-o",
        &p("rec"),
    ]);
    assert!(text.contains("mean PSNR"), "{text}");
    let text = unitok(&[
        "zero-shot",
        "-w",
        &w,
        &d("images"),
        "--labels",
        "cat,rocket,astronaut",
        "--top-k",
        "2",
    ]);
    assert!(text.contains('%'), "{text}");
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn cli_matches_official_goldens_tiny64() {
    check_set(&crate::model::goldens(), "tiny64");
}

#[test]
fn cli_matches_reference_for_another_configuration() {
    check_set(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data/alt"),
        "alt",
    );
}

#[test]
fn convert_output_equals_official_safetensors() {
    let g = crate::model::goldens();
    let t = tmp("convert");
    let out = t.join("m.safetensors");
    unitok(&[
        "convert",
        &g.join("model.pth").to_string_lossy(),
        "-o",
        &out.to_string_lossy(),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(g.join("model.safetensors")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let g = crate::model::goldens();
    let t = tmp("bad");
    let bad = t.join("bad.png");
    std::fs::write(&bad, b"not an image").unwrap();
    // A bad file is reported and skipped; the rest is encoded.
    let text = unitok(&[
        "encode",
        "-w",
        &g.join("model.safetensors").to_string_lossy(),
        &bad.to_string_lossy(),
        &g.join("images/coffee.png").to_string_lossy(),
        "-o",
        &t.join("c.npy").to_string_lossy(),
    ]);
    assert!(
        text.contains("skipping") && text.contains("bad.png"),
        "{text}"
    );
    let (shape, _) = i64npy(&t.join("c.npy"));
    assert_eq!(shape[0], 1);
    // Weights that are not a checkpoint: an error naming the file, no output written.
    let out = Command::new(env!("CARGO_BIN_EXE_unitok"))
        .args([
            "encode",
            "-w",
            &bad.to_string_lossy(),
            &g.join("images").to_string_lossy(),
            "-o",
            &t.join("x.npy").to_string_lossy(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.png"));
    assert!(!t.join("x.npy").exists());
    // Codes out of range for the codebook.
    npy::write_npy_i64(&t.join("oob.npy"), &[1, 8, 16], &vec![9999; 128]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_unitok"))
        .args([
            "decode",
            "-w",
            &g.join("model.safetensors").to_string_lossy(),
            &t.join("oob.npy").to_string_lossy(),
            "-o",
            &t.join("r.npy").to_string_lossy(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("9999"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&t);
}

/// `unitok info`: the chosen adapter, its limits (texture size included) and features, and
/// whether the kernels take texture operands on it — on for lavapipe, the CI adapter.
#[test]
fn info_prints_limits_features_and_kernel_paths() {
    let out = unitok(&["info"]);
    for want in [
        "chosen:",
        "max_storage_buffer_binding_size",
        "max_texture_dimension_2d",
        "subgroups",
        "texture operands:",
        "shader bounds checks:",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The CLI and this process see the same adapter and environment.
    let on = crate::common::gpu().caps.texture_operands;
    assert_eq!(out.contains("texture operands: on"), on, "{out}");
}
