//! Ceiling probes: `FmaPeak` (arithmetic ceiling, no memory traffic) and `CopyVec4` (memory
//! bandwidth). `unitok bench` divides each kernel's throughput by one of these, measured on the
//! same adapter in the same run, so the ratio says how close a kernel is to what the device
//! can do rather than to a datasheet number. `LoadProbe` measures one vec4 load from a storage
//! buffer against one from a storage texture: the measurement behind texture operands
//! (`ops::texture`).

use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op, TextureCopy};
use crate::device::Caps;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    iters: u32,
    w: u32,
    h: u32,
}

/// Independent vec4 FMA chains per thread of `FmaPeak` (shaders/peak.wgsl writes them out).
const FMA_CHAINS: usize = 12;

/// `invocations` threads each run `FMA_CHAINS` vec4 FMA chains of `iters` steps (4 per loop
/// trip, so loop control stays out of the measurement): 8·FMA_CHAINS·iters flops each.
#[derive(Clone, Debug)]
pub struct FmaPeak {
    pub invocations: usize,
    pub iters: u32,
}

impl FmaPeak {
    pub fn flops(&self) -> f64 {
        self.invocations as f64 * self.iters as f64 * (8 * FMA_CHAINS) as f64
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
                for off in (0..FMA_CHAINS).map(|c| c as f32 * 0.01) {
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

/// `invocations` threads each load `loads` vec4s from the source x [h, 4·w] (a storage buffer,
/// or with `texture` the same values copied into a w × h rgba32float texture), each feeding 4
/// dependent vec4 FMAs. Output: one vec4 per invocation. w must be a multiple of 16 (whole
/// 256-byte copy rows).
#[derive(Clone, Debug)]
pub struct LoadProbe {
    pub texture: bool,
    pub invocations: usize,
    pub loads: u32,
}

impl LoadProbe {
    fn wh(&self, x: &TensorDesc) -> Result<(usize, usize)> {
        let bad = |msg: &str| Error::shape(self.name(), msg, &[&x.shape]);
        let [h, w4] = x.shape[..] else {
            return Err(bad("x must be [h, 4·w]"));
        };
        if w4 % 64 != 0 || h == 0 {
            return Err(bad("x must be [h, 4·w] with w a multiple of 16 and h > 0"));
        }
        Ok((w4 / 4, h))
    }
    /// Bytes loaded per run.
    pub fn bytes(&self) -> f64 {
        self.invocations as f64 * self.loads as f64 * 16.0
    }
}

impl Op for LoadProbe {
    fn name(&self) -> String {
        format!("load_{}", if self.texture { "texture" } else { "buffer" })
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [x] = inputs else {
            return Err(Error::shape(self.name(), "takes one operand", &[]));
        };
        self.wh(x)?;
        Ok(vec![TensorDesc::f32(&[self.invocations, 4])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (w, h) = self.wh(&inputs[0].desc())?;
        let x = inputs[0].as_f32()?;
        let mut out = vec![0.0f32; self.invocations * 4];
        for (i, o) in out.chunks_mut(4).enumerate() {
            let mut acc = [0.0f32; 4];
            for j in 0..self.loads as usize {
                let y = (i / w + j) % h;
                let v = &x[(y * w + i % w) * 4..][..4];
                for l in 0..4 {
                    let b = v[l].mul_add(0.5, acc[l]);
                    let c = b.mul_add(0.25, v[l]);
                    let d = c.mul_add(0.125, b);
                    acc[l] = d.mul_add(0.0625, c);
                }
            }
            o.copy_from_slice(&acc);
        }
        Ok(vec![HostTensor::f32(&[self.invocations, 4], out)?])
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], _caps: &Caps) -> Vec<[u32; 2]> {
        match (self.texture, inputs.first().map(|x| self.wh(x))) {
            (true, Some(Ok((w, h)))) => vec![[w as u32, h as u32]],
            _ => Vec::new(),
        }
    }
    /// The texture holds x (kept across runs when x is a parameter: the bench then times the
    /// loads alone).
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t == 0).then_some(0)
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (w, h) = self.wh(cx.input(0))?;
        let p = params(&Params {
            n: self.invocations as u32,
            iters: self.loads,
            w: w as u32,
            h: h as u32,
        });
        let grid = [groups(self.invocations, 64), 1, 1];
        if !self.texture {
            return Ok(vec![Dispatch {
                kernel: Kernel::new("peak", "load_buffer"),
                params: p,
                binds: vec![Bind::read(0), Bind::write(0)],
                grid,
            }]);
        }
        let size = [w as u32, h as u32];
        Ok(vec![
            Dispatch::copy_to_texture(
                0,
                0,
                TextureCopy {
                    offset: 0,
                    bytes_per_row: size[0] * 16,
                    size,
                    origin_y: 0,
                },
            ),
            Dispatch {
                kernel: Kernel::new("peak", "load_texture"),
                params: p,
                binds: vec![Bind::texture_read(0), Bind::write(0)],
                grid,
            },
        ])
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
