//! Normalisations: LayerNorm over the last dim, LayerNorm2d over the channels of NCHW, and the
//! chunked L2 normalisation (PyTorch `F.normalize` on contiguous chunks of the last dim).
//!
//! Kernels (`shaders/norm.wgsl`) see the tensor as [outer, A, inner] and normalise over A:
//! - rows (inner = 1): `TPR` invocations share one row (a power of two chosen from the row
//!   length), so short rows pack many per workgroup and long rows use the whole workgroup;
//! - cols (inner > 1, LayerNorm2d): adjacent invocations own adjacent pixels, `SPLIT`
//!   invocations share a pixel's channel loop, so every global read is coalesced.
//!
//! Statistics are two-pass in f32 (the mean of the data shifted by its first element, then the
//! centred sum of squares), biased variance as in PyTorch. The CPU references accumulate in
//! f64.

use super::texture::{Operand, RowFill};
use super::{params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::device::Caps;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
pub(crate) struct AxisParams {
    pub outer: u32,
    pub a: u32,
    pub inner: u32,
    pub tiles: u32,
    pub eps: f32,
    pub _p: [u32; 3],
}

const WG: usize = 256;

/// Invocations per row for a row of `c` values: about four values each, at most the workgroup.
pub(crate) fn threads_per_row(c: usize) -> usize {
    c.div_ceil(4).next_power_of_two().clamp(1, WG)
}

/// Invocations per column for a reduction of length `a` over `cols` independent columns:
/// few when there are many columns (parallelism is already there), more for long, few columns.
pub(crate) fn split_for(a: usize, cols: usize) -> usize {
    if cols >= 8192 || a <= 16 {
        4
    } else if a <= 256 {
        16
    } else {
        64
    }
}

/// (outer, a, inner) of a tensor reduced over `axis`.
pub(crate) fn axis_layout(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Dispatches for the rows kernel `entry` over `rows` rows of length `c`.
pub(crate) fn rows_dispatch(
    shader: &'static str,
    entry: &'static str,
    rows: usize,
    c: usize,
    eps: f32,
    binds: Vec<Bind>,
) -> Dispatch {
    let tpr = threads_per_row(c);
    let rpw = WG / tpr;
    Dispatch {
        kernel: Kernel::new(shader, entry).with("TPR", tpr as f64),
        params: params(&AxisParams {
            outer: rows as u32,
            a: c as u32,
            inner: 1,
            tiles: 0,
            eps,
            _p: [0; 3],
        }),
        binds,
        grid: [rows.div_ceil(rpw) as u32, 1, 1],
    }
}

/// Dispatch for the cols kernel `entry` over [outer, a, inner] (reducing a, stride inner).
pub(crate) fn cols_dispatch(
    shader: &'static str,
    entry: &'static str,
    (outer, a, inner): (usize, usize, usize),
    eps: f32,
    binds: Vec<Bind>,
) -> Dispatch {
    let split = split_for(a, outer * inner);
    let ct = WG / split;
    let tiles = inner.div_ceil(ct);
    Dispatch {
        kernel: Kernel::new(shader, entry).with("SPLIT", split as f64),
        params: params(&AxisParams {
            outer: outer as u32,
            a: a as u32,
            inner: inner as u32,
            tiles: tiles as u32,
            eps,
            _p: [0; 3],
        }),
        binds,
        grid: [(outer * tiles) as u32, 1, 1],
    }
}

/// Typed error unless every tensor is f32 and non-empty.
pub(crate) fn check_f32_nonempty(op: &str, ts: &[&TensorDesc]) -> Result<()> {
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape.as_slice()).collect();
    if ts.iter().any(|t| t.dtype != DType::F32) {
        return Err(Error::shape(op, "needs f32 operands", &shapes));
    }
    if ts.iter().any(|t| t.numel() == 0) {
        return Err(Error::shape(op, "empty tensors are not supported", &shapes));
    }
    Ok(())
}

/// The error for an op given the wrong number of operands.
pub(crate) fn arity_err(op: &str, inputs: &[&TensorDesc], n: usize) -> Error {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
    Error::shape(
        op,
        format!("takes {n} operands, got {}", inputs.len()),
        &shapes,
    )
}

/// CPU LayerNorm over the axis of [outer, a, inner] with per-`a` gamma/beta; f64 statistics.
fn layer_norm_ref(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    (outer, a, inner): (usize, usize, usize),
    eps: f32,
) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for o in 0..outer {
        for j in 0..inner {
            let at = |i: usize| o * a * inner + i * inner + j;
            let mean = (0..a).map(|i| x[at(i)] as f64).sum::<f64>() / a as f64;
            let var = (0..a)
                .map(|i| (x[at(i)] as f64 - mean).powi(2))
                .sum::<f64>()
                / a as f64;
            let rstd = 1.0 / (var + eps as f64).sqrt();
            for i in 0..a {
                y[at(i)] =
                    ((x[at(i)] as f64 - mean) * rstd * gamma[i] as f64 + beta[i] as f64) as f32;
            }
        }
    }
    y
}

