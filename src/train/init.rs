//! The reference initialisation of a fresh UniTok model: every checkpoint key of
//! [`expected_keys`] with values drawn by the rules the reference applies when it trains from
//! scratch (`tools/reference/alt_model.py` `param_specs` + `init_value`, written from the spec:
//! architecture notes §2.5, §3.1–3.3, §4 "Initialisation", §5), without the goldens' extra
//! noise on LayerNorms and biases.
//!
//! The rule of a key is found from its name and shape (and the config's `vae_init`,
//! `vocab_init` and `text_layers`), so any valid config works; a key no rule knows is an error
//! rather than a silent guess:
//!
//! | keys | rule |
//! |---|---|
//! | `logit_scale` (0-d) | ln(1/0.07) |
//! | `encoder.pos_embed` (frozen), `*.attn.q_bias`, `*.attn.v_bias` | 0 |
//! | buffers `*.attn.zero_k_bias`, `*.vocab_usage` | 0 |
//! | every LayerNorm (`*norm*`, `ln_*` modules) | weight 1, bias 0 |
//! | encoder conv stem / MBConv convs | N(0, 2 / fan_out), fan_out = k·k·C_out / groups (timm); bias 0 |
//! | `encoder.patch_embed.backbone.pool.proj` | torch default: U(±1/√fan_in), bias U(±1/√fan_in) |
//! | encoder transformer linears | trunc-normal std 0.02; bias 0 |
//! | `quant_proj`, `post_quant_proj`, `decoder` (UniTok `init_weights(vae_init)`) | linears trunc-normal 0.02, bias 0; convs Xavier-normal gain −vae_init (vae_init ≤ 0) or trunc-normal std vae_init (> 0), bias 0 |
//! | `quantizer.codebooks.*.codebook.weight` (`init_vocab(vocab_init)`) | vocab_init < 0: U(±|vocab_init|·d^−½/36); > 0: trunc-normal std vocab_init; 0: N(0, 1) (nn.Embedding default) |
//! | text tower (open_clip) | token embedding N(0, 0.02²), positional N(0, 0.01²), in_proj N(0, 1/W), out_proj and c_proj N(0, 1/(2·W·layers)), c_fc N(0, 1/(2W)), text_projection N(0, 1/W); in_proj / out_proj biases 0, c_fc / c_proj biases torch default |
//! | `fc_norm`, `projection` | torch default (LayerNorm 1/0; Linear U(±1/√fan_in) weight and bias) |
//!
//! Truncated normals cut at the absolute bounds ±2 as torch's `trunc_normal_` defaults do (not
//! ±2σ), resampling what falls outside. Missing `vae_init` / `vocab_init` take the reference
//! `Args` defaults −0.5 and −1.
//!
//! Random numbers: one PCG-XSL-RR 128/64 generator (`rand_pcg::Pcg64`, the algorithm of NumPy's
//! default bit generator) per key, its state from the seed and its stream from a hash of the
//! key, so a tensor's values depend only on (seed, key, rule, shape): adding a key or changing
//! another tensor's shape leaves them alone, and keys are generated in parallel. Normals come
//! from `rand_distr::StandardNormal` (ziggurat) in f64, stored as f32. The distributions match
//! the reference; the streams are not NumPy's or torch's.

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::model::{expected_keys, WeightSource};
use crate::tensor::HostTensor;
use rand::Rng;
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;
use std::collections::HashMap;

/// `vae_init` of the reference `Args` when the config has none: Xavier-normal gain 0.5.
pub const DEFAULT_VAE_INIT: f64 = -0.5;
/// `vocab_init` of the reference `Args` when the config has none: U(±d^−½/36).
pub const DEFAULT_VOCAB_INIT: f64 = -1.0;
/// torch `trunc_normal_`'s default cut: absolute [−2, 2].
pub const TRUNC_BOUND: f64 = 2.0;

/// How the values of one checkpoint entry are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every element equal to this value (0 for biases and buffers, 1 for LayerNorm weights,
    /// ln(1/0.07) for `logit_scale`).
    Const(f64),
    /// N(0, std²).
    Normal(f64),
    /// N(0, std²) resampled until inside [−`TRUNC_BOUND`, `TRUNC_BOUND`].
    TruncNormal(f64),
    /// U(−bound, bound).
    Uniform(f64),
}

impl Init {
    /// The standard deviation of the values this rule draws, before truncation (the ±2 cut
    /// changes it by under 0.1% for std ≤ 0.5; the reference's own stds are 0.02, or
    /// `vae_init` / `vocab_init` when positive).
    pub fn std(&self) -> f64 {
        match *self {
            Init::Const(_) => 0.0,
            Init::Normal(s) | Init::TruncNormal(s) => s,
            Init::Uniform(b) => b / 3f64.sqrt(),
        }
    }

