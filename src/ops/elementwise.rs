//! Elementwise ops: unary maps (GELU erf/tanh, scale, affine, clamp, copy), broadcasting binary
//! maps (add, sub, mul and the fused GeGLU gate gelu_tanh(a)·b), reshape and the batched
//! transpose of the last two dims (tokens ↔ NCHW).

use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    nb: u32,
    inner: u32,
    batch: u32,
    alpha: f32,
    beta: f32,
    _p: [u32; 2],
}

const WG: usize = 256;

/// Exact GELU in f64 (the CPU reference).
pub fn gelu_erf_ref(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))) as f32
}

/// tanh-approximate GELU in f64.
pub fn gelu_tanh_ref(x: f32) -> f32 {
    let x = x as f64;
    let k = (2.0 / std::f64::consts::PI).sqrt();
    (0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())) as f32
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryKind {
    GeluErf,
    GeluTanh,
    Scale(f32),
    Clamp(f32, f32),
    /// A plain copy (also what `reshape` runs).
    Copy,
    /// alpha·x + beta
    Affine(f32, f32),
    /// e^x (the CLIP logit scale is stored as its logarithm).
    Exp,
}

impl UnaryKind {
    fn code(self) -> f64 {
        match self {
            UnaryKind::GeluErf => 0.0,
            UnaryKind::GeluTanh => 1.0,
            UnaryKind::Scale(_) => 2.0,
            UnaryKind::Clamp(..) => 3.0,
            UnaryKind::Copy => 4.0,
            UnaryKind::Affine(..) => 5.0,
            UnaryKind::Exp => 6.0,
        }
    }
    /// The uniform block of a unary (or unary-gradient) kernel over n elements.
    fn params(self, n: usize) -> Vec<u8> {
        let (alpha, beta) = match self {
            UnaryKind::Scale(a) => (a, 0.0),
            UnaryKind::Clamp(lo, hi) => (lo, hi),
            UnaryKind::Affine(a, b) => (a, b),
            _ => (0.0, 0.0),
        };
        params(&Params {
            n: n as u32,
            alpha,
            beta,
            ..Default::default()
        })
    }
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryKind::GeluErf => gelu_erf_ref(x),
            UnaryKind::GeluTanh => gelu_tanh_ref(x),
            UnaryKind::Scale(a) => a * x,
            UnaryKind::Clamp(lo, hi) => x.clamp(lo, hi),
            UnaryKind::Copy => x,
            UnaryKind::Affine(a, b) => a * x + b,
            UnaryKind::Exp => x.exp(),
        }
    }
}

/// y = f(x), same shape; `out_shape` reshapes the result (same element count).
#[derive(Clone, Debug)]
pub struct Unary {
    pub kind: UnaryKind,
    pub out_shape: Option<Vec<usize>>,
}

impl Op for Unary {
    fn name(&self) -> String {
        format!("unary({:?})", self.kind)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape(self.name(), "takes one operand", &[]));
        };
        if x.dtype != DType::F32 {
            return Err(Error::shape(self.name(), "needs f32", &[&x.shape]));
        }
        let shape = self.out_shape.clone().unwrap_or_else(|| x.shape.clone());
        if shape.iter().product::<usize>() != x.numel() {
            return Err(Error::shape(
                self.name(),
                format!("cannot reshape to {shape:?}"),
                &[&x.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        let shape = self
            .out_shape
            .clone()
            .unwrap_or_else(|| inputs[0].shape.clone());
        Ok(vec![HostTensor::f32(
            &shape,
            x.iter().map(|v| self.kind.apply(*v)).collect(),
        )?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None]);
        };
        let x = cx.inputs[0];
        let xs = cx.g.shape(x).to_vec();
        let gy = cx.g.reshape(gy, &xs)?;
        let dx = match self.kind {
            UnaryKind::Copy => gy,
            UnaryKind::Scale(a) | UnaryKind::Affine(a, _) => cx.g.scale(gy, a)?,
            kind => cx.g.apply1(UnaryGrad { kind }, &[x, gy])?,
        };
        Ok(vec![Some(dx)])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        // A vec4 per invocation where the count allows (see elementwise.wgsl unary4).
        let (entry, lanes) = if n.is_multiple_of(4) {
            ("unary4", n / 4)
        } else {
            ("unary", n)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", entry).with("OP", self.kind.code()),
            params: self.kind.params(n),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(lanes, WG), 1, 1],
        }])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    /// gelu_tanh(a) · b — the GeGLU gate.
    Geglu,
}

