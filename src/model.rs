//! The UniTok model as graphs: encoder, attention projections, multi-codebook quantizer, pixel
//! decoder, CLIP image head and text tower, built from the op library with the official
//! parameter names (spec: shared research `unitok-architecture.md`).
//!
//! A `ModelBuilder` records ops into a `Graph` and every parameter it touches under its official
//! checkpoint key. Two parameters are derived on the host when weights are bound, because the
//! kernels want them fused: the AttnProjection qkv bias (q_bias ‖ zero_k_bias ‖ v_bias) and the
//! stacked codebooks [G, K, d] of the quantizer's G `codebook.weight` tables.

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::graph::{Graph, Plan, TensorId};
use crate::tensor::{DType, HostTensor};
use std::collections::BTreeMap;

/// Where a graph parameter's data comes from.
#[derive(Clone, Debug)]
pub enum ParamSource {
    Key(String),
    /// Concatenation of several 1-D tensors (the AttnProjection qkv bias).
    Concat(Vec<String>),
    /// Stacking of equally shaped tensors along a new first dim (the codebooks).
    Stack(Vec<String>),
}

pub struct ModelBuilder<'c> {
    pub cfg: &'c UnitokConfig,
    pub g: Graph,
    params: Vec<(TensorId, ParamSource)>,
    /// Every official key this graph reads, with its shape.
    pub keys: BTreeMap<String, Vec<usize>>,
    /// Training graphs save each attention's log-sum-exp for its backward pass instead of
    /// recomputing the forward.
    pub training: bool,
    /// With `Some(batch)`, every transformer residual branch of the encoder and decoder is
    /// multiplied by a per-sample drop-path mask input [batch, 1, 1] (see `drop_masks`).
    pub drop_path_batch: Option<usize>,
    /// The drop-path mask inputs with their drop rates, in recording order.
    pub drop_masks: Vec<(TensorId, f32)>,
}

const EPS_VIT: f32 = 1e-6;
const EPS_TORCH: f32 = 1e-5;

impl<'c> ModelBuilder<'c> {
    pub fn new(cfg: &'c UnitokConfig) -> Self {
        ModelBuilder {
            cfg,
            g: Graph::new(),
            params: Vec::new(),
            keys: BTreeMap::new(),
            training: false,
            drop_path_batch: None,
            drop_masks: Vec::new(),
        }
    }

    /// Fused attention over packed qkv; in training graphs the log-sum-exp is kept for backward.
    fn attend(
        &mut self,
        qkv: TensorId,
        heads: usize,
        causal: bool,
        head_average: bool,
    ) -> Result<TensorId> {
        if self.training {
            Ok(self
                .g
                .attention_with_lse(qkv, heads, causal, head_average)?
                .0)
        } else {
            self.g.attention(qkv, heads, causal, head_average)
        }
    }

    /// Stochastic depth on a residual branch [B, ...]: x · mask[b], the mask being 0 or
    /// 1/(1 − rate) per sample (timm's `drop_path` with scale_by_keep), drawn by the trainer.
    fn drop_path(&mut self, x: TensorId, rate: f32) -> Result<TensorId> {
        let Some(batch) = self.drop_path_batch else {
            return Ok(x);
        };
        if rate <= 0.0 {
            return Ok(x);
        }
        let rank = self.g.shape(x).len();
        let mut shape = vec![1; rank];
        shape[0] = batch;
        let name = format!("drop_path.{}", self.drop_masks.len());
        let mask = self.g.input(&name, &shape, DType::F32);
        self.drop_masks.push((mask, rate));
        self.g.mul(x, mask)
    }

    pub(crate) fn p(&mut self, key: &str, shape: &[usize]) -> TensorId {
        if let Some((t, _)) = self
            .params
            .iter()
            .find(|(_, s)| matches!(s, ParamSource::Key(k) if k == key))
        {
            return *t;
        }
        self.keys.insert(key.to_string(), shape.to_vec());
        let t = self.g.param(key, shape, DType::F32);
        self.params.push((t, ParamSource::Key(key.to_string())));
        t
    }

