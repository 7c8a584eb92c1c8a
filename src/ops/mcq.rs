//! UniTok's multi-codebook quantiser (MCQ): the fused cosine argmax and the code lookup.
//!
//! `McqArgmax`: z [..., G·d] raw features (not normalised) and codebooks [G, K, d] raw rows.
//! For each token and sub-codebook g: ẑ = normalize(z[.., g·d .. g·d + d]), each code row
//! ŵ_j = w_j / max(‖w_j‖₂, 1e-12) (PyTorch's `F.normalize`), index = argmax_j ⟨ẑ, ŵ_j⟩ with the
//! lowest index winning ties (as `torch.argmax`). Outputs: indices U32 [..., G] and the unit
//! codes f32 [..., G·d] (ŵ_index concatenated over g). One fused pass streams code tiles
//! through workgroup memory; no N×K similarity matrix exists anywhere. On CPU adapters that
//! take texture operands (code width 4 or 8) the codes come from a texture instead
//! (`mcq_argmax_tex`: one lane per token, 8 codes loaded per subgroup and broadcast in index
//! order), since there a workgroup-memory load is a loop over the lanes: ~50× faster at
//! UniTok's batch-32 shape, with the same order of operations and so the same bits.
//!
//! `McqLookup`: codebooks [G, K, d] and indices U32 [..., G] → unit codes [..., G·d] (the
//! decode path from saved codes). An index ≥ K yields a zero vector and is never read.
//!
//! Layout note: UniTok's `f_to_idx` returns (B, G, L); here indices are token-major [B·L, G]
//! (or [B, L, G]); a transpose converts between the two.
//!
//! CPU reference: everything in f32, in the order PyTorch's definition gives: a norm is the
//! square root of the sum of squares taken in index order, normalisation is x / max(norm, eps),
//! a dot product is summed in index order, and argmax keeps the first maximum. NaN inputs give
//! an unspecified (but in-range) index.

use super::norm::arity_err;
use super::texture::{self, Operand, RowFill};
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::device::Caps;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// `F.normalize`'s eps.
pub const MCQ_EPS: f32 = 1e-12;
/// The widest code row the kernel holds in registers.
pub const MAX_CODE_DIM: usize = 32;
/// Floats of one code tile in workgroup memory (must match TILE_F in mcq.wgsl).
const TILE_F: usize = 2048;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    g: u32,
    k: u32,
    d: u32,
    tk: u32,
    ntiles: u32,
    eps: f32,
    _p: u32,
}

/// The params of `mcq_argmax_tex` (shaders/mcq_tex.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct TexParams {
    n: u32,
    g: u32,
    k: u32,
    /// Texture width in texels.
    tw: u32,
    ntiles: u32,
    eps: f32,
    _p: [u32; 2],
}

/// v / max(‖v‖₂, eps) in f32, the sum of squares in index order.
pub fn normalize_f32(v: &[f32], eps: f32) -> Vec<f32> {
    let mut ss = 0.0f32;
    for x in v {
        ss += x * x;
    }
    let den = ss.sqrt().max(eps);
    v.iter().map(|x| x / den).collect()
}

/// ⟨a, b⟩ in f32, summed in index order.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// (G, K, d) of a codebooks tensor after checking it.
fn codebook_dims(op: &str, cb: &TensorDesc, other: &TensorDesc) -> Result<(usize, usize, usize)> {
    if cb.dtype != DType::F32 || cb.rank() != 3 {
        return Err(Error::shape(
            op,
            "codebooks must be f32 [G, K, d]",
            &[&other.shape, &cb.shape],
        ));
    }
    let (g, k, d) = (cb.shape[0], cb.shape[1], cb.shape[2]);
    if g == 0 || k == 0 || d == 0 {
        return Err(Error::shape(
            op,
            "empty codebooks are not supported",
            &[&other.shape, &cb.shape],
        ));
    }
    if d > MAX_CODE_DIM {
        return Err(Error::shape(
            op,
            format!("code width d = {d} exceeds the supported {MAX_CODE_DIM}"),
            &[&other.shape, &cb.shape],
        ));
    }
    if k > u32::MAX as usize / 2 {
        return Err(Error::shape(
            op,
            "too many codes",
            &[&other.shape, &cb.shape],
        ));
    }
    Ok((g, k, d))
}

/// Cosine argmax over each sub-codebook. Inputs: z [..., G·d], codebooks [G, K, d].
/// Outputs: indices U32 [..., G], unit codes f32 [..., G·d].
#[derive(Clone, Debug)]
pub struct McqArgmax;