impl BinaryKind {
    fn code(self) -> f64 {
        match self {
            BinaryKind::Add => 0.0,
            BinaryKind::Sub => 1.0,
            BinaryKind::Mul => 2.0,
            BinaryKind::Geglu => 3.0,
        }
    }
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Geglu => gelu_tanh_ref(a) * b,
        }
    }
}

/// out = a ∘ b, where b broadcasts onto a: right-aligned, each dim of b equal to a's or 1, and
/// b's non-1 dims contiguous (a bias over the last dim, a per-channel vector over NCHW, a
/// same-shape residual).
#[derive(Clone, Debug)]
pub struct Binary {
    pub kind: BinaryKind,
}

/// (nb, inner) of a broadcast of `b` onto `a`, or None if it is not of the supported form.
pub fn broadcast_layout(a: &[usize], b: &[usize]) -> Option<(usize, usize)> {
    if b.len() > a.len() {
        return None;
    }
    let off = a.len() - b.len();
    // Dims of size 1 in b do not affect indexing; b's other dims must equal a's and, apart
    // from size-1 dims of a between them, be contiguous in a.
    let mut block: Option<(usize, usize)> = None;
    for (j, &d) in b.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let k = off + j;
        if d != a[k] {
            return None;
        }
        block = match block {
            None => Some((k, k + 1)),
            Some((lo, hi)) if a[hi..k].iter().all(|&x| x == 1) => Some((lo, k + 1)),
            Some(_) => return None,
        };
    }
    let nb: usize = b.iter().product();
    let inner: usize = block.map(|(_, hi)| a[hi..].iter().product()).unwrap_or(1);
    Some((nb.max(1), inner.max(1)))
}

