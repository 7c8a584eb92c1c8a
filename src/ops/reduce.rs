//! Reductions: the mean over one axis (the CLIP image branch's mean over tokens).
//!
//! The tensor is seen as [outer, A, inner]. When the axis is the last one (inner = 1) the rows
//! kernel lets `TPR` invocations share each contiguous row; otherwise the cols kernel gives
//! adjacent invocations adjacent output columns (coalesced reads) and `SPLIT` invocations share
//! each column (`shaders/reduce.wgsl`). f32 accumulation; the CPU reference uses f64.

use super::norm::{arity_err, axis_layout, check_f32_nonempty, cols_dispatch, rows_dispatch};
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

/// Mean over `axis`, which is removed: [B, L, C] with axis 1 → [B, C].
#[derive(Clone, Debug)]
pub struct Mean {
    pub axis: usize,
}

impl Mean {
    fn out_shape(&self, shape: &[usize]) -> Vec<usize> {
        let mut s = shape.to_vec();
        s.remove(self.axis);
        s
    }
}

impl Op for Mean {
    fn name(&self) -> String {
        format!("mean(axis={})", self.axis)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(arity_err(&self.name(), inputs, 1));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        if self.axis >= x.rank() {
            return Err(Error::shape(
                self.name(),
                format!("axis {} out of range for rank {}", self.axis, x.rank()),
                &[&x.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&self.out_shape(&x.shape))])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        let (outer, a, inner) = axis_layout(&inputs[0].shape, self.axis);
        let mut y = vec![0.0f32; outer * inner];
        for o in 0..outer {
            for j in 0..inner {
                let s: f64 = (0..a)
                    .map(|i| x[o * a * inner + i * inner + j] as f64)
                    .sum();
                y[o * inner + j] = (s / a as f64) as f32;
            }
        }
        Ok(vec![HostTensor::f32(&self.out_shape(&inputs[0].shape), y)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None]);
        };
        let x_shape = cx.g.shape(cx.inputs[0]).to_vec();
        let dx = cx.g.apply1(
            MeanGrad {
                axis: self.axis,
                x_shape,
            },
            &[gy],
        )?;
        Ok(vec![Some(dx)])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (outer, a, inner) = axis_layout(&cx.input(0).shape, self.axis);
        let binds = vec![Bind::read(0), Bind::write(0)];
        Ok(vec![if inner == 1 {
            rows_dispatch("reduce", "mean_rows", outer, a, 0.0, binds)
        } else {
            cols_dispatch("reduce", "mean_cols", (outer, a, inner), 0.0, binds)
        }])
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct GradParams {
    total: u32,
    a: u32,
    inner: u32,
    scale: f32,
}

/// The mean's backward: dy (x's shape without `axis`) divided by the axis length and
/// broadcast back over it. Input dy; output dx of `x_shape`.
#[derive(Clone, Debug)]
pub struct MeanGrad {
    pub axis: usize,
    pub x_shape: Vec<usize>,
}

impl Op for MeanGrad {
    fn name(&self) -> String {
        format!("mean_grad(axis={}, x {:?})", self.axis, self.x_shape)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [dy] = inputs else {
            return Err(arity_err(&self.name(), inputs, 1));
        };
        check_f32_nonempty(&self.name(), inputs)?;
        let ok = self.axis < self.x_shape.len()
            && self.x_shape[self.axis] > 0
            && Mean { axis: self.axis }.out_shape(&self.x_shape) == dy.shape
            && self.x_shape.iter().product::<usize>() < u32::MAX as usize;
        if !ok {
            return Err(Error::shape(
                self.name(),
                "dy must be x's shape without the axis",
                &[&dy.shape, &self.x_shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&self.x_shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let dy = inputs[0].as_f32()?;
        let (outer, a, inner) = axis_layout(&self.x_shape, self.axis);
        let mut dx = vec![0.0f32; outer * a * inner];
        for (i, v) in dx.iter_mut().enumerate() {
            let (o, j) = (i / (a * inner), i % inner);
            *v = dy[o * inner + j] * (1.0 / a as f32);
        }
        Ok(vec![HostTensor::f32(&self.x_shape, dx)?])
    }
    fn encode(&self, _cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (outer, a, inner) = axis_layout(&self.x_shape, self.axis);
        let total = outer * a * inner;
        Ok(vec![Dispatch {
            kernel: Kernel::new("backward_mm", "mean_grad"),
            params: params(&GradParams {
                total: total as u32,
                a: a as u32,
                inner: inner as u32,
                scale: 1.0 / a as f32,
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(total, 256), 1, 1],
        }])
    }
}

impl Graph {
    /// Mean of `x` over `axis`, which is removed from the shape.
    pub fn mean(&mut self, x: TensorId, axis: usize) -> Result<TensorId> {
        self.apply1(Mean { axis }, &[x])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let x = pseudo_random(&[2, 33, 70], 21, 2.0);
    vec![
        Case {
            name: "mean axis 1 [2,33,70]".into(),
            op: Arc::new(Mean { axis: 1 }),
            inputs: vec![x.clone()],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "mean axis 2 [2,33,70]".into(),
            op: Arc::new(Mean { axis: 2 }),
            inputs: vec![x],
            atol: 1e-6,
            rtol: 1e-5,
        },
    ]
}