/// How `mcq_argmax_tex` (CPU adapters, shaders/mcq_tex.wgsl) gets the raw codebook into its
/// texture, flat: texel t = (t mod width, t / width) holds floats 4t .. 4t + 3 — as whole
/// 256-byte rows of 16 texels by the copy engine (UniTok's [8, 4096, 8]), else one code row
/// (d / 4 texels) per texture row. None keeps mcq.wgsl: no texture operands, a code width
/// other than 4 or 8, or a texture over the limits.
fn code_texture(cb: &TensorDesc, caps: &Caps) -> Option<RowFill> {
    let (g, k, d) = (cb.shape[0], cb.shape[1], cb.shape[2]);
    if !caps.texture_operands || (d != 4 && d != 8) {
        return None;
    }
    let rows_of = |width: usize| Operand::row_major(g * k * d / width, width);
    let flat = (g * k * d)
        .is_multiple_of(64)
        .then(|| texture::natural_copy(&rows_of(64), caps))
        .flatten();
    match flat {
        Some(c) => Some(RowFill::Copy(c)),
        None => texture::rows_fit(caps, &rows_of(d)).then_some(RowFill::Pack(rows_of(d))),
    }
}

impl Op for McqArgmax {
    fn name(&self) -> String {
        "mcq_argmax".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [z, cb] = inputs else {
            return Err(arity_err(&self.name(), inputs, 2));
        };
        let (g, _, d) = codebook_dims(&self.name(), cb, z)?;
        if z.dtype != DType::F32 || z.rank() < 1 || z.last() != g * d || z.numel() == 0 {
            return Err(Error::shape(
                self.name(),
                format!(
                    "z must be non-empty f32 [..., G·d] = [..., {}] for codebooks [G, K, d]",
                    g * d
                ),
                &[&z.shape, &cb.shape],
            ));
        }
        let mut ishape = z.shape.clone();
        if let Some(l) = ishape.last_mut() {
            *l = g;
        }
        Ok(vec![
            TensorDesc::new(&ishape, DType::U32),
            TensorDesc::f32(&z.shape),
        ])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (z, cb) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let (g, k, d) = (inputs[1].shape[0], inputs[1].shape[1], inputs[1].shape[2]);
        let n = z.len() / (g * d);
        let unit: Vec<Vec<f32>> = cb.chunks(d).map(|w| normalize_f32(w, MCQ_EPS)).collect();
        let mut idx = vec![0u32; n * g];
        let mut codes = vec![0.0f32; n * g * d];
        for t in 0..n {
            for gi in 0..g {
                let zh = normalize_f32(&z[(t * g + gi) * d..(t * g + gi + 1) * d], MCQ_EPS);
                let (mut best, mut bidx) = (f32::NEG_INFINITY, 0usize);
                for j in 0..k {
                    let s = dot_f32(&zh, &unit[gi * k + j]);
                    if s > best {
                        best = s;
                        bidx = j;
                    }
                }
                idx[t * g + gi] = bidx as u32;
                codes[(t * g + gi) * d..(t * g + gi + 1) * d].copy_from_slice(&unit[gi * k + bidx]);
            }
        }
        let mut ishape = inputs[0].shape.clone();
        if let Some(l) = ishape.last_mut() {
            *l = g;
        }
        Ok(vec![
            HostTensor::u32(&ishape, idx)?,
            HostTensor::f32(&inputs[0].shape, codes)?,
        ])
    }
    /// z: None (the straight-through estimator is built at the model level); codebooks: the
    /// unit codes' gradient as for `McqLookup` at the chosen indices (the indices carry none).
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads.get(1).copied().flatten() else {
            return Ok(vec![None, None]);
        };
        let dcb =
            cx.g.apply1(McqCodeGrad, &[cx.inputs[1], cx.outputs[0], gy])?;
        Ok(vec![None, Some(dcb)])
    }
    /// Texture 0 (CPU adapters) holds the codebooks.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t == 0).then_some(1)
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        match inputs.get(1).and_then(|cb| code_texture(cb, caps)) {
            Some(t) => vec![t.size()],
            None => Vec::new(),
        }
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let cb = &cx.input(1).shape;
        let (g, k, d) = (cb[0], cb[1], cb[2]);
        let n = cx.input(0).numel() / (g * d);
        if let Some(t) = code_texture(cx.input(1), cx.caps) {
            let ntiles = n.div_ceil(64);
            return Ok(vec![
                t.fill(1, 0),
                Dispatch {
                    kernel: Kernel::new("mcq_tex", "mcq_argmax_tex").with("D4", (d / 4) as f64),
                    params: params(&TexParams {
                        n: n as u32,
                        g: g as u32,
                        k: k as u32,
                        tw: t.size()[0],
                        ntiles: ntiles as u32,
                        eps: MCQ_EPS,
                        _p: [0; 2],
                    }),
                    binds: vec![
                        Bind::read(0),
                        Bind::texture_read(0),
                        Bind::write(0),
                        Bind::write(1),
                    ],
                    grid: [(ntiles * g) as u32, 1, 1],
                },
            ]);
        }
        // Small problems: fewer tokens per workgroup and more invocations per token, so the
        // grid still fills the device.
        let tn = if n.div_ceil(64) * g >= 256 { 64 } else { 16 };
        let ntiles = n.div_ceil(tn);
        Ok(vec![Dispatch {
            kernel: Kernel::new("mcq", "mcq_argmax").with("TN", tn as f64),
            params: params(&Params {
                n: n as u32,
                g: g as u32,
                k: k as u32,
                d: d as u32,
                tk: (TILE_F / d) as u32,
                ntiles: ntiles as u32,
                eps: MCQ_EPS,
                _p: 0,
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0), Bind::write(1)],
            grid: [(ntiles * g) as u32, 1, 1],
        }])
    }
}