    /// Draw `n` values.
    fn sample(&self, n: usize, rng: &mut Pcg64) -> Vec<f32> {
        match *self {
            Init::Const(c) => vec![c as f32; n],
            Init::Normal(s) => (0..n)
                .map(|_| (s * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect(),
            Init::TruncNormal(s) => (0..n)
                .map(|_| loop {
                    let x = s * rng.sample::<f64, _>(StandardNormal);
                    if (-TRUNC_BOUND..=TRUNC_BOUND).contains(&x) {
                        break x as f32;
                    }
                })
                .collect(),
            Init::Uniform(b) => (0..n)
                .map(|_| (b * (2.0 * rng.random::<f64>() - 1.0)) as f32)
                .collect(),
        }
    }
}

/// ln(1/0.07), the CLIP temperature's starting logit.
pub fn initial_logit_scale() -> f64 {
    (1.0f64 / 0.07).ln()
}

/// A config's `vae_init` and `vocab_init` (reference defaults where absent); an error when one
/// is not a finite number.
pub fn init_knobs(cfg: &UnitokConfig) -> Result<(f64, f64)> {
    let get = |n: &Option<serde_json::Number>, name: &str, default: f64| match n {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(Error::Invalid(format!(
                "{name} = {v} is not a finite number"
            ))),
        },
    };
    Ok((
        get(&cfg.vae_init, "vae_init", DEFAULT_VAE_INIT)?,
        get(&cfg.vocab_init, "vocab_init", DEFAULT_VOCAB_INIT)?,
    ))
}

/// Every key of [`expected_keys`] (same order) with its shape and initialisation rule; no
/// values are drawn.
pub fn init_rules(cfg: &UnitokConfig) -> Result<Vec<(String, Vec<usize>, Init)>> {
    let keys = expected_keys(cfg)?;
    let knobs = init_knobs(cfg)?;
    let shapes: HashMap<&str, &[usize]> = keys
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_slice()))
        .collect();
    keys.iter()
        .map(|(k, s)| Ok((k.clone(), s.clone(), rule_for(k, s, &shapes, cfg, knobs)?)))
        .collect()
}

/// torch's fans of a weight: (size(1)·receptive field, size(0)·receptive field).
fn torch_fans(shape: &[usize]) -> (usize, usize) {
    let rf: usize = shape.iter().skip(2).product();
    (
        shape.get(1).copied().unwrap_or(1) * rf,
        shape.first().copied().unwrap_or(1) * rf,
    )
}

/// PyTorch's default Linear / Conv init for a weight: kaiming_uniform_(a = √5), i.e.
/// U(±1/√fan_in).
fn torch_default(shape: &[usize]) -> Init {
    Init::Uniform(1.0 / (torch_fans(shape).0 as f64).sqrt())
}