    fn linear(
        &mut self,
        x: TensorId,
        prefix: &str,
        din: usize,
        dout: usize,
        bias: bool,
    ) -> Result<TensorId> {
        let w = self.p(&format!("{prefix}.weight"), &[dout, din]);
        let b = if bias {
            Some(self.p(&format!("{prefix}.bias"), &[dout]))
        } else {
            None
        };
        self.g.linear(x, w, b)
    }

    fn ln(&mut self, x: TensorId, prefix: &str, c: usize, eps: f32) -> Result<TensorId> {
        let w = self.p(&format!("{prefix}.weight"), &[c]);
        let b = self.p(&format!("{prefix}.bias"), &[c]);
        self.g.layer_norm(x, w, b, eps)
    }

    fn ln2d(&mut self, x: TensorId, prefix: &str, c: usize) -> Result<TensorId> {
        let w = self.p(&format!("{prefix}.weight"), &[c]);
        let b = self.p(&format!("{prefix}.bias"), &[c]);
        self.g.layer_norm2d(x, w, b, EPS_VIT)
    }

    fn conv(
        &mut self,
        x: TensorId,
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
    ) -> Result<TensorId> {
        let w = self.p(&format!("{prefix}.weight"), &[cout, cin / groups, k, k]);
        let b = self.p(&format!("{prefix}.bias"), &[cout]);
        self.g.conv2d(x, w, Some(b), stride, k / 2, groups)
    }

    /// GeGLU MLP with its own LayerNorm (eps 1e-6): w2(gelu_tanh(w0 n) · w1 n), n = LN(x).
    fn geglu(&mut self, x: TensorId, prefix: &str, c: usize, hidden: usize) -> Result<TensorId> {
        let n = self.ln(x, &format!("{prefix}.norm"), c, EPS_VIT)?;
        let a = self.linear(n, &format!("{prefix}.w0"), c, hidden, true)?;
        let b = self.linear(n, &format!("{prefix}.w1"), c, hidden, true)?;
        let h = self.g.geglu(a, b)?;
        self.linear(h, &format!("{prefix}.w2"), hidden, c, true)
    }

    /// timm pre-norm ViT block with the GeGLU MLP. x: [B, L, C]. `drop_rate` is this block's
    /// stochastic-depth rate (used only when the builder has drop-path masks enabled).
    fn vit_block(&mut self, x: TensorId, prefix: &str, drop_rate: f32) -> Result<TensorId> {
        let c = self.cfg.vit_width;
        let hidden = self.cfg.vit_mlp_hidden();
        let n1 = self.ln(x, &format!("{prefix}.norm1"), c, EPS_VIT)?;
        let qkv = self.linear(n1, &format!("{prefix}.attn.qkv"), c, 3 * c, true)?;
        let a = self.attend(qkv, self.cfg.vit_heads, false, false)?;
        let a = self.linear(a, &format!("{prefix}.attn.proj"), c, c, true)?;
        let a = self.drop_path(a, drop_rate)?;
        let x = self.g.add(x, a)?;
        let n2 = self.ln(x, &format!("{prefix}.norm2"), c, EPS_VIT)?;
        let m = self.geglu(n2, &format!("{prefix}.mlp"), c, hidden)?;
        let m = self.drop_path(m, drop_rate)?;
        self.g.add(x, m)
    }

    /// timm's stochastic-depth decay rule: block i of `depth` gets rate · i / (depth − 1).
    fn block_drop_rate(&self, i: usize) -> f32 {
        let depth = self.cfg.vit_depth;
        if depth <= 1 {
            return 0.0;
        }
        (self.cfg.drop_path * i as f64 / (depth - 1) as f64) as f32
    }

