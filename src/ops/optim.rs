//! Optimizer ops, recorded after the backward pass so that a whole training step (forward,
//! backward, clipping, update) is one compiled graph:
//! - `SumSquares` writes Σg² of one gradient into a slot of an accumulator (in place);
//! - `ClipCoef` turns the accumulator into [min(1, max_norm/(‖g‖+1e-6)), ‖g‖], as
//!   `torch.nn.utils.clip_grad_norm_`;
//! - `AdamW` updates parameter, first and second moment in place, exactly as torch's
//!   single-tensor AdamW: p ← p(1 − lr·wd); m ← β1 m + (1−β1)g; v ← β2 v + (1−β2)g²;
//!   p ← p − (lr/bc1)·m/(√v/√bc2 + eps), with g the clipped gradient.
//!
//! Per-step scalars (lr from the schedule, the bias corrections) come from a small `hyper`
//! input tensor written each step, never from the uniform block, so nothing is re-planned.

use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    slot: u32,
    /// sum_squares_chunk: the chunk's first element index mod 256, and flags (1: first chunk,
    /// 2: last chunk).
    phase: u32,
    flags: u32,
    max_norm: f32,
    wd: f32,
    _q: [f32; 2],
}

/// The `hyper` tensor layout: [lr, beta1, beta2, eps, 1 − beta1^t, 1 − beta2^t].
pub const HYPER_LEN: usize = 6;

pub fn hyper(lr: f32, beta1: f32, beta2: f32, eps: f32, step: u32) -> HostTensor {
    let bc1 = 1.0 - (beta1 as f64).powi(step as i32);
    let bc2 = 1.0 - (beta2 as f64).powi(step as i32);
    HostTensor {
        shape: vec![HYPER_LEN],
        data: crate::tensor::HostData::F32(vec![lr, beta1, beta2, eps, bc1 as f32, bc2 as f32]),
    }
}

fn f32_only(op: &str, ds: &[&TensorDesc]) -> Result<()> {
    for d in ds {
        if d.dtype != DType::F32 {
            return Err(Error::shape(
                op,
                "needs f32 tensors",
                &ds.iter().map(|d| d.shape.as_slice()).collect::<Vec<_>>(),
            ));
        }
    }
    Ok(())
}

/// acc[slot] = Σ x²; inputs (x, acc), acc updated in place.
///
/// `x` may be a row-chunked tensor (a gradient larger than one storage binding): one dispatch
/// per chunk, each invocation carrying its running sum to the next chunk through a small
/// scratch buffer and owning the same elements (global index mod 256) in the same order as the
/// one-buffer kernel, so the sum has the same bits however the tensor is split.
#[derive(Clone, Debug)]
pub struct SumSquares {
    pub slot: usize,
}

impl Op for SumSquares {
    fn name(&self) -> String {
        format!("sum_squares(slot {})", self.slot)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, acc] = inputs else {
            return Err(Error::shape(self.name(), "takes (x, accumulator)", &[]));
        };
        f32_only("sum_squares", inputs)?;
        if self.slot >= acc.numel() {
            return Err(Error::shape(
                self.name(),
                "slot outside the accumulator",
                &[&x.shape, &acc.shape],
            ));
        }
        Ok(vec![])
    }
    fn updated_inputs(&self) -> Vec<usize> {
        vec![1]
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let s: f64 = inputs[0]
            .as_f32()?
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum();
        let mut acc = inputs[1].clone();
        if let crate::tensor::HostData::F32(a) = &mut acc.data {
            a[self.slot] = s as f32;
        }
        Ok(vec![acc])
    }
    fn scratch(&self, _inputs: &[&TensorDesc]) -> Vec<TensorDesc> {
        vec![TensorDesc::f32(&[SUM_WG])] // per-invocation running sums between row chunks
    }
    fn accepts_chunked(&self, i: usize) -> bool {
        i == 0
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let x = &cx.inputs[0];
        if x.chunks.len() <= 1 {
            return Ok(vec![Dispatch {
                kernel: Kernel::new("optim", "sum_squares"),
                params: params(&Params {
                    n: x.desc.numel() as u32,
                    slot: self.slot as u32,
                    ..Default::default()
                }),
                binds: vec![Bind::read(0), Bind::update(1)],
                grid: [1, 1, 1],
            }]);
        }
        let row = row_elems(&x.desc);
        let last = x.chunks.len() - 1;
        Ok(x.chunks
            .iter()
            .enumerate()
            .map(|(k, c)| Dispatch {
                kernel: Kernel::new("optim", "sum_squares_chunk"),
                params: params(&Params {
                    n: (c.rows * row) as u32,
                    slot: self.slot as u32,
                    phase: ((c.start * row) % SUM_WG) as u32,
                    flags: (k == 0) as u32 | (((k == last) as u32) << 1),
                    ..Default::default()
                }),
                binds: vec![Bind::read_chunk(0, k), Bind::update(1), Bind::scratch(0)],
                grid: [1, 1, 1],
            })
            .collect())
    }
}

/// The workgroup size of `sum_squares` (shaders/optim.wgsl).
const SUM_WG: usize = 256;

