//! Reconstruction losses (UniTok: 0.2·L1 + 1.0·MSE on the unclamped decoder output). Each is a
//! scalar-valued op with a backward rule, so a loss is a graph node like any other and a total
//! loss is a weighted sum of named terms (see the training code).

use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    _p: [u32; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegressionKind {
    L1,
    Mse,
}

impl RegressionKind {
    fn code(self) -> f64 {
        match self {
            RegressionKind::L1 => 0.0,
            RegressionKind::Mse => 1.0,
        }
    }
}

/// mean over all elements of |x − y| or (x − y)²; output shape [1].
#[derive(Clone, Debug)]
pub struct RegressionLoss {
    pub kind: RegressionKind,
}

fn same_f32(op: &str, a: &TensorDesc, b: &TensorDesc) -> Result<()> {
    if a.shape != b.shape || a.dtype != DType::F32 || b.dtype != DType::F32 || a.numel() == 0 {
        return Err(Error::shape(
            op,
            "needs two non-empty f32 tensors of one shape",
            &[&a.shape, &b.shape],
        ));
    }
    Ok(())
}

impl Op for RegressionLoss {
    fn name(&self) -> String {
        format!("{:?}_loss", self.kind).to_lowercase()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, y] = inputs else {
            return Err(Error::shape(self.name(), "takes (x, target)", &[]));
        };
        same_f32(&self.name(), x, y)?;
        Ok(vec![TensorDesc::f32(&[1])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, y) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let s: f64 = x
            .iter()
            .zip(y)
            .map(|(a, b)| {
                let d = (*a - *b) as f64;
                match self.kind {
                    RegressionKind::L1 => d.abs(),
                    RegressionKind::Mse => d * d,
                }
            })
            .sum();
        Ok(vec![HostTensor::f32(
            &[1],
            vec![(s / x.len() as f64) as f32],
        )?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        Ok(vec![Dispatch {
            kernel: Kernel::new("loss", "loss_forward").with("KIND", self.kind.code()),
            params: params(&Params {
                n: cx.input(0).numel() as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [1, 1, 1],
        }])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gl) = cx.grads[0] else {
            return Ok(vec![None, None]);
        };
        let (x, y) = (cx.inputs[0], cx.inputs[1]);
        let dx =
            cx.g.apply1(RegressionLossGrad { kind: self.kind }, &[x, y, gl])?;
        let dy = cx.g.scale(dx, -1.0)?;
        Ok(vec![Some(dx), Some(dy)])
    }
}

/// d(loss)/dx given (x, target, dL/dloss [1]).
#[derive(Clone, Debug)]
pub struct RegressionLossGrad {
    pub kind: RegressionKind,
}

impl Op for RegressionLossGrad {
    fn name(&self) -> String {
        format!("{:?}_loss_grad", self.kind).to_lowercase()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, y, g] = inputs else {
            return Err(Error::shape(self.name(), "takes (x, target, dloss)", &[]));
        };
        same_f32(&self.name(), x, y)?;
        if g.numel() != 1 {
            return Err(Error::shape(
                self.name(),
                "dloss must hold one value",
                &[&g.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, y, g) = (
            inputs[0].as_f32()?,
            inputs[1].as_f32()?,
            inputs[2].as_f32()?[0],
        );
        let n = x.len() as f32;
        let out = x
            .iter()
            .zip(y)
            .map(|(a, b)| {
                let d = a - b;
                let s = match self.kind {
                    RegressionKind::L1 => {
                        if d > 0.0 {
                            1.0
                        } else if d < 0.0 {
                            -1.0
                        } else {
                            0.0
                        }
                    }
                    RegressionKind::Mse => 2.0 * d,
                };
                s * g / n
            })
            .collect();
        Ok(vec![HostTensor::f32(&inputs[0].shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        Ok(vec![Dispatch {
            kernel: Kernel::new("loss", "loss_backward").with("KIND", self.kind.code()),
            params: params(&Params {
                n: n as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)],
            grid: [groups(n, 256), 1, 1],
        }])
    }
}

impl Graph {
    pub fn l1_loss(&mut self, x: TensorId, target: TensorId) -> Result<TensorId> {
        self.apply1(
            RegressionLoss {
                kind: RegressionKind::L1,
            },
            &[x, target],
        )
    }
    pub fn mse_loss(&mut self, x: TensorId, target: TensorId) -> Result<TensorId> {
        self.apply1(
            RegressionLoss {
                kind: RegressionKind::Mse,
            },
            &[x, target],
        )
    }
}
