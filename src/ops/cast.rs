//! f32 ↔ f16 storage conversion. Half-precision storage halves the memory of large weights on
//! adapters with SHADER_F16; kernels compute in f32, so a cast sits between an f16 tensor and
//! its consumers. Without the feature the op is a typed error, and f32 storage is the path.

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

/// Convert between F32 and F16 storage (the output dtype is `to`).
#[derive(Clone, Debug)]
pub struct Cast {
    pub to: DType,
}

impl Op for Cast {
    fn name(&self) -> String {
        format!("cast(to {:?})", self.to)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape(self.name(), "takes one operand", &[]));
        };
        let ok = matches!(
            (x.dtype, self.to),
            (DType::F16, DType::F32) | (DType::F32, DType::F16)
        );
        if !ok {
            return Err(Error::shape(
                self.name(),
                format!("converts f16 <-> f32 only, got {:?}", x.dtype),
                &[&x.shape],
            ));
        }
        Ok(vec![TensorDesc::new(&x.shape, self.to)])
    }
    /// Host data is f32 for both storages; the reference rounds through f16 when converting
    /// to it, as the device does.
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let x = inputs[0].as_f32()?;
        let out = x.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
        Ok(vec![HostTensor::f32(&inputs[0].shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        if !cx.caps.shader_f16 {
            return Err(Error::Invalid(format!(
                "{}: this adapter has no SHADER_F16; keep the tensor in f32",
                self.name()
            )));
        }
        let n = cx.input(0).numel();
        let (entry, per) = if self.to == DType::F32 {
            ("f16_to_f32", 1)
        } else {
            ("f32_to_f16", 2)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("cast_f16", entry),
            params: params(&Params {
                n: n as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(n.div_ceil(per), 256), 1, 1],
        }])
    }
}

impl Graph {
    pub fn cast(&mut self, x: TensorId, to: DType) -> Result<TensorId> {
        self.apply1(Cast { to }, &[x])
    }
}