    /// MbConvLNBlock (encoder), NCHW.
    fn mbconv(
        &mut self,
        x: TensorId,
        prefix: &str,
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> Result<TensorId> {
        let mid = self.cfg.mbconv_mid(cout);
        let short = if stride == 2 {
            let s = self.g.avg_pool2d(x, 3, 2, 1, false)?;
            if cin != cout {
                self.conv(s, &format!("{prefix}.shortcut.expand"), cin, cout, 1, 1, 1)?
            } else {
                s
            }
        } else if cin != cout {
            self.conv(x, &format!("{prefix}.shortcut.expand"), cin, cout, 1, 1, 1)?
        } else {
            x
        };
        let h = self.ln2d(x, &format!("{prefix}.pre_norm"), cin)?;
        let h = self.conv(h, &format!("{prefix}.conv1_1x1"), cin, mid, 1, 1, 1)?;
        let h = self.g.gelu(h)?;
        let h = self.conv(h, &format!("{prefix}.conv2_kxk"), mid, mid, 3, stride, mid)?;
        let h = self.g.gelu(h)?;
        let h = self.conv(h, &format!("{prefix}.conv3_1x1"), mid, cout, 1, 1, 1)?;
        self.g.add(h, short)
    }

    /// Nearest ×2 then a 3×3 conv (`Upsample2d`).
    fn upsample_conv(
        &mut self,
        x: TensorId,
        prefix: &str,
        cin: usize,
        cout: usize,
    ) -> Result<TensorId> {
        let u = self.g.upsample_nearest2x(x)?;
        self.conv(u, &format!("{prefix}.conv"), cin, cout, 3, 1, 1)
    }

    /// InvMbConvLNBlock (decoder), NCHW.
    fn inv_mbconv(
        &mut self,
        x: TensorId,
        prefix: &str,
        cin: usize,
        cout: usize,
        up: bool,
    ) -> Result<TensorId> {
        let mid = self.cfg.mbconv_mid(cout);
        let short = if up {
            self.upsample_conv(x, &format!("{prefix}.shortcut"), cin, cout)?
        } else if cin != cout {
            return Err(Error::Invalid(format!("{prefix}: a stride-1 inverse MBConv with {cin} != {cout} channels is not part of UniTok")));
        } else {
            x
        };
        let h = self.ln2d(x, &format!("{prefix}.pre_norm"), cin)?;
        let h = self.conv(h, &format!("{prefix}.conv1_1x1"), cin, mid, 1, 1, 1)?;
        let mut h = self.g.gelu(h)?;
        if up {
            h = self.upsample_conv(h, &format!("{prefix}.up"), mid, mid)?;
        }
        let h = self.conv(h, &format!("{prefix}.conv2_kxk"), mid, mid, 3, 1, mid)?;
        let h = self.g.gelu(h)?;
        let h = self.conv(h, &format!("{prefix}.conv3_1x1"), mid, cout, 1, 1, 1)?;
        self.g.add(h, short)
    }

    /// Encoder: image [B,3,H,W] in [-1,1] → tokens [B, L, C] after the final LayerNorm.
    /// Also returns the conv-stage outputs (stem, stages, pool) for parity checks.
    pub fn encoder(&mut self, img: TensorId) -> Result<(TensorId, Vec<(String, TensorId)>)> {
        let cfg = self.cfg;
        let bb = "encoder.patch_embed.backbone";
        let mut taps = Vec::new();
        let sw = cfg.stem_width;
        let x = self.conv(img, &format!("{bb}.stem.conv1"), 3, sw, 3, 2, 1)?;
        let x = self.ln2d(x, &format!("{bb}.stem.norm1"), sw)?;
        let x = self.g.gelu(x)?;
        let mut x = self.conv(x, &format!("{bb}.stem.conv2"), sw, sw, 3, 1, 1)?;
        taps.push(("encoder.stem".to_string(), x));
        let mut cin = sw;
        for (s, (&dim, &depth)) in cfg
            .conv_stage_dims
            .iter()
            .zip(&cfg.conv_stage_depths)
            .enumerate()
        {
            for j in 0..depth {
                let stride = if j == 0 { 2 } else { 1 };
                x = self.mbconv(x, &format!("{bb}.stages.{s}.{j}"), cin, dim, stride)?;
                cin = dim;
            }
            taps.push((format!("encoder.stages.{s}"), x));
        }
        let x = self.ln2d(x, &format!("{bb}.pool.norm"), cin)?;
        let c = cfg.vit_width;
        let x = self.conv(x, &format!("{bb}.pool.proj"), cin, c, 3, 2, 1)?;
        taps.push(("encoder.pool".to_string(), x));
        let sh = self.g.shape(x).to_vec();
        let (b, hw) = (sh[0], sh[2] * sh[3]);
        let x = self.g.reshape(x, &[b, c, hw])?;
        let x = self.g.transpose(x)?;
        let pos = self.p("encoder.pos_embed", &[1, 1, c]);
        let mut x = self.g.add(x, pos)?;
        for i in 0..cfg.vit_depth {
            let rate = self.block_drop_rate(i);
            x = self.vit_block(x, &format!("encoder.blocks.{i}"), rate)?;
            taps.push((format!("encoder.blocks.{i}"), x));
        }
        let x = self.ln(x, "encoder.norm", c, EPS_VIT)?;
        Ok((x, taps))
    }

    /// AttnProjection. `down`: heads averaged (width → vocab_width); else heads concatenated
    /// (vocab_width → width). Returns (output, attention-branch output).
    pub fn attn_projection(
        &mut self,
        x: TensorId,
        prefix: &str,
        down: bool,
    ) -> Result<(TensorId, TensorId)> {
        let cfg = self.cfg;
        let (din, dout) = if down {
            (cfg.vit_width, cfg.vocab_width)
        } else {
            (cfg.vocab_width, cfg.vit_width)
        };
        let heads = cfg.attn_proj_heads;
        // The attention works at the larger width: heads × head_dim = max(din, dout).
        let inner = cfg.vit_width;
        if down && inner / heads != dout {
            return Err(Error::Invalid(format!(
                "{prefix}: head dim {} differs from output width {dout} (the adaptive-pool branch is not part of UniTok's configurations)",
                inner / heads
            )));
        }
        let n1 = self.ln(x, &format!("{prefix}.norm1"), din, EPS_TORCH)?;
        let w = self.p(&format!("{prefix}.attn.qkv.weight"), &[3 * inner, din]);
        let keys = ["q_bias", "zero_k_bias", "v_bias"].map(|k| format!("{prefix}.attn.{k}"));
        for k in &keys {
            self.keys.insert(k.clone(), vec![inner]);
        }
        let bias = self.g.param(
            &format!("{prefix}.attn.qkv_bias(derived)"),
            &[3 * inner],
            DType::F32,
        );
        self.params.push((bias, ParamSource::Concat(keys.to_vec())));
        let qkv = self.g.linear(n1, w, Some(bias))?;
        let a = self.attend(qkv, heads, false, down)?;
        let aw = if down { dout } else { inner };
        let a = self.linear(a, &format!("{prefix}.attn.proj"), aw, dout, true)?;
        let n3 = self.ln(x, &format!("{prefix}.norm3"), din, EPS_TORCH)?;
        let s = self.linear(n3, &format!("{prefix}.proj"), din, dout, true)?;
        let y = self.g.add(s, a)?;
        let n2 = self.ln(y, &format!("{prefix}.norm2"), dout, EPS_TORCH)?;
        let hidden = cfg.attn_proj_mlp_hidden(dout);
        let m = self.geglu(n2, &format!("{prefix}.mlp"), dout, hidden)?;
        Ok((self.g.add(y, m)?, a))
    }

    pub(crate) fn codebooks(&mut self) -> TensorId {
        let cfg = self.cfg;
        let (g, k, d) = (cfg.num_codebooks, cfg.codebook_size(), cfg.code_dim());
        let keys: Vec<String> = (0..g)
            .map(|i| format!("quantizer.codebooks.{i}.codebook.weight"))
            .collect();
        for key in &keys {
            self.keys.insert(key.clone(), vec![k, d]);
        }
        let t = self
            .g
            .param("quantizer.codebooks(stacked)", &[g, k, d], DType::F32);
        self.params.push((t, ParamSource::Stack(keys)));
        t
    }

    /// Quantizer: z [B, L, vocab_width] → (indices U32 [B·L, G], unit codes [B, L, vocab_width]).
    pub fn quantize(&mut self, z: TensorId) -> Result<(TensorId, TensorId)> {
        let sh = self.g.shape(z).to_vec();
        let cb = self.codebooks();
        let flat = self.g.reshape(z, &[sh[0] * sh[1], sh[2]])?;
        let (idx, codes) = self.g.mcq_argmax(flat, cb)?;
        let codes = self.g.reshape(codes, &sh)?;
        Ok((idx, codes))
    }

    /// Indices U32 [B·L, G] → unit codes [B, L, vocab_width].
    pub fn dequantize(&mut self, idx: TensorId, batch: usize) -> Result<TensorId> {
        let cb = self.codebooks();
        let codes = self.g.mcq_lookup(cb, idx)?;
        let n = self.g.shape(codes)[0];
        self.g
            .reshape(codes, &[batch, n / batch, self.cfg.vocab_width])
    }

    /// Pixel decoder: tokens [B, L, C] → image [B, 3, H, W] (unclamped) and its taps.
    pub fn decoder(&mut self, x: TensorId) -> Result<(TensorId, Vec<(String, TensorId)>)> {
        let cfg = self.cfg;
        let c = cfg.vit_width;
        let mut taps = Vec::new();
        let mut x = x;
        for i in 0..cfg.vit_depth {
            let rate = self.block_drop_rate(i);
            x = self.vit_block(x, &format!("decoder.blocks.{i}"), rate)?;
            taps.push((format!("decoder.blocks.{i}"), x));
        }
        let x = self.ln(x, "decoder.norm", c, EPS_VIT)?;
        taps.push(("decoder.norm".to_string(), x));
        let sh = self.g.shape(x).to_vec();
        let (b, l) = (sh[0], sh[1]);
        let side = (l as f64).sqrt() as usize;
        if side * side != l {
            return Err(Error::Invalid(format!(
                "the decoder needs a square token grid, got {l} tokens"
            )));
        }
        let x = self.g.transpose(x)?;
        let x = self.g.reshape(x, &[b, c, side, side])?;
        let [_, d1, d2] = [
            cfg.decoder_dims[0],
            cfg.decoder_dims[1],
            cfg.decoder_dims[2],
        ];
        let mut x = self.upsample_conv(x, "decoder.up_conv1", c, d1)?;
        taps.push(("decoder.up_conv1".to_string(), x));
        let mut cin = d1;
        for (s, (&dim, &depth)) in [d1, d2].iter().zip(&cfg.decoder_up_depths).enumerate() {
            let name = format!("decoder.up_conv{}", s + 2);
            for j in 0..depth {
                x = self.inv_mbconv(x, &format!("{name}.{j}"), cin, dim, j == 0)?;
                cin = dim;
                taps.push((format!("{name}.{j}"), x));
            }
        }
        let x = self.upsample_conv(x, "decoder.up_conv4.conv1", cin, cin)?;
        let x = self.ln2d(x, "decoder.up_conv4.norm1", cin)?;
        let x = self.g.gelu(x)?;
        let x = self.conv(x, "decoder.up_conv4.conv2", cin, 3, 3, 1, 1)?;
        taps.push(("decoder.up_conv4".to_string(), x));
        Ok((x, taps))
    }

    /// CLIP image embedding from the post-quant tokens [B, L, C] → L2-normalised [B, E].
    pub fn clip_image(&mut self, post_quant: TensorId) -> Result<TensorId> {
        let cfg = self.cfg;
        let m = self.g.mean(post_quant, 1)?;
        let n = self.ln(m, "fc_norm", cfg.vit_width, EPS_VIT)?;
        let e = self.linear(n, "projection", cfg.vit_width, cfg.embed_dim, true)?;
        self.g.l2_normalize_chunks(e, cfg.embed_dim)
    }

    /// Text tower: ids U32 [B, ctx] and the flat EOT positions U32 [B] (b·ctx + argmax id)
    /// → L2-normalised [B, E]; also the taps of each block and ln_final.
    pub fn text(
        &mut self,
        ids: TensorId,
        eot: TensorId,
    ) -> Result<(TensorId, Vec<(String, TensorId)>)> {
        let cfg = self.cfg;
        let (w, ctx) = (cfg.text_width, cfg.text_context_length);
        let b = self.g.shape(ids)[0];
        let mut taps = Vec::new();
        let table = self.p(
            "text_encoder.token_embedding.weight",
            &[cfg.text_vocab_size, w],
        );
        let x = self.g.gather_rows(table, ids)?;
        let pos = self.p("text_encoder.positional_embedding", &[ctx, w]);
        let mut x = self.g.add(x, pos)?;
        let hidden = cfg.text_mlp_hidden();
        for i in 0..cfg.text_layers {
            let pre = format!("text_encoder.transformer.resblocks.{i}");
            let n = self.ln(x, &format!("{pre}.ln_1"), w, EPS_TORCH)?;
            let wq = self.p(&format!("{pre}.attn.in_proj_weight"), &[3 * w, w]);
            let bq = self.p(&format!("{pre}.attn.in_proj_bias"), &[3 * w]);
            let qkv = self.g.linear(n, wq, Some(bq))?;
            let a = self.attend(qkv, cfg.text_heads, true, false)?;
            let a = self.linear(a, &format!("{pre}.attn.out_proj"), w, w, true)?;
            x = self.g.add(x, a)?;
            let n = self.ln(x, &format!("{pre}.ln_2"), w, EPS_TORCH)?;
            let h = self.linear(n, &format!("{pre}.mlp.c_fc"), w, hidden, true)?;
            let h = self.g.gelu(h)?;
            let h = self.linear(h, &format!("{pre}.mlp.c_proj"), hidden, w, true)?;
            x = self.g.add(x, h)?;
            taps.push((format!("text_encoder.resblocks.{i}"), x));
        }
        let x = self.ln(x, "text_encoder.ln_final", w, EPS_TORCH)?;
        taps.push(("text_encoder.ln_final".to_string(), x));
        let flat = self.g.reshape(x, &[b * ctx, w])?;
        let pooled = self.g.gather_rows(flat, eot)?;
        let proj = self.p("text_encoder.text_projection", &[w, cfg.embed_dim]);
        let e = self.g.matmul(pooled, proj, false, false)?;
        Ok((self.g.l2_normalize_chunks(e, cfg.embed_dim)?, taps))
    }

    /// Keys of the checkpoint that no compute reads but that must exist (strict loading).
    pub fn buffer_keys(cfg: &UnitokConfig) -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<(String, Vec<usize>)> = (0..cfg.num_codebooks)
            .map(|i| {
                (
                    format!("quantizer.codebooks.{i}.vocab_usage"),
                    vec![cfg.codebook_size()],
                )
            })
            .collect();
        v.push(("logit_scale".to_string(), vec![]));
        v
    }

