//! One UniTok training step as one compiled graph: forward through the training path, the
//! weighted loss terms, reverse-mode gradients, global-norm clipping, AdamW on every trainable
//! parameter and the logit-scale clamp — recorded once, planned once, then re-run for every
//! batch with only the inputs (images, text ids, the per-step `hyper` scalars and drop-path
//! masks) rewritten.
//!
//! What differs from the inference graphs (golden README §6, spec §3.2 and §6):
//! - the decoder and the CLIP image head see post_quant_proj(sg(q − z) + z): z are the
//!   L2-normalised chunks of quant_proj's output, q the normalised codes picked by the cosine
//!   argmax (straight-through estimator: forward value q, gradient to z);
//! - vq = β·mean((sg q − z)²) + mean((q − sg z)²) over all B·L·G·d values, which equals the mean
//!   over sub-codebooks of their per-codebook losses (equal sizes); the codebooks learn only
//!   through the second term, back through their row normalisation;
//! - l1 and l2 compare the **unclamped** decoder output with the input image;
//! - clip = ½(CE(s·I·Tᵀ, arange) + CE(s·T·Iᵀ, arange)) with s = exp(logit_scale);
//! - total = Σ weight·term in the order l1, l2, vq, clip, summed left to right as the
//!   reference Trainer does: ((0.2·l1 + l2) + vq) + clip. More terms (perceptual, GAN) are
//!   more entries in `LossWeights::terms`.
//!
//! Two graph parameters are fused from several checkpoint tensors (see `model.rs`): the
//! AttnProjection qkv bias q_bias ‖ zero_k_bias ‖ v_bias, whose zero_k_bias third is a frozen
//! buffer — its gradient is masked to zero before clipping, so it neither counts in the global
//! norm nor moves — and the stacked codebooks. Gradients, moments and weights are split back
//! into official keys on the way out.

use crate::config::UnitokConfig;
use crate::error::{Error, Result};
use crate::graph::{Plan, TensorId};
use crate::model::{
    assemble, eot_positions, expected_keys, ModelBuilder, ParamSource, WeightSource,
};
use crate::ops::elementwise::UnaryKind;
use crate::ops::optim::hyper;
use crate::tensor::{DType, HostTensor};
use std::collections::HashMap;
use std::sync::Arc;

/// The weight of each loss term; a weight of 0 leaves the term's value reported but out of
/// the objective.
#[derive(Clone, Debug, PartialEq)]
pub struct LossWeights {
    pub l1: f32,
    pub l2: f32,
    pub vq: f32,
    pub clip: f32,
}

impl Default for LossWeights {
    /// The reference: 0.2·L1 + 1.0·MSE + 1.0·VQ + 1.0·CLIP.
    fn default() -> Self {
        LossWeights {
            l1: 0.2,
            l2: 1.0,
            vq: 1.0,
            clip: 1.0,
        }
    }
}

/// Optimiser and objective settings that are fixed for a compiled step (the learning rate is
/// per step).
#[derive(Clone, Debug)]
pub struct StepOptions {
    pub batch: usize,
    pub weight_decay: f32,
    pub clip_grad: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub losses: LossWeights,
    /// Keep every parameter gradient (before clipping) readable after a step (`grads`).
    pub keep_grads: bool,
}

impl StepOptions {
    /// The reference's AdamW settings (β 0.9/0.95, eps 1e-6, weight decay 0.02, clip 10).
    pub fn reference(batch: usize) -> Self {
        StepOptions {
            batch,
            weight_decay: 0.02,
            clip_grad: 10.0,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-6,
            losses: LossWeights::default(),
            keep_grads: false,
        }
    }
}

/// The reference's no-weight-decay rule: tensors with fewer than 2 dims and names containing
/// norm_scale, bn, ln, bias or logit_scale.
pub fn decays(key: &str, ndim: usize) -> bool {
    let no = ndim < 2
        || ["norm_scale", "bn", "ln", "bias", "logit_scale"]
            .iter()
            .any(|s| key.contains(s));
    !no
}

/// Parameters the reference keeps out of training.
pub fn is_frozen(key: &str) -> bool {
    key == "encoder.pos_embed"
}

/// Buffers that are pieces of a fused graph parameter but not parameters themselves.
fn is_buffer_piece(key: &str) -> bool {
    key.ends_with("zero_k_bias")
}