/// Elements per row of dimension 0.
fn row_elems(d: &TensorDesc) -> usize {
    d.numel() / d.shape.first().copied().unwrap_or(1).max(1)
}

/// [min(1, max_norm/(‖g‖+1e-6)), ‖g‖] from the accumulator of per-tensor Σg².
#[derive(Clone, Debug)]
pub struct ClipCoef {
    pub max_norm: f32,
}

impl Op for ClipCoef {
    fn name(&self) -> String {
        format!("clip_coef({})", self.max_norm)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [_] = inputs else {
            return Err(Error::shape(self.name(), "takes the accumulator", &[]));
        };
        f32_only("clip_coef", inputs)?;
        Ok(vec![TensorDesc::f32(&[2])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let s: f32 = inputs[0].as_f32()?.iter().sum();
        let norm = s.sqrt();
        Ok(vec![HostTensor::f32(
            &[2],
            vec![(self.max_norm / (norm + 1e-6)).min(1.0), norm],
        )?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        Ok(vec![Dispatch {
            kernel: Kernel::new("optim", "clip_coef"),
            params: params(&Params {
                n: cx.input(0).numel() as u32,
                max_norm: self.max_norm,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [1, 1, 1],
        }])
    }
}

/// AdamW on one tensor. Inputs (grad, hyper, clip, param, m, v); the last three are updated.
/// Grad, param and moments may be row-chunked (larger than one storage binding; equal shapes
/// give equal splits): one dispatch per chunk.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub weight_decay: f32,
}

impl Op for AdamW {
    fn name(&self) -> String {
        format!("adamw(wd {})", self.weight_decay)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [g, h, c, p, m, v] = inputs else {
            return Err(Error::shape(
                self.name(),
                "takes (grad, hyper, clip, param, m, v)",
                &[],
            ));
        };
        f32_only("adamw", inputs)?;
        let same = g.shape == p.shape && m.shape == p.shape && v.shape == p.shape;
        if !same || h.numel() != HYPER_LEN || c.numel() != 2 {
            return Err(Error::shape(
                self.name(),
                "grad, param, m, v must share a shape; hyper [6]; clip [2]",
                &[&g.shape, &h.shape, &c.shape, &p.shape, &m.shape, &v.shape],
            ));
        }
        Ok(vec![])
    }
    fn updated_inputs(&self) -> Vec<usize> {
        vec![3, 4, 5]
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (g, h, c) = (
            inputs[0].as_f32()?,
            inputs[1].as_f32()?,
            inputs[2].as_f32()?,
        );
        let (lr, b1, b2, eps, bc1, bc2) = (h[0], h[1], h[2], h[3], h[4], h[5]);
        let (mut p, mut m, mut v) = (inputs[3].clone(), inputs[4].clone(), inputs[5].clone());
        if let (
            crate::tensor::HostData::F32(p),
            crate::tensor::HostData::F32(m),
            crate::tensor::HostData::F32(v),
        ) = (&mut p.data, &mut m.data, &mut v.data)
        {
            for i in 0..g.len() {
                let gi = g[i] * c[0];
                let w = p[i] * (1.0 - lr * self.weight_decay);
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                p[i] = w - (lr / bc1) * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
            }
        }
        Ok(vec![p, m, v])
    }
    fn accepts_chunked(&self, i: usize) -> bool {
        matches!(i, 0 | 3 | 4 | 5)
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let chunks = &cx.inputs[0].chunks;
        if [3, 4, 5].iter().any(|i| &cx.inputs[*i].chunks != chunks) {
            return Err(Error::Graph(format!(
                "{}: grad, param and moments are split into different row chunks",
                self.name()
            )));
        }
        let row = row_elems(cx.input(0));
        Ok(chunks
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let n = c.rows * row;
                Dispatch {
                    kernel: Kernel::new("optim", "adamw"),
                    params: params(&Params {
                        n: n as u32,
                        wd: self.weight_decay,
                        ..Default::default()
                    }),
                    binds: vec![
                        Bind::read_chunk(0, k),
                        Bind::read(1),
                        Bind::read(2),
                        Bind::update_chunk(3, k),
                        Bind::update_chunk(4, k),
                        Bind::update_chunk(5, k),
                    ],
                    grid: [groups(n, 256), 1, 1],
                }
            })
            .collect())
    }
}

impl Graph {
    /// Record global-norm clipping of `grads`: returns the [coef, norm] tensor.
    pub fn clip_grad_norm(&mut self, grads: &[TensorId], max_norm: f32) -> Result<TensorId> {
        let acc = self.constant_fill(&[grads.len().max(1)], 0.0)?;
        for (slot, g) in grads.iter().enumerate() {
            self.apply(SumSquares { slot }, &[*g, acc])?;
        }
        self.apply1(ClipCoef { max_norm }, &[acc])
    }
    /// Record an AdamW update of `param` (and its moments `m`, `v`, which must be params).
    pub fn adamw(
        &mut self,
        grad: TensorId,
        hyper: TensorId,
        clip: TensorId,
        param: TensorId,
        m: TensorId,
        v: TensorId,
        weight_decay: f32,
    ) -> Result<()> {
        self.apply(AdamW { weight_decay }, &[grad, hyper, clip, param, m, v])?;
        Ok(())
    }
}
