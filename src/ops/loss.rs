//! Losses: reconstruction (UniTok: 0.2·L1 + 1.0·MSE on the unclamped decoder output) and the
//! row-wise cross-entropy of the CLIP contrastive loss. Each is a scalar-valued op with a backward rule, so a loss is a graph node like any other and a total
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

/// Mean over rows of the cross-entropy of `logits` [rows, classes] against integer `labels`
/// [rows] (`torch.nn.functional.cross_entropy`, mean reduction); output [1].
#[derive(Clone, Debug)]
pub struct CrossEntropy;

fn ce_check(op: &str, x: &TensorDesc, l: &TensorDesc) -> Result<(usize, usize)> {
    if x.rank() != 2 || x.dtype != DType::F32 || l.dtype != DType::U32 || l.shape != x.shape[..1] {
        return Err(Error::shape(
            op,
            "needs f32 logits [rows, classes] and u32 labels [rows]",
            &[&x.shape, &l.shape],
        ));
    }
    if x.numel() == 0 || x.numel() >= u32::MAX as usize {
        return Err(Error::shape(op, "needs 1 ..= 2^32 − 1 logits", &[&x.shape]));
    }
    Ok((x.shape[0], x.shape[1]))
}

/// Per-row log-sum-exp in f64 (the CPU reference of both directions).
fn lse_ref(row: &[f32]) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
    m + row.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln()
}

fn labels_in_range(op: &str, labels: &[u32], classes: usize) -> Result<()> {
    match labels.iter().position(|l| *l as usize >= classes) {
        Some(r) => Err(Error::Invalid(format!(
            "{op}: label {} of row {r} is not below the {classes} classes",
            labels[r]
        ))),
        None => Ok(()),
    }
}

impl Op for CrossEntropy {
    fn name(&self) -> String {
        "cross_entropy".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, l] = inputs else {
            return Err(Error::shape(self.name(), "takes (logits, labels)", &[]));
        };
        ce_check(&self.name(), x, l)?;
        Ok(vec![TensorDesc::f32(&[1])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, l) = (inputs[0].as_f32()?, inputs[1].as_u32()?);
        let (rows, c) = (inputs[0].shape[0], inputs[0].shape[1]);
        labels_in_range(&self.name(), l, c)?;
        let s: f64 = (0..rows)
            .map(|r| lse_ref(&x[r * c..(r + 1) * c]) - x[r * c + l[r] as usize] as f64)
            .sum();
        Ok(vec![HostTensor::f32(&[1], vec![(s / rows as f64) as f32])?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let sh = &cx.input(0).shape;
        Ok(vec![Dispatch {
            kernel: Kernel::new("loss", "cross_entropy"),
            params: params(&Params {
                n: sh[0] as u32,
                _p: [sh[1] as u32, 0, 0],
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [1, 1, 1],
        }])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gl) = cx.grads[0] else {
            return Ok(vec![None, None]);
        };
        let (x, l) = (cx.inputs[0], cx.inputs[1]);
        Ok(vec![
            Some(cx.g.apply1(CrossEntropyGrad, &[x, l, gl])?),
            None,
        ])
    }
}

/// d(cross-entropy)/dlogits given (logits, labels, dL/dloss [1]).
#[derive(Clone, Debug)]
pub struct CrossEntropyGrad;

impl Op for CrossEntropyGrad {
    fn name(&self) -> String {
        "cross_entropy_grad".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, l, g] = inputs else {
            return Err(Error::shape(
                self.name(),
                "takes (logits, labels, dloss)",
                &[],
            ));
        };
        ce_check(&self.name(), x, l)?;
        if g.numel() != 1 || g.dtype != DType::F32 {
            return Err(Error::shape(
                self.name(),
                "dloss must hold one f32",
                &[&g.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, l, g) = (
            inputs[0].as_f32()?,
            inputs[1].as_u32()?,
            inputs[2].as_f32()?[0] as f64,
        );
        let (rows, c) = (inputs[0].shape[0], inputs[0].shape[1]);
        labels_in_range(&self.name(), l, c)?;
        let mut out = vec![0.0f32; x.len()];
        for r in 0..rows {
            let row = &x[r * c..(r + 1) * c];
            let lse = lse_ref(row);
            for j in 0..c {
                let onehot = if j == l[r] as usize { 1.0 } else { 0.0 };
                out[r * c + j] = (((row[j] as f64 - lse).exp() - onehot) * g / rows as f64) as f32;
            }
        }
        Ok(vec![HostTensor::f32(&inputs[0].shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let sh = &cx.input(0).shape;
        Ok(vec![Dispatch {
            kernel: Kernel::new("loss", "cross_entropy_backward"),
            params: params(&Params {
                n: sh[0] as u32,
                _p: [sh[1] as u32, 0, 0],
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::read(2), Bind::write(0)],
            grid: [groups(sh[0], 64), 1, 1],
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
    /// Mean cross-entropy of `logits` [rows, classes] against u32 `labels` [rows]; shape [1].
    pub fn cross_entropy(&mut self, logits: TensorId, labels: TensorId) -> Result<TensorId> {
        self.apply1(CrossEntropy, &[logits, labels])
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