/// One trained graph parameter with its gradient and AdamW moments.
struct Trained {
    id: TensorId,
    source: ParamSource,
    grad: TensorId,
    m: TensorId,
    v: TensorId,
}

/// What one step reports (all read back in one transfer after the step).
#[derive(Clone, Debug)]
pub struct StepReport {
    /// (name, unweighted value) of each loss term, in objective order.
    pub terms: Vec<(String, f32)>,
    pub total: f32,
    pub grad_norm: f32,
    pub clip_coef: f32,
    /// Code indices [B·L, G] (token-major) chosen in this step.
    pub codes: Vec<u32>,
}

/// The codebook-usage statistics of the reference quantizer (`vocab_usage`, logging only): an
/// EMA of each sub-codebook's code histogram, copied at the first call, momentum 0.9 for the
/// next 99 calls and 0.99 after.
#[derive(Clone, Debug)]
pub struct VocabUsage {
    pub usage: Vec<Vec<f32>>,
}

impl VocabUsage {
    /// Blend in the histogram of `codes` ([tokens, G] token-major) as call number `call` (0-based).
    pub fn update(&mut self, codes: &[u32], call: u64) {
        let g = self.usage.len();
        if g == 0 {
            return;
        }
        let k = self.usage[0].len();
        let tokens = codes.len() / g;
        let momentum = match call {
            0 => 0.0,
            1..=99 => 0.9,
            _ => 0.99,
        };
        for (gi, u) in self.usage.iter_mut().enumerate() {
            let mut hist = vec![0.0f32; k];
            for t in 0..tokens {
                let c = codes[t * g + gi] as usize;
                if c < k {
                    hist[c] += 1.0;
                }
            }
            for (ui, h) in u.iter_mut().zip(hist) {
                let freq = h / tokens.max(1) as f32;
                *ui = if call == 0 {
                    freq
                } else {
                    *ui * momentum + freq * (1.0 - momentum)
                };
            }
        }
    }

    /// The logged usage: the share of codes whose frequency exceeds 0.01/K, over all codebooks.
    pub fn percent(&self) -> f32 {
        let total: usize = self.usage.iter().map(|u| u.len()).sum();
        if total == 0 {
            return 0.0;
        }
        let used: usize = self
            .usage
            .iter()
            .map(|u| {
                let th = 0.01 / u.len() as f32;
                u.iter().filter(|v| **v > th).count()
            })
            .sum();
        100.0 * used as f32 / total as f32
    }
}

/// A compiled training step with its device-resident parameters and optimizer state.
pub struct TrainStep {
    pub cfg: UnitokConfig,
    pub opts: StepOptions,
    plan: Plan,
    image: TensorId,
    text_ids: TensorId,
    eot: TensorId,
    hyper: TensorId,
    drop_masks: Vec<(TensorId, f32)>,
    trained: Vec<Trained>,
    frozen: Vec<(TensorId, ParamSource)>,
    terms: Vec<(String, TensorId)>,
    total: TensorId,
    clip: TensorId,
    indices: TensorId,
    /// Official key → shape of every checkpoint entry.
    shapes: Vec<(String, Vec<usize>)>,
    pub usage: VocabUsage,
    /// Optimizer steps taken so far (the AdamW bias corrections use step + 1).
    pub step: u64,
}

