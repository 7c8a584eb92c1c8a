//! The model configuration: every architecture knob as an explicit field.
//!
//! The JSON key names are those of the golden `config.json` (and of the `unitok_config`
//! metadata entry of our safetensors files). The first block of fields are regular fields of the
//! reference `Args` class; the second block are constants the reference hard-codes per variant
//! name, made configuration here (see the architecture notes, §9).
//!
//! Official checkpoints carry only the `Args` fields. [`UnitokConfig::from_args`] fills the rest
//! from the preset of the checkpoint's `model` name and lets every key the checkpoint has win.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Total spatial downsampling of the encoder (stem 2 × stage 0 2 × stage 1 2 × pool 2).
pub const DOWNSAMPLE: usize = 16;

/// Every architecture knob of a UniTok model. Field order is the serialisation order of the
/// golden `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitokConfig {
    /// Variant name (`vitamin_large`, `vitamin_base`, `vitamin_tiny64`, ...). Informational once
    /// the other fields are set; it selects the preset in [`UnitokConfig::from_args`].
    pub model: String,
    /// Square input side in pixels; a multiple of 16.
    pub img_size: usize,
    /// Code entries summed over all sub-codebooks.
    pub vocab_size: usize,
    /// Bottleneck width summed over all sub-codebooks.
    pub vocab_width: usize,
    pub num_codebooks: usize,
    /// Commitment weight inside the VQ loss.
    pub vq_beta: f64,
    /// Projection type around the quantiser; only `attn` is implemented.
    pub quant_proj: String,
    /// Register tokens; only 0 is implemented.
    pub num_query: usize,
    /// Width of the CLIP joint embedding.
    pub embed_dim: usize,
    /// Stochastic depth rate of the encoder and decoder transformers (training only).
    pub drop_path: f64,
    pub text_width: usize,
    pub text_heads: usize,
    pub text_layers: usize,
    pub text_vocab_size: usize,
    pub text_context_length: usize,
    /// Initialisation knobs of the reference, kept as the checkpoint typed them (the reference
    /// writes `vocab_init` as the integer -1), so a config round-trips byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_init: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_init: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Channels of the conv stem.
    pub stem_width: usize,
    /// Output channels of MBConv stage 0 and stage 1.
    pub conv_stage_dims: [usize; 2],
    /// MBConv blocks per stage; the first block of each stage has stride 2.
    pub conv_stage_depths: [usize; 2],
    /// Hidden width of every (inverse) MBConv block = ratio × its output channels, rounded to a
    /// multiple of 8 ([`make_divisible`]).
    pub conv_expand_ratio: f64,
    /// Transformer width, encoder and decoder.
    pub vit_width: usize,
    /// Transformer blocks in the encoder, and again in the decoder.
    pub vit_depth: usize,
    pub vit_heads: usize,
    /// GeGLU hidden width = int(vit_width × ratio).
    pub vit_mlp_ratio: f64,
    /// Heads of `quant_proj` / `post_quant_proj`; the reference uses vit_width / vocab_width.
    pub attn_proj_heads: usize,
    /// GeGLU hidden width inside the projections = int(ratio × their output width).
    pub attn_proj_mlp_ratio: f64,
    /// (transformer width, channels of `up_conv1`/`up_conv2`, channels of `up_conv3`).
    pub decoder_dims: [usize; 3],
    /// Inverse-MBConv blocks in `up_conv2` and `up_conv3`; the first of each upsamples ×2.
    pub decoder_up_depths: [usize; 2],
    /// Text MLP hidden width = int(text_width × ratio).
    pub text_mlp_ratio: f64,
}

