//! Fused multi-head scaled-dot-product attention (flash style: K/V tiles stream through
//! workgroup memory with an online softmax, no L×L matrix anywhere).
//!
//! Input: packed `qkv` [B, L, 3·H·D] as timm's `qkv` Linear and PyTorch MHA's `in_proj` produce
//! it: per token, columns [0, H·D) are q, [H·D, 2·H·D) k, [2·H·D, 3·H·D) v, and head h uses
//! columns h·D .. h·D+D inside each part. Output [B, L, H·D] (heads concatenated), or with
//! `head_average` [B, L, D], the mean of the heads' outputs (UniTok's AttnProjection). With
//! `save_lse` a second output [B, H, L] holds the natural log-sum-exp of every query row's
//! scaled logits, which a backward pass uses to recompute the probabilities.
//!
//! Kernels (`AttentionKernel`): the portable one (attention.wgsl), the subgroup one for 8-lane
//! CPU drivers (attention_sg.wgsl), and the same with q, K and V read from a texture of qkv
//! (strips of whole heads, `KvFill`) where the adapter takes texture operands
//! (attention_kv_texture.wgsl).

use super::texture::{Operand, RowFill, Strips};
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::device::Caps;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    seq: u32,
    heads: u32,
    dim: u32,
    in_row: u32,
    in_batch: u32,
    q_col: u32,
    k_col: u32,
    v_col: u32,
    in_head: u32,
    out_row: u32,
    out_batch: u32,
    out_head: u32,
    scale: f32,
    inv_heads: f32,
    /// 1: causal, 2: average heads, 4: write lse.
    flags: u32,
    /// Texture8: texel columns per strip of the qkv texture, and texture rows per strip.
    kv_strip: u32,
    kv_rows: u32,
}

/// Largest supported head dim (the kernels keep a row of q and of the output in registers;
/// every UniTok tower uses 16 or 64).
pub const MAX_HEAD_DIM: usize = 64;
/// Query rows per workgroup (one invocation each).
const BQ: usize = 64;
/// Invocations per workgroup of the subgroup kernel (4 query rows each).
const BQ_SG: usize = 32;
/// Most keys per K/V tile of the portable kernel.
const BK_MAX: usize = 64;
/// Workgroup memory the K/V tiles may use: the WebGPU minimum, so every adapter fits.
const TILE_BYTES: u64 = 16384;

/// softmax(q·kᵀ·scale)·v per head; see the module doc for the layout.
#[derive(Clone, Debug)]
pub struct Attention {
    pub heads: usize,
    /// Mask key j > query i.
    pub causal: bool,
    pub scale: f32,
    /// Average the heads' outputs ([B, L, D]) instead of concatenating them ([B, L, H·D]).
    pub head_average: bool,
    /// Also output the log-sum-exp [B, H, L] of each row's scaled logits.
    pub save_lse: bool,
}

/// (B, L, D) of a packed qkv shape for `heads`, or a typed error.
fn dims(op: &Attention, x: &TensorDesc) -> Result<(usize, usize, usize)> {
    let name = op.name();
    if x.dtype != DType::F32 || x.rank() != 3 {
        return Err(Error::shape(
            name,
            "needs f32 qkv of shape [B, L, 3·heads·head_dim]",
            &[&x.shape],
        ));
    }
    if op.heads == 0 {
        return Err(Error::shape(name, "needs heads >= 1", &[&x.shape]));
    }
    let (b, l, c) = (x.shape[0], x.shape[1], x.shape[2]);
    if b == 0 || l == 0 {
        return Err(Error::shape(name, "needs B >= 1 and L >= 1", &[&x.shape]));
    }
    if c == 0 || c % (3 * op.heads) != 0 {
        return Err(Error::shape(
            name,
            format!(
                "last dim {c} is not 3·heads·head_dim with heads = {} (a multiple of {})",
                op.heads,
                3 * op.heads
            ),
            &[&x.shape],
        ));
    }
    let d = c / (3 * op.heads);
    if d > MAX_HEAD_DIM {
        return Err(Error::shape(
            name,
            format!("head dim {d} is over the supported {MAX_HEAD_DIM}"),
            &[&x.shape],
        ));
    }
    if !op.scale.is_finite() {
        return Err(Error::shape(
            name,
            format!("scale {} is not finite", op.scale),
            &[&x.shape],
        ));
    }
    if x.numel() > u32::MAX as usize {
        return Err(Error::shape(name, "more than 2^32 elements", &[&x.shape]));
    }
    Ok((b, l, d))
}

