//! Model parity against the official implementation's reference outputs (goldens/tiny64):
//! every output and recorded intermediate within the tolerance the goldens give, codes
//! identical wherever the golden margin is at least 1e-5.

use crate::common::*;
use std::path::PathBuf;
use unitok::io::{npy, weights};
use unitok::model::{self, ImageHeads, ModelGraph};
use unitok::{HostTensor, UnitokConfig};

pub fn goldens() -> PathBuf {
    let root = std::env::var_os("UNITOK_GOLDENS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/goldens")
        });
    let dir = root.join("tiny64");
    assert!(
        dir.join("config.json").is_file(),
        "golden data not found at {} (set UNITOK_GOLDENS)",
        dir.display()
    );
    dir
}

struct Golden {
    dir: PathBuf,
    tol: serde_json::Value,
    inter: weights::Weights,
}

impl Golden {
    fn load() -> Self {
        let dir = goldens();
        let tol =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tolerances.json")).unwrap())
                .unwrap();
        let inter = weights::Weights::load(&dir.join("intermediates.safetensors")).unwrap();
        Golden { dir, tol, inter }
    }
    fn npy(&self, name: &str) -> HostTensor {
        npy::read_npy_f32(&self.dir.join(format!("{name}.npy"))).unwrap()
    }
    fn atol(&self, name: &str) -> f32 {
        let t = self
            .tol
            .get(name)
            .or_else(|| self.tol["intermediates"].get(name));
        t.and_then(|v| v["suggested_atol"].as_f64())
            .unwrap_or_else(|| panic!("no tolerance for {name}")) as f32
    }
    /// Compare an output with its golden; reshape (B, L, C) vs our (B, L, C) etc. by element order.
    fn check(&self, name: &str, got: &HostTensor, want: &HostTensor) {
        let got = got
            .clone()
            .reshape(&want.shape)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let atol = self.atol(name);
        let (abs, _, _) = errors(got.as_f32().unwrap(), want.as_f32().unwrap());
        eprintln!("parity {name:<28} max abs err {abs:.2e} (atol {atol:.0e})");
        assert_close(name, &got, want, atol, 0.0);
    }
}

fn tiny() -> (UnitokConfig, weights::Weights) {
    let w = weights::Weights::load(&goldens().join("model.safetensors")).unwrap();
    let cfg = w.config().unwrap().clone();
    (cfg, w)
}

#[test]
fn golden_checkpoint_has_exactly_the_expected_keys() {
    let (cfg, w) = tiny();
    w.expect_keys(&model::expected_keys(&cfg).unwrap()).unwrap();
}

#[test]
fn encoder_quantizer_and_clip_image_match_goldens() {
    let g = Golden::load();
    let (cfg, w) = tiny();
    let heads = ImageHeads {
        decoder: false,
        clip: true,
        taps: true,
    };
    let m = ModelGraph::image(&cfg, 2, 64, heads).unwrap();
    let names: Vec<String> = m.outputs.keys().cloned().collect();
    let mut plan = m.compile(&gpu(), &w).unwrap();
    let input = g.npy("input");
    let want: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let outs = plan.run(&[("image", &input)], &want).unwrap();
    let got: std::collections::HashMap<&str, &HostTensor> =
        want.iter().copied().zip(outs.iter()).collect();

    // Codes: identical wherever the reference margin is >= 1e-5, in the official (B, G, L) layout.
    let codes = npy::read_npy(&g.dir.join("codes.npy"))
        .unwrap()
        .to_i64(&g.dir.join("codes.npy"))
        .unwrap();
    let margin = g.npy("code_margin");
    let ours = model::indices_to_official(got["indices"].as_u32().unwrap(), 2, cfg.num_codebooks);
    let mut checked = 0;
    for (i, (a, b)) in ours.iter().zip(&codes).enumerate() {
        if margin.as_f32().unwrap()[i] >= 1e-5 {
            assert_eq!(
                a,
                b,
                "code {i} differs (margin {})",
                margin.as_f32().unwrap()[i]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, codes.len());
    for name in ["enc_tokens", "quant_in", "dequant", "image_embed"] {
        g.check(name, got[name], &g.npy(name));
    }
    for name in [
        "encoder.stem",
        "encoder.stages.0",
        "encoder.stages.1",
        "encoder.pool",
        "encoder.blocks.0",
        "encoder.blocks.1",
        "quant_proj.attn",
    ] {
        g.check(name, got[name], g.inter.get(name).unwrap());
    }
}

#[test]
fn decoder_from_golden_codes_matches_goldens() {
    let g = Golden::load();
    let (cfg, w) = tiny();
    let heads = ImageHeads {
        decoder: true,
        clip: true,
        taps: true,
    };
    let m = ModelGraph::codes(&cfg, 2, 16, heads).unwrap();
    let names: Vec<String> = m.outputs.keys().cloned().collect();
    let mut plan = m.compile(&gpu(), &w).unwrap();
    let codes = npy::read_npy(&g.dir.join("codes.npy"))
        .unwrap()
        .to_i64(&g.dir.join("codes.npy"))
        .unwrap();
    let idx =
        model::indices_from_official(&codes, 2, cfg.num_codebooks, cfg.codebook_size()).unwrap();
    let idx = HostTensor::u32(&[32, cfg.num_codebooks], idx).unwrap();
    let want: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let outs = plan.run(&[("indices", &idx)], &want).unwrap();
    let got: std::collections::HashMap<&str, &HostTensor> =
        want.iter().copied().zip(outs.iter()).collect();
    for name in ["dequant", "post_quant", "recon", "image_embed"] {
        g.check(name, got[name], &g.npy(name));
    }
    for name in [
        "post_quant_proj.attn",
        "decoder.blocks.0",
        "decoder.blocks.1",
        "decoder.norm",
        "decoder.up_conv1",
        "decoder.up_conv2.0",
        "decoder.up_conv2.1",
        "decoder.up_conv3.0",
        "decoder.up_conv3.1",
        "decoder.up_conv4",
    ] {
        g.check(name, got[name], g.inter.get(name).unwrap());
    }
}

#[test]
fn text_tower_matches_goldens() {
    let g = Golden::load();
    let (cfg, w) = tiny();
    let m = ModelGraph::text(&cfg, 2, true).unwrap();
    let names: Vec<String> = m.outputs.keys().cloned().collect();
    let mut plan = m.compile(&gpu(), &w).unwrap();
    let captions: Vec<String> = std::fs::read_to_string(g.dir.join("captions.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let ids = unitok::text::tokenize_flat(&captions);
    let golden_ids = npy::read_npy(&g.dir.join("text_ids.npy"))
        .unwrap()
        .to_i64(&g.dir.join("text_ids.npy"))
        .unwrap();
    assert_eq!(
        ids.iter().map(|v| *v as i64).collect::<Vec<_>>(),
        golden_ids,
        "token ids"
    );
    let eot = HostTensor::u32(&[2], model::eot_positions(&ids, 77)).unwrap();
    let ids = HostTensor::u32(&[2, 77], ids).unwrap();
    let want: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let outs = plan
        .run(&[("text_ids", &ids), ("eot", &eot)], &want)
        .unwrap();
    let got: std::collections::HashMap<&str, &HostTensor> =
        want.iter().copied().zip(outs.iter()).collect();
    g.check("text_embed", got["text_embed"], &g.npy("text_embed"));
    for name in [
        "text_encoder.resblocks.0",
        "text_encoder.resblocks.1",
        "text_encoder.ln_final",
    ] {
        g.check(name, got[name], g.inter.get(name).unwrap());
    }
}