impl TrainStep {
    /// Record, plan and compile the step for `cfg` at `opts.batch` images of `cfg.img_size`,
    /// and upload the parameters from `weights` (a complete checkpoint, buffers included).
    pub fn build(
        gpu: &Arc<crate::Gpu>,
        cfg: &UnitokConfig,
        opts: StepOptions,
        weights: &dyn WeightSource,
    ) -> Result<TrainStep> {
        let bsz = opts.batch;
        if bsz == 0 {
            return Err(Error::Invalid(
                "training needs a batch of at least 1".into(),
            ));
        }
        let size = cfg.img_size;
        cfg.tokens_for(size)?;
        let mut b = ModelBuilder::new(cfg);
        b.training = true;
        if cfg.drop_path > 0.0 {
            b.drop_path_batch = Some(bsz);
        }
        let image = b.g.input("image", &[bsz, 3, size, size], DType::F32);
        let (enc, _) = b.encoder(image)?;
        let (z, _) = b.attn_projection(enc, "quant_proj", true)?;

        // Quantizer, training path.
        let zs = b.g.shape(z).to_vec();
        let flat = b.g.reshape(z, &[zs[0] * zs[1], zs[2]])?;
        let cb = b.codebooks();
        let (indices, _) = b.g.mcq_argmax(flat, cb)?;
        let q = b.g.mcq_lookup(cb, indices)?;
        let zn = b.g.l2_normalize_chunks(flat, cfg.code_dim())?;
        let q_minus_z = b.g.sub(q, zn)?;
        let q_minus_z = b.g.stop_gradient(q_minus_z)?;
        let st = b.g.add(q_minus_z, zn)?;
        let st = b.g.reshape(st, &zs)?;
        let q_sg = b.g.stop_gradient(q)?;
        let zn_sg = b.g.stop_gradient(zn)?;
        let commit = b.g.mse_loss(q_sg, zn)?;
        let codebook = b.g.mse_loss(q, zn_sg)?;
        let commit = b.g.scale(commit, cfg.vq_beta as f32)?;
        let vq = b.g.add(commit, codebook)?;

        let (pq, _) = b.attn_projection(st, "post_quant_proj", false)?;
        let (recon, _) = b.decoder(pq)?;
        let l1 = b.g.l1_loss(recon, image)?;
        let l2 = b.g.mse_loss(recon, image)?;

        // CLIP: symmetric InfoNCE between the image and text embeddings of the batch.
        let img_emb = b.clip_image(pq)?;
        let text_ids =
            b.g.input("text_ids", &[bsz, cfg.text_context_length], DType::U32);
        let eot = b.g.input("eot", &[bsz], DType::U32);
        let (txt_emb, _) = b.text(text_ids, eot)?;
        let logit_scale = b.p("logit_scale", &[1]);
        let s = b.g.exp(logit_scale)?;
        let logits = b.g.matmul(img_emb, txt_emb, false, true)?;
        let logits_img = b.g.mul(logits, s)?;
        let logits_txt = b.g.transpose(logits_img)?;
        let labels = b.g.param("clip_labels(arange)", &[bsz], DType::U32);
        let ce_img = b.g.cross_entropy(logits_img, labels)?;
        let ce_txt = b.g.cross_entropy(logits_txt, labels)?;
        let ce = b.g.add(ce_img, ce_txt)?;
        let clip_loss = b.g.scale(ce, 0.5)?;

        let w = &opts.losses;
        let terms = vec![
            ("l1".to_string(), w.l1, l1),
            ("l2".to_string(), w.l2, l2),
            ("vq".to_string(), w.vq, vq),
            ("clip".to_string(), w.clip, clip_loss),
        ];
        let mut total: Option<TensorId> = None;
        for (_, weight, t) in &terms {
            if *weight == 0.0 {
                continue;
            }
            let wt = if *weight == 1.0 {
                *t
            } else {
                b.g.scale(*t, *weight)?
            };
            total = Some(match total {
                None => wt,
                Some(acc) => b.g.add(acc, wt)?,
            });
        }
        let total = total.ok_or_else(|| Error::Invalid("every loss weight is 0".into()))?;

        // Gradients, clipping, AdamW.
        let shapes = expected_keys(cfg)?;
        let shape_of: HashMap<&str, &[usize]> = shapes
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect();
        let params = b.params().to_vec();
        let (train_params, frozen): (Vec<_>, Vec<_>) = params
            .into_iter()
            .partition(|(_, src)| !matches!(src, ParamSource::Key(k) if is_frozen(k)));
        let wrt: Vec<TensorId> = train_params.iter().map(|(t, _)| *t).collect();
        let raw_grads = b.g.backward(total, &wrt)?;
        let mut grads = Vec::with_capacity(raw_grads.len());
        let mut masks = Vec::new();
        for ((t, src), gr) in train_params.iter().zip(raw_grads) {
            let gr = match src {
                ParamSource::Concat(keys) if keys.iter().any(|k| is_buffer_piece(k)) => {
                    let n = b.g.shape(*t)[0];
                    let mask = b.g.param(&format!("grad_mask({keys:?})"), &[n], DType::F32);
                    let mut data = Vec::with_capacity(n);
                    for k in keys {
                        let len = shape_of
                            .get(k.as_str())
                            .map(|s| s.iter().product())
                            .unwrap_or(0);
                        let on = if is_buffer_piece(k) { 0.0 } else { 1.0 };
                        data.extend(std::iter::repeat_n(on, len));
                    }
                    masks.push((mask, HostTensor::f32(&[n], data)?));
                    b.g.mul(gr, mask)?
                }
                _ => gr,
            };
            grads.push(gr);
        }
        let clip = b.g.clip_grad_norm(&grads, opts.clip_grad)?;
        let hyper_t =
            b.g.input("hyper", &[crate::ops::optim::HYPER_LEN], DType::F32);
        let mut trained = Vec::with_capacity(grads.len());
        for ((t, src), gr) in train_params.into_iter().zip(&grads) {
            let shape = b.g.shape(t).to_vec();
            let m = b.g.param(&format!("adam_m({t:?})"), &shape, DType::F32);
            let v = b.g.param(&format!("adam_v({t:?})"), &shape, DType::F32);
            let decay = source_decays(&src, &shape_of);
            let wd = if decay { opts.weight_decay } else { 0.0 };
            b.g.adamw(*gr, hyper_t, clip, t, m, v, wd)?;
            trained.push(Trained {
                id: t,
                source: src,
                grad: *gr,
                m,
                v,
            });
        }
        b.g.unary_in_place(logit_scale, UnaryKind::Clamp(0.0, 100f32.ln()))?;

        for (_, _, t) in &terms {
            b.g.mark_output(*t);
        }
        b.g.mark_output(total);
        b.g.mark_output(clip);
        b.g.mark_output(indices);
        if opts.keep_grads {
            for gr in &grads {
                b.g.mark_output(*gr);
            }
        }

        let mut plan = b.g.compile(gpu)?;
        for tr in &trained {
            write_param(&mut plan, &b, tr.id, &tr.source, weights)?;
            plan.zero(tr.m)?;
            plan.zero(tr.v)?;
        }
        for (t, src) in &frozen {
            write_param(&mut plan, &b, *t, src, weights)?;
        }
        for (mask, data) in &masks {
            plan.write(*mask, data)?;
        }
        plan.write(labels, &HostTensor::u32(&[bsz], (0..bsz as u32).collect())?)?;

        let usage = VocabUsage {
            usage: (0..cfg.num_codebooks)
                .map(|i| {
                    weights
                        .tensor(&format!("quantizer.codebooks.{i}.vocab_usage"))
                        .and_then(|t| t.into_f32())
                })
                .collect::<Result<_>>()?,
        };
        Ok(TrainStep {
            cfg: cfg.clone(),
            opts,
            plan,
            image,
            text_ids,
            eot,
            hyper: hyper_t,
            drop_masks: b.drop_masks.clone(),
            trained,
            frozen,
            terms: terms.into_iter().map(|(n, _, t)| (n, t)).collect(),
            total,
            clip,
            indices,
            shapes,
            usage,
            step: 0,
        })
    }

