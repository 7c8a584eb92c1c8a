//! Spatial resampling on NCHW tensors: `AvgPool2d` (PyTorch semantics, floor mode, both
//! `count_include_pad` settings) and `UpsampleNearest2x` (each pixel → a 2×2 block).
//! Kernels in `shaders/pool.wgsl`, one invocation per output element.

use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// Mirrors `Params` in shaders/pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default, Debug)]
struct PoolParams {
    total: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    k: u32,
    s: u32,
    pad: u32,
    include_pad: u32,
    xs_p: u32,
    x_off: u32,
    ys_p: u32,
    y_off: u32,
    _p: [u32; 3],
}

const WG: usize = 256;

fn nchw(op: &str, inputs: &[&TensorDesc]) -> Result<[usize; 4]> {
    let [x] = inputs else {
        return Err(Error::shape(op, "takes one operand", &[]));
    };
    match (x.dtype, x.shape.as_slice()) {
        (DType::F32, &[n, c, h, w]) if n * c * h * w > 0 => Ok([n, c, h, w]),
        _ => Err(Error::shape(
            op,
            "needs a non-empty f32 [N, C, H, W] tensor",
            &[&x.shape],
        )),
    }
}

/// Average pooling over k×k windows (PyTorch `AvgPool2d`, `ceil_mode = false`). Windows are
/// clipped to the input; with `count_include_pad = false` the divisor is the number of valid
/// pixels, otherwise the window size clipped to the padded input.
#[derive(Clone, Debug)]
pub struct AvgPool2d {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub count_include_pad: bool,
}

impl AvgPool2d {
    fn out_hw(&self, shape: &[usize], h: usize, w: usize) -> Result<(usize, usize)> {
        if self.kernel == 0 || self.stride == 0 {
            return Err(Error::shape(
                self.name(),
                "kernel and stride must be at least 1",
                &[shape],
            ));
        }
        if 2 * self.padding > self.kernel {
            return Err(Error::shape(
                self.name(),
                "padding must be at most half the kernel",
                &[shape],
            ));
        }
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.kernel > hp || self.kernel > wp {
            return Err(Error::shape(
                self.name(),
                format!(
                    "kernel {0}×{0} is larger than the padded input {hp}×{wp}",
                    self.kernel
                ),
                &[shape],
            ));
        }
        Ok((
            (hp - self.kernel) / self.stride + 1,
            (wp - self.kernel) / self.stride + 1,
        ))
    }
}

impl Op for AvgPool2d {
    fn name(&self) -> String {
        format!(
            "avg_pool2d(kernel={}, stride={}, padding={}, count_include_pad={})",
            self.kernel, self.stride, self.padding, self.count_include_pad
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [n, c, h, w] = nchw(&self.name(), inputs)?;
        let (ho, wo) = self.out_hw(&inputs[0].shape, h, w)?;
        Ok(vec![TensorDesc::f32(&[n, c, ho, wo])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let d = inputs.iter().map(|t| t.desc()).collect::<Vec<_>>();
        let [n, c, h, w] = nchw(&self.name(), &d.iter().collect::<Vec<_>>())?;
        let (ho, wo) = self.out_hw(&inputs[0].shape, h, w)?;
        let x = inputs[0].as_f32()?;
        let (k, s, pad) = (
            self.kernel as isize,
            self.stride as isize,
            self.padding as isize,
        );
        let mut out = vec![0.0f32; n * c * ho * wo];
        for pl in 0..n * c {
            let xp = &x[pl * h * w..][..h * w];
            for oh in 0..ho {
                for ow in 0..wo {
                    let (hs, ws) = (oh as isize * s - pad, ow as isize * s - pad);
                    let (he, we) = (
                        (hs + k).min(h as isize + pad),
                        (ws + k).min(w as isize + pad),
                    );
                    let padded = (he - hs) * (we - ws);
                    let (h0, w0, h1, w1) =
                        (hs.max(0), ws.max(0), he.min(h as isize), we.min(w as isize));
                    let mut sum = 0.0f64;
                    for ih in h0..h1 {
                        for iw in w0..w1 {
                            sum += xp[ih as usize * w + iw as usize] as f64;
                        }
                    }
                    let count = if self.count_include_pad {
                        padded
                    } else {
                        (h1 - h0) * (w1 - w0)
                    };
                    out[(pl * ho + oh) * wo + ow] = (sum / count.max(1) as f64) as f32;
                }
            }
        }
        Ok(vec![HostTensor::f32(&[n, c, ho, wo], out)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None]);
        };
        let xs = cx.g.shape(cx.inputs[0]).to_vec();
        let dx = cx.g.apply1(
            AvgPool2dBackward {
                pool: self.clone(),
                in_hw: [xs[2], xs[3]],
            },
            &[gy],
        )?;
        Ok(vec![Some(dx)])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let [n, c, h, w] = nchw(&self.name(), &[cx.input(0)])?;
        let (ho, wo) = self.out_hw(&cx.input(0).shape, h, w)?;
        let total = n * c * ho * wo;
        let p = PoolParams {
            total: total as u32,
            h: h as u32,
            w: w as u32,
            ho: ho as u32,
            wo: wo as u32,
            k: self.kernel as u32,
            s: self.stride as u32,
            pad: self.padding as u32,
            include_pad: self.count_include_pad as u32,
            xs_p: (h * w) as u32,
            ys_p: (ho * wo) as u32,
            ..Default::default()
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("pool", "avg_pool"),
            params: params(&p),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(total, WG), 1, 1],
        }])
    }
}

