//! 2-D convolution (NCHW, PyTorch weight layout [Cout, Cin/groups, kh, kw], optional bias).
//!
//! Every variant is an implicit GEMM: M = output channels of a group, N = output pixels of one
//! image, K = Cin/groups · kh · kw. The input is gathered on the fly (no im2col buffer); each
//! invocation keeps a register block of TM channels × TN pixels, and all invocations of a
//! workgroup share the channel tile, so weights are the same for the whole workgroup.
//!
//! Kernels:
//! - `conv2d_sg.wgsl` (adapters with subgroups of ≥ 8 lanes, Cout/groups ≥ 32): a 32 × 4 block;
//!   the weights are loaded cooperatively (8 channels per load instruction) and handed out
//!   with `subgroupBroadcast`. `conv3_sg` covers 3-wide kernels at stride 1 and 2 (the dense
//!   3×3 convs), `conv1_sg` the 1×1 stride-1 convs (a GEMM over channels).
//! - `conv2d.wgsl` (everything else, and adapters without subgroups): `conv_1x1`, and
//!   `conv_direct` with `KS = 3` and the stride as constants for 3-wide kernels or `KS = 0` for
//!   any kernel size, stride and padding. Depthwise (groups == Cin == Cout) is its TM = 1 case:
//!   one channel per workgroup, each invocation sliding over up to 8 output columns.
//!
//! Why the cooperative weight loads: on lavapipe (Mesa 22.3) every storage-buffer load
//! instruction is expanded into a per-lane loop and costs as much as ~100 vector FMAs, whether
//! or not the lanes read the same address; the cost of a kernel is therefore its number of
//! load instructions, and the subgroup kernels cut the weight loads 8×.
//!
//! Groups: every group count that divides Cin and Cout is supported; groups and batch are
//! folded into the (1-D, foldable) grid.
//!
//! For training: all strides and offsets (input, weight — signed, so flipped/transposed views
//! work — and output) are in the uniform block, so the data and weight gradients can reuse the
//! same gathers with other views.

use super::{params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// Mirrors `Params` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default, Debug)]
pub struct ConvParams {
    pub cin_g: u32,
    pub h: u32,
    pub w: u32,
    pub cout_g: u32,
    pub ho: u32,
    pub wo: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub groups: u32,
    pub batch: u32,
    pub xs_n: u32,
    pub xs_c: u32,
    pub xs_h: u32,
    pub x_off: u32,
    pub ws_co: i32,
    pub ws_ci: i32,
    pub ws_ky: i32,
    pub ws_kx: i32,
    pub w_off: i32,
    pub ys_n: u32,
    pub ys_c: u32,
    pub ys_h: u32,
    pub y_off: u32,
    pub p_tiles: u32,
    pub m_tiles: u32,
    pub tiles: u32,
    pub cb: u32,
    pub _p: [u32; 3],
}

/// Invocations per workgroup in conv2d.wgsl and conv2d_sg.wgsl (`WGX`).
const WGX: usize = 64;
/// Output channels per invocation in conv2d_sg.wgsl (`TM`).
const SG_TM: usize = 32;

/// y = conv2d(x, w) + bias, NCHW. Inputs: x [N, Cin, H, W], w [Cout, Cin/groups, kh, kw],
/// optionally bias [Cout]. Output [N, Cout, Ho, Wo], Ho = (H + 2·padding − kh)/stride + 1.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

/// The validated geometry of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    has_bias: bool,
}

impl Conv2d {
    fn geom(&self, shapes: &[&[usize]]) -> Result<Geom> {
        let name = self.name();
        let (x, w, b) = match shapes {
            [x, w] => (*x, *w, None),
            [x, w, b] => (*x, *w, Some(*b)),
            _ => {
                return Err(Error::shape(
                    name,
                    "takes x, w and an optional bias",
                    shapes,
                ))
            }
        };
        if x.len() != 4 || w.len() != 4 {
            return Err(Error::shape(
                name,
                "x must be [N, Cin, H, W] and w [Cout, Cin/groups, kh, kw]",
                shapes,
            ));
        }
        if self.stride == 0 || self.groups == 0 {
            return Err(Error::shape(
                name,
                "stride and groups must be at least 1",
                shapes,
            ));
        }
        let (n, cin, h, wd) = (x[0], x[1], x[2], x[3]);
        let (cout, cin_g, kh, kw) = (w[0], w[1], w[2], w[3]);
        if x.iter().chain(w.iter()).any(|&d| d == 0) {
            return Err(Error::shape(name, "empty dimension", shapes));
        }
        if cin % self.groups != 0 || cout % self.groups != 0 {
            return Err(Error::shape(
                name,
                format!(
                    "groups = {} must divide Cin = {cin} and Cout = {cout}",
                    self.groups
                ),
                shapes,
            ));
        }
        if cin_g * self.groups != cin {
            return Err(Error::shape(
                name,
                format!(
                    "channel mismatch: x has Cin = {cin}, w expects {cin_g} per group × {} groups",
                    self.groups
                ),
                shapes,
            ));
        }
        if let Some(b) = b {
            if b != [cout] {
                return Err(Error::shape(name, format!("bias must be [{cout}]"), shapes));
            }
        }
        let (hp, wp) = (h + 2 * self.padding, wd + 2 * self.padding);
        if kh > hp || kw > wp {
            return Err(Error::shape(
                name,
                format!("kernel {kh}×{kw} is larger than the padded input {hp}×{wp}"),
                shapes,
            ));
        }
        let ho = (hp - kh) / self.stride + 1;
        let wo = (wp - kw) / self.stride + 1;
        Ok(Geom {
            n,
            cin,
            h,
            w: wd,
            cout,
            kh,
            kw,
            ho,
            wo,
            has_bias: b.is_some(),
        })
    }
}