/// (vec4 slots per head row: 4, 8 or 16; keys per tile: a multiple of 4) for head dim `d`.
fn tiles(d: usize) -> (usize, usize) {
    let dv = d.div_ceil(4).next_power_of_two().max(4);
    let bk = (TILE_BYTES as usize / (2 * 16 * dv)).min(BK_MAX);
    (dv, bk)
}

impl Op for Attention {
    fn name(&self) -> String {
        format!(
            "attention(heads={}{}{}{})",
            self.heads,
            if self.causal { ", causal" } else { "" },
            if self.head_average {
                ", head_average"
            } else {
                ""
            },
            if self.save_lse { ", lse" } else { "" }
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape(
                self.name(),
                "takes one operand (packed qkv)",
                &[],
            ));
        };
        let (b, l, d) = dims(self, x)?;
        let h = self.heads;
        let mut outs = vec![TensorDesc::f32(&[
            b,
            l,
            if self.head_average { d } else { h * d },
        ])];
        if self.save_lse {
            outs.push(TensorDesc::f32(&[b, h, l]));
        }
        Ok(outs)
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (b, l, d) = dims(self, &inputs[0].desc())?;
        let x = inputs[0].as_f32()?;
        let h = self.heads;
        let c = 3 * h * d;
        let od = if self.head_average { d } else { h * d };
        let mut out = vec![0.0f64; b * l * od];
        let mut lse = vec![0.0f32; b * h * l];
        let scale = self.scale as f64;
        let mut s = vec![0.0f64; l];
        for bi in 0..b {
            let xb = &x[bi * l * c..(bi + 1) * l * c];
            for hi in 0..h {
                let (qc, kc, vc) = (hi * d, h * d + hi * d, 2 * h * d + hi * d);
                for i in 0..l {
                    let n = if self.causal { i + 1 } else { l };
                    let mut m = f64::NEG_INFINITY;
                    for (j, sj) in s.iter_mut().enumerate().take(n) {
                        let dot: f64 = (0..d)
                            .map(|e| xb[i * c + qc + e] as f64 * xb[j * c + kc + e] as f64)
                            .sum();
                        *sj = dot * scale;
                        m = m.max(*sj);
                    }
                    let mut sum = 0.0;
                    for sj in s.iter_mut().take(n) {
                        *sj = (*sj - m).exp();
                        sum += *sj;
                    }
                    lse[(bi * h + hi) * l + i] = (m + sum.ln()) as f32;
                    let (ocol, w) = if self.head_average {
                        (0, 1.0 / (h as f64 * sum))
                    } else {
                        (hi * d, 1.0 / sum)
                    };
                    let orow = &mut out[(bi * l + i) * od + ocol..(bi * l + i) * od + ocol + d];
                    for (j, sj) in s.iter().enumerate().take(n) {
                        let pw = sj * w;
                        for (e, o) in orow.iter_mut().enumerate() {
                            *o += pw * xb[j * c + vc + e] as f64;
                        }
                    }
                }
            }
        }
        let mut res = vec![HostTensor::f32(
            &[b, l, od],
            out.into_iter().map(|v| v as f32).collect(),
        )?];
        if self.save_lse {
            res.push(HostTensor::f32(&[b, h, l], lse)?);
        }
        Ok(res)
    }
    fn scratch(&self, _inputs: &[&TensorDesc]) -> Vec<TensorDesc> {
        // The kernel always has an lse binding; without save_lse it gets this stand-in.
        if self.save_lse {
            Vec::new()
        } else {
            vec![TensorDesc::f32(&[4])]
        }
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        self.encode_with(cx, AttentionKernel::for_caps(cx.caps))
    }
    /// Texture 0 holds qkv's rows.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t == 0).then_some(0)
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        if AttentionKernel::for_caps(caps) != AttentionKernel::Texture8 {
            return Vec::new();
        }
        match inputs.first().and_then(|x| self.kv_texture(x, caps)) {
            Some(fill) => vec![fill.size()],
            None => Vec::new(),
        }
    }
    /// Flash-style backward: one `AttentionBackward` node recomputes the probabilities from
    /// qkv and the log-sum-exp. A forward that saved lse hands it over; otherwise the rule
    /// records one more forward of the same qkv with `save_lse` (a recompute: a training graph
    /// that wants to avoid it builds the forward with `Graph::attention_with_lse`).
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let gout = cx.grads.first().copied().flatten();
        let glse = if self.save_lse {
            cx.grads.get(1).copied().flatten()
        } else {
            None
        };
        if gout.is_none() && glse.is_none() {
            return Ok(vec![None]);
        }
        let qkv = cx.inputs[0];
        let lse = if self.save_lse {
            cx.outputs[1]
        } else {
            let fwd = Attention {
                save_lse: true,
                ..self.clone()
            };
            let outs = cx.g.apply(fwd, &[qkv])?;
            outs[1]
        };
        let op = AttentionBackward {
            heads: self.heads,
            causal: self.causal,
            scale: self.scale,
            head_average: self.head_average,
            has_dout: gout.is_some(),
            has_glse: glse.is_some(),
        };
        let mut ins = vec![qkv, lse];
        ins.extend(gout);
        ins.extend(glse);
        Ok(vec![Some(cx.g.apply1(op, &ins)?)])
    }
}