/// The config keys in serialisation order.
pub const CONFIG_KEYS: &[&str] = &[
    "model",
    "img_size",
    "vocab_size",
    "vocab_width",
    "num_codebooks",
    "vq_beta",
    "quant_proj",
    "num_query",
    "embed_dim",
    "drop_path",
    "text_width",
    "text_heads",
    "text_layers",
    "text_vocab_size",
    "text_context_length",
    "vae_init",
    "vocab_init",
    "seed",
    "stem_width",
    "conv_stage_dims",
    "conv_stage_depths",
    "conv_expand_ratio",
    "vit_width",
    "vit_depth",
    "vit_heads",
    "vit_mlp_ratio",
    "attn_proj_heads",
    "attn_proj_mlp_ratio",
    "decoder_dims",
    "decoder_up_depths",
    "text_mlp_ratio",
];

/// timm's `make_divisible(v, 8)`: round to the nearest multiple of `divisor`, but never more
/// than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

impl UnitokConfig {
    /// The released model (`unitok_tokenizer.pth`): ViTamin-L/16 at 256², 8 × 4096 codes of
    /// width 8, CLIP text tower 768/12/12.
    pub fn vitamin_large() -> Self {
        UnitokConfig {
            model: "vitamin_large".into(),
            img_size: 256,
            vocab_size: 32768,
            vocab_width: 64,
            num_codebooks: 8,
            vq_beta: 0.25,
            quant_proj: "attn".into(),
            num_query: 0,
            embed_dim: 768,
            drop_path: 0.1,
            text_width: 768,
            text_heads: 12,
            text_layers: 12,
            text_vocab_size: 49408,
            text_context_length: 77,
            vae_init: None,
            vocab_init: None,
            seed: None,
            stem_width: 160,
            conv_stage_dims: [160, 320],
            conv_stage_depths: [2, 4],
            conv_expand_ratio: 4.0,
            vit_width: 1024,
            vit_depth: 31,
            vit_heads: 16,
            vit_mlp_ratio: 2.0,
            attn_proj_heads: 16,
            attn_proj_mlp_ratio: 2.0,
            decoder_dims: [1024, 320, 160],
            decoder_up_depths: [4, 2],
            text_mlp_ratio: 4.0,
        }
    }

    /// The reference's `vitamin_base` variant (no released UniTok weights use it).
    ///
    /// The architecture notes give only its decoder table entry, (768, 256, 128). The encoder
    /// knobs are an assumption taken from the ViTamin registry that UniTok's `models/vitamin.py`
    /// copies: stem 128, stage dims (128, 256), depths (2, 4), transformer 768 wide, 14 deep,
    /// 12 heads, GeGLU ratio 2. The remaining knobs (codebooks, text tower, up-stage depths
    /// (4, 2), 256² input) are the reference `Args` defaults, as for `vitamin_large`;
    /// `attn_proj_heads` = 768 / 64 = 12 as the reference computes it.
    pub fn vitamin_base() -> Self {
        UnitokConfig {
            model: "vitamin_base".into(),
            stem_width: 128,
            conv_stage_dims: [128, 256],
            conv_stage_depths: [2, 4],
            vit_width: 768,
            vit_depth: 14,
            vit_heads: 12,
            attn_proj_heads: 12,
            decoder_dims: [768, 256, 128],
            ..Self::vitamin_large()
        }
    }

    /// The golden development configuration (`shared/goldens/tiny64/config.json`).
    pub fn tiny64() -> Self {
        UnitokConfig {
            model: "vitamin_tiny64".into(),
            img_size: 64,
            vocab_size: 4096,
            vocab_width: 64,
            num_codebooks: 8,
            vq_beta: 0.25,
            quant_proj: "attn".into(),
            num_query: 0,
            embed_dim: 64,
            drop_path: 0.0,
            text_width: 32,
            text_heads: 2,
            text_layers: 2,
            text_vocab_size: 49408,
            text_context_length: 77,
            vae_init: Some(Number::from_f64(-0.5).expect("finite")),
            vocab_init: Some(Number::from(-1)),
            seed: Some(0),
            stem_width: 32,
            conv_stage_dims: [32, 64],
            conv_stage_depths: [1, 2],
            conv_expand_ratio: 4.0,
            vit_width: 128,
            vit_depth: 2,
            vit_heads: 2,
            vit_mlp_ratio: 2.0,
            attn_proj_heads: 2,
            attn_proj_mlp_ratio: 2.0,
            decoder_dims: [128, 64, 32],
            decoder_up_depths: [2, 2],
            text_mlp_ratio: 4.0,
        }
    }