    /// Run one step on `images` (f32 [B, 3, S, S] in [-1, 1]) and `text_ids` (u32 [B, ctx]) at
    /// learning rate `lr`; `uniform` draws the drop-path masks (values in [0, 1)).
    pub fn run(
        &mut self,
        images: &HostTensor,
        text_ids: &HostTensor,
        lr: f64,
        uniform: &mut dyn FnMut() -> f64,
    ) -> Result<StepReport> {
        let ctx = self.cfg.text_context_length;
        let eot = eot_positions(text_ids.as_u32()?, ctx);
        self.plan.write(self.image, images)?;
        self.plan.write(self.text_ids, text_ids)?;
        self.plan
            .write(self.eot, &HostTensor::u32(&[eot.len()], eot)?)?;
        let o = &self.opts;
        let t = u32::try_from(self.step + 1)
            .map_err(|_| Error::Invalid("more than 2^32 optimizer steps".into()))?;
        self.plan
            .write(self.hyper, &hyper(lr as f32, o.beta1, o.beta2, o.eps, t))?;
        for (mask, rate) in &self.drop_masks {
            let keep = 1.0 - *rate as f64;
            let data = (0..o.batch)
                .map(|_| {
                    if uniform() < keep {
                        (1.0 / keep) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            self.plan
                .write(*mask, &HostTensor::f32(&[o.batch, 1, 1], data)?)?;
        }
        self.plan.run()?;
        let mut ids: Vec<TensorId> = self.terms.iter().map(|(_, t)| *t).collect();
        ids.extend([self.total, self.clip, self.indices]);
        let mut out = self.plan.read_many(&ids)?;
        let codes = out
            .pop()
            .map(|t| t.into_u32())
            .transpose()?
            .unwrap_or_default();
        let clip = out
            .pop()
            .map(|t| t.into_f32())
            .transpose()?
            .unwrap_or_default();
        let total = out
            .pop()
            .map(|t| t.into_f32())
            .transpose()?
            .unwrap_or_default();
        let terms = self
            .terms
            .iter()
            .zip(&out)
            .map(|((n, _), v)| Ok((n.clone(), v.as_f32()?[0])))
            .collect::<Result<Vec<_>>>()?;
        self.usage.update(&codes, self.step);
        self.step += 1;
        Ok(StepReport {
            terms,
            total: total.first().copied().unwrap_or(f32::NAN),
            clip_coef: clip.first().copied().unwrap_or(f32::NAN),
            grad_norm: clip.get(1).copied().unwrap_or(f32::NAN),
            codes,
        })
    }

    /// Tokenize captions into the `text_ids` input ([B, ctx] u32).
    pub fn text_ids(&self, captions: &[String]) -> Result<HostTensor> {
        let ctx = self.cfg.text_context_length;
        let mut ids = Vec::with_capacity(captions.len() * ctx);
        for c in captions {
            ids.extend(crate::text::tokenize_to(c, ctx));
        }
        HostTensor::u32(&[captions.len(), ctx], ids)
    }

    fn shape_map(&self) -> HashMap<&str, &[usize]> {
        self.shapes
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect()
    }

    /// The full checkpoint (official keys and shapes, buffers included) as it is now.
    pub fn state_dict(&self) -> Result<Vec<(String, HostTensor)>> {
        let shapes = self.shape_map();
        let mut ids: Vec<(TensorId, &ParamSource)> =
            self.trained.iter().map(|t| (t.id, &t.source)).collect();
        ids.extend(self.frozen.iter().map(|(t, s)| (*t, s)));
        let data = self
            .plan
            .read_many(&ids.iter().map(|(t, _)| *t).collect::<Vec<_>>())?;
        let mut map: HashMap<String, HostTensor> = HashMap::new();
        for ((_, src), d) in ids.iter().zip(data) {
            for (k, t) in split(src, d, &shapes)? {
                map.insert(k, t);
            }
        }
        for (i, u) in self.usage.usage.iter().enumerate() {
            map.insert(
                format!("quantizer.codebooks.{i}.vocab_usage"),
                HostTensor::f32(&[u.len()], u.clone())?,
            );
        }
        self.shapes
            .iter()
            .map(|(k, s)| {
                let t = map
                    .remove(k)
                    .ok_or_else(|| Error::Graph(format!("training graph holds no {k}")))?;
                Ok((k.clone(), t.reshape(s)?))
            })
            .collect()
    }

    /// Every trainable parameter's gradient of the last step, before clipping, by official key
    /// (needs `keep_grads`).
    pub fn grads(&self) -> Result<Vec<(String, HostTensor)>> {
        if !self.opts.keep_grads {
            return Err(Error::Invalid(
                "gradients were not kept: build the step with keep_grads".into(),
            ));
        }
        self.read_split(|t| t.grad)
    }

    /// AdamW moments by official key: (key, m, v).
    pub fn moments(&self) -> Result<Vec<(String, HostTensor, HostTensor)>> {
        let m = self.read_split(|t| t.m)?;
        let v = self.read_split(|t| t.v)?;
        Ok(m.into_iter()
            .zip(v)
            .map(|((k, m), (_, v))| (k, m, v))
            .collect())
    }

    /// Restore AdamW moments (by official key) and the step count of a checkpoint.
    pub fn load_moments(
        &mut self,
        moments: &[(String, HostTensor, HostTensor)],
        step: u64,
    ) -> Result<()> {
        let shapes: HashMap<String, Vec<usize>> = self.shapes.iter().cloned().collect();
        let by_key: HashMap<&str, (&HostTensor, &HostTensor)> = moments
            .iter()
            .map(|(k, m, v)| (k.as_str(), (m, v)))
            .collect();
        for tr in &self.trained {
            for which in 0..2 {
                let src = MomentSource {
                    by_key: &by_key,
                    shapes: &shapes,
                    which,
                };
                let want = self.plan.desc(tr.id)?.shape.clone();
                let data = assemble(&tr.source, &src)?.reshape(&want)?;
                self.plan
                    .write(if which == 0 { tr.m } else { tr.v }, &data)?;
            }
        }
        self.step = step;
        Ok(())
    }

    fn read_split(&self, pick: impl Fn(&Trained) -> TensorId) -> Result<Vec<(String, HostTensor)>> {
        let shapes = self.shape_map();
        let ids: Vec<TensorId> = self.trained.iter().map(&pick).collect();
        let data = self.plan.read_many(&ids)?;
        let mut out = Vec::new();
        for (tr, d) in self.trained.iter().zip(data) {
            out.extend(
                split(&tr.source, d, &shapes)?
                    .into_iter()
                    .filter(|(k, _)| !is_buffer_piece(k)),
            );
        }
        Ok(out)
    }

    /// Bytes of device memory the compiled step holds (parameters, moments, arena).
    pub fn planned_bytes(&self) -> u64 {
        self.plan.planned_bytes()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The compiled plan, e.g. for `Plan::profile` (a profiled run is a full training step).
    pub fn plan_mut(&mut self) -> &mut Plan {
        &mut self.plan
    }
}

/// Whether a (possibly fused) graph parameter is weight-decayed: by its first trainable piece.
fn source_decays(src: &ParamSource, shapes: &HashMap<&str, &[usize]>) -> bool {
    let keys: Vec<&String> = match src {
        ParamSource::Key(k) => vec![k],
        ParamSource::Concat(ks) | ParamSource::Stack(ks) => ks.iter().collect(),
    };
    keys.into_iter()
        .find(|k| !is_buffer_piece(k))
        .map(|k| decays(k, shapes.get(k.as_str()).map(|s| s.len()).unwrap_or(0)))
        .unwrap_or(false)
}

fn write_param(
    plan: &mut Plan,
    b: &ModelBuilder,
    t: TensorId,
    src: &ParamSource,
    weights: &dyn WeightSource,
) -> Result<()> {
    let want = b.g.shape(t).to_vec();
    let data = assemble(src, weights)?.reshape(&want).map_err(|_| {
        Error::Invalid(format!(
            "parameter {src:?}: shape mismatch, expected {want:?}"
        ))
    })?;
    plan.write(t, &data)
}

/// Split a graph parameter's data back into its official tensors.
fn split(
    src: &ParamSource,
    data: HostTensor,
    shapes: &HashMap<&str, &[usize]>,
) -> Result<Vec<(String, HostTensor)>> {
    let shape = |k: &str| -> Result<Vec<usize>> {
        shapes
            .get(k)
            .map(|s| s.to_vec())
            .ok_or_else(|| Error::Graph(format!("no checkpoint shape for {k}")))
    };
    match src {
        ParamSource::Key(k) => Ok(vec![(k.clone(), data.reshape(&shape(k)?)?)]),
        ParamSource::Concat(keys) | ParamSource::Stack(keys) => {
            let v = data.into_f32()?;
            let mut off = 0;
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                let s = shape(k)?;
                let n: usize = s.iter().product();
                let piece = v
                    .get(off..off + n)
                    .ok_or_else(|| Error::Graph(format!("fused parameter too short for {k}")))?;
                out.push((k.clone(), HostTensor::f32(&s, piece.to_vec())?));
                off += n;
            }
            Ok(out)
        }
    }
}

/// Moments by official key as a weight source; the frozen buffer pieces of fused parameters
/// have zero moments.
struct MomentSource<'a> {
    by_key: &'a HashMap<&'a str, (&'a HostTensor, &'a HostTensor)>,
    shapes: &'a HashMap<String, Vec<usize>>,
    which: usize,
}

impl WeightSource for MomentSource<'_> {
    fn tensor(&self, key: &str) -> Result<HostTensor> {
        if let Some((m, v)) = self.by_key.get(key) {
            return Ok(if self.which == 0 {
                (*m).clone()
            } else {
                (*v).clone()
            });
        }
        if is_buffer_piece(key) {
            if let Some(s) = self.shapes.get(key) {
                return Ok(HostTensor::zeros(s));
            }
        }
        Err(Error::Invalid(format!(
            "optimizer state has no moments for {key}"
        )))
    }
}