fn rule_for(
    key: &str,
    shape: &[usize],
    shapes: &HashMap<&str, &[usize]>,
    cfg: &UnitokConfig,
    (vae_init, vocab_init): (f64, f64),
) -> Result<Init> {
    let unknown = || {
        Error::Invalid(format!(
            "no reference initialisation rule for checkpoint key {key} {shape:?}"
        ))
    };
    let (module, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let module_leaf = module.rsplit('.').next().unwrap_or("");
    let rank = shape.len();
    let is_weight = leaf == "weight";
    let is_bias = leaf == "bias";
    // The default init of a bias: U(±1/√fan_in) of its module's weight.
    let torch_default_bias = || -> Result<Init> {
        let w = shapes
            .get(format!("{module}.weight").as_str())
            .ok_or_else(unknown)?;
        Ok(torch_default(w))
    };

    if key == "logit_scale" {
        return Ok(Init::Const(initial_logit_scale()));
    }
    if key == "encoder.pos_embed"
        || [
            "attn.q_bias",
            "attn.v_bias",
            "attn.zero_k_bias",
            "vocab_usage",
        ]
        .iter()
        .any(|s| key.ends_with(&format!(".{s}")))
    {
        return Ok(Init::Const(0.0));
    }
    if (module_leaf.contains("norm") || module_leaf.starts_with("ln_")) && rank == 1 {
        if is_weight {
            return Ok(Init::Const(1.0));
        }
        if is_bias {
            return Ok(Init::Const(0.0));
        }
    }

    if let Some(rest) = key.strip_prefix("text_encoder.") {
        let width = shape.first().copied().unwrap_or(1) as f64;
        let proj_std = width.powf(-0.5) * (2.0 * cfg.text_layers as f64).powf(-0.5);
        return match rest {
            "text_projection" => Ok(Init::Normal(width.powf(-0.5))),
            "positional_embedding" => Ok(Init::Normal(0.01)),
            "token_embedding.weight" => Ok(Init::Normal(0.02)),
            _ if rest.ends_with(".attn.in_proj_weight") && rank == 2 => {
                Ok(Init::Normal((shape[1] as f64).powf(-0.5)))
            }
            _ if rest.ends_with(".attn.in_proj_bias") || rest.ends_with(".attn.out_proj.bias") => {
                Ok(Init::Const(0.0))
            }
            _ if (rest.ends_with(".attn.out_proj.weight")
                || rest.ends_with(".mlp.c_proj.weight"))
                && rank == 2 =>
            {
                Ok(Init::Normal(proj_std))
            }
            _ if rest.ends_with(".mlp.c_fc.weight") && rank == 2 => {
                Ok(Init::Normal((2.0 * shape[1] as f64).powf(-0.5)))
            }
            _ if rest.ends_with(".mlp.c_fc.bias") || rest.ends_with(".mlp.c_proj.bias") => {
                torch_default_bias()
            }
            _ => Err(unknown()),
        };
    }

    // The CLIP image head keeps PyTorch's defaults.
    if module == "projection" {
        return match leaf {
            "weight" => Ok(torch_default(shape)),
            "bias" => torch_default_bias(),
            _ => Err(unknown()),
        };
    }

    // Encoder conv backbone: timm's MbConvStages init, except the pool conv.
    if let Some(rest) = key.strip_prefix("encoder.patch_embed.backbone.") {
        if rest.starts_with("pool.proj.") {
            return match leaf {
                "weight" => Ok(torch_default(shape)),
                "bias" => torch_default_bias(),
                _ => Err(unknown()),
            };
        }
        if is_bias && rank == 1 {
            return Ok(Init::Const(0.0));
        }
        if is_weight && rank == 4 {
            // The depthwise conv of an MBConv block has groups = its channels.
            let groups = if module_leaf == "conv2_kxk" {
                shape[0]
            } else {
                1
            };
            let fan_out = shape[0] * shape[2] * shape[3] / groups;
            return Ok(Init::Normal((2.0 / fan_out as f64).sqrt()));
        }
        return Err(unknown());
    }

    // Encoder transformer: timm ViT init on Linear layers.
    if key.starts_with("encoder.blocks.") {
        return match (leaf, rank) {
            ("weight", 2) => Ok(Init::TruncNormal(0.02)),
            ("bias", 1) => Ok(Init::Const(0.0)),
            _ => Err(unknown()),
        };
    }

    // UniTok's init_weights(module, vae_init) on the decoder and both projections.
    if ["quant_proj.", "post_quant_proj.", "decoder."]
        .iter()
        .any(|p| key.starts_with(p))
    {
        return match (leaf, rank) {
            ("weight", 2) => Ok(Init::TruncNormal(0.02)),
            ("weight", 3..) => {
                if vae_init > 0.0 {
                    Ok(Init::TruncNormal(vae_init))
                } else {
                    let (fan_in, fan_out) = torch_fans(shape);
                    let gain = vae_init.abs();
                    Ok(Init::Normal(
                        gain * (2.0 / (fan_in + fan_out) as f64).sqrt(),
                    ))
                }
            }
            ("bias", 1) => Ok(Init::Const(0.0)),
            _ => Err(unknown()),
        };
    }

    // The quantiser's init_vocab(vocab_init).
    if key.starts_with("quantizer.codebooks.") && key.ends_with(".codebook.weight") && rank == 2 {
        let d = shape[1] as f64;
        return Ok(if vocab_init > 0.0 {
            Init::TruncNormal(vocab_init)
        } else if vocab_init < 0.0 {
            Init::Uniform(vocab_init.abs() * d.powf(-0.5) / 36.0)
        } else {
            Init::Normal(1.0)
        });
    }

    Err(unknown())
}

/// A deterministic generator for one key: state from the seed, stream from the key's hash.
fn key_rng(seed: u64, key: &str) -> Pcg64 {
    // FNV-1a 64 of the key, then SplitMix64 to spread the seed over the 128-bit state.
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut sm = seed;
    let mut next = || {
        sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = sm;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let state = ((next() as u128) << 64) | next() as u128;
    Pcg64::new(state, h as u128)
}

/// A fresh model of `cfg`: every key of [`expected_keys`] in that order, with its shape and
/// values drawn by the reference's rules (see the module docs) from `seed`.
pub fn reference_init(cfg: &UnitokConfig, seed: u64) -> Result<Vec<(String, HostTensor)>> {
    let rules = init_rules(cfg)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16)
        .min(rules.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Largest tensors first, so the workers finish together.
    let mut order: Vec<usize> = (0..rules.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rules[i].1.iter().product::<usize>()));
    let mut slots: Vec<Option<HostTensor>> = vec![None; rules.len()];
    let done: Vec<Vec<(usize, Result<HostTensor>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&i) = order.get(j) else { break };
                        let (key, shape, rule) = &rules[i];
                        let n = shape.iter().product();
                        let data = rule.sample(n, &mut key_rng(seed, key));
                        out.push((i, HostTensor::f32(shape, data)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("an init worker panicked"))
            .collect()
    });
    for (i, t) in done.into_iter().flatten() {
        slots[i] = Some(t?);
    }
    rules
        .into_iter()
        .zip(slots)
        .map(|((key, _, _), t)| Ok((key, t.expect("every key was generated"))))
        .collect()
}

/// A freshly initialised model as a [`WeightSource`] (e.g. for `TrainStep::build`).
pub struct InitWeights {
    tensors: Vec<(String, HostTensor)>,
    index: HashMap<String, usize>,
}

impl InitWeights {
    /// [`reference_init`] of `cfg` with `seed`.
    pub fn new(cfg: &UnitokConfig, seed: u64) -> Result<Self> {
        Ok(Self::from_tensors(reference_init(cfg, seed)?))
    }

    /// Wrap an already built list (e.g. a modified [`reference_init`] result).
    pub fn from_tensors(tensors: Vec<(String, HostTensor)>) -> Self {
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        InitWeights { tensors, index }
    }

    pub fn get(&self, key: &str) -> Option<&HostTensor> {
        self.index.get(key).map(|&i| &self.tensors[i].1)
    }

    /// The tensors in [`expected_keys`] order.
    pub fn tensors(&self) -> &[(String, HostTensor)] {
        &self.tensors
    }