    /// The preset registered under a variant name, if any.
    pub fn preset(model: &str) -> Option<Self> {
        match model {
            "vitamin_large" => Some(Self::vitamin_large()),
            "vitamin_base" => Some(Self::vitamin_base()),
            "vitamin_tiny64" | "tiny64" => Some(Self::tiny64()),
            _ => None,
        }
    }

    /// Parse a config JSON object (all architecture keys required, unknown keys rejected) and
    /// validate it.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let cfg: UnitokConfig = serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("UniTok config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Build the config from a checkpoint's `args`.
    ///
    /// If `args` has every architecture key it is taken as is. Otherwise `model` must name a
    /// preset: its knobs fill the missing keys and every key `args` has overrides the preset.
    /// Where `args` changes `vit_width` or `vocab_width` without giving `attn_proj_heads` /
    /// `decoder_dims`, those are re-derived as the reference does (vit_width / vocab_width, and
    /// the transformer width as the decoder's first dim). Keys of `args` that are not config
    /// keys (training options, `dtype`, ...) are ignored.
    pub fn from_args(args: &Map<String, Value>) -> Result<Self> {
        let model = args
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Invalid("checkpoint args: no string 'model' entry".into()))?;
        let required = CONFIG_KEYS
            .iter()
            .filter(|k| !matches!(**k, "vae_init" | "vocab_init" | "seed"));
        let missing: Vec<&str> = required
            .copied()
            .filter(|k| !args.contains_key(*k))
            .collect();
        let mut obj = Map::new();
        if !missing.is_empty() {
            let preset = Self::preset(model).ok_or_else(|| {
                Error::Invalid(format!(
                    "checkpoint args: model '{model}' has no built-in preset and the args lack {}",
                    missing.join(", ")
                ))
            })?;
            let Value::Object(p) = serde_json::to_value(&preset).expect("config serialises") else {
                unreachable!("a struct serialises to an object")
            };
            obj = p;
        }
        for key in CONFIG_KEYS {
            if let Some(v) = args.get(*key) {
                if v.is_null() && matches!(*key, "vae_init" | "vocab_init" | "seed") {
                    obj.remove(*key);
                } else {
                    obj.insert(key.to_string(), v.clone());
                }
            }
        }
        let mut cfg: UnitokConfig = serde_json::from_value(Value::Object(obj))
            .map_err(|e| Error::Invalid(format!("checkpoint args for model '{model}': {e}")))?;
        if !missing.is_empty() {
            if !args.contains_key("attn_proj_heads") && cfg.vocab_width > 0 {
                cfg.attn_proj_heads = cfg.vit_width / cfg.vocab_width;
            }
            if !args.contains_key("decoder_dims") {
                cfg.decoder_dims[0] = cfg.vit_width;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as JSON in the layout Python's `json.dumps` writes (`", "` and `": "`
    /// separators, non-ASCII escaped), which is how the golden metadata entry is written.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
        self.serialize(&mut ser).expect("config serialises");
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// Check every consistency rule; the error lists all violations.
    pub fn validate(&self) -> Result<()> {
        let mut bad = Vec::new();
        let mut need = |ok: bool, msg: String| {
            if !ok {
                bad.push(msg)
            }
        };
        let pos = [
            ("img_size", self.img_size),
            ("vocab_size", self.vocab_size),
            ("vocab_width", self.vocab_width),
            ("num_codebooks", self.num_codebooks),
            ("embed_dim", self.embed_dim),
            ("text_width", self.text_width),
            ("text_heads", self.text_heads),
            ("text_layers", self.text_layers),
            ("text_context_length", self.text_context_length),
            ("stem_width", self.stem_width),
            ("conv_stage_dims[0]", self.conv_stage_dims[0]),
            ("conv_stage_dims[1]", self.conv_stage_dims[1]),
            ("conv_stage_depths[0]", self.conv_stage_depths[0]),
            ("conv_stage_depths[1]", self.conv_stage_depths[1]),
            ("vit_width", self.vit_width),
            ("vit_depth", self.vit_depth),
            ("vit_heads", self.vit_heads),
            ("attn_proj_heads", self.attn_proj_heads),
            ("decoder_dims[1]", self.decoder_dims[1]),
            ("decoder_dims[2]", self.decoder_dims[2]),
            ("decoder_up_depths[0]", self.decoder_up_depths[0]),
            ("decoder_up_depths[1]", self.decoder_up_depths[1]),
        ];
        let zero: Vec<&str> = pos
            .iter()
            .filter(|(_, v)| *v == 0)
            .map(|(k, _)| *k)
            .collect();
        need(
            zero.is_empty(),
            format!("must be positive: {}", zero.join(", ")),
        );
        for (k, r) in [
            ("conv_expand_ratio", self.conv_expand_ratio),
            ("vit_mlp_ratio", self.vit_mlp_ratio),
            ("attn_proj_mlp_ratio", self.attn_proj_mlp_ratio),
            ("text_mlp_ratio", self.text_mlp_ratio),
        ] {
            need(
                r.is_finite() && r > 0.0,
                format!("{k} = {r} must be a positive number"),
            );
        }
        need(
            self.drop_path.is_finite() && (0.0..1.0).contains(&self.drop_path),
            format!("drop_path = {} must be in [0, 1)", self.drop_path),
        );
        need(
            self.vq_beta.is_finite(),
            format!("vq_beta = {} must be finite", self.vq_beta),
        );
        need(
            self.img_size.is_multiple_of(DOWNSAMPLE),
            format!(
                "img_size = {} must be divisible by {DOWNSAMPLE}",
                self.img_size
            ),
        );
        if self.num_codebooks > 0 {
            need(
                self.vocab_size.is_multiple_of(self.num_codebooks),
                format!(
                    "vocab_size = {} (total over codebooks) must be divisible by num_codebooks = {}",
                    self.vocab_size, self.num_codebooks
                ),
            );
            need(
                self.vocab_width.is_multiple_of(self.num_codebooks),
                format!(
                    "vocab_width = {} (total over codebooks) must be divisible by num_codebooks = {}",
                    self.vocab_width, self.num_codebooks
                ),
            );
        }
        if self.vocab_width > 0 {
            need(
                self.vit_width.is_multiple_of(self.vocab_width),
                format!(
                    "vocab_width = {} must divide vit_width = {}",
                    self.vocab_width, self.vit_width
                ),
            );
        }
        need(
            self.attn_proj_heads * self.vocab_width == self.vit_width,
            format!(
                "attn_proj_heads = {} must equal vit_width / vocab_width = {} / {} (the projections' \
                 head dim is vocab_width)",
                self.attn_proj_heads, self.vit_width, self.vocab_width
            ),
        );
        if self.vit_heads > 0 {
            need(
                self.vit_width.is_multiple_of(self.vit_heads),
                format!(
                    "vit_heads = {} must divide vit_width = {}",
                    self.vit_heads, self.vit_width
                ),
            );
        }
        if self.text_heads > 0 {
            need(
                self.text_width.is_multiple_of(self.text_heads),
                format!(
                    "text_heads = {} must divide text_width = {}",
                    self.text_heads, self.text_width
                ),
            );
        }
        need(
            self.decoder_dims[0] == self.vit_width,
            format!(
                "decoder_dims[0] = {} must equal vit_width = {} (the decoder transformer width)",
                self.decoder_dims[0], self.vit_width
            ),
        );
        need(
            self.text_vocab_size >= 49408,
            format!(
                "text_vocab_size = {} is below 49408, the size of the CLIP BPE vocabulary the \
                 tokenizer produces ids for",
                self.text_vocab_size
            ),
        );
        need(
            self.text_context_length >= 3,
            format!(
                "text_context_length = {} must be at least 3",
                self.text_context_length
            ),
        );
        need(
            self.quant_proj == "attn",
            format!(
                "quant_proj = '{}' is not supported (only 'attn' is implemented)",
                self.quant_proj
            ),
        );
        need(
            self.num_query == 0,
            format!(
                "num_query = {} is not supported (only 0 register tokens is implemented)",
                self.num_query
            ),
        );
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "invalid UniTok config '{}': {}",
                self.model,
                bad.join("; ")
            )))
        }
    }

    /// Entries of one sub-codebook.
    pub fn codebook_size(&self) -> usize {
        self.vocab_size / self.num_codebooks
    }
    /// Width of one sub-code.
    pub fn code_dim(&self) -> usize {
        self.vocab_width / self.num_codebooks
    }
    /// Hidden width of an MBConv / inverse-MBConv block with `out_chs` output channels.
    pub fn mbconv_mid(&self, out_chs: usize) -> usize {
        make_divisible(out_chs as f64 * self.conv_expand_ratio, 8)
    }
    /// GeGLU hidden width of the encoder and decoder transformer blocks.
    pub fn vit_mlp_hidden(&self) -> usize {
        (self.vit_width as f64 * self.vit_mlp_ratio) as usize
    }
    pub fn vit_head_dim(&self) -> usize {
        self.vit_width / self.vit_heads
    }
    /// Head dim of the attention projections (= vocab_width).
    pub fn attn_proj_head_dim(&self) -> usize {
        self.vit_width / self.attn_proj_heads
    }
    /// GeGLU hidden width inside a projection whose output width is `out`.
    pub fn attn_proj_mlp_hidden(&self, out: usize) -> usize {
        (out as f64 * self.attn_proj_mlp_ratio) as usize
    }
    pub fn text_head_dim(&self) -> usize {
        self.text_width / self.text_heads
    }
    pub fn text_mlp_hidden(&self) -> usize {
        (self.text_width as f64 * self.text_mlp_ratio) as usize
    }
    /// Token grid side for an input side (`img / 16`); an error if not divisible.
    pub fn grid_for(&self, img: usize) -> Result<usize> {
        if img == 0 || !img.is_multiple_of(DOWNSAMPLE) {
            return Err(Error::Invalid(format!(
                "image side {img} must be a positive multiple of {DOWNSAMPLE}"
            )));
        }
        Ok(img / DOWNSAMPLE)
    }
    /// Tokens per image of side `img` (`(img / 16)²`).
    pub fn tokens_for(&self, img: usize) -> Result<usize> {
        Ok(self.grid_for(img)?.pow(2))
    }
    /// Tokens per image at the configured `img_size`.
    pub fn tokens(&self) -> usize {
        (self.img_size / DOWNSAMPLE).pow(2)
    }
}