fn check_affine(
    op: &str,
    x: &TensorDesc,
    gamma: &TensorDesc,
    beta: &TensorDesc,
    c: usize,
) -> Result<()> {
    if gamma.shape != [c] || beta.shape != [c] {
        return Err(Error::shape(
            op,
            format!("gamma and beta must be [{c}] (the normalised dim of x)"),
            &[&x.shape, &gamma.shape, &beta.shape],
        ));
    }
    Ok(())
}

/// y = (x − mean) / sqrt(var + eps) · gamma + beta over the last dim of x [..., C]; gamma and
/// beta are [C]; biased variance. Inputs: x, gamma, beta.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub eps: f32,
}

impl Op for LayerNorm {
    fn name(&self) -> String {
        format!("layer_norm(eps={:e})", self.eps)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, g, b] = inputs else {
            return Err(arity_err(&self.name(), inputs, 3));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        if x.rank() < 1 {
            return Err(Error::shape(
                self.name(),
                "x must have rank >= 1",
                &[&x.shape],
            ));
        }
        check_affine(&self.name(), x, g, b, x.last())?;
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, g, b) = (
            inputs[0].as_f32()?,
            inputs[1].as_f32()?,
            inputs[2].as_f32()?,
        );
        let c = inputs[0].desc().last();
        let y = layer_norm_ref(x, g, b, (x.len() / c, c, 1), self.eps);
        Ok(vec![HostTensor::f32(&inputs[0].shape, y)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        layer_norm_backward(cx, self.eps, false)
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let x = cx.input(0);
        let c = x.last();
        let rows = x.numel() / c;
        if let Some(fills) = ln_textures(x, cx.caps) {
            let p = params(&LnTexParams {
                rows: rows as u32,
                c4: (c / 4) as u32,
                c: c as u32,
                eps: self.eps,
            });
            return Ok(norm_tex_dispatches(&fills, "ln_rows_tex", p, rows));
        }
        let binds = vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)];
        Ok(vec![rows_dispatch(
            "norm", "ln_rows", rows, c, self.eps, binds,
        )])
    }
    /// Textures 1 and 2 (CPU adapters) hold gamma and beta; texture 0, x, changes every run.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t == 1 || t == 2).then_some(t)
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        match inputs.first().and_then(|x| ln_textures(x, caps)) {
            Some(fills) => fills.iter().map(|f| f.size()).collect(),
            None => Vec::new(),
        }
    }
}

/// The params of `ln_rows_tex` (shaders/norm_tex.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnTexParams {
    rows: u32,
    c4: u32,
    c: u32,
    eps: f32,
}

/// How LayerNorm's x, gamma and beta reach textures 0, 1, 2 on CPU adapters (`ln_rows_tex`, one
/// lane per row: there a barrier-bound workgroup reduction per row is slow). None keeps
/// `ln_rows`: no texture operands, rows not a multiple of 4, or textures over the limits.
fn ln_textures(x: &TensorDesc, caps: &Caps) -> Option<[RowFill; 3]> {
    let c = x.last();
    if !caps.texture_operands || !c.is_multiple_of(4) {
        return None;
    }
    affine_fills(Operand::row_major(x.numel() / c, c), c, caps)
}

/// LayerNorm over the channels of NCHW x [N, C, H, W] at each pixel (timm's LayerNorm2d);
/// gamma, beta [C]. Inputs: x, gamma, beta.
#[derive(Clone, Debug)]
pub struct LayerNorm2d {
    pub eps: f32,
}

