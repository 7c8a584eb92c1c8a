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

use super::{params, Bind, Dispatch, EncodeCx, Kernel, Op};
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
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let x = cx.input(0);
        let c = x.last();
        let binds = vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)];
        Ok(vec![rows_dispatch(
            "norm",
            "ln_rows",
            x.numel() / c,
            c,
            self.eps,
            binds,
        )])
    }
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
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let layout = axis_layout(&cx.input(0).shape, 1);
        let binds = vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)];
        Ok(vec![cols_dispatch(
            "norm", "ln_cols", layout, self.eps, binds,
        )])
    }
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
            inputs: vec![x, g, b],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "layer_norm2d [2,7,5,9]".into(),
            op: Arc::new(LayerNorm2d { eps: 1e-6 }),
            inputs: vec![x2, g2, b2],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "l2_norm_chunks [3,24]/8".into(),
            op: Arc::new(L2NormChunks {
                chunk: 8,
                eps: 1e-12,
            }),
            inputs: vec![z],
            atol: 1e-6,
            rtol: 1e-5,
        },
    ]
}
