//! Ceiling probes: `FmaPeak` (arithmetic ceiling, no memory traffic) and `CopyVec4` (memory
//! bandwidth). `unitok bench` divides each kernel's throughput by one of these, measured on the
//! same adapter in the same run, so the ratio says how close a kernel is to what the device
//! can do rather than to a datasheet number.

use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    iters: u32,
    _p: [u32; 2],
}

/// `invocations` threads each run 8 vec4 FMA chains of `iters` steps (4 per loop trip, so
/// loop control stays out of the measurement): 64·iters flops each.
#[derive(Clone, Debug)]
pub struct FmaPeak {
    pub invocations: usize,
    pub iters: u32,
}

impl FmaPeak {
    pub fn flops(&self) -> f64 {
        self.invocations as f64 * self.iters as f64 * 64.0
    }
}

impl Op for FmaPeak {
    fn name(&self) -> String {
        "fma_peak".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        if !inputs.is_empty() {
            return Err(Error::shape("fma_peak", "takes no operands", &[]));
        }
        Ok(vec![TensorDesc::f32(&[self.invocations])])
    }
    fn cpu(&self, _inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let out = (0..self.invocations)
            .map(|i| {
                let s = (i % 1024) as f32 * 0.0009765625;
                let mut total = 0.0f32;
                let mut lanes = [0.0f32; 4];
                for (chain, off) in (0..8).map(|c| (c, c as f32 * 0.01)) {
                    let _ = chain;
                    for (l, lane) in lanes.iter_mut().enumerate() {
                        let mut a = s + l as f32 * 0.1 + off;
                        for _ in 0..self.iters {
                            a = a.mul_add(0.999, 0.001);
                        }
                        *lane += a;
                    }
                }
                for l in lanes {
                    total += l;
                }
                total
            })
            .collect();
        Ok(vec![HostTensor::f32(&[self.invocations], out)?])
    }
    fn encode(&self, _cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        Ok(vec![Dispatch {
            kernel: Kernel::new("peak", "fma_peak"),
            params: params(&Params {
                n: self.invocations as u32,
                iters: self.iters,
                ..Default::default()
            }),
            binds: vec![Bind::write(0)],
            grid: [groups(self.invocations, 256), 1, 1],
        }])
    }
}

/// Copy of a flat f32 tensor whose length is a multiple of 4, as vec4s.
#[derive(Clone, Debug)]
pub struct CopyVec4;

impl Op for CopyVec4 {
    fn name(&self) -> String {
        "copy_vec4".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape("copy_vec4", "takes one operand", &[]));
        };
        if x.numel() % 4 != 0 {
            return Err(Error::shape(
                "copy_vec4",
                "needs a multiple of 4 elements",
                &[&x.shape],
            ));
        }
        Ok(vec![(*x).clone()])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        Ok(vec![inputs[0].clone()])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let n = cx.input(0).numel() / 4;
        Ok(vec![Dispatch {
            kernel: Kernel::new("peak", "copy_vec4"),
            params: params(&Params {
                n: n as u32,
                ..Default::default()
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(n, 256), 1, 1],
        }])
    }
}

impl Graph {
    pub fn fma_peak(&mut self, invocations: usize, iters: u32) -> Result<TensorId> {
        self.apply1(FmaPeak { invocations, iters }, &[])
    }
    pub fn copy_vec4(&mut self, x: TensorId) -> Result<TensorId> {
        self.apply1(CopyVec4, &[x])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    vec![
        Case {
            name: "fma_peak 1000x50".into(),
            op: Arc::new(FmaPeak {
                invocations: 1000,
                iters: 50,
            }),
            inputs: vec![],
            atol: 1e-4,
            rtol: 1e-5,
        },
        Case {
            name: "copy_vec4 [4100]".into(),
            op: Arc::new(CopyVec4),
            inputs: vec![pseudo_random(&[4100], 5, 1.0)],
            atol: 0.0,
            rtol: 0.0,
        },
    ]
}