impl Op for LayerNorm2d {
    fn name(&self) -> String {
        format!("layer_norm2d(eps={:e})", self.eps)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, g, b] = inputs else {
            return Err(arity_err(&self.name(), inputs, 3));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        if x.rank() != 4 {
            return Err(Error::shape(
                self.name(),
                "x must be NCHW (rank 4)",
                &[&x.shape],
            ));
        }
        check_affine(&self.name(), x, g, b, x.shape[1])?;
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, g, b) = (
            inputs[0].as_f32()?,
            inputs[1].as_f32()?,
            inputs[2].as_f32()?,
        );
        let y = layer_norm_ref(x, g, b, axis_layout(&inputs[0].shape, 1), self.eps);
        Ok(vec![HostTensor::f32(&inputs[0].shape, y)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        layer_norm_backward(cx, self.eps, true)
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let layout = axis_layout(&cx.input(0).shape, 1);
        if let Some(fills) = ln2d_textures(cx.input(0), cx.caps) {
            let (outer, c, inner) = layout;
            let lanes = outer * inner / 4;
            let p = params(&LnColsTexParams {
                cols4: (inner / 4) as u32,
                lanes: lanes as u32,
                c: c as u32,
                eps: self.eps,
            });
            return Ok(norm_tex_dispatches(&fills, "ln_cols_tex", p, lanes));
        }
        let binds = vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)];
        Ok(vec![cols_dispatch(
            "norm", "ln_cols", layout, self.eps, binds,
        )])
    }
    /// Textures 1 and 2 (CPU adapters) hold gamma and beta; texture 0, x, changes every run.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t == 1 || t == 2).then_some(t)
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        match inputs.first().and_then(|x| ln2d_textures(x, caps)) {
            Some(fills) => fills.iter().map(|f| f.size()).collect(),
            None => Vec::new(),
        }
    }
}

/// The params of `ln_cols_tex` (shaders/norm_tex.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnColsTexParams {
    /// Texels of 4 pixels per channel (H·W / 4).
    cols4: u32,
    /// Batch entries × cols4: one lane each.
    lanes: u32,
    c: u32,
    eps: f32,
}

/// How LayerNorm2d's x (one texture row per batch entry and channel), gamma and beta reach
/// textures 0, 1, 2 on CPU adapters (`ln_cols_tex`, one lane per 4 pixels). None keeps
/// `ln_cols`: no texture operands, channels or pixels per image not a multiple of 4, or
/// textures over the limits.
fn ln2d_textures(x: &TensorDesc, caps: &Caps) -> Option<[RowFill; 3]> {
    let (outer, c, inner) = axis_layout(&x.shape, 1);
    if !caps.texture_operands || !c.is_multiple_of(4) || !inner.is_multiple_of(4) {
        return None;
    }
    affine_fills(Operand::row_major(outer * c, inner), c, caps)
}

/// The fills of a texture normalisation's textures: x (as laid out by the caller), then gamma
/// and beta [c] as one texture row each.
fn affine_fills(x: Operand, c: usize, caps: &Caps) -> Option<[RowFill; 3]> {
    let affine = RowFill::choose(&Operand::row_major(1, c), caps)?;
    Some([RowFill::choose(&x, caps)?, affine, affine])
}

/// A texture normalisation: the three fills, then `entry` of norm_tex.wgsl over `lanes` lanes
/// (x, gamma, beta in textures 0, 1, 2; y the output).
fn norm_tex_dispatches(
    fills: &[RowFill; 3],
    entry: &'static str,
    params: Vec<u8>,
    lanes: usize,
) -> Vec<Dispatch> {
    let mut out: Vec<Dispatch> = fills
        .iter()
        .enumerate()
        .map(|(i, f)| f.fill(i, i))
        .collect();
    out.push(Dispatch {
        kernel: Kernel::new("norm_tex", entry),
        params,
        binds: vec![
            Bind::texture_read(0),
            Bind::texture_read(1),
            Bind::texture_read(2),
            Bind::write(0),
        ],
        grid: [lanes.div_ceil(64) as u32, 1, 1],
    });
    out
}

/// Each contiguous chunk of `chunk` values of the last dim of x [..., C] (C % chunk == 0) is
/// divided by max(‖chunk‖₂, eps): PyTorch's `F.normalize(x.view(..., C/chunk, chunk), dim=-1)`.
#[derive(Clone, Debug)]
pub struct L2NormChunks {
    pub chunk: usize,
    pub eps: f32,
}