/// The implementations of `Attention` (same results, same bindings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `attention.wgsl`: one query row per invocation, K/V tiles through workgroup memory.
    /// Runs everywhere; the choice for GPUs.
    Portable,
    /// `attention_sg.wgsl`: q·k by rows (each key element loaded once per 8 invocations and
    /// shared by subgroupBroadcast, four query rows per invocation, 4·32 rows per workgroup),
    /// P·V by dims (each lane its dims of the subgroup's 32 rows, the rows' weights
    /// broadcast), no workgroup memory or barriers. Needs subgroups of exactly 8; made
    /// for CPU SIMD drivers (lavapipe/llvmpipe), where every load inside a loop is a scalar loop
    /// over the invocations and barriers are coroutine switches.
    Subgroup8,
    /// `attention_sg.wgsl` with q, K and V read from an rgba32float texture of qkv (`KvFill`:
    /// strips of whole heads filled by the copy engine, else the row layout by a packing
    /// kernel): the choice where `caps.texture_operands` (CPU adapters), whose buffer loads
    /// cost ~30× a texture load.
    Texture8,
}

impl AttentionKernel {
    /// Texture8 with texture operands, Subgroup8 where every subgroup is 8 wide (CPU drivers),
    /// else Portable. (Texture8 falls back to Subgroup8 for layouts it cannot pack.)
    pub fn for_caps(caps: &crate::device::Caps) -> Self {
        if caps.texture_operands {
            AttentionKernel::Texture8
        } else if caps.subgroups && caps.subgroup_min == 8 && caps.subgroup_max == 8 {
            AttentionKernel::Subgroup8
        } else {
            AttentionKernel::Portable
        }
    }
}

/// How qkv reaches Texture8's texture. Where the copy engine can fill it, as vertical strips
/// of whole heads stacked top to bottom (`texture::Strips`): each head's q, k and v rows then
/// lie contiguous, so the key loop streams one compact block per head instead of reading one
/// piece of every 12 KB token row (whose addresses share their cache sets). Else in qkv's row
/// layout, by the packing kernel.
#[derive(Clone, Copy, Debug)]
enum KvFill {
    Strips(Strips),
    Rows(RowFill),
}

impl KvFill {
    fn size(&self) -> [u32; 2] {
        match self {
            KvFill::Strips(s) => s.size(),
            KvFill::Rows(f) => f.size(),
        }
    }

    /// The dispatches filling scratch texture 0 from input 0.
    fn fills(&self) -> Vec<Dispatch> {
        match self {
            KvFill::Strips(s) => s.fills(0, 0),
            KvFill::Rows(f) => vec![f.fill(0, 0)],
        }
    }
}