    /// Compile the graph and upload every parameter from `weights`.
    pub fn compile(
        self,
        gpu: &std::sync::Arc<crate::Gpu>,
        weights: &dyn WeightSource,
    ) -> Result<Plan> {
        let mut plan = self.g.compile(gpu)?;
        for (t, src) in &self.params {
            let data = assemble(src, weights)?;
            let want = self.g.shape(*t).to_vec();
            let data = data.reshape(&want).map_err(|_| {
                Error::Invalid(format!(
                    "parameter {src:?}: shape mismatch, expected {want:?}"
                ))
            })?;
            plan.write(*t, &data)?;
        }
        Ok(plan)
    }

    pub fn params(&self) -> &[(TensorId, ParamSource)] {
        &self.params
    }
}

/// Anything that can hand out tensors by official key.
pub trait WeightSource {
    fn tensor(&self, key: &str) -> Result<HostTensor>;
}

/// The host tensor for one graph parameter.
pub fn assemble(src: &ParamSource, w: &dyn WeightSource) -> Result<HostTensor> {
    match src {
        ParamSource::Key(k) => w.tensor(k),
        ParamSource::Concat(keys) => {
            let mut data = Vec::new();
            for k in keys {
                data.extend_from_slice(w.tensor(k)?.as_f32()?);
            }
            let n = data.len();
            HostTensor::f32(&[n], data)
        }
        ParamSource::Stack(keys) => {
            let mut data = Vec::new();
            let mut shape = Vec::new();
            for k in keys {
                let t = w.tensor(k)?;
                shape = t.shape.clone();
                data.extend_from_slice(t.as_f32()?);
            }
            let mut s = vec![keys.len()];
            s.extend(shape);
            HostTensor::f32(&s, data)
        }
    }
}