impl Op for Binary {
    fn name(&self) -> String {
        format!("binary({:?})", self.kind)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [a, b] = inputs else {
            return Err(Error::shape(self.name(), "takes two operands", &[]));
        };
        if a.dtype != DType::F32 || b.dtype != DType::F32 {
            return Err(Error::shape(
                self.name(),
                "needs f32 operands",
                &[&a.shape, &b.shape],
            ));
        }
        if broadcast_layout(&a.shape, &b.shape).is_none() {
            return Err(Error::shape(
                self.name(),
                "b must equal a or broadcast onto it (right-aligned, dims equal or 1, one contiguous block)",
                &[&a.shape, &b.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&a.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (a, b) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let (nb, inner) =
            broadcast_layout(&inputs[0].shape, &inputs[1].shape).ok_or_else(|| {
                Error::shape(
                    self.name(),
                    "bad broadcast",
                    &[&inputs[0].shape, &inputs[1].shape],
                )
            })?;
        let out = a
            .iter()
            .enumerate()
            .map(|(i, x)| self.kind.apply(*x, b[(i / inner) % nb]))
            .collect();
        Ok(vec![HostTensor::f32(&inputs[0].shape, out)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None, None]);
        };
        let (a, b) = (cx.inputs[0], cx.inputs[1]);
        let g = &mut *cx.g;
        let (da, db_full) = match self.kind {
            BinaryKind::Add => (gy, gy),
            BinaryKind::Sub => (gy, g.scale(gy, -1.0)?),
            BinaryKind::Mul => (g.mul(gy, b)?, g.mul(gy, a)?),
            BinaryKind::Geglu => {
                // d/da = gy·b·gelu_tanh'(a); d/db = gy·gelu_tanh(a)
                let gb = g.mul(gy, b)?;
                let da = g.apply1(
                    UnaryGrad {
                        kind: UnaryKind::GeluTanh,
                    },
                    &[a, gb],
                )?;
                let ga = g.gelu_tanh(a)?;
                (da, g.mul(gy, ga)?)
            }
        };
        let db = to_operand_shape(g, db_full, b)?;
        Ok(vec![Some(da), Some(db)])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        let (nb, inner) =
            broadcast_layout(&cx.input(0).shape, &cx.input(1).shape).ok_or_else(|| {
                Error::shape(
                    self.name(),
                    "bad broadcast",
                    &[&cx.input(0).shape, &cx.input(1).shape],
                )
            })?;
        // A vec4 per invocation where 4 neighbouring outputs meet 4 neighbouring elements of b
        // or one (see elementwise.wgsl binary4).
        let vec4 =
            n.is_multiple_of(4) && nb.is_multiple_of(4) && (inner == 1 || inner.is_multiple_of(4));
        let (entry, lanes) = if vec4 {
            ("binary4", n / 4)
        } else {
            ("binary", n)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", entry).with("OP", self.kind.code()),
            params: params(&Params {
                n: n as u32,
                nb: nb as u32,
                inner: inner as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [groups(lanes, WG), 1, 1],
        }])
    }
}

/// Swap the last two dims: (..., R, C) → (..., C, R).
#[derive(Clone, Debug)]
pub struct Transpose;

impl Op for Transpose {
    fn name(&self) -> String {
        "transpose".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape("transpose", "takes one operand", &[]));
        };
        if x.rank() < 2 || x.dtype != DType::F32 {
            return Err(Error::shape(
                "transpose",
                "needs an f32 tensor of rank >= 2",
                &[&x.shape],
            ));
        }
        let mut s = x.shape.clone();
        let r = s.len();
        s.swap(r - 1, r - 2);
        Ok(vec![TensorDesc::f32(&s)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        let sh = &inputs[0].shape;
        let r = sh.len();
        let (rows, cols) = (sh[r - 2], sh[r - 1]);
        let batch = x.len() / (rows * cols).max(1);
        let mut out = vec![0.0; x.len()];
        for b in 0..batch {
            for i in 0..rows {
                for j in 0..cols {
                    out[b * rows * cols + j * rows + i] = x[b * rows * cols + i * cols + j];
                }
            }
        }
        let mut s = sh.clone();
        s.swap(r - 1, r - 2);
        Ok(vec![HostTensor::f32(&s, out)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        Ok(vec![match cx.grads[0] {
            Some(gy) => Some(cx.g.transpose(gy)?),
            None => None,
        }])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let sh = &cx.input(0).shape;
        let r = sh.len();
        let (rows, cols) = (sh[r - 2], sh[r - 1]);
        let batch = cx.input(0).numel() / (rows * cols).max(1);
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "transpose"),
            params: params(&Params {
                nb: rows as u32,
                inner: cols as u32,
                batch: batch as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(cols, 16), groups(rows, 16), batch as u32],
        }])
    }
}

/// Derivative of a unary kind at x (the CPU reference of `UnaryGrad`), in f64.
pub fn unary_derivative_ref(kind: UnaryKind, x: f32) -> f32 {
    let xd = x as f64;
    match kind {
        UnaryKind::GeluErf => {
            let cdf = 0.5 * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
            (cdf + xd * (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt()) as f32
        }
        UnaryKind::GeluTanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let t = (k * (xd + 0.044715 * xd * xd * xd)).tanh();
            (0.5 * (1.0 + t) + 0.5 * xd * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * xd * xd))
                as f32
        }
        UnaryKind::Scale(a) | UnaryKind::Affine(a, _) => a,
        UnaryKind::Clamp(lo, hi) => {
            if x >= lo && x <= hi {
                1.0
            } else {
                0.0
            }
        }
        UnaryKind::Copy => 1.0,
        UnaryKind::Exp => xd.exp() as f32,
    }
}

/// dx = dy · f'(x) for a unary kind; inputs (x, dy).
#[derive(Clone, Debug)]
pub struct UnaryGrad {
    pub kind: UnaryKind,
}

impl Op for UnaryGrad {
    fn name(&self) -> String {
        format!("unary_grad({:?})", self.kind)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x, g] = inputs else {
            return Err(Error::shape(self.name(), "takes (x, dy)", &[]));
        };
        if x.numel() != g.numel() || x.dtype != DType::F32 || g.dtype != DType::F32 {
            return Err(Error::shape(
                self.name(),
                "x and dy must be f32 with equal sizes",
                &[&x.shape, &g.shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&x.shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (x, g) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let out = x
            .iter()
            .zip(g)
            .map(|(x, g)| g * unary_derivative_ref(self.kind, *x))
            .collect();
        Ok(vec![HostTensor::f32(&inputs[0].shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "unary_grad").with("OP", self.kind.code()),
            params: self.kind.params(n),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [groups(n, WG), 1, 1],
        }])
    }
}

/// Sum a gradient of `a`'s shape down to the shape of an operand `b` that was broadcast onto
/// it (the inverse of `Binary`'s broadcast); output has `b_shape`.
#[derive(Clone, Debug)]
pub struct ReduceBroadcast {
    pub b_shape: Vec<usize>,
}

impl Op for ReduceBroadcast {
    fn name(&self) -> String {
        format!("reduce_broadcast(to {:?})", self.b_shape)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [g] = inputs else {
            return Err(Error::shape(self.name(), "takes one operand", &[]));
        };
        if broadcast_layout(&g.shape, &self.b_shape).is_none() {
            return Err(Error::shape(
                self.name(),
                "target does not broadcast onto the gradient",
                &[&g.shape, &self.b_shape],
            ));
        }
        Ok(vec![TensorDesc::f32(&self.b_shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let g = inputs[0].as_f32()?;
        let (nb, inner) = broadcast_layout(&inputs[0].shape, &self.b_shape)
            .ok_or_else(|| Error::shape(self.name(), "bad broadcast", &[&inputs[0].shape]))?;
        let mut out = vec![0.0f64; nb];
        for (i, v) in g.iter().enumerate() {
            out[(i / inner) % nb] += *v as f64;
        }
        Ok(vec![HostTensor::f32(
            &self.b_shape,
            out.into_iter().map(|v| v as f32).collect(),
        )?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        let (nb, inner) = broadcast_layout(&cx.input(0).shape, &self.b_shape)
            .ok_or_else(|| Error::shape(self.name(), "bad broadcast", &[&cx.input(0).shape]))?;
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "reduce_broadcast"),
            params: params(&Params {
                n: n as u32,
                nb: nb as u32,
                inner: inner as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(nb, WG), 1, 1],
        }])
    }
}

/// The gradient for operand b of a broadcasting binary op: `g` summed down to b's shape.
fn to_operand_shape(g: &mut Graph, grad: TensorId, b: TensorId) -> Result<TensorId> {
    let bs = g.shape(b).to_vec();
    if g.shape(grad) == bs.as_slice() {
        return Ok(grad);
    }
    g.apply1(ReduceBroadcast { b_shape: bs }, &[grad])
}

/// x ← f(x) in place (no outputs): applied to a parameter after its optimizer update, e.g. the
/// CLIP logit scale's clamp to [0, ln 100].
#[derive(Clone, Debug)]
pub struct UnaryInPlace {
    pub kind: UnaryKind,
}

impl Op for UnaryInPlace {
    fn name(&self) -> String {
        format!("unary_in_place({:?})", self.kind)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape(self.name(), "takes one operand", &[]));
        };
        if x.dtype != DType::F32 {
            return Err(Error::shape(self.name(), "needs f32", &[&x.shape]));
        }
        Ok(vec![])
    }
    fn updated_inputs(&self) -> Vec<usize> {
        vec![0]
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        Ok(vec![HostTensor::f32(
            &inputs[0].shape,
            x.iter().map(|v| self.kind.apply(*v)).collect(),
        )?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "unary_inplace").with("OP", self.kind.code()),
            params: self.kind.params(n),
            binds: vec![Bind::update(0)],
            grid: [groups(n, WG), 1, 1],
        }])
    }
}

/// The identity whose backward rule passes no gradient (`torch.Tensor.detach`): the stop-gradient
/// of the straight-through estimator and of the VQ loss terms.
#[derive(Clone, Debug)]
pub struct StopGradient;

impl Op for StopGradient {
    fn name(&self) -> String {
        "stop_gradient".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        Unary {
            kind: UnaryKind::Copy,
            out_shape: None,
        }
        .infer(inputs)
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        Ok(vec![inputs[0].clone()])
    }
    fn backward(&self, _cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        Ok(vec![None])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        Unary {
            kind: UnaryKind::Copy,
            out_shape: None,
        }
        .encode(cx)
    }
}

/// A tensor filled with one value (no inputs).
#[derive(Clone, Debug)]
pub struct Fill {
    pub shape: Vec<usize>,
    pub value: f32,
}

impl Op for Fill {
    fn name(&self) -> String {
        format!("fill({})", self.value)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        if !inputs.is_empty() {
            return Err(Error::shape(self.name(), "takes no operands", &[]));
        }
        Ok(vec![TensorDesc::f32(&self.shape)])
    }
    fn cpu(&self, _inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        Ok(vec![HostTensor::f32(
            &self.shape,
            vec![self.value; self.shape.iter().product()],
        )?])
    }
    fn encode(&self, _cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n: usize = self.shape.iter().product();
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "fill"),
            params: params(&Params {
                n: n as u32,
                alpha: self.value,
                ..Default::default()
            }),
            binds: vec![Bind::write(0)],
            grid: [groups(n, WG), 1, 1],
        }])
    }
}