/// Nearest-neighbour upsampling by 2 in H and W: [N, C, H, W] → [N, C, 2H, 2W].
#[derive(Clone, Debug)]
pub struct UpsampleNearest2x;

impl Op for UpsampleNearest2x {
    fn name(&self) -> String {
        "upsample_nearest2x".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [n, c, h, w] = nchw(&self.name(), inputs)?;
        Ok(vec![TensorDesc::f32(&[n, c, 2 * h, 2 * w])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let d = inputs.iter().map(|t| t.desc()).collect::<Vec<_>>();
        let [n, c, h, w] = nchw(&self.name(), &d.iter().collect::<Vec<_>>())?;
        let x = inputs[0].as_f32()?;
        let (ho, wo) = (2 * h, 2 * w);
        let mut out = vec![0.0f32; n * c * ho * wo];
        for pl in 0..n * c {
            for oh in 0..ho {
                for ow in 0..wo {
                    out[(pl * ho + oh) * wo + ow] = x[(pl * h + oh / 2) * w + ow / 2];
                }
            }
        }
        Ok(vec![HostTensor::f32(&[n, c, ho, wo], out)?])
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        Ok(vec![match cx.grads[0] {
            Some(gy) => Some(cx.g.apply1(UpsampleNearest2xBackward, &[gy])?),
            None => None,
        }])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let [n, c, h, w] = nchw(&self.name(), &[cx.input(0)])?;
        let total = n * c * 4 * h * w;
        let p = PoolParams {
            total: total as u32,
            h: h as u32,
            w: w as u32,
            ho: (2 * h) as u32,
            wo: (2 * w) as u32,
            xs_p: (h * w) as u32,
            ys_p: (4 * h * w) as u32,
            ..Default::default()
        };
        // Even widths: 4 outputs from 2 inputs per invocation (pool.wgsl upsample2x4).
        let (entry, lanes) = if w.is_multiple_of(2) {
            ("upsample2x4", total / 4)
        } else {
            ("upsample2x", total)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("pool", entry),
            params: params(&PoolParams {
                total: lanes as u32,
                ..p
            }),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(lanes, WG), 1, 1],
        }])
    }
}

/// Gradient of `AvgPool2d`: dx [N, C, H, W] from dy [N, C, Ho, Wo] (each output gradient
/// spread over its window divided by that window's count). `in_hw` is the forward input's
/// H × W (not recoverable from Ho × Wo when the stride does not divide evenly).
#[derive(Clone, Debug)]
pub struct AvgPool2dBackward {
    pub pool: AvgPool2d,
    pub in_hw: [usize; 2],
}