/// Unit code vectors from indices. Inputs: codebooks [G, K, d], indices U32 [..., G].
/// Output: f32 [..., G·d]; an index ≥ K gives zeros.
#[derive(Clone, Debug)]
pub struct McqLookup;

impl Op for McqLookup {
    fn name(&self) -> String {
        "mcq_lookup".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [cb, idx] = inputs else {
            return Err(arity_err(&self.name(), inputs, 2));
        };
        let (g, _, d) = codebook_dims(&self.name(), cb, idx)?;
        if idx.dtype != DType::U32 || idx.rank() < 1 || idx.last() != g || idx.numel() == 0 {
            return Err(Error::shape(
                self.name(),
                format!(
                    "indices must be non-empty U32 [..., G] = [..., {g}] for codebooks [G, K, d]"
                ),
                &[&cb.shape, &idx.shape],
            ));
        }
        let mut shape = idx.shape.clone();
        if let Some(l) = shape.last_mut() {
            *l = g * d;
        }
        Ok(vec![TensorDesc::f32(&shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (cb, idx) = (inputs[0].as_f32()?, inputs[1].as_u32()?);
        let (g, k, d) = (inputs[0].shape[0], inputs[0].shape[1], inputs[0].shape[2]);
        let mut out = vec![0.0f32; idx.len() * d];
        for (i, &ix) in idx.iter().enumerate() {
            let gi = i % g;
            if (ix as usize) < k {
                let row = (gi * k + ix as usize) * d;
                out[i * d..(i + 1) * d].copy_from_slice(&normalize_f32(&cb[row..row + d], MCQ_EPS));
            }
        }
        let mut shape = inputs[1].shape.clone();
        if let Some(l) = shape.last_mut() {
            *l = g * d;
        }
        Ok(vec![HostTensor::f32(&shape, out)?])
    }
    /// Codebooks: the scatter-add and normalisation backward (`McqCodeGrad`); indices: None.
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None, None]);
        };
        let dcb =
            cx.g.apply1(McqCodeGrad, &[cx.inputs[0], cx.inputs[1], gy])?;
        Ok(vec![Some(dcb), None])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let cb = &cx.input(0).shape;
        let (g, k, d) = (cb[0], cb[1], cb[2]);
        let n = cx.input(1).numel() / g;
        Ok(vec![Dispatch {
            kernel: Kernel::new("mcq", "mcq_lookup"),
            params: params(&Params {
                n: n as u32,
                g: g as u32,
                k: k as u32,
                d: d as u32,
                eps: MCQ_EPS,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [groups(n * g, 256), 1, 1],
        }])
    }
}

/// Codebook gradient of the unit-code lookup. Inputs: codebooks [G, K, d], indices U32
/// [..., G], dy f32 [..., G·d]; output [G, K, d]. Per code row (g, k): S = Σ dy rows of the
/// tokens whose index in group g is k (in token order, no atomics), then the backward of
/// ŵ = w / max(‖w‖, eps): (S − ŵ⟨ŵ, S⟩) / ‖w‖, or S / eps where ‖w‖ ≤ eps. One fused kernel.
#[derive(Clone, Debug)]
pub struct McqCodeGrad;

/// The CPU reference of `McqCodeGrad` for one code row w with scattered sum s (f64).
fn normalize_backward(w: &[f32], s: &[f64], out: &mut [f32]) {
    let norm = w.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
    if norm > MCQ_EPS as f64 {
        let dot: f64 = w.iter().zip(s).map(|(a, b)| *a as f64 / norm * b).sum();
        for ((o, a), b) in out.iter_mut().zip(w).zip(s) {
            *o = ((b - *a as f64 / norm * dot) / norm) as f32;
        }
    } else {
        for (o, b) in out.iter_mut().zip(s) {
            *o = (b / MCQ_EPS as f64) as f32;
        }
    }
}

impl Op for McqCodeGrad {
    fn name(&self) -> String {
        "mcq_code_grad".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [cb, idx, dy] = inputs else {
            return Err(arity_err(&self.name(), inputs, 3));
        };
        let codes = McqLookup.infer(&[cb, idx])?.remove(0);
        if dy.dtype != DType::F32 || dy.shape != codes.shape {
            return Err(Error::shape(
                self.name(),
                "dy must be f32 of the unit codes' shape [..., G·d]",
                &[&cb.shape, &idx.shape, &dy.shape],
            ));
        }
        if dy.numel() >= u32::MAX as usize || cb.numel() >= u32::MAX as usize {
            return Err(Error::shape(
                self.name(),
                "more than 2^32 elements",
                &[&cb.shape, &idx.shape, &dy.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&cb.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (cb, idx, dy) = (
            inputs[0].as_f32()?,
            inputs[1].as_u32()?,
            inputs[2].as_f32()?,
        );
        let (g, k, d) = (inputs[0].shape[0], inputs[0].shape[1], inputs[0].shape[2]);
        let mut s = vec![0.0f64; g * k * d];
        for (e, &ix) in idx.iter().enumerate() {
            let gi = e % g;
            if (ix as usize) < k {
                let r = gi * k + ix as usize;
                for j in 0..d {
                    s[r * d + j] += dy[e * d + j] as f64;
                }
            }
        }
        let mut out = vec![0.0f32; g * k * d];
        for r in 0..g * k {
            normalize_backward(
                &cb[r * d..(r + 1) * d],
                &s[r * d..(r + 1) * d],
                &mut out[r * d..(r + 1) * d],
            );
        }
        Ok(vec![HostTensor::f32(&inputs[0].shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let cb = &cx.input(0).shape;
        let (g, k, d) = (cb[0], cb[1], cb[2]);
        let n = cx.input(1).numel() / g;
        Ok(vec![Dispatch {
            kernel: Kernel::new("backward_mm", "mcq_code_grad"),
            params: params(&Params {
                n: n as u32,
                g: g as u32,
                k: k as u32,
                d: d as u32,
                eps: MCQ_EPS,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)],
            grid: [groups(g * k, 64), 1, 1],
        }])
    }
}

impl Graph {
    /// Multi-codebook cosine argmax: z [..., G·d], codebooks [G, K, d] →
    /// (indices U32 [..., G], unit codes f32 [..., G·d]).
    pub fn mcq_argmax(&mut self, z: TensorId, codebooks: TensorId) -> Result<(TensorId, TensorId)> {
        match self.apply(McqArgmax, &[z, codebooks])?.as_slice() {
            [i, c] => Ok((*i, *c)),
            other => Err(Error::Graph(format!(
                "mcq_argmax: expected two outputs, got {}",
                other.len()
            ))),
        }
    }
    /// Unit codes for saved indices: codebooks [G, K, d], indices U32 [..., G] → [..., G·d].
    pub fn mcq_lookup(&mut self, codebooks: TensorId, indices: TensorId) -> Result<TensorId> {
        self.apply1(McqLookup, &[codebooks, indices])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use crate::tensor::HostData;
    use std::sync::Arc;
    let z = pseudo_random(&[37, 16], 41, 1.0);
    let cb = pseudo_random(&[2, 300, 8], 42, 0.01);
    let idx = HostTensor {
        shape: vec![3, 2],
        data: HostData::U32(vec![0, 299, 5, 300, 17, 123]),
    };
    vec![
        Case {
            name: "mcq_argmax [37,16] x [2,300,8]".into(),
            op: Arc::new(McqArgmax),
            inputs: vec![z, cb.clone()],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "mcq_lookup [2,300,8] [3,2]".into(),
            op: Arc::new(McqLookup),
            inputs: vec![cb, idx],
            atol: 1e-6,
            rtol: 1e-5,
        },
    ]
}
