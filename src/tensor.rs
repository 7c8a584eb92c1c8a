//! Tensor descriptions and host-side tensors.
//!
//! `TensorDesc` is what the graph knows about a tensor before any data exists (shape and
//! element type). `HostTensor` is data on the CPU: the CPU reference ops compute on it, and it
//! is what goes into and comes out of a compiled plan. Device-side storage lives in `graph`.

use crate::error::{Error, Result};

/// Element type of a device tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    /// Indices (codes, token ids); WGSL has no 64-bit integers.
    U32,
    /// Half-precision storage; only where the adapter has SHADER_F16. Host data stays f32.
    F16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorDesc {
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl TensorDesc {
    pub fn new(shape: &[usize], dtype: DType) -> Self {
        TensorDesc {
            shape: shape.to_vec(),
            dtype,
        }
    }
    pub fn f32(shape: &[usize]) -> Self {
        Self::new(shape, DType::F32)
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Size of the last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

/// A tensor in host memory, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

impl HostTensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        check_len(shape, data.len())?;
        Ok(HostTensor {
            shape: shape.to_vec(),
            data: HostData::F32(data),
        })
    }
    pub fn u32(shape: &[usize], data: Vec<u32>) -> Result<Self> {
        check_len(shape, data.len())?;
        Ok(HostTensor {
            shape: shape.to_vec(),
            data: HostData::U32(data),
        })
    }
    pub fn zeros(shape: &[usize]) -> Self {
        HostTensor {
            shape: shape.to_vec(),
            data: HostData::F32(vec![0.0; shape.iter().product()]),
        }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn dtype(&self) -> DType {
        match self.data {
            HostData::F32(_) => DType::F32,
            HostData::U32(_) => DType::U32,
        }
    }
    pub fn desc(&self) -> TensorDesc {
        TensorDesc::new(&self.shape, self.dtype())
    }
    /// The f32 data; an error naming the actual type otherwise.
    pub fn as_f32(&self) -> Result<&[f32]> {
        match &self.data {
            HostData::F32(v) => Ok(v),
            HostData::U32(_) => Err(Error::Graph(format!(
                "expected f32 data, got u32 of shape {:?}",
                self.shape
            ))),
        }
    }
    pub fn as_u32(&self) -> Result<&[u32]> {
        match &self.data {
            HostData::U32(v) => Ok(v),
            HostData::F32(_) => Err(Error::Graph(format!(
                "expected u32 data, got f32 of shape {:?}",
                self.shape
            ))),
        }
    }
    pub fn into_f32(self) -> Result<Vec<f32>> {
        match self.data {
            HostData::F32(v) => Ok(v),
            HostData::U32(_) => Err(Error::Graph(format!(
                "expected f32 data, got u32 of shape {:?}",
                self.shape
            ))),
        }
    }
    pub fn into_u32(self) -> Result<Vec<u32>> {
        match self.data {
            HostData::U32(v) => Ok(v),
            HostData::F32(_) => Err(Error::Graph(format!(
                "expected u32 data, got f32 of shape {:?}",
                self.shape
            ))),
        }
    }
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        check_len(shape, self.numel())?;
        self.shape = shape.to_vec();
        Ok(self)
    }
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != len {
        return Err(Error::Graph(format!(
            "shape {shape:?} holds {n} elements but {len} were given"
        )));
    }
    Ok(())
}