impl Graph {
    /// A constant tensor (recorded as a node, so it costs one dispatch per run).
    pub fn constant_fill(&mut self, shape: &[usize], value: f32) -> Result<TensorId> {
        self.apply1(
            Fill {
                shape: shape.to_vec(),
                value,
            },
            &[],
        )
    }
    pub fn unary(&mut self, x: TensorId, kind: UnaryKind) -> Result<TensorId> {
        self.apply1(
            Unary {
                kind,
                out_shape: None,
            },
            &[x],
        )
    }
    pub fn gelu(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, UnaryKind::GeluErf)
    }
    pub fn gelu_tanh(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, UnaryKind::GeluTanh)
    }
    pub fn scale(&mut self, x: TensorId, alpha: f32) -> Result<TensorId> {
        self.unary(x, UnaryKind::Scale(alpha))
    }
    pub fn clamp(&mut self, x: TensorId, lo: f32, hi: f32) -> Result<TensorId> {
        self.unary(x, UnaryKind::Clamp(lo, hi))
    }
    /// Same data, new shape (a copy: the arena makes it cheap and keeps liveness simple).
    pub fn reshape(&mut self, x: TensorId, shape: &[usize]) -> Result<TensorId> {
        if self.shape(x) == shape {
            return Ok(x);
        }
        self.apply1(
            Unary {
                kind: UnaryKind::Copy,
                out_shape: Some(shape.to_vec()),
            },
            &[x],
        )
    }
    pub fn binary(&mut self, a: TensorId, b: TensorId, kind: BinaryKind) -> Result<TensorId> {
        self.apply1(Binary { kind }, &[a, b])
    }
    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, BinaryKind::Add)
    }
    pub fn sub(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, BinaryKind::Sub)
    }
    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, BinaryKind::Mul)
    }
    /// gelu_tanh(a) · b
    pub fn geglu(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, BinaryKind::Geglu)
    }
    pub fn exp(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, UnaryKind::Exp)
    }
    /// A copy of `x` that gradients do not flow through.
    pub fn stop_gradient(&mut self, x: TensorId) -> Result<TensorId> {
        self.apply1(StopGradient, &[x])
    }
    /// Apply `kind` to `x` in place (ordered after every earlier reader and writer of `x`).
    pub fn unary_in_place(&mut self, x: TensorId, kind: UnaryKind) -> Result<()> {
        self.apply(UnaryInPlace { kind }, &[x])?;
        Ok(())
    }
    pub fn transpose(&mut self, x: TensorId) -> Result<TensorId> {
        self.apply1(Transpose, &[x])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let x = pseudo_random(&[3, 300], 1, 4.0);
    let b = pseudo_random(&[300], 2, 1.0);
    vec![
        Case {
            name: "gelu_erf [3,300]".into(),
            op: Arc::new(Unary {
                kind: UnaryKind::GeluErf,
                out_shape: None,
            }),
            inputs: vec![x.clone()],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "gelu_tanh [3,300]".into(),
            op: Arc::new(Unary {
                kind: UnaryKind::GeluTanh,
                out_shape: None,
            }),
            inputs: vec![x.clone()],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "geglu [3,300]x[300]".into(),
            op: Arc::new(Binary {
                kind: BinaryKind::Geglu,
            }),
            inputs: vec![x.clone(), b],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "transpose [3,300]".into(),
            op: Arc::new(Transpose),
            inputs: vec![x],
            atol: 0.0,
            rtol: 0.0,
        },
    ]
}