impl AvgPool2dBackward {
    fn dims(&self, inputs: &[&TensorDesc]) -> Result<([usize; 4], usize, usize)> {
        let [n, c, gh, gw] = nchw(&self.name(), inputs)?;
        let [h, w] = self.in_hw;
        let xs = [n, c, h, w];
        if h == 0 || w == 0 {
            return Err(Error::shape(self.name(), "empty input size", &[&xs]));
        }
        let (ho, wo) = self.pool.out_hw(&xs, h, w).map_err(|e| match e {
            Error::Shape { msg, .. } => Error::shape(self.name(), msg, &[&xs]),
            e => e,
        })?;
        if (gh, gw) != (ho, wo) {
            return Err(Error::shape(
                self.name(),
                format!("output gradient must be [{n}, {c}, {ho}, {wo}]"),
                &[&inputs[0].shape],
            ));
        }
        Ok((xs, ho, wo))
    }
}

impl Op for AvgPool2dBackward {
    fn name(&self) -> String {
        format!(
            "avg_pool2d_backward(kernel={}, stride={}, padding={}, count_include_pad={}, in_hw={:?})",
            self.pool.kernel,
            self.pool.stride,
            self.pool.padding,
            self.pool.count_include_pad,
            self.in_hw
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let (xs, _, _) = self.dims(inputs)?;
        Ok(vec![TensorDesc::f32(&xs)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let d = inputs.iter().map(|t| t.desc()).collect::<Vec<_>>();
        let ([n, c, h, w], ho, wo) = self.dims(&d.iter().collect::<Vec<_>>())?;
        let gy = inputs[0].as_f32()?;
        let (k, s, pad) = (
            self.pool.kernel as isize,
            self.pool.stride as isize,
            self.pool.padding as isize,
        );
        let mut dx = vec![0.0f64; n * c * h * w];
        for pl in 0..n * c {
            for oh in 0..ho {
                for ow in 0..wo {
                    let (hs, ws) = (oh as isize * s - pad, ow as isize * s - pad);
                    let (he, we) = (
                        (hs + k).min(h as isize + pad),
                        (ws + k).min(w as isize + pad),
                    );
                    let (h0, w0, h1, w1) =
                        (hs.max(0), ws.max(0), he.min(h as isize), we.min(w as isize));
                    let count = if self.pool.count_include_pad {
                        (he - hs) * (we - ws)
                    } else {
                        (h1 - h0) * (w1 - w0)
                    };
                    let v = gy[(pl * ho + oh) * wo + ow] as f64 / count.max(1) as f64;
                    for ih in h0..h1 {
                        for iw in w0..w1 {
                            dx[(pl * h + ih as usize) * w + iw as usize] += v;
                        }
                    }
                }
            }
        }
        Ok(vec![HostTensor::f32(
            &[n, c, h, w],
            dx.into_iter().map(|v| v as f32).collect(),
        )?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let ([n, c, h, w], ho, wo) = self.dims(&[cx.input(0)])?;
        let total = n * c * h * w;
        let p = PoolParams {
            total: total as u32,
            h: h as u32,
            w: w as u32,
            ho: ho as u32,
            wo: wo as u32,
            k: self.pool.kernel as u32,
            s: self.pool.stride as u32,
            pad: self.pool.padding as u32,
            include_pad: self.pool.count_include_pad as u32,
            xs_p: (ho * wo) as u32,
            ys_p: (h * w) as u32,
            ..Default::default()
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("pool", "avg_pool_bw"),
            params: params(&p),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(total, WG), 1, 1],
        }])
    }
}

/// Gradient of `UpsampleNearest2x`: [N, C, 2H, 2W] → [N, C, H, W], each 2×2 block summed.
#[derive(Clone, Debug)]
pub struct UpsampleNearest2xBackward;

impl UpsampleNearest2xBackward {
    fn dims(&self, inputs: &[&TensorDesc]) -> Result<[usize; 4]> {
        let [n, c, h2, w2] = nchw(&self.name(), inputs)?;
        if h2 % 2 != 0 || w2 % 2 != 0 {
            return Err(Error::shape(
                self.name(),
                "gradient height and width must be even",
                &[&inputs[0].shape],
            ));
        }
        Ok([n, c, h2 / 2, w2 / 2])
    }
}

impl Op for UpsampleNearest2xBackward {
    fn name(&self) -> String {
        "upsample_nearest2x_backward".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        Ok(vec![TensorDesc::f32(&self.dims(inputs)?)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let d = inputs.iter().map(|t| t.desc()).collect::<Vec<_>>();
        let [n, c, h, w] = self.dims(&d.iter().collect::<Vec<_>>())?;
        let gy = inputs[0].as_f32()?;
        let (ho, wo) = (2 * h, 2 * w);
        let mut dx = vec![0.0f32; n * c * h * w];
        for pl in 0..n * c {
            for i in 0..h {
                for j in 0..w {
                    let b = (pl * ho + 2 * i) * wo + 2 * j;
                    dx[(pl * h + i) * w + j] = (gy[b] + gy[b + 1]) + (gy[b + wo] + gy[b + wo + 1]);
                }
            }
        }
        Ok(vec![HostTensor::f32(&[n, c, h, w], dx)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let [n, c, h, w] = self.dims(&[cx.input(0)])?;
        let total = n * c * h * w;
        let p = PoolParams {
            total: total as u32,
            h: h as u32,
            w: w as u32,
            ho: (2 * h) as u32,
            wo: (2 * w) as u32,
            xs_p: (4 * h * w) as u32,
            ys_p: (h * w) as u32,
            ..Default::default()
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("pool", "upsample2x_bw"),
            params: params(&p),
            binds: vec![Bind::read(0), Bind::write(0)],
            grid: [groups(total, WG), 1, 1],
        }])
    }
}

impl Graph {
    /// Average pooling, NCHW (PyTorch `AvgPool2d`, floor mode).
    pub fn avg_pool2d(
        &mut self,
        x: TensorId,
        kernel: usize,
        stride: usize,
        padding: usize,
        count_include_pad: bool,
    ) -> Result<TensorId> {
        self.apply1(
            AvgPool2d {
                kernel,
                stride,
                padding,
                count_include_pad,
            },
            &[x],
        )
    }

    /// Nearest-neighbour ×2 upsampling, NCHW.
    pub fn upsample_nearest2x(&mut self, x: TensorId) -> Result<TensorId> {
        self.apply1(UpsampleNearest2x, &[x])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let x = pseudo_random(&[2, 3, 9, 7], 21, 2.0);
    vec![
        Case {
            name: "avg_pool2d 3×3 s2 p1 exclude-pad [2,3,9,7]".into(),
            op: Arc::new(AvgPool2d {
                kernel: 3,
                stride: 2,
                padding: 1,
                count_include_pad: false,
            }),
            inputs: vec![x.clone()],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "upsample_nearest2x [2,3,9,7]".into(),
            op: Arc::new(UpsampleNearest2x),
            inputs: vec![x],
            atol: 0.0,
            rtol: 0.0,
        },
        Case {
            name: "avg_pool2d backward 3×3 s2 p1 include-pad [2,3,5,4]→[2,3,9,7]".into(),
            op: Arc::new(AvgPool2dBackward {
                pool: AvgPool2d {
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                    count_include_pad: true,
                },
                in_hw: [9, 7],
            }),
            inputs: vec![pseudo_random(&[2, 3, 5, 4], 22, 1.0)],
            atol: 1e-6,
            rtol: 1e-5,
        },
        Case {
            name: "upsample_nearest2x backward [2,3,18,14]".into(),
            op: Arc::new(UpsampleNearest2xBackward),
            inputs: vec![pseudo_random(&[2, 3, 18, 14], 23, 1.0)],
            atol: 1e-6,
            rtol: 1e-6,
        },
    ]
}