impl Attention {
    /// How Texture8 gets qkv into its texture, when it can (texture operands on, D a multiple
    /// of 4, the texture within the adapter's limits).
    fn kv_texture(&self, qkv: &TensorDesc, caps: &Caps) -> Option<KvFill> {
        if !caps.texture_operands {
            return None;
        }
        let (b, l, d) = dims(self, qkv).ok()?;
        if d % 4 != 0 {
            return None;
        }
        // The whole token rows (q, k and v): by the copy engine where a row is a whole number
        // of 256-byte copy rows, else by a packing kernel.
        let c = 3 * self.heads * d;
        Some(
            match RowFill::choose(&Operand::row_major(b * l, c), caps)? {
                RowFill::Copy(copy) => KvFill::Strips(Strips::new(copy, d / 4, caps)),
                fill => KvFill::Rows(fill),
            },
        )
    }

    /// The dispatch with an explicit kernel choice (`encode` uses `AttentionKernel::for_caps`;
    /// tests use this to run both on one adapter).
    pub fn encode_with(&self, cx: &EncodeCx, kind: AttentionKernel) -> Result<Vec<Dispatch>> {
        // Texture8 needs its texture (scratch_textures asked for it exactly when this fits).
        let kv = match kind {
            AttentionKernel::Texture8 => self.kv_texture(cx.input(0), cx.caps),
            _ => None,
        };
        let kind = match (kind, kv) {
            (AttentionKernel::Texture8, None) => AttentionKernel::Subgroup8,
            (k, _) => k,
        };
        let eight = cx.caps.subgroups && cx.caps.subgroup_min == 8 && cx.caps.subgroup_max == 8;
        if kind != AttentionKernel::Portable && !eight {
            return Err(Error::Invalid(format!(
                "{}: the subgroup kernel needs subgroups of exactly 8 invocations (this adapter: {}..{})",
                self.name(),
                cx.caps.subgroup_min,
                cx.caps.subgroup_max
            )));
        }
        let (b, l, d) = dims(self, cx.input(0))?;
        let h = self.heads;
        let (dv, bk) = tiles(d);
        let c = 3 * h * d;
        let od = if self.head_average { d } else { h * d };
        let p = Params {
            seq: l as u32,
            heads: h as u32,
            dim: d as u32,
            in_row: c as u32,
            in_batch: (l * c) as u32,
            q_col: 0,
            k_col: (h * d) as u32,
            v_col: (2 * h * d) as u32,
            in_head: d as u32,
            out_row: od as u32,
            out_batch: (l * od) as u32,
            out_head: if self.head_average { 0 } else { d as u32 },
            scale: self.scale * std::f32::consts::LOG2_E,
            inv_heads: 1.0 / h as f32,
            flags: self.causal as u32
                | (self.head_average as u32) << 1
                | (self.save_lse as u32) << 2,
            kv_strip: u32::MAX,
            kv_rows: 0,
        };
        // The flags are uniforms, not override constants: one pipeline per head-dim bucket.
        let kernel = match kind {
            AttentionKernel::Subgroup8 => Kernel::new("attention_sg", "attention"),
            AttentionKernel::Texture8 => Kernel::new("attention_tex", "attention"),
            AttentionKernel::Portable => {
                Kernel::new("attention", "attention").with("BK", bk as f64)
            }
        };
        // The subgroup kernel owns 4 query rows per invocation with BQ_SG invocations per
        // workgroup: 4 · BQ_SG = 128 rows per workgroup.
        let (bq, rows) = match kind {
            AttentionKernel::Subgroup8 | AttentionKernel::Texture8 => (BQ_SG, 4 * BQ_SG),
            AttentionKernel::Portable => (BQ, BQ),
        };
        let kernel = kernel.with("BQ", bq as f64).with("DV", dv as f64);
        let lse = if self.save_lse {
            Bind::write(1)
        } else {
            Bind::scratch(0)
        };
        let mut binds = vec![Bind::read(0), Bind::write(0), lse];
        let mut out = Vec::new();
        let mut p = p;
        if let Some(fill) = kv.filter(|_| kind == AttentionKernel::Texture8) {
            if let KvFill::Strips(strips) = &fill {
                p.kv_strip = strips.strip as u32;
                p.kv_rows = strips.rows();
            }
            out.extend(fill.fills());
            binds.push(Bind::texture_read(0));
        }
        out.push(Dispatch {
            kernel,
            params: params(&p),
            binds,
            grid: [
                groups(l, rows),
                if self.head_average { 1 } else { h as u32 },
                b as u32,
            ],
        });
        Ok(out)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct BackParams {
    seq: u32,
    heads: u32,
    dim: u32,
    in_row: u32,
    in_batch: u32,
    k_col: u32,
    v_col: u32,
    do_row: u32,
    do_batch: u32,
    do_head: u32,
    scale: f32,
    do_mul: f32,
    /// 1: causal, 2: dout present, 4: glse present.
    flags: u32,
    _p: [u32; 3],
}

/// Rows (queries or keys) per workgroup of the backward kernels.
const BWD_WG: usize = 64;

/// Gradient of `Attention` with respect to its packed qkv: dqkv [B, L, 3·H·D], packed the
/// same way. Inputs: qkv [B, L, 3·H·D], the forward's log-sum-exp [B, H, L], then (when
/// `has_dout`) the output gradient [B, L, H·D] (or [B, L, D] with `head_average`) and (when
/// `has_glse`) the gradient reaching the lse output [B, H, L]. The probabilities are
/// recomputed as exp(scale·q·k − lse) (nothing L×L is stored); see attention_backward.wgsl.
#[derive(Clone, Debug)]
pub struct AttentionBackward {
    pub heads: usize,
    pub causal: bool,
    pub scale: f32,
    pub head_average: bool,
    pub has_dout: bool,
    pub has_glse: bool,
}

impl AttentionBackward {
    fn forward(&self) -> Attention {
        Attention {
            heads: self.heads,
            causal: self.causal,
            scale: self.scale,
            head_average: self.head_average,
            save_lse: true,
        }
    }
    /// (B, L, D) after checking every operand.
    fn check(&self, inputs: &[&TensorDesc]) -> Result<(usize, usize, usize)> {
        let name = self.name();
        let want = 2 + self.has_dout as usize + self.has_glse as usize;
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        if !self.has_dout && !self.has_glse {
            return Err(Error::shape(
                name,
                "needs the output gradient, the lse gradient or both",
                &shapes,
            ));
        }
        if inputs.len() != want {
            return Err(Error::shape(
                name,
                format!("takes {want} operands (qkv, lse, then the present gradients)"),
                &shapes,
            ));
        }
        let (b, l, d) = dims(&self.forward(), inputs[0])?;
        let h = self.heads;
        let od = if self.head_average { d } else { h * d };
        let mut expect: Vec<(&str, Vec<usize>)> = vec![("lse", vec![b, h, l])];
        if self.has_dout {
            expect.push(("output gradient", vec![b, l, od]));
        }
        if self.has_glse {
            expect.push(("lse gradient", vec![b, h, l]));
        }
        for (k, (what, shape)) in expect.iter().enumerate() {
            let t = inputs[1 + k];
            if t.dtype != DType::F32 || &t.shape != shape {
                return Err(Error::shape(
                    name,
                    format!("{what} must be f32 {shape:?}"),
                    &shapes,
                ));
            }
        }
        Ok((b, l, d))
    }
}

impl Op for AttentionBackward {
    fn name(&self) -> String {
        format!(
            "attention_backward(heads={}{}{}{}{})",
            self.heads,
            if self.causal { ", causal" } else { "" },
            if self.head_average {
                ", head_average"
            } else {
                ""
            },
            if self.has_dout { ", dout" } else { "" },
            if self.has_glse { ", dlse" } else { "" }
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        self.check(inputs)?;
        Ok(vec![inputs[0].clone()])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc()).collect();
        let (b, l, d) = self.check(&descs.iter().collect::<Vec<_>>())?;
        let h = self.heads;
        let c = 3 * h * d;
        let od = if self.head_average { d } else { h * d };
        let x = inputs[0].as_f32()?;
        let lse = inputs[1].as_f32()?;
        let dout = if self.has_dout {
            Some(inputs[2].as_f32()?)
        } else {
            None
        };
        let glse = if self.has_glse {
            Some(inputs[2 + self.has_dout as usize].as_f32()?)
        } else {
            None
        };
        let scale = self.scale as f64;
        let do_mul = if self.head_average {
            1.0 / h as f64
        } else {
            1.0
        };
        let mut dx = vec![0.0f64; b * l * c];
        let mut p = vec![0.0f64; l];
        let mut dp = vec![0.0f64; l];
        for bi in 0..b {
            let xb = &x[bi * l * c..(bi + 1) * l * c];
            for hi in 0..h {
                let (qc, kc, vc) = (hi * d, h * d + hi * d, 2 * h * d + hi * d);
                let ocol = if self.head_average { 0 } else { hi * d };
                for i in 0..l {
                    let row = (bi * h + hi) * l + i;
                    let n = if self.causal { i + 1 } else { l };
                    let g_o = |e: usize| -> f64 {
                        dout.map_or(0.0, |g| g[(bi * l + i) * od + ocol + e] as f64 * do_mul)
                    };
                    let mut delta = 0.0;
                    for j in 0..n {
                        let s: f64 = (0..d)
                            .map(|e| xb[i * c + qc + e] as f64 * xb[j * c + kc + e] as f64)
                            .sum();
                        p[j] = (s * scale - lse[row] as f64).exp();
                        dp[j] = (0..d).map(|e| g_o(e) * xb[j * c + vc + e] as f64).sum();
                        delta += p[j] * dp[j];
                    }
                    if let Some(g) = glse {
                        delta -= g[row] as f64;
                    }
                    let dxb = &mut dx[bi * l * c..(bi + 1) * l * c];
                    for j in 0..n {
                        let ds = p[j] * (dp[j] - delta) * scale;
                        for e in 0..d {
                            dxb[i * c + qc + e] += ds * xb[j * c + kc + e] as f64;
                            dxb[j * c + kc + e] += ds * xb[i * c + qc + e] as f64;
                            dxb[j * c + vc + e] += p[j] * g_o(e);
                        }
                    }
                }
            }
        }
        Ok(vec![HostTensor::f32(
            &[b, l, c],
            dx.into_iter().map(|v| v as f32).collect(),
        )?])
    }
    fn scratch(&self, inputs: &[&TensorDesc]) -> Vec<TensorDesc> {
        // D_i per (batch, head, row), and a stand-in for an absent gradient operand.
        let x = &inputs[0].shape;
        let (b, l) = (
            x.first().copied().unwrap_or(1),
            x.get(1).copied().unwrap_or(1),
        );
        vec![
            TensorDesc::f32(&[b.max(1), self.heads.max(1), l.max(1)]),
            TensorDesc::f32(&[4]),
        ]
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let descs: Vec<&TensorDesc> = (0..cx.inputs.len()).map(|i| cx.input(i)).collect();
        let (b, l, d) = self.check(&descs)?;
        let h = self.heads;
        let c = 3 * h * d;
        let od = if self.head_average { d } else { h * d };
        let p = BackParams {
            seq: l as u32,
            heads: h as u32,
            dim: d as u32,
            in_row: c as u32,
            in_batch: (l * c) as u32,
            k_col: (h * d) as u32,
            v_col: (2 * h * d) as u32,
            do_row: od as u32,
            do_batch: (l * od) as u32,
            do_head: if self.head_average { 0 } else { d as u32 },
            scale: self.scale,
            do_mul: if self.head_average {
                1.0 / h as f32
            } else {
                1.0
            },
            flags: self.causal as u32 | (self.has_dout as u32) << 1 | (self.has_glse as u32) << 2,
            _p: [0; 3],
        };
        let absent = Bind {
            slot: super::Slot::Scratch(1),
            chunk: 0,
            access: crate::device::Access::Read,
        };
        let dout = if self.has_dout { Bind::read(2) } else { absent };
        let glse = if self.has_glse {
            Bind::read(2 + self.has_dout as usize)
        } else {
            absent
        };
        let binds = vec![
            Bind::read(0),
            Bind::read(1),
            dout,
            glse,
            Bind::write(0),
            Bind::scratch(0),
        ];
        let grid = [groups(l, BWD_WG), h as u32, b as u32];
        // dq first: it also writes D_i, which the dk/dv pass reads.
        Ok(["attn_bwd_dq", "attn_bwd_dkv"]
            .into_iter()
            .map(|entry| Dispatch {
                kernel: Kernel::new("attention_backward", entry),
                params: params(&p),
                binds: binds.clone(),
                grid,
            })
            .collect())
    }
}

impl Graph {
    /// Multi-head attention over packed qkv [B, L, 3·heads·D] with scale 1/√D: [B, L, heads·D],
    /// or [B, L, D] (the mean over heads) with `head_average`.
    pub fn attention(
        &mut self,
        qkv: TensorId,
        heads: usize,
        causal: bool,
        head_average: bool,
    ) -> Result<TensorId> {
        let scale = default_scale(self.shape(qkv), heads);
        self.apply1(
            Attention {
                heads,
                causal,
                scale,
                head_average,
                save_lse: false,
            },
            &[qkv],
        )
    }

    /// `attention` that also returns the log-sum-exp [B, heads, L] of each row's scaled logits.
    pub fn attention_with_lse(
        &mut self,
        qkv: TensorId,
        heads: usize,
        causal: bool,
        head_average: bool,
    ) -> Result<(TensorId, TensorId)> {
        let scale = default_scale(self.shape(qkv), heads);
        let name = format!("attention(heads={heads}, lse)");
        let outs = self.apply(
            Attention {
                heads,
                causal,
                scale,
                head_average,
                save_lse: true,
            },
            &[qkv],
        )?;
        match outs.as_slice() {
            [o, lse] => Ok((*o, *lse)),
            _ => Err(Error::Graph(format!(
                "{name}: expected two outputs, got {}",
                outs.len()
            ))),
        }
    }
}

impl Graph {
    /// Gradient of attention (scale 1/√D) with respect to its packed qkv, given the forward's
    /// log-sum-exp `lse` [B, heads, L] and the gradients reaching its outputs: `dout` (the
    /// output's) and/or `dlse` (the lse output's). Returns dqkv, shaped like qkv.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward(
        &mut self,
        qkv: TensorId,
        lse: TensorId,
        dout: Option<TensorId>,
        dlse: Option<TensorId>,
        heads: usize,
        causal: bool,
        head_average: bool,
    ) -> Result<TensorId> {
        let scale = default_scale(self.shape(qkv), heads);
        let mut ins = vec![qkv, lse];
        ins.extend(dout);
        ins.extend(dlse);
        self.apply1(
            AttentionBackward {
                heads,
                causal,
                scale,
                head_average,
                has_dout: dout.is_some(),
                has_glse: dlse.is_some(),
            },
            &ins,
        )
    }
}

/// 1/√D for a packed qkv shape (1 when the shape is invalid: `infer` then reports the error).
fn default_scale(shape: &[usize], heads: usize) -> f32 {
    match (shape.last(), heads) {
        (Some(&c), h) if h > 0 && c >= 3 * h && c % (3 * h) == 0 => {
            1.0 / ((c / (3 * h)) as f32).sqrt()
        }
        _ => 1.0,
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let att = |heads, causal, head_average, save_lse, d: usize| Attention {
        heads,
        causal,
        scale: 1.0 / (d as f32).sqrt(),
        head_average,
        save_lse,
    };
    let mut cases = vec![
        Case {
            name: "attention 2 heads D=16 L=77 causal".into(),
            op: Arc::new(att(2, true, false, true, 16)),
            inputs: vec![pseudo_random(&[1, 77, 3 * 2 * 16], 21, 2.0)],
            atol: 2e-5,
            rtol: 1e-4,
        },
        Case {
            name: "attention 3 heads D=64 L=33 head_average".into(),
            op: Arc::new(att(3, false, true, false, 64)),
            inputs: vec![pseudo_random(&[2, 33, 3 * 3 * 64], 22, 1.0)],
            atol: 2e-5,
            rtol: 1e-4,
        },
    ];
    // The backward kernels, with the lse of the real forward (falls back to zeros, which the
    // reference handles the same way, if the forward reference ever failed).
    let x = pseudo_random(&[2, 19, 3 * 2 * 16], 23, 1.5);
    let lse = att(2, true, false, true, 16)
        .cpu(&[&x])
        .ok()
        .and_then(|mut v| v.pop())
        .unwrap_or_else(|| HostTensor::zeros(&[2, 2, 19]));
    cases.push(Case {
        name: "attention_backward 2 heads D=16 L=19 causal".into(),
        op: Arc::new(AttentionBackward {
            heads: 2,
            causal: true,
            scale: 0.25,
            head_average: false,
            has_dout: true,
            has_glse: false,
        }),
        inputs: vec![x, lse, pseudo_random(&[2, 19, 2 * 16], 24, 1.0)],
        atol: 2e-5,
        rtol: 1e-3,
    });
    cases
}