    pub fn into_tensors(self) -> Vec<(String, HostTensor)> {
        self.tensors
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

impl WeightSource for InitWeights {
    fn tensor(&self, key: &str) -> Result<HostTensor> {
        self.get(key)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("the initialised model has no key {key}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::make_divisible;
    use std::collections::BTreeMap;

    fn alt() -> UnitokConfig {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/kernels-tests/data/alt/config.json"
        );
        UnitokConfig::from_json_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// A structural port of alt_model.py's `param_specs` + `init_value` (vae_init −0.5,
    /// vocab_init −1): the oracle the name-based rules are checked against.
    fn spec_rules(cfg: &UnitokConfig) -> BTreeMap<String, (Vec<usize>, Init)> {
        let mut m = BTreeMap::new();
        let mut add = |k: String, s: &[usize], i: Init| {
            assert!(m.insert(k.clone(), (s.to_vec(), i)).is_none(), "{k} twice");
        };
        let zero = Init::Const(0.0);
        let conv_fan_out = |s: &[usize], groups: usize| {
            Init::Normal((2.0 / (s[0] * s[2] * s[3] / groups) as f64).sqrt())
        };
        let xavier05 = |s: &[usize]| {
            let rf = s[2] * s[3];
            Init::Normal(0.5 * (2.0 / ((s[1] + s[0]) * rf) as f64).sqrt())
        };
        let tdef = |fan_in: usize| Init::Uniform(1.0 / (fan_in as f64).sqrt());
        let mid = |c: usize| make_divisible(c as f64 * cfg.conv_expand_ratio, 8);
        macro_rules! ln {
            ($add:expr, $p:expr, $c:expr) => {{
                $add(format!("{}.weight", $p), &[$c], Init::Const(1.0));
                $add(format!("{}.bias", $p), &[$c], Init::Const(0.0));
            }};
        }
        let w = cfg.vit_width;
        add("logit_scale".into(), &[], Init::Const((1.0f64 / 0.07).ln()));
        add("encoder.pos_embed".into(), &[1, 1, w], zero);
        let bb = "encoder.patch_embed.backbone";
        let sw = cfg.stem_width;
        let s = [sw, 3, 3, 3];
        add(format!("{bb}.stem.conv1.weight"), &s, conv_fan_out(&s, 1));
        add(format!("{bb}.stem.conv1.bias"), &[sw], zero);
        ln!(add, format!("{bb}.stem.norm1"), sw);
        let s = [sw, sw, 3, 3];
        add(format!("{bb}.stem.conv2.weight"), &s, conv_fan_out(&s, 1));
        add(format!("{bb}.stem.conv2.bias"), &[sw], zero);
        let mut c_in = sw;
        for (si, (&dim, &depth)) in cfg
            .conv_stage_dims
            .iter()
            .zip(&cfg.conv_stage_depths)
            .enumerate()
        {
            for bi in 0..depth {
                let p = format!("{bb}.stages.{si}.{bi}");
                let md = mid(dim);
                if c_in != dim {
                    let s = [dim, c_in, 1, 1];
                    add(
                        format!("{p}.shortcut.expand.weight"),
                        &s,
                        conv_fan_out(&s, 1),
                    );
                    add(format!("{p}.shortcut.expand.bias"), &[dim], zero);
                }
                ln!(add, format!("{p}.pre_norm"), c_in);
                let s = [md, c_in, 1, 1];
                add(format!("{p}.conv1_1x1.weight"), &s, conv_fan_out(&s, 1));
                add(format!("{p}.conv1_1x1.bias"), &[md], zero);
                let s = [md, 1, 3, 3];
                add(format!("{p}.conv2_kxk.weight"), &s, conv_fan_out(&s, md));
                add(format!("{p}.conv2_kxk.bias"), &[md], zero);
                let s = [dim, md, 1, 1];
                add(format!("{p}.conv3_1x1.weight"), &s, conv_fan_out(&s, 1));
                add(format!("{p}.conv3_1x1.bias"), &[dim], zero);
                c_in = dim;
            }
        }
        add(
            format!("{bb}.pool.proj.weight"),
            &[w, c_in, 3, 3],
            tdef(c_in * 9),
        );
        add(format!("{bb}.pool.proj.bias"), &[w], tdef(c_in * 9));
        ln!(add, format!("{bb}.pool.norm"), c_in);
        let hid = (w as f64 * cfg.vit_mlp_ratio) as usize;
        let t02 = Init::TruncNormal(0.02);
        let geglu = |add: &mut dyn FnMut(String, &[usize], Init), p: &str, c: usize, h: usize| {
            ln!(add, format!("{p}.norm"), c);
            add(format!("{p}.w0.weight"), &[h, c], t02);
            add(format!("{p}.w0.bias"), &[h], zero);
            add(format!("{p}.w1.weight"), &[h, c], t02);
            add(format!("{p}.w1.bias"), &[h], zero);
            add(format!("{p}.w2.weight"), &[c, h], t02);
            add(format!("{p}.w2.bias"), &[c], zero);
        };
        let vit_blocks = |add: &mut dyn FnMut(String, &[usize], Init), prefix: &str| {
            for i in 0..cfg.vit_depth {
                let p = format!("{prefix}.blocks.{i}");
                ln!(add, format!("{p}.norm1"), w);
                add(format!("{p}.attn.qkv.weight"), &[3 * w, w], t02);
                add(format!("{p}.attn.qkv.bias"), &[3 * w], zero);
                add(format!("{p}.attn.proj.weight"), &[w, w], t02);
                add(format!("{p}.attn.proj.bias"), &[w], zero);
                ln!(add, format!("{p}.norm2"), w);
                geglu(add, &format!("{p}.mlp"), w, hid);
            }
        };
        vit_blocks(&mut add, "encoder");
        ln!(add, "encoder.norm", w);
        let attn_proj =
            |add: &mut dyn FnMut(String, &[usize], Init), p: &str, ci: usize, co: usize| {
                let inner = ci.max(co);
                ln!(add, format!("{p}.norm1"), ci);
                add(format!("{p}.attn.q_bias"), &[inner], zero);
                add(format!("{p}.attn.v_bias"), &[inner], zero);
                add(format!("{p}.attn.zero_k_bias"), &[inner], zero);
                add(format!("{p}.attn.qkv.weight"), &[3 * inner, ci], t02);
                let a = if ci > co {
                    inner / cfg.attn_proj_heads
                } else {
                    inner
                };
                add(format!("{p}.attn.proj.weight"), &[a, a], t02);
                add(format!("{p}.attn.proj.bias"), &[a], zero);
                add(format!("{p}.proj.weight"), &[co, ci], t02);
                add(format!("{p}.proj.bias"), &[co], zero);
                ln!(add, format!("{p}.norm3"), ci);
                ln!(add, format!("{p}.norm2"), co);
                let h = (co as f64 * cfg.attn_proj_mlp_ratio) as usize;
                geglu(add, &format!("{p}.mlp"), co, h);
            };
        let (vw, g) = (cfg.vocab_width, cfg.num_codebooks);
        attn_proj(&mut add, "quant_proj", w, vw);
        let (k, d) = (cfg.vocab_size / g, vw / g);
        for i in 0..g {
            add(format!("quantizer.codebooks.{i}.vocab_usage"), &[k], zero);
            let b = (d as f64).powf(-0.5) / 36.0;
            add(
                format!("quantizer.codebooks.{i}.codebook.weight"),
                &[k, d],
                Init::Uniform(b),
            );
        }
        attn_proj(&mut add, "post_quant_proj", vw, w);
        vit_blocks(&mut add, "decoder");
        ln!(add, "decoder.norm", w);
        let [_, d1, d2] = cfg.decoder_dims;
        let s = [d1, w, 3, 3];
        add("decoder.up_conv1.conv.weight".into(), &s, xavier05(&s));
        add("decoder.up_conv1.conv.bias".into(), &[d1], zero);
        let mut c_in = d1;
        for (name, dim, depth) in [
            ("up_conv2", d1, cfg.decoder_up_depths[0]),
            ("up_conv3", d2, cfg.decoder_up_depths[1]),
        ] {
            for j in 0..depth {
                let p = format!("decoder.{name}.{j}");
                let md = mid(dim);
                if j == 0 {
                    let s = [dim, c_in, 3, 3];
                    add(format!("{p}.shortcut.conv.weight"), &s, xavier05(&s));
                    add(format!("{p}.shortcut.conv.bias"), &[dim], zero);
                }
                ln!(add, format!("{p}.pre_norm"), c_in);
                let s = [md, c_in, 1, 1];
                add(format!("{p}.conv1_1x1.weight"), &s, xavier05(&s));
                add(format!("{p}.conv1_1x1.bias"), &[md], zero);
                if j == 0 {
                    let s = [md, md, 3, 3];
                    add(format!("{p}.up.conv.weight"), &s, xavier05(&s));
                    add(format!("{p}.up.conv.bias"), &[md], zero);
                }
                let s = [md, 1, 3, 3];
                add(format!("{p}.conv2_kxk.weight"), &s, xavier05(&s));
                add(format!("{p}.conv2_kxk.bias"), &[md], zero);
                let s = [dim, md, 1, 1];
                add(format!("{p}.conv3_1x1.weight"), &s, xavier05(&s));
                add(format!("{p}.conv3_1x1.bias"), &[dim], zero);
                c_in = dim;
            }
        }
        let s = [d2, d2, 3, 3];
        add(
            "decoder.up_conv4.conv1.conv.weight".into(),
            &s,
            xavier05(&s),
        );
        add("decoder.up_conv4.conv1.conv.bias".into(), &[d2], zero);
        ln!(add, "decoder.up_conv4.norm1", d2);
        let s = [3, d2, 3, 3];
        add("decoder.up_conv4.conv2.weight".into(), &s, xavier05(&s));
        add("decoder.up_conv4.conv2.bias".into(), &[3], zero);

        let (tw, e, tl) = (cfg.text_width, cfg.embed_dim, cfg.text_layers);
        let th = (tw as f64 * cfg.text_mlp_ratio) as usize;
        let twf = tw as f64;
        let t = "text_encoder";
        add(
            format!("{t}.text_projection"),
            &[tw, e],
            Init::Normal(twf.powf(-0.5)),
        );
        let ctx = cfg.text_context_length;
        add(
            format!("{t}.positional_embedding"),
            &[ctx, tw],
            Init::Normal(0.01),
        );
        let tv = cfg.text_vocab_size;
        add(
            format!("{t}.token_embedding.weight"),
            &[tv, tw],
            Init::Normal(0.02),
        );
        let proj_std = twf.powf(-0.5) * (2.0 * tl as f64).powf(-0.5);
        for i in 0..tl {
            let p = format!("{t}.transformer.resblocks.{i}");
            ln!(add, format!("{p}.ln_1"), tw);
            add(
                format!("{p}.attn.in_proj_weight"),
                &[3 * tw, tw],
                Init::Normal(twf.powf(-0.5)),
            );
            add(format!("{p}.attn.in_proj_bias"), &[3 * tw], zero);
            add(
                format!("{p}.attn.out_proj.weight"),
                &[tw, tw],
                Init::Normal(proj_std),
            );
            add(format!("{p}.attn.out_proj.bias"), &[tw], zero);
            ln!(add, format!("{p}.ln_2"), tw);
            add(
                format!("{p}.mlp.c_fc.weight"),
                &[th, tw],
                Init::Normal((2.0 * twf).powf(-0.5)),
            );
            add(format!("{p}.mlp.c_fc.bias"), &[th], tdef(tw));
            add(
                format!("{p}.mlp.c_proj.weight"),
                &[tw, th],
                Init::Normal(proj_std),
            );
            add(format!("{p}.mlp.c_proj.bias"), &[tw], tdef(th));
        }
        ln!(add, format!("{t}.ln_final"), tw);
        ln!(add, "fc_norm", w);
        add("projection.weight".into(), &[e, w], tdef(w));
        add("projection.bias".into(), &[e], tdef(w));
        m
    }

    fn close(a: &Init, b: &Init) -> bool {
        let rel = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1e-300);
        match (a, b) {
            (Init::Const(x), Init::Const(y))
            | (Init::Normal(x), Init::Normal(y))
            | (Init::TruncNormal(x), Init::TruncNormal(y))
            | (Init::Uniform(x), Init::Uniform(y)) => x == y || rel(*x, *y),
            _ => false,
        }
    }

    #[test]
    fn rules_match_the_reference_param_specs() {
        let mut odd = UnitokConfig::tiny64();
        odd.vae_init = None;
        odd.vocab_init = None;
        odd.conv_stage_depths = [3, 1];
        odd.decoder_up_depths = [1, 3];
        odd.text_layers = 3;
        odd.conv_expand_ratio = 2.5;
        for cfg in [
            UnitokConfig::tiny64(),
            alt(),
            odd,
            UnitokConfig::vitamin_base(),
            UnitokConfig::vitamin_large(),
        ] {
            let rules = init_rules(&cfg).unwrap();
            let keys = expected_keys(&cfg).unwrap();
            assert_eq!(rules.len(), keys.len());
            for ((k, s, _), (ek, es)) in rules.iter().zip(&keys) {
                assert_eq!((k, s), (ek, es), "{}: order or shape", cfg.model);
            }
            let spec = spec_rules(&cfg);
            assert_eq!(spec.len(), rules.len(), "{}: key count", cfg.model);
            for (k, s, r) in &rules {
                let (ss, sr) = spec.get(k).unwrap_or_else(|| panic!("{k} not in the spec"));
                assert_eq!(s, ss, "{}: shape of {k}", cfg.model);
                assert!(close(r, sr), "{}: {k}: {r:?} vs spec {sr:?}", cfg.model);
            }
        }
    }

    /// (mean, std) of a tensor, in f64.
    fn moments(x: &[f32]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    fn by_key(t: &[(String, HostTensor)]) -> HashMap<&str, &[f32]> {
        t.iter()
            .map(|(k, v)| (k.as_str(), v.as_f32().unwrap()))
            .collect()
    }

    /// Every tensor obeys its rule: constants exactly, bounds strictly, and on tensors of at
    /// least 2000 values the mean and std within 6 standard errors of the rule's.
    #[test]
    fn values_follow_their_rules() {
        for cfg in [UnitokConfig::tiny64(), alt()] {
            let rules = init_rules(&cfg).unwrap();
            let init = reference_init(&cfg, 11).unwrap();
            let keys = expected_keys(&cfg).unwrap();
            assert_eq!(init.len(), keys.len());
            let mut checked = 0;
            for (((k, t), (ek, es)), (_, _, rule)) in init.iter().zip(&keys).zip(&rules) {
                assert_eq!((k, &t.shape), (ek, es), "{}: order or shape", cfg.model);
                let x = t.as_f32().unwrap();
                match *rule {
                    Init::Const(c) => assert!(x.iter().all(|&v| v == c as f32), "{k}"),
                    Init::TruncNormal(_) => assert!(x.iter().all(|v| v.abs() <= 2.0), "{k}"),
                    Init::Uniform(b) => assert!(x.iter().all(|&v| v.abs() <= b as f32), "{k}"),
                    Init::Normal(_) => {}
                }
                if matches!(rule, Init::Const(_)) || x.len() < 2000 {
                    continue;
                }
                let (n, sd) = (x.len() as f64, rule.std());
                let (mean, std) = moments(x);
                assert!(
                    mean.abs() <= 6.0 * sd / n.sqrt(),
                    "{k}: mean {mean} ({rule:?})"
                );
                let rel = std / sd - 1.0;
                assert!(
                    rel.abs() <= 6.0 / (2.0 * n).sqrt() + 1e-4,
                    "{k}: std {std} ({rule:?})"
                );
                checked += 1;
            }
            assert!(
                checked > 20,
                "{}: only {checked} tensors checked",
                cfg.model
            );
        }
    }

    /// Named tensors of tiny64 against numbers worked out by hand from the spec.
    #[test]
    fn tiny64_per_rule_statistics() {
        let cfg = UnitokConfig::tiny64();
        let init = reference_init(&cfg, 0).unwrap();
        let w = by_key(&init);
        let std_close = |key: &str, want: f64, tol: f64| {
            let (mean, std) = moments(w[key]);
            assert!(mean.abs() < want * 0.05, "{key}: mean {mean}");
            assert!(
                (std / want - 1.0).abs() < tol,
                "{key}: std {std}, want {want}"
            );
        };
        // timm ViT linear, trunc-normal 0.02 (the ±2 cut is at 100σ): 256 × 128 values.
        std_close("encoder.blocks.0.mlp.w0.weight", 0.02, 0.02);
        std_close("decoder.blocks.1.attn.qkv.weight", 0.02, 0.02);
        std_close("quant_proj.attn.qkv.weight", 0.02, 0.02);
        // Decoder conv, Xavier-normal gain 0.5: up.conv of up_conv2.0 is 256 → 256, 3 × 3.
        let xavier = 0.5 * (2.0f64 / ((256.0 + 256.0) * 9.0)).sqrt();
        std_close("decoder.up_conv2.0.up.conv.weight", xavier, 0.01);
        // up_conv1: 128 → 64, 3 × 3.
        let xavier = 0.5 * (2.0f64 / ((128.0 + 64.0) * 9.0)).sqrt();
        std_close("decoder.up_conv1.conv.weight", xavier, 0.02);
        // Encoder MBConv 1×1 expansion 64 → 256: timm fan-out normal, fan_out = 256.
        std_close(
            "encoder.patch_embed.backbone.stages.1.1.conv1_1x1.weight",
            (2.0f64 / 256.0).sqrt(),
            0.03,
        );
        // Text tower: token embedding 0.02, positional 0.01, c_fc (2·32)^-½.
        std_close("text_encoder.token_embedding.weight", 0.02, 0.005);
        std_close("text_encoder.positional_embedding", 0.01, 0.05);
        std_close(
            "text_encoder.transformer.resblocks.0.mlp.c_fc.weight",
            64f64.powf(-0.5),
            0.06,
        );
        // Codebooks: U(±8^-½/36), 512 × 8 each.
        let b = 8f64.powf(-0.5) / 36.0;
        assert!((b - 0.009_820_927).abs() < 1e-8);
        for i in 0..8 {
            let x = w[format!("quantizer.codebooks.{i}.codebook.weight").as_str()];
            let max = x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            assert!(max <= b && max > 0.99 * b, "codebook {i}: max |x| {max}");
            let (mean, std) = moments(x);
            assert!(mean.abs() < 0.05 * b && (std / (b / 3f64.sqrt()) - 1.0).abs() < 0.05);
        }
        // pool.proj keeps torch's default: U(±1/√(64·9)) for weight and bias.
        let x = w["encoder.patch_embed.backbone.pool.proj.weight"];
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        assert!(max <= 1.0 / 24.0 && max > 0.99 / 24.0, "{max}");
        assert!(w["encoder.patch_embed.backbone.pool.proj.bias"]
            .iter()
            .all(|v| v.abs() <= 1.0 / 24.0));
        // Exact values.
        let scale = &init.iter().find(|(k, _)| k == "logit_scale").unwrap().1;
        assert!(scale.shape.is_empty());
        assert_eq!(scale.as_f32().unwrap(), &[(1.0f64 / 0.07).ln() as f32]);
        assert!((scale.as_f32().unwrap()[0] - 2.659_26).abs() < 1e-5);
        for key in [
            "encoder.norm.weight",
            "encoder.blocks.0.mlp.norm.weight",
            "quant_proj.norm3.weight",
            "decoder.up_conv2.1.pre_norm.weight",
            "text_encoder.ln_final.weight",
            "fc_norm.weight",
        ] {
            assert!(w[key].iter().all(|&v| v == 1.0), "{key}");
        }
        for key in [
            "encoder.pos_embed",
            "encoder.norm.bias",
            "encoder.blocks.0.attn.qkv.bias",
            "quant_proj.attn.q_bias",
            "quant_proj.attn.v_bias",
            "quant_proj.attn.zero_k_bias",
            "post_quant_proj.attn.zero_k_bias",
            "quantizer.codebooks.3.vocab_usage",
            "decoder.up_conv4.conv2.bias",
            "text_encoder.transformer.resblocks.1.attn.in_proj_bias",
        ] {
            assert!(w[key].iter().all(|&v| v == 0.0), "{key}");
        }
    }

    #[test]
    fn seeded_and_deterministic() {
        let cfg = alt();
        let a = reference_init(&cfg, 5).unwrap();
        assert_eq!(a, reference_init(&cfg, 5).unwrap());
        let b = reference_init(&cfg, 6).unwrap();
        let rules = init_rules(&cfg).unwrap();
        let mut random = 0;
        for (((k, x), (_, y)), (_, _, r)) in a.iter().zip(&b).zip(&rules) {
            if matches!(r, Init::Const(_)) {
                assert_eq!(x, y, "{k}");
            } else {
                assert_ne!(x, y, "{k}: the same under seeds 5 and 6");
                random += 1;
            }
        }
        assert!(random > 50);
        // Different keys of one shape and rule draw different values.
        let w = by_key(&a);
        assert_ne!(
            w["encoder.blocks.0.attn.proj.weight"],
            w["encoder.blocks.1.attn.proj.weight"]
        );
    }

    /// torch's trunc_normal_ cuts at absolute ±2, not ±2σ: with std 1.5 the cut is at 1.33σ
    /// and the std shrinks to ≈ 1.02; a ±2σ cut would leave ≈ 1.32.
    #[test]
    fn trunc_normal_cuts_at_absolute_two() {
        let x = Init::TruncNormal(1.5).sample(200_000, &mut key_rng(1, "t"));
        assert!(x.iter().all(|v| v.abs() <= 2.0));
        let a = 2.0 / 1.5;
        let pdf = (-a * a / 2.0f64).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mass = libm::erf(a / 2f64.sqrt());
        let want = 1.5 * (1.0 - 2.0 * a * pdf / mass).sqrt();
        let (mean, std) = moments(&x);
        assert!(
            mean.abs() < 0.01 && (std - want).abs() < 0.01,
            "{std} vs {want}"
        );
        assert!((want - 1.023).abs() < 0.005, "{want}");
    }

    #[test]
    fn vae_and_vocab_init_knobs() {
        let rule = |cfg: &UnitokConfig, key: &str| {
            init_rules(cfg)
                .unwrap()
                .into_iter()
                .find(|(k, _, _)| k == key)
                .unwrap()
                .2
        };
        let num = |x: f64| Some(serde_json::Number::from_f64(x).unwrap());
        let conv = "decoder.up_conv1.conv.weight"; // [64, 128, 3, 3]
        let cb = "quantizer.codebooks.0.codebook.weight"; // [512, 8]
        let lin = "decoder.blocks.0.attn.qkv.weight";
        let mut cfg = UnitokConfig::tiny64();
        cfg.vae_init = num(0.03);
        cfg.vocab_init = num(0.5);
        assert_eq!(rule(&cfg, conv), Init::TruncNormal(0.03));
        assert_eq!(rule(&cfg, cb), Init::TruncNormal(0.5));
        assert_eq!(rule(&cfg, lin), Init::TruncNormal(0.02));
        cfg.vae_init = num(-1.0);
        cfg.vocab_init = num(-2.0);
        let xavier = (2.0f64 / ((128.0 + 64.0) * 9.0)).sqrt();
        assert!(close(&rule(&cfg, conv), &Init::Normal(xavier)));
        assert!(close(
            &rule(&cfg, cb),
            &Init::Uniform(2.0 / 8f64.sqrt() / 36.0)
        ));
        // vocab_init 0 keeps nn.Embedding's N(0, 1); vae_init 0 is Xavier with gain 0.
        cfg.vae_init = num(0.0);
        cfg.vocab_init = Some(serde_json::Number::from(0));
        assert_eq!(rule(&cfg, cb), Init::Normal(1.0));
        assert_eq!(rule(&cfg, conv), Init::Normal(0.0));
        let w = InitWeights::new(&cfg, 1).unwrap();
        assert!(w
            .get(conv)
            .unwrap()
            .as_f32()
            .unwrap()
            .iter()
            .all(|&v| v == 0.0));
        // Absent knobs take the reference defaults −0.5 and −1.
        cfg.vae_init = None;
        cfg.vocab_init = None;
        let xavier = 0.5 * (2.0f64 / ((128.0 + 64.0) * 9.0)).sqrt();
        assert!(close(&rule(&cfg, conv), &Init::Normal(xavier)));
        assert!(close(
            &rule(&cfg, cb),
            &Init::Uniform(1.0 / 8f64.sqrt() / 36.0)
        ));
    }

    #[test]
    fn init_weights_is_a_weight_source() {
        use crate::model::{assemble, ParamSource};
        let cfg = UnitokConfig::tiny64();
        let w = InitWeights::new(&cfg, 2).unwrap();
        assert_eq!(w.len(), expected_keys(&cfg).unwrap().len());
        let t = w.tensor("encoder.blocks.0.norm1.weight").unwrap();
        assert_eq!(
            (t.shape.as_slice(), t.as_f32().unwrap()[0]),
            (&[128][..], 1.0)
        );
        assert!(w.tensor("no.such.key").is_err());
        // The fused qkv bias of a projection: q_bias ‖ zero_k_bias ‖ v_bias, all zero.
        let keys = ["q_bias", "zero_k_bias", "v_bias"].map(|k| format!("quant_proj.attn.{k}"));
        let b = assemble(&ParamSource::Concat(keys.to_vec()), &w).unwrap();
        assert_eq!(b.shape, vec![3 * 128]);
        assert!(b.as_f32().unwrap().iter().all(|&v| v == 0.0));
        let cbs = (0..8)
            .map(|i| format!("quantizer.codebooks.{i}.codebook.weight"))
            .collect();
        let s = assemble(&ParamSource::Stack(cbs), &w).unwrap();
        assert_eq!(s.shape, vec![8, 512, 8]);
        // A key no rule knows is an error, not a guess.
        let shapes = HashMap::new();
        let e = rule_for("encoder.extra.weight", &[4, 4], &shapes, &cfg, (-0.5, -1.0));
        assert!(e.unwrap_err().to_string().contains("encoder.extra.weight"));
    }
}