/// `json.dumps` layout: `", "` between items, `": "` after keys, non-ASCII as `\u` escapes of four hex digits.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for c in [
            UnitokConfig::vitamin_large(),
            UnitokConfig::vitamin_base(),
            UnitokConfig::tiny64(),
        ] {
            c.validate().unwrap();
        }
        let l = UnitokConfig::vitamin_large();
        assert_eq!(
            (l.codebook_size(), l.code_dim(), l.tokens()),
            (4096, 8, 256)
        );
        assert_eq!(
            (l.mbconv_mid(320), l.mbconv_mid(160), l.vit_mlp_hidden()),
            (1280, 640, 2048)
        );
        assert_eq!(
            (
                l.attn_proj_head_dim(),
                l.attn_proj_mlp_hidden(64),
                l.text_mlp_hidden()
            ),
            (64, 128, 3072)
        );
        assert_eq!(l.tokens_for(512).unwrap(), 1024);
        assert!(l.tokens_for(100).is_err());
    }

    #[test]
    fn make_divisible_matches_timm() {
        assert_eq!(make_divisible(1280.0, 8), 1280);
        assert_eq!(make_divisible(4.0 * 3.0, 8), 16);
        assert_eq!(make_divisible(20.0, 8), 24);
        assert_eq!(make_divisible(7.0, 8), 8);
        assert_eq!(make_divisible(2.5 * 30.0, 8), 72);
        assert_eq!(make_divisible(10.0, 8), 16);
    }

    #[test]
    fn validate_lists_every_violation() {
        let mut c = UnitokConfig::tiny64();
        c.img_size = 60;
        c.vocab_size = 4095;
        c.attn_proj_heads = 3;
        c.quant_proj = "linear".into();
        let msg = c.validate().unwrap_err().to_string();
        for needle in [
            "img_size = 60",
            "vocab_size = 4095",
            "attn_proj_heads = 3",
            "quant_proj = 'linear'",
        ] {
            assert!(msg.contains(needle), "{needle} not in: {msg}");
        }
    }

    #[test]
    fn python_json_layout() {
        let s = UnitokConfig::tiny64().to_json_string();
        assert!(
            s.starts_with("{\"model\": \"vitamin_tiny64\", \"img_size\": 64, "),
            "{s}"
        );
        assert!(
            s.contains("\"vae_init\": -0.5, \"vocab_init\": -1, \"seed\": 0,"),
            "{s}"
        );
        assert!(s.contains("\"decoder_dims\": [128, 64, 32]"), "{s}");
        assert_eq!(
            UnitokConfig::from_json_str(&s).unwrap(),
            UnitokConfig::tiny64()
        );
    }

    #[test]
    fn from_args_fills_official_knobs_from_preset() {
        // What an official checkpoint's args look like: Args fields only, plus unrelated keys.
        let args: Map<String, Value> = serde_json::from_str(
            r#"{"model": "vitamin_large", "exp_name": "x", "img_size": 256, "vocab_size": 32768,
                "vocab_width": 64, "num_codebooks": 8, "vq_beta": 0.25, "quant_proj": "attn",
                "num_query": 0, "embed_dim": 768, "drop_path": 0.1, "text_width": 768,
                "text_heads": 12, "text_layers": 12, "text_vocab_size": 49408,
                "text_context_length": 77, "vae_init": -0.5, "vocab_init": -1, "seed": 1,
                "dtype": "torch.float32", "lr": 0.0005}"#,
        )
        .unwrap();
        let c = UnitokConfig::from_args(&args).unwrap();
        let want = UnitokConfig {
            vae_init: Some(Number::from_f64(-0.5).unwrap()),
            vocab_init: Some(Number::from(-1)),
            seed: Some(1),
            ..UnitokConfig::vitamin_large()
        };
        assert_eq!(c, want);

        // An override of an Args field re-derives the heads of the projections.
        let mut a2 = args.clone();
        a2.insert("vocab_width".into(), Value::from(32));
        let c2 = UnitokConfig::from_args(&a2).unwrap();
        assert_eq!(
            (c2.vocab_width, c2.attn_proj_heads, c2.code_dim()),
            (32, 32, 4)
        );

        let mut a3 = args;
        a3.insert("model".into(), Value::from("vitamin_huge"));
        let e = UnitokConfig::from_args(&a3).unwrap_err().to_string();
        assert!(
            e.contains("vitamin_huge") && e.contains("stem_width"),
            "{e}"
        );
    }
}
