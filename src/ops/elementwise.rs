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
        }
    }
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryKind::GeluErf => gelu_erf_ref(x),
            UnaryKind::GeluTanh => gelu_tanh_ref(x),
            UnaryKind::Scale(a) => a * x,
            UnaryKind::Clamp(lo, hi) => x.clamp(lo, hi),
            UnaryKind::Copy => x,
            UnaryKind::Affine(a, b) => a * x + b,
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
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel();
        let (alpha, beta) = match self.kind {
            UnaryKind::Scale(a) => (a, 0.0),
            UnaryKind::Clamp(lo, hi) => (lo, hi),
            UnaryKind::Affine(a, b) => (a, b),
            _ => (0.0, 0.0),
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "unary").with("OP", self.kind.code()),
            params: params(&Params {
                n: n as u32,
                alpha,
                beta,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(n, WG), 1, 1],
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
        Ok(vec![Dispatch {
            kernel: Kernel::new("elementwise", "binary").with("OP", self.kind.code()),
            params: params(&Params {
                n: n as u32,
                nb: nb as u32,
                inner: inner as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [groups(n, WG), 1, 1],
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

impl Graph {
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
