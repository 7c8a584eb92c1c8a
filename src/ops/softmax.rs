//! Softmax over the last dim, numerically stable (max subtracted), rows of any length.
//!
//! Rows up to `SMALL_ROW` elements run one invocation per row (no barriers); longer rows run
//! one workgroup per row with an online (max, sum) pass, a tree merge and a writing pass. On
//! adapters that take texture operands (CPU drivers), rows of a multiple of 4 run
//! `softmax_rows_tex`: x copied (or packed) into a row-layout texture, one lane per row.

use super::texture::{Operand, RowFill};
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::device::Caps;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    rows: u32,
    n: u32,
    _p: [u32; 2],
}

/// Rows at most this long use the one-invocation-per-row kernel.
pub const SMALL_ROW: usize = 32;

/// y = softmax(x) along the last dim; same shape.
#[derive(Clone, Debug)]
pub struct Softmax;

/// (rows, row length) of a tensor for a last-dim op.
fn rows_cols(shape: &[usize]) -> (usize, usize) {
    let n = shape.last().copied().unwrap_or(1);
    let rows = shape.iter().product::<usize>() / n.max(1);
    (rows, n)
}

/// How `softmax_rows_tex` gets x into texture 0, where it applies (texture operands on, rows
/// of a multiple of 4, a texture within the adapter's limits).
fn row_texture(x: &TensorDesc, caps: &Caps) -> Option<RowFill> {
    let (rows, n) = rows_cols(&x.shape);
    if !caps.texture_operands || !n.is_multiple_of(4) || x.numel() == 0 {
        return None;
    }
    RowFill::choose(&Operand::row_major(rows, n), caps)
}

/// Softmax of one row in f64 accumulation (the CPU reference).
pub fn softmax_row_ref(x: &[f32], y: &mut [f32]) {
    let m = x.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
    let s: f64 = x.iter().map(|v| (*v as f64 - m).exp()).sum();
    for (o, v) in y.iter_mut().zip(x) {
        *o = ((*v as f64 - m).exp() / s) as f32;
    }
}

impl Op for Softmax {
    fn name(&self) -> String {
        "softmax".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape("softmax", "takes one operand", &[]));
        };
        if x.dtype != DType::F32 || x.rank() < 1 {
            return Err(Error::shape(
                "softmax",
                "needs an f32 tensor of rank >= 1",
                &[&x.shape],
            ));
        }
        if x.numel() == 0 {
            return Err(Error::shape(
                "softmax",
                "needs a non-empty tensor",
                &[&x.shape],
            ));
        }
        let (rows, n) = rows_cols(&x.shape);
        if rows > u32::MAX as usize || n > u32::MAX as usize || x.numel() > u32::MAX as usize {
            return Err(Error::shape(
                "softmax",
                "more than 2^32 elements",
                &[&x.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        let (_, n) = rows_cols(&inputs[0].shape);
        let mut y = vec![0.0f32; x.len()];
        for (xr, yr) in x.chunks(n.max(1)).zip(y.chunks_mut(n.max(1))) {
            softmax_row_ref(xr, yr);
        }
        Ok(vec![HostTensor::f32(&inputs[0].shape, y)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None]);
        };
        let y = cx.outputs[0];
        Ok(vec![Some(cx.g.apply1(SoftmaxGrad, &[y, gy])?)])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (rows, n) = rows_cols(&cx.input(0).shape);
        let p = params(&Params {
            rows: rows as u32,
            n: n as u32,
            ..Default::default()
        });
        if let Some(fill) = row_texture(cx.input(0), cx.caps) {
            return Ok(vec![
                fill.fill(0, 0),
                Dispatch {
                    kernel: Kernel::new("softmax", "softmax_rows_tex"),
                    params: p,
                    binds: vec![Bind::texture_read(0), Bind::write(0)],
                    grid: [groups(rows, 64), 1, 1],
                },
            ]);
        }
        let (entry, grid) = if n <= SMALL_ROW {
            ("softmax_small", groups(rows, 64))
        } else {
            ("softmax_rows", rows as u32)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("softmax", entry),
            params: p,
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [grid, 1, 1],
        }])
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        match inputs.first().and_then(|x| row_texture(x, caps)) {
            Some(fill) => vec![fill.size()],
            None => Vec::new(),
        }
    }
}

/// dx = y ⊙ (dy − Σ dy ⊙ y) along the last dim (the softmax backward, one fused kernel).
/// Inputs: y (the softmax output), dy; output dx, same shape.
#[derive(Clone, Debug)]
pub struct SoftmaxGrad;

impl Op for SoftmaxGrad {
    fn name(&self) -> String {
        "softmax_grad".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [y, dy] = inputs else {
            return Err(Error::shape(self.name(), "takes y and dy", &[]));
        };
        if y.shape != dy.shape || dy.dtype != DType::F32 {
            return Err(Error::shape(
                self.name(),
                "y and dy must be f32 of one shape",
                &[&y.shape, &dy.shape],
            ));
        }
        Softmax.infer(&[y])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (y, dy) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let (_, n) = rows_cols(&inputs[0].shape);
        let mut dx = vec![0.0f32; y.len()];
        for ((yr, gr), xr) in y
            .chunks(n.max(1))
            .zip(dy.chunks(n.max(1)))
            .zip(dx.chunks_mut(n.max(1)))
        {
            let s: f64 = yr.iter().zip(gr).map(|(a, b)| *a as f64 * *b as f64).sum();
            for ((o, a), b) in xr.iter_mut().zip(yr).zip(gr) {
                *o = (*a as f64 * (*b as f64 - s)) as f32;
            }
        }
        Ok(vec![HostTensor::f32(&inputs[0].shape, dx)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (rows, n) = rows_cols(&cx.input(0).shape);
        let (entry, grid) = if n <= SMALL_ROW {
            ("softmax_grad_small", groups(rows, 64))
        } else {
            ("softmax_grad_rows", rows as u32)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("backward_mm", entry),
            params: params(&Params {
                rows: rows as u32,
                n: n as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [grid, 1, 1],
        }])
    }
}

impl Graph {
    /// Softmax over the last dim.
    pub fn softmax(&mut self, x: TensorId) -> Result<TensorId> {
        self.apply1(Softmax, &[x])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    vec![
        Case {
            name: "softmax [5,300]".into(),
            op: Arc::new(Softmax),
            inputs: vec![pseudo_random(&[5, 300], 11, 8.0)],
            atol: 1e-6,
            rtol: 1e-4,
        },
        Case {
            name: "softmax [70,7]".into(),
            op: Arc::new(Softmax),
            inputs: vec![pseudo_random(&[70, 7], 12, 8.0)],
            atol: 1e-6,
            rtol: 1e-4,
        },
    ]
}