impl WeightSource for crate::io::weights::Weights {
    fn tensor(&self, key: &str) -> Result<HostTensor> {
        self.get(key).cloned()
    }
}

/// A model graph ready to compile: its named inputs and named outputs (all marked).
pub struct ModelGraph<'c> {
    pub builder: ModelBuilder<'c>,
    pub inputs: BTreeMap<&'static str, TensorId>,
    pub outputs: BTreeMap<String, TensorId>,
}

/// What `image_graph` computes past the quantizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeads {
    /// Decode the codes back to pixels (`recon`, clamped to [-1, 1]).
    pub decoder: bool,
    /// The CLIP image embedding (`image_embed`).
    pub clip: bool,
    /// Also mark every block's output (for parity checks; keeps their memory alive).
    pub taps: bool,
}

impl<'c> ModelGraph<'c> {
    fn new(cfg: &'c UnitokConfig) -> Self {
        ModelGraph {
            builder: ModelBuilder::new(cfg),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    fn out(&mut self, name: &str, t: TensorId) {
        self.builder.g.mark_output(t);
        self.outputs.insert(name.to_string(), t);
    }

    fn taps(&mut self, taps: Vec<(String, TensorId)>, keep: bool) {
        if keep {
            for (n, t) in taps {
                self.out(&n, t);
            }
        }
    }

    /// Post-quant tokens → optional decoder and CLIP head.
    fn heads(&mut self, dequant: TensorId, heads: ImageHeads) -> Result<()> {
        let (pq, pq_attn) = self
            .builder
            .attn_projection(dequant, "post_quant_proj", false)?;
        self.out("post_quant", pq);
        if heads.taps {
            self.out("post_quant_proj.attn", pq_attn);
        }
        if heads.clip {
            let e = self.builder.clip_image(pq)?;
            self.out("image_embed", e);
        }
        if heads.decoder {
            let (x, taps) = self.builder.decoder(pq)?;
            self.taps(taps, heads.taps);
            let r = self.builder.g.clamp(x, -1.0, 1.0)?;
            self.out("recon", r);
        }
        Ok(())
    }

    /// Image [B, 3, S, S] in [-1, 1] (input `image`) → `enc_tokens`, `quant_in`, `indices`
    /// (U32 [B·L, G], token-major), `dequant`, and the requested heads.
    pub fn image(
        cfg: &'c UnitokConfig,
        batch: usize,
        size: usize,
        heads: ImageHeads,
    ) -> Result<Self> {
        cfg.tokens_for(size)?;
        let mut m = Self::new(cfg);
        let img = m
            .builder
            .g
            .input("image", &[batch, 3, size, size], DType::F32);
        m.inputs.insert("image", img);
        let (enc, taps) = m.builder.encoder(img)?;
        m.taps(taps, heads.taps);
        m.out("enc_tokens", enc);
        let (z, z_attn) = m.builder.attn_projection(enc, "quant_proj", true)?;
        if heads.taps {
            m.out("quant_proj.attn", z_attn);
        }
        m.out("quant_in", z);
        let (idx, codes) = m.builder.quantize(z)?;
        m.out("indices", idx);
        m.out("dequant", codes);
        m.heads(codes, heads)?;
        Ok(m)
    }

    /// Codes (input `indices`, U32 [B·L, G] token-major) → `dequant` and the requested heads.
    pub fn codes(
        cfg: &'c UnitokConfig,
        batch: usize,
        tokens: usize,
        heads: ImageHeads,
    ) -> Result<Self> {
        let mut m = Self::new(cfg);
        let idx = m
            .builder
            .g
            .input("indices", &[batch * tokens, cfg.num_codebooks], DType::U32);
        m.inputs.insert("indices", idx);
        let codes = m.builder.dequantize(idx, batch)?;
        m.out("dequant", codes);
        m.heads(codes, heads)?;
        Ok(m)
    }

    /// Text: inputs `text_ids` (U32 [B, ctx]) and `eot` (U32 [B], flat index b·ctx + position of
    /// the largest id) → `text_embed`.
    pub fn text(cfg: &'c UnitokConfig, batch: usize, taps: bool) -> Result<Self> {
        let mut m = Self::new(cfg);
        let ids = m
            .builder
            .g
            .input("text_ids", &[batch, cfg.text_context_length], DType::U32);
        let eot = m.builder.g.input("eot", &[batch], DType::U32);
        m.inputs.insert("text_ids", ids);
        m.inputs.insert("eot", eot);
        let (e, t) = m.builder.text(ids, eot)?;
        m.taps(t, taps);
        m.out("text_embed", e);
        Ok(m)
    }

    pub fn compile(
        self,
        gpu: &std::sync::Arc<crate::Gpu>,
        weights: &dyn WeightSource,
    ) -> Result<ModelPlan> {
        let inputs = self.inputs.clone();
        let outputs = self.outputs.clone();
        let plan = self.builder.compile(gpu, weights)?;
        Ok(ModelPlan {
            plan,
            inputs,
            outputs,
        })
    }
}

/// A compiled model graph with named inputs and outputs.
pub struct ModelPlan {
    pub plan: Plan,
    pub inputs: BTreeMap<&'static str, TensorId>,
    pub outputs: BTreeMap<String, TensorId>,
}

impl ModelPlan {
    /// Write the inputs, run once, and read back the named outputs.
    pub fn run(
        &mut self,
        inputs: &[(&str, &HostTensor)],
        want: &[&str],
    ) -> Result<Vec<HostTensor>> {
        for (name, data) in inputs {
            let t = *self
                .inputs
                .get(name)
                .ok_or_else(|| Error::Graph(format!("model graph has no input {name:?}")))?;
            self.plan.write(t, data)?;
        }
        self.plan.run()?;
        let ids = want
            .iter()
            .map(|n| {
                self.outputs
                    .get(*n)
                    .copied()
                    .ok_or_else(|| Error::Graph(format!("model graph has no output {n:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.plan.read_many(&ids)
    }
}

/// Every key (with shape) a complete checkpoint of `cfg` holds: what the image, decoder, CLIP
/// and text graphs read, plus the buffers no compute reads. Strict loading compares with this.
pub fn expected_keys(cfg: &UnitokConfig) -> Result<Vec<(String, Vec<usize>)>> {
    let all = ImageHeads {
        decoder: true,
        clip: true,
        taps: false,
    };
    let img = ModelGraph::image(cfg, 1, cfg.img_size, all)?;
    let txt = ModelGraph::text(cfg, 1, false)?;
    let mut keys = img.builder.keys.clone();
    keys.extend(txt.builder.keys.clone());
    let mut v: Vec<(String, Vec<usize>)> = keys.into_iter().collect();
    v.extend(ModelBuilder::buffer_keys(cfg));
    Ok(v)
}

/// Text ids (B rows of ctx ids) → the `eot` input: b·ctx + the position of the largest id.
pub fn eot_positions(ids: &[u32], ctx: usize) -> Vec<u32> {
    ids.chunks(ctx)
        .enumerate()
        .map(|(b, row)| {
            // argmax with the first maximum, as torch.argmax
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            (b * ctx + best) as u32
        })
        .collect()
}

/// Indices U32 [B·L, G] (token-major, as the kernels produce) → the official layout (B, G, L).
pub fn indices_to_official(idx: &[u32], batch: usize, groups: usize) -> Vec<i64> {
    let tokens = idx.len() / (batch * groups).max(1);
    let mut out = vec![0i64; idx.len()];
    for b in 0..batch {
        for l in 0..tokens {
            for g in 0..groups {
                out[(b * groups + g) * tokens + l] = idx[(b * tokens + l) * groups + g] as i64;
            }
        }
    }
    out
}

/// The official layout (B, G, L) → token-major U32 [B·L, G]; values must be in [0, K).
pub fn indices_from_official(
    codes: &[i64],
    batch: usize,
    groups: usize,
    codebook_size: usize,
) -> Result<Vec<u32>> {
    let tokens = codes.len() / (batch * groups).max(1);
    let mut out = vec![0u32; codes.len()];
    for b in 0..batch {
        for g in 0..groups {
            for l in 0..tokens {
                let v = codes[(b * groups + g) * tokens + l];
                if v < 0 || v as usize >= codebook_size {
                    return Err(Error::Invalid(format!(
                        "code {v} at (batch {b}, codebook {g}, token {l}) is outside [0, {codebook_size})"
                    )));
                }
                out[(b * tokens + l) * groups + g] = v as u32;
            }
        }
    }
    Ok(out)
}