impl Op for Conv2d {
    fn name(&self) -> String {
        format!(
            "conv2d(stride={}, padding={}, groups={})",
            self.stride, self.padding, self.groups
        )
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
        if inputs.iter().any(|d| d.dtype != DType::F32) {
            return Err(Error::shape(self.name(), "needs f32 operands", &shapes));
        }
        let g = self.geom(&shapes)?;
        Ok(vec![TensorDesc::f32(&[g.n, g.cout, g.ho, g.wo])])
    }

    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        let x = inputs[0].as_f32()?;
        let w = inputs[1].as_f32()?;
        let b = match inputs.get(2) {
            Some(t) => Some(t.as_f32()?),
            None => None,
        };
        let (cin_g, cout_g) = (g.cin / self.groups, g.cout / self.groups);
        let (s, pad) = (self.stride as isize, self.padding as isize);
        let mut out = vec![0.0f32; g.n * g.cout * g.ho * g.wo];
        for n in 0..g.n {
            for co in 0..g.cout {
                let grp = co / cout_g;
                for oh in 0..g.ho {
                    for ow in 0..g.wo {
                        let mut acc = b.map(|b| b[co] as f64).unwrap_or(0.0);
                        for ci in 0..cin_g {
                            let xc = &x[(n * g.cin + grp * cin_g + ci) * g.h * g.w..][..g.h * g.w];
                            let wc = &w[(co * cin_g + ci) * g.kh * g.kw..][..g.kh * g.kw];
                            for ky in 0..g.kh {
                                let ih = oh as isize * s - pad + ky as isize;
                                if ih < 0 || ih >= g.h as isize {
                                    continue;
                                }
                                for kx in 0..g.kw {
                                    let iw = ow as isize * s - pad + kx as isize;
                                    if iw < 0 || iw >= g.w as isize {
                                        continue;
                                    }
                                    acc += wc[ky * g.kw + kx] as f64
                                        * xc[ih as usize * g.w + iw as usize] as f64;
                                }
                            }
                        }
                        out[((n * g.cout + co) * g.ho + oh) * g.wo + ow] = acc as f32;
                    }
                }
            }
        }
        Ok(vec![HostTensor::f32(&[g.n, g.cout, g.ho, g.wo], out)?])
    }

    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|s| s.desc.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        let (cin_g, cout_g) = (g.cin / self.groups, g.cout / self.groups);
        let pointwise = g.kh == 1 && g.kw == 1 && self.stride == 1 && self.padding == 0;
        let width3 = g.kw == 3 && (self.stride == 1 || self.stride == 2);
        // The subgroup kernels (32 channels × 4 pixels per invocation) need subgroups of at
        // least 8 lanes and enough channels to fill their tile.
        let sg = cx.caps.subgroups
            && cx.caps.subgroup_min >= 8
            && cout_g >= SG_TM
            && (pointwise || width3);
        // Register block: TM channels (no more than the group has), TN pixels.
        let tm = if sg {
            SG_TM
        } else {
            [1usize, 2, 4, 8]
                .into_iter()
                .find(|&t| t >= cout_g)
                .unwrap_or(8)
        };
        let tn = if pointwise || sg {
            4
        } else if tm == 1 {
            [1usize, 2, 4, 8]
                .into_iter()
                .find(|&t| t >= g.wo)
                .unwrap_or(8)
        } else {
            [1usize, 2, 4].into_iter().find(|&t| t >= g.wo).unwrap_or(4)
        };
        let cb = g.wo.div_ceil(tn);
        let p_tiles = if pointwise {
            (g.ho * g.wo).div_ceil(WGX * tn)
        } else {
            (g.ho * cb).div_ceil(WGX)
        };
        let m_tiles = cout_g.div_ceil(tm);
        let tiles = p_tiles * m_tiles * self.groups * g.n;
        if tiles > u32::MAX as usize {
            return Err(Error::shape(
                self.name(),
                format!("{tiles} workgroups is too many"),
                &shapes,
            ));
        }
        let k = cin_g * g.kh * g.kw;
        let p = ConvParams {
            cin_g: cin_g as u32,
            h: g.h as u32,
            w: g.w as u32,
            cout_g: cout_g as u32,
            ho: g.ho as u32,
            wo: g.wo as u32,
            kh: g.kh as u32,
            kw: g.kw as u32,
            stride: self.stride as u32,
            pad: self.padding as u32,
            groups: self.groups as u32,
            batch: g.n as u32,
            xs_n: (g.cin * g.h * g.w) as u32,
            xs_c: (g.h * g.w) as u32,
            xs_h: g.w as u32,
            x_off: 0,
            ws_co: k as i32,
            ws_ci: (g.kh * g.kw) as i32,
            ws_ky: g.kw as i32,
            ws_kx: 1,
            w_off: 0,
            ys_n: (g.cout * g.ho * g.wo) as u32,
            ys_c: (g.ho * g.wo) as u32,
            ys_h: g.wo as u32,
            y_off: 0,
            p_tiles: p_tiles as u32,
            m_tiles: m_tiles as u32,
            tiles: tiles as u32,
            cb: cb as u32,
            _p: [0; 3],
        };
        let kernel = match (sg, pointwise) {
            (true, true) => Kernel::new("conv2d_sg", "conv1_sg"),
            (true, false) => Kernel::new("conv2d_sg", "conv3_sg").with("SS", self.stride as f64),
            (false, true) => Kernel::new("conv2d", "conv_1x1")
                .with("TM", tm as f64)
                .with("TN", tn as f64),
            (false, false) => Kernel::new("conv2d", "conv_direct")
                .with("KS", if width3 { 3.0 } else { 0.0 })
                .with("SS", if width3 { self.stride as f64 } else { 0.0 })
                .with("TM", tm as f64)
                .with("TN", tn as f64),
        };
        let kernel = kernel.with("HAS_BIAS", g.has_bias as u8 as f64);
        // Without a bias, binding 3 aliases the weights (never read).
        let bias_bind = if g.has_bias {
            Bind::read(2)
        } else {
            Bind::read(1)
        };
        Ok(vec![Dispatch {
            kernel,
            params: params(&p),
            binds: vec![Bind::read(0), Bind::read(1), bias_bind, Bind::write(0)],
            grid: [tiles as u32, 1, 1],
        }])
    }
}