impl Op for L2NormChunks {
    fn name(&self) -> String {
        format!("l2_norm_chunks(chunk={}, eps={:e})", self.chunk, self.eps)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(arity_err(&self.name(), inputs, 1));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        if x.rank() < 1 || self.chunk == 0 || x.last() % self.chunk != 0 {
            return Err(Error::shape(
                self.name(),
                format!(
                    "the last dim of x must be a positive multiple of chunk {}",
                    self.chunk
                ),
                &[&x.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        let mut y = vec![0.0f32; x.len()];
        for (xs, ys) in x.chunks(self.chunk).zip(y.chunks_mut(self.chunk)) {
            let norm = xs.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let denom = norm.max(self.eps as f64);
            for (o, v) in ys.iter_mut().zip(xs) {
                *o = (*v as f64 / denom) as f32;
            }
        }
        Ok(vec![HostTensor::f32(&inputs[0].shape, y)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None]);
        };
        let dx = cx.g.apply1(
            L2NormChunksGrad {
                chunk: self.chunk,
                eps: self.eps,
            },
            &[cx.inputs[0], gy],
        )?;
        Ok(vec![Some(dx)])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let rows = cx.input(0).numel() / self.chunk;
        Ok(vec![rows_dispatch(
            "norm",
            "l2_rows",
            rows,
            self.chunk,
            self.eps,
            vec![Bind::read(0), Bind::write(0)],
        )])
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct BwdParams {
    outer: u32,
    a: u32,
    inner: u32,
    tiles: u32,
    eps: f32,
    nb: u32,
    rb: u32,
    npos: u32,
}

/// Workgroups the partial-sum stage of the parameter gradients aims for, and the most blocks
/// of positions it splits into (the final stage sums that many partials per channel).
const PARTIAL_TARGET: usize = 1024;

/// How the LayerNorm gradient kernels cover [outer, a, inner]: the partial-sum stage splits
/// the positions (outer·inner) into `nb` blocks of `rb`.
#[derive(Clone, Copy, Debug)]
struct GradPlan {
    outer: usize,
    a: usize,
    inner: usize,
    /// rows layout: channel tiles of the partial kernel; `split` row lanes share a tile.
    tiles: usize,
    split: usize,
    nb: usize,
    rb: usize,
}

impl GradPlan {
    fn new(shape: &[usize], nchw: bool) -> Self {
        let (outer, a, inner) = if nchw {
            axis_layout(shape, 1)
        } else {
            let c = shape.last().copied().unwrap_or(1).max(1);
            (shape.iter().product::<usize>() / c, c, 1)
        };
        let npos = outer * inner;
        let (tiles, split, lanes) = if nchw {
            // one channel per workgroup, 256 invocations over the positions
            (a, WG, WG)
        } else {
            let ct = a.next_power_of_two().min(WG);
            (a.div_ceil(ct), WG / ct, WG / ct)
        };
        let nb = PARTIAL_TARGET
            .div_ceil(tiles)
            .clamp(1, npos.div_ceil(lanes).clamp(1, PARTIAL_TARGET));
        let rb = npos.div_ceil(nb);
        let nb = npos.div_ceil(rb);
        GradPlan {
            outer,
            a,
            inner,
            tiles,
            split,
            nb,
            rb,
        }
    }
    fn npos(&self) -> usize {
        self.outer * self.inner
    }
    fn params(&self, tiles: usize, eps: f32) -> Vec<u8> {
        params(&BwdParams {
            outer: self.outer as u32,
            a: self.a as u32,
            inner: self.inner as u32,
            tiles: tiles as u32,
            eps,
            nb: self.nb as u32,
            rb: self.rb as u32,
            npos: self.npos() as u32,
        })
    }
}

/// CPU gradient of LayerNorm over the axis of [outer, a, inner]: (dx, dγ, dβ), f64 sums.
fn layer_norm_grad_ref(
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    (outer, a, inner): (usize, usize, usize),
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0f32; x.len()];
    let mut dg = vec![0.0f64; a];
    let mut db = vec![0.0f64; a];
    for o in 0..outer {
        for j in 0..inner {
            let at = |i: usize| o * a * inner + i * inner + j;
            let mean = (0..a).map(|i| x[at(i)] as f64).sum::<f64>() / a as f64;
            let var = (0..a)
                .map(|i| (x[at(i)] as f64 - mean).powi(2))
                .sum::<f64>()
                / a as f64;
            let rstd = 1.0 / (var + eps as f64).sqrt();
            let xh = |i: usize| (x[at(i)] as f64 - mean) * rstd;
            let gg = |i: usize| dy[at(i)] as f64 * gamma[i] as f64;
            let m1 = (0..a).map(gg).sum::<f64>() / a as f64;
            let m2 = (0..a).map(|i| gg(i) * xh(i)).sum::<f64>() / a as f64;
            for i in 0..a {
                dx[at(i)] = (rstd * (gg(i) - m1 - xh(i) * m2)) as f32;
                dg[i] += dy[at(i)] as f64 * xh(i);
                db[i] += dy[at(i)] as f64;
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (dx, f(dg), f(db))
}

/// Gradient of `LayerNorm` (`nchw` false: over the last dim) or `LayerNorm2d` (`nchw` true:
/// over the channels of NCHW). Inputs (x, gamma, dy); outputs (dx, dgamma, dbeta). The
/// statistics are recomputed from x. Three dispatches: the fused dx kernel (which also keeps
/// each position's mean and rstd in scratch), per-block partial sums of dy·x̂ and dy, and their
/// fixed-order total. Deterministic: no atomics.
#[derive(Clone, Debug)]
pub struct LayerNormGrad {
    pub eps: f32,
    pub nchw: bool,
}

impl Op for LayerNormGrad {
    fn name(&self) -> String {
        format!(
            "{}_grad(eps={:e})",
            if self.nchw {
                "layer_norm2d"
            } else {
                "layer_norm"
            },
            self.eps
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, g, dy] = inputs else {
            return Err(arity_err(&self.name(), inputs, 3));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        let shapes = [&x.shape[..], &g.shape[..], &dy.shape[..]];
        if self.nchw && x.rank() != 4 {
            return Err(Error::shape(
                self.name(),
                "x must be NCHW (rank 4)",
                &shapes,
            ));
        }
        if x.rank() < 1 {
            return Err(Error::shape(self.name(), "x must have rank >= 1", &shapes));
        }
        if dy.shape != x.shape {
            return Err(Error::shape(
                self.name(),
                "dy must have the shape of x",
                &shapes,
            ));
        }
        let c = if self.nchw { x.shape[1] } else { x.last() };
        if g.shape != [c] {
            return Err(Error::shape(
                self.name(),
                format!("gamma must be [{c}] (the normalised dim of x)"),
                &shapes,
            ));
        }
        Ok(vec![
            TensorDesc::f32(&x.shape),
            TensorDesc::f32(&[c]),
            TensorDesc::f32(&[c]),
        ])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, g, dy) = (
            inputs[0].as_f32()?,
            inputs[1].as_f32()?,
            inputs[2].as_f32()?,
        );
        let p = GradPlan::new(&inputs[0].shape, self.nchw);
        let (dx, dg, db) = layer_norm_grad_ref(x, g, dy, (p.outer, p.a, p.inner), self.eps);
        Ok(vec![
            HostTensor::f32(&inputs[0].shape, dx)?,
            HostTensor::f32(&[p.a], dg)?,
            HostTensor::f32(&[p.a], db)?,
        ])
    }
    fn scratch(&self, inputs: &[&TensorDesc]) -> Vec<TensorDesc> {
        let p = GradPlan::new(&inputs[0].shape, self.nchw);
        vec![
            TensorDesc::f32(&[2 * p.npos()]),
            TensorDesc::f32(&[2 * p.nb * p.a]),
        ]
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let p = GradPlan::new(&cx.input(0).shape, self.nchw);
        let dx_binds = vec![
            Bind::read(0),
            Bind::read(1),
            Bind::read(2),
            Bind::write(0),
            Bind::scratch(0),
        ];
        let part_binds = vec![
            Bind::read(0),
            Bind::read(2),
            Bind::scratch(0),
            Bind::scratch(1),
        ];
        let (dx, partial) = if self.nchw {
            let split = split_for(p.a, p.npos());
            let tiles = p.inner.div_ceil(WG / split);
            (
                Dispatch {
                    kernel: Kernel::new("norm_backward", "ln_cols_bwd").with("SPLIT", split as f64),
                    params: p.params(tiles, self.eps),
                    binds: dx_binds,
                    grid: [(p.outer * tiles) as u32, 1, 1],
                },
                Dispatch {
                    kernel: Kernel::new("norm_backward", "ln_cols_bwd_partial")
                        .with("SPLIT", WG as f64),
                    params: p.params(p.tiles, self.eps),
                    binds: part_binds,
                    grid: [(p.a * p.nb) as u32, 1, 1],
                },
            )
        } else {
            let tpr = threads_per_row(p.a);
            (
                Dispatch {
                    kernel: Kernel::new("norm_backward", "ln_rows_bwd").with("TPR", tpr as f64),
                    params: p.params(0, self.eps),
                    binds: dx_binds,
                    grid: [p.outer.div_ceil(WG / tpr) as u32, 1, 1],
                },
                Dispatch {
                    kernel: Kernel::new("norm_backward", "ln_rows_bwd_partial")
                        .with("SPLIT", p.split as f64),
                    params: p.params(p.tiles, self.eps),
                    binds: part_binds,
                    grid: [(p.tiles * p.nb) as u32, 1, 1],
                },
            )
        };
        let fin = Dispatch {
            kernel: Kernel::new("norm_backward", "ln_bwd_final"),
            params: p.params(0, self.eps),
            binds: vec![Bind::scratch(1), Bind::write(1), Bind::write(2)],
            grid: [p.a.div_ceil(WG) as u32, 1, 1],
        };
        Ok(vec![dx, partial, fin])
    }
}

/// The LayerNorm / LayerNorm2d backward rule: one `LayerNormGrad` node gives dx, dγ, dβ.
fn layer_norm_backward(
    cx: &mut super::BackwardCx,
    eps: f32,
    nchw: bool,
) -> Result<Vec<Option<TensorId>>> {
    let Some(gy) = cx.grads[0] else {
        return Ok(vec![None, None, None]);
    };
    let (x, gamma) = (cx.inputs[0], cx.inputs[1]);
    let out = cx.g.apply(LayerNormGrad { eps, nchw }, &[x, gamma, gy])?;
    Ok(out.into_iter().map(Some).collect())
}

/// Gradient of `L2NormChunks`: inputs (x, dy), output dx. Per chunk, with y = x/‖x‖:
/// dx = (dy − y·⟨dy, y⟩)/‖x‖ where ‖x‖ > eps, and dy/eps where the clamp is active.
#[derive(Clone, Debug)]
pub struct L2NormChunksGrad {
    pub chunk: usize,
    pub eps: f32,
}

impl Op for L2NormChunksGrad {
    fn name(&self) -> String {
        format!(
            "l2_norm_chunks_grad(chunk={}, eps={:e})",
            self.chunk, self.eps
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, dy] = inputs else {
            return Err(arity_err(&self.name(), inputs, 2));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        if x.rank() < 1 || self.chunk == 0 || x.last() % self.chunk != 0 || dy.shape != x.shape {
            return Err(Error::shape(
                self.name(),
                format!(
                    "dy must have the shape of x, whose last dim must be a positive multiple of chunk {}",
                    self.chunk
                ),
                &[&x.shape, &dy.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, dy) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let mut dx = vec![0.0f32; x.len()];
        for ((xs, gs), ds) in x
            .chunks(self.chunk)
            .zip(dy.chunks(self.chunk))
            .zip(dx.chunks_mut(self.chunk))
        {
            let norm = xs.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            if norm > self.eps as f64 {
                let dot = xs
                    .iter()
                    .zip(gs)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
                    / norm;
                for ((o, v), g) in ds.iter_mut().zip(xs).zip(gs) {
                    *o = ((*g as f64 - *v as f64 / norm * dot) / norm) as f32;
                }
            } else {
                for (o, g) in ds.iter_mut().zip(gs) {
                    *o = (*g as f64 / self.eps as f64) as f32;
                }
            }
        }
        Ok(vec![HostTensor::f32(&inputs[0].shape, dx)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let rows = cx.input(0).numel() / self.chunk;
        let tpr = threads_per_row(self.chunk);
        Ok(vec![Dispatch {
            kernel: Kernel::new("norm_backward", "l2_rows_bwd").with("TPR", tpr as f64),
            params: params(&BwdParams {
                outer: rows as u32,
                a: self.chunk as u32,
                inner: 1,
                eps: self.eps,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [rows.div_ceil(WG / tpr) as u32, 1, 1],
        }])
    }
}

impl Graph {
    /// LayerNorm over the last dim of `x` [..., C] with `gamma`, `beta` [C].
    pub fn layer_norm(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        beta: TensorId,
        eps: f32,
    ) -> Result<TensorId> {
        self.apply1(LayerNorm { eps }, &[x, gamma, beta])
    }
    /// LayerNorm over the channels of NCHW `x` [N, C, H, W] at each pixel; `gamma`, `beta` [C].
    pub fn layer_norm2d(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        beta: TensorId,
        eps: f32,
    ) -> Result<TensorId> {
        self.apply1(LayerNorm2d { eps }, &[x, gamma, beta])
    }
    /// `F.normalize` (eps 1e-12) on each contiguous chunk of `chunk` values of the last dim.
    pub fn l2_normalize_chunks(&mut self, x: TensorId, chunk: usize) -> Result<TensorId> {
        self.apply1(L2NormChunks { chunk, eps: 1e-12 }, &[x])
    }
    /// Gradients (dx, dgamma, dbeta) of `layer_norm` for the output gradient `dy`.
    pub fn layer_norm_grad(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        dy: TensorId,
        eps: f32,
    ) -> Result<(TensorId, TensorId, TensorId)> {
        let o = self.apply(LayerNormGrad { eps, nchw: false }, &[x, gamma, dy])?;
        Ok((o[0], o[1], o[2]))
    }
    /// Gradients (dx, dgamma, dbeta) of `layer_norm2d` for the output gradient `dy`.
    pub fn layer_norm2d_grad(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        dy: TensorId,
        eps: f32,
    ) -> Result<(TensorId, TensorId, TensorId)> {
        let o = self.apply(LayerNormGrad { eps, nchw: true }, &[x, gamma, dy])?;
        Ok((o[0], o[1], o[2]))
    }
    /// Gradient dx of `l2_normalize_chunks` (eps 1e-12) for the output gradient `dy`.
    pub fn l2_normalize_chunks_grad(
        &mut self,
        x: TensorId,
        dy: TensorId,
        chunk: usize,
    ) -> Result<TensorId> {
        self.apply1(L2NormChunksGrad { chunk, eps: 1e-12 }, &[x, dy])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let x = pseudo_random(&[2, 5, 257], 11, 3.0);
    let g = pseudo_random(&[257], 12, 1.0);
    let b = pseudo_random(&[257], 13, 1.0);
    let x2 = pseudo_random(&[2, 7, 5, 9], 14, 3.0);
    let g2 = pseudo_random(&[7], 15, 1.0);
    let b2 = pseudo_random(&[7], 16, 1.0);
    let z = pseudo_random(&[3, 24], 17, 2.0);
    vec![
        Case {
            name: "layer_norm [2,5,257]".into(),
            op: Arc::new(LayerNorm { eps: 1e-6 }),
            inputs: vec![x.clone(), g.clone(), b],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "layer_norm2d [2,7,5,9]".into(),
            op: Arc::new(LayerNorm2d { eps: 1e-6 }),
            inputs: vec![x2.clone(), g2.clone(), b2],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "l2_norm_chunks [3,24]/8".into(),
            op: Arc::new(L2NormChunks {
                chunk: 8,
                eps: 1e-12,
            }),
            inputs: vec![z.clone()],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "layer_norm_grad [2,5,257]".into(),
            op: Arc::new(LayerNormGrad {
                eps: 1e-6,
                nchw: false,
            }),
            inputs: vec![x.clone(), g, pseudo_random(&[2, 5, 257], 18, 1.0)],
            atol: 1e-4,
            rtol: 1e-4,
        },
        Case {
            name: "layer_norm2d_grad [2,7,5,9]".into(),
            op: Arc::new(LayerNormGrad {
                eps: 1e-6,
                nchw: true,
            }),
            inputs: vec![x2.clone(), g2, pseudo_random(&[2, 7, 5, 9], 19, 1.0)],
            atol: 1e-4,
            rtol: 1e-4,
        },
        Case {
            name: "l2_norm_chunks_grad [3,24]/8".into(),
            op: Arc::new(L2NormChunksGrad {
                chunk: 8,
                eps: 1e-12,
            }),
            inputs: vec![z, pseudo_random(&[3, 24], 20, 1.0)],
            atol: 1e-5,
            rtol: 1e-4,
        },
    ]
}