impl Graph {
    /// 2-D convolution, NCHW: x [N, Cin, H, W], w [Cout, Cin/groups, kh, kw], bias [Cout].
    pub fn conv2d(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Result<TensorId> {
        let op = Conv2d {
            stride,
            padding,
            groups,
        };
        match bias {
            Some(b) => self.apply1(op, &[x, w, b]),
            None => self.apply1(op, &[x, w]),
        }
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let x = pseudo_random(&[2, 6, 9, 7], 11, 1.0);
    let w3 = pseudo_random(&[10, 6, 3, 3], 12, 0.5);
    let w1 = pseudo_random(&[10, 6, 1, 1], 13, 0.5);
    let wd = pseudo_random(&[6, 1, 3, 3], 14, 0.5);
    let b10 = pseudo_random(&[10], 15, 1.0);
    let b6 = pseudo_random(&[6], 16, 1.0);
    let w3_40 = pseudo_random(&[40, 6, 3, 3], 17, 0.5);
    let w1_40 = pseudo_random(&[40, 6, 1, 1], 18, 0.5);
    let b40 = pseudo_random(&[40], 19, 1.0);
    let conv = |stride, padding, groups| {
        Arc::new(Conv2d {
            stride,
            padding,
            groups,
        })
    };
    vec![
        Case {
            name: "conv2d 3×3 s1 p1 [2,6,9,7]→10".into(),
            op: conv(1, 1, 1),
            inputs: vec![x.clone(), w3.clone(), b10.clone()],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "conv2d 3×3 s2 p1 [2,6,9,7]→10".into(),
            op: conv(2, 1, 1),
            inputs: vec![x.clone(), w3],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "conv2d 1×1 [2,6,9,7]→10".into(),
            op: conv(1, 0, 1),
            inputs: vec![x.clone(), w1, b10],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "conv2d depthwise 3×3 s2 [2,6,9,7]".into(),
            op: conv(2, 1, 6),
            inputs: vec![x.clone(), wd, b6],
            atol: 1e-5,
            rtol: 1e-5,
        },
        // 40 output channels: the subgroup kernels where the adapter has them.
        Case {
            name: "conv2d 3×3 s2 p1 [2,6,9,7]→40".into(),
            op: conv(2, 1, 1),
            inputs: vec![x.clone(), w3_40, b40.clone()],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "conv2d 1×1 [2,6,9,7]→40".into(),
            op: conv(1, 0, 1),
            inputs: vec![x, w1_40, b40],
            atol: 1e-5,
            rtol: 1e-5,
        },
    ]
}
