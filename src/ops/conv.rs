//! 2-D convolution (NCHW, PyTorch weight layout [Cout, Cin/groups, kh, kw], optional bias).
//!
//! Every variant is an implicit GEMM: M = output channels of a group, N = output pixels of one
//! image, K = Cin/groups · kh · kw. The input is gathered on the fly (no im2col buffer); each
//! invocation keeps a register block of TM channels × TN pixels, and all invocations of a
//! workgroup share the channel tile, so weights are the same for the whole workgroup.
//!
//! Kernels:
//! - `conv_tex.wgsl` (adapters that take texture operands — CPU drivers, see `ops::texture` —
//!   groups = 1, whole vec4s of output pixels): weights and the zero-padded input packed into
//!   textures (4 channels per texel), then `panel.wgsl`'s 16 × 16 subgroup tile. Depthwise
//!   3×3 (stride 1 or 2, whole vec4s of output pixels per row) reads the same padded image
//!   texture in `conv_dw`: 4 output pixels × 4 channels per lane. The weight gradient on such
//!   adapters packs dy and im2col(x) into panels for matmul_tex's product.
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

use super::matmul::PanelGrid;
use super::texture;
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::device::Caps;
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

/// Mirrors `Params` in shaders/conv_tex.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default, Debug)]
struct ConvTexParams {
    cin: u32,
    h: u32,
    w: u32,
    pad: u32,
    stride: u32,
    kh: u32,
    kw: u32,
    c4: u32,
    ho: u32,
    wo: u32,
    cout: u32,
    hp: u32,
    wp: u32,
    z0: u32,
    nb: u32,
    /// conv_dw: the first texel of 4 channels of this chunk.
    ci4_0: u32,
    xs_n: u32,
    xs_c: u32,
    xs_h: u32,
    x_off: u32,
    ws_co: i32,
    ws_ci: i32,
    ws_ky: i32,
    ws_kx: i32,
    w_off: i32,
    ys_n: u32,
    ys_c: u32,
    y_off: u32,
    tiles_n: u32,
    tiles: u32,
    has_bias: u32,
    /// conv_panel: add to the output instead of writing it (channel chunks after the first).
    accumulate: u32,
    kdim: u32,
    k4: u32,
    _q: [u32; 2],
}

/// The depthwise texture path (shaders/conv_tex.wgsl `conv_dw`): texture 0 holds the
/// zero-padded input of `nb` batch entries and `cc4` texels of 4 channels (one chunk of the
/// channels), texture 1 the weights of every channel (9 taps × c4 texels).
#[derive(Clone, Copy, Debug)]
struct DwTex {
    c4: usize,
    cc4: usize,
    chunks: usize,
    hp: usize,
    wp: usize,
    nb: usize,
}

impl DwTex {
    fn textures(&self) -> Vec<[u32; 2]> {
        vec![
            [self.wp as u32, (self.nb * self.hp * self.cc4) as u32],
            [9, self.c4 as u32],
        ]
    }
}

/// The bias binding of the texture kernels: input 2, or (without a bias) the weights, never
/// read.
fn bias_bind(g: &Geom) -> Bind {
    if g.has_bias {
        Bind::read(2)
    } else {
        Bind::read(1)
    }
}

/// The dispatch that fills texture 0 with the zero-padded input of `rows` padded rows (the
/// texture's batch entries) for params `p` (conv_tex.wgsl `pack_image`).
fn pack_image(p: &ConvTexParams, wp: usize, rows: usize) -> Dispatch {
    Dispatch {
        kernel: Kernel::new("conv_tex", "pack_image"),
        params: params(p),
        binds: vec![Bind::read(0), Bind::texture_write(0)],
        grid: [groups(wp * p.c4 as usize, 64), rows as u32, 1],
    }
}

/// Output channels (and pixels) one subgroup of `conv_panel` computes: two panels.
const TEX_TILE: usize = 16;

/// The texture path of one convolution (shaders/conv_tex.wgsl): texture 0 holds the
/// zero-padded input of `nb` batch entries with 4 channels per texel, textures 1, 2, .. the
/// weights in panels of 8 output channels (one row per panel and tap), one per chunk of input
/// channels. An image whose padded rows × texels per pixel exceed the texture height (a
/// high-resolution decoder conv: 258 rows × 64 texels for 256 channels at 256 × 256) is
/// convolved `cc4` texels of channels at a time, each chunk adding to the output.
#[derive(Clone, Copy, Debug)]
struct ConvTex {
    /// Texels of 4 input channels per pixel, in all and per chunk.
    c4: usize,
    cc4: usize,
    chunks: usize,
    hp: usize,
    wp: usize,
    sgs: usize,
    tiles_n: usize,
    tiles: usize,
    w_panels: usize,
    taps: usize,
    nb: usize,
}

impl ConvTex {
    /// (width, height) of the input texture and of each chunk's weight texture.
    fn textures(&self) -> Vec<[u32; 2]> {
        let mut v = vec![[self.wp as u32, (self.nb * self.hp * self.cc4) as u32]];
        v.extend(
            (0..self.chunks).map(|_| [(8 * self.cc4) as u32, (self.w_panels * self.taps) as u32]),
        );
        v
    }
}

/// Invocations per workgroup in conv2d.wgsl and conv2d_sg.wgsl (`WGX`).
const WGX: usize = 64;
/// Output channels per invocation in conv2d_sg.wgsl (`TM`).
const SG_TM: usize = 32;
/// Output channels per invocation (and per workgroup tile) of `conv_dw_sg`.
pub const DW_SG_ROWS: usize = 64;

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
    /// The forward dispatch for geometry `g` with weight strides [co, ci, ky, kx, offset]
    /// (signed: the data gradient of a stride-1 convolution is this convolution of dy with the
    /// weights transposed and flipped through their strides). Binds: x, w, (bias), out.
    fn forward_dispatch(
        &self,
        caps: &crate::device::Caps,
        g: &Geom,
        wstrides: [i32; 5],
    ) -> Result<Dispatch> {
        let cout_g = g.cout / self.groups;
        let pointwise = g.kh == 1 && g.kw == 1 && self.stride == 1 && self.padding == 0;
        let width3 = g.kw == 3 && (self.stride == 1 || self.stride == 2);
        // The subgroup kernels (32 channels × 4 or 8 pixels per invocation) need subgroups of at
        // least 8 lanes and enough channels to fill their tile.
        let sg =
            caps.subgroups && caps.subgroup_min >= 8 && cout_g >= SG_TM && (pointwise || width3);
        // Register block: TM channels (no more than the group has), TN pixels.
        let tm = if sg {
            SG_TM
        } else {
            [1usize, 2, 4, 8]
                .into_iter()
                .find(|&t| t >= cout_g)
                .unwrap_or(8)
        };
        // conv3_sg: 8 pixels per invocation where rows are at least 8 wide (more FMAs per
        // loaded value), and workgroups of 32 where 64 invocations would not all have a task.
        let sg3 = sg && !pointwise;
        let tn = if sg3 && g.wo >= 8 {
            8
        } else if pointwise || sg {
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
        let wgx = if sg3 && g.ho * cb < WGX { 32 } else { WGX };
        let p_tiles = if pointwise {
            (g.ho * g.wo).div_ceil(WGX * tn)
        } else {
            (g.ho * cb).div_ceil(wgx)
        };
        let m_tiles = cout_g.div_ceil(tm);
        let tiles = p_tiles * m_tiles * self.groups * g.n;
        if tiles > u32::MAX as usize {
            return Err(Error::shape(
                self.name(),
                format!("{tiles} workgroups is too many"),
                &[&[g.n, g.cin, g.h, g.w]],
            ));
        }
        let p = ConvParams {
            ws_co: wstrides[0],
            ws_ci: wstrides[1],
            ws_ky: wstrides[2],
            ws_kx: wstrides[3],
            w_off: wstrides[4],
            p_tiles: p_tiles as u32,
            m_tiles: m_tiles as u32,
            tiles: tiles as u32,
            cb: cb as u32,
            ..self.dense_params(g)
        };
        let kernel = match (sg, pointwise) {
            (true, true) => Kernel::new("conv2d_sg", "conv1_sg"),
            (true, false) => Kernel::new("conv2d_sg", "conv3_sg")
                .with("SS", self.stride as f64)
                .with("TN3", tn as f64)
                .with("WG3", wgx as f64),
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
        Ok(Dispatch {
            kernel,
            params: params(&p),
            binds: vec![Bind::read(0), Bind::read(1), bias_bind, Bind::write(0)],
            grid: [tiles as u32, 1, 1],
        })
    }

    /// Weight strides [co, ci, ky, kx, offset] of a dense [Cout, Cin/groups, kh, kw] weight.
    fn dense_wstrides(&self, g: &Geom) -> [i32; 5] {
        let k = (g.cin / self.groups * g.kh * g.kw) as i32;
        [k, (g.kh * g.kw) as i32, g.kw as i32, 1, 0]
    }

    /// The dispatches of a convolution with dense NCHW input and output and weights addressed
    /// through `wstrides`: the texture path where it applies, else one buffer-kernel dispatch.
    fn dense_dispatches(&self, caps: &Caps, g: &Geom, wstrides: [i32; 5]) -> Result<Vec<Dispatch>> {
        if let Some(t) = self.dw_tex_plan(caps, g) {
            return Ok(self.encode_dw_tex(g, &t, wstrides));
        }
        match self.tex_plan(caps, g) {
            Some(t) => Ok(self.encode_tex(g, &t, wstrides)),
            None => Ok(vec![self.forward_dispatch(caps, g, wstrides)?]),
        }
    }

    /// The texture path (shaders/conv_tex.wgsl) for geometry `g`, when texture operands are on
    /// and everything fits: groups = 1, whole vec4s of output pixels, textures within the
    /// adapter's size, grids within its per-dimension cap.
    fn tex_plan(&self, caps: &Caps, g: &Geom) -> Option<ConvTex> {
        if !caps.texture_operands || self.groups != 1 {
            return None;
        }
        let npix = g.ho * g.wo;
        if !npix.is_multiple_of(4) {
            return None;
        }
        let sizes = [
            g.n * g.cin * g.h * g.w,
            g.n * g.cout * npix,
            g.cout * g.cin * g.kh * g.kw,
        ];
        if sizes.iter().any(|&v| v >= i32::MAX as usize) {
            return None;
        }
        let c4 = g.cin.div_ceil(4);
        let taps = g.kh * g.kw;
        let (hp, wp) = (g.h + 2 * self.padding, g.w + 2 * self.padding);
        let sgs = npix.div_ceil(TEX_TILE).next_power_of_two().min(8);
        let tiles_n = npix.div_ceil(TEX_TILE * sgs);
        let tiles_m = g.cout.div_ceil(TEX_TILE);
        let w_panels = 2 * tiles_m;
        let (max, grid) = (
            caps.max_texture_dim as usize,
            caps.max_workgroups_per_dim as usize,
        );
        // Channel chunks: as few as keep one padded image within the texture height, of equal
        // size; then batch entries per image texture: as many as its height allows.
        let chunks = c4.div_ceil((max / hp).max(1));
        let cc4 = c4.div_ceil(chunks);
        let nb = (max / (hp * cc4)).min(grid / hp).min(g.n);
        let fits = nb >= 1
            && 8 * cc4 <= max
            && wp <= max
            && w_panels * taps <= max
            && 8 * w_panels <= grid
            && cc4 <= grid
            && taps <= grid;
        fits.then_some(ConvTex {
            c4,
            cc4,
            chunks,
            hp,
            wp,
            sgs,
            tiles_n,
            tiles: tiles_n * tiles_m,
            w_panels,
            taps,
            nb,
        })
    }

    /// The scratch textures `dense_dispatches` uses for geometry `g` (none on buffer kernels).
    fn textures(&self, caps: &Caps, g: &Geom) -> Vec<[u32; 2]> {
        if let Some(t) = self.dw_tex_plan(caps, g) {
            return t.textures();
        }
        self.tex_plan(caps, g).map_or(Vec::new(), |t| t.textures())
    }

    /// The depthwise texture path, when texture operands are on and it applies: groups = Cin
    /// = Cout, a 3 × 3 kernel, stride 1 or 2, output rows of whole vec4s, textures and grids
    /// within the adapter's limits. Channels too many for one padded image per texture go in
    /// chunks (each its own pack and kernel); batch entries share a texture as its height
    /// allows.
    fn dw_tex_plan(&self, caps: &Caps, g: &Geom) -> Option<DwTex> {
        let depthwise = self.groups == g.cin && g.cout == g.cin;
        if !caps.texture_operands
            || !depthwise
            || (g.kh, g.kw) != (3, 3)
            || !(self.stride == 1 || self.stride == 2)
            || !g.wo.is_multiple_of(4)
        {
            return None;
        }
        if [g.n * g.cin * g.h * g.w, g.n * g.cout * g.ho * g.wo]
            .iter()
            .any(|&v| v >= i32::MAX as usize)
        {
            return None;
        }
        let c4 = g.cin.div_ceil(4);
        let (hp, wp) = (g.h + 2 * self.padding, g.w + 2 * self.padding);
        let (max, grid) = (
            caps.max_texture_dim as usize,
            caps.max_workgroups_per_dim as usize,
        );
        let chunks = c4.div_ceil((max / hp).max(1));
        let cc4 = c4.div_ceil(chunks);
        let nb = (max / (hp * cc4)).min(grid).min(g.n);
        let fits = nb >= 1
            && hp * cc4 <= max
            && wp <= max
            && c4 <= max
            && (g.wo / 4 * g.ho).div_ceil(64) <= grid
            && cc4 <= grid
            && c4 <= grid;
        fits.then_some(DwTex {
            c4,
            cc4,
            chunks,
            hp,
            wp,
            nb,
        })
    }

    fn encode_dw_tex(&self, g: &Geom, t: &DwTex, wstrides: [i32; 5]) -> Vec<Dispatch> {
        let u = |v: usize| v as u32;
        let base = self.tex_params(g, (t.c4, t.hp, t.wp), wstrides);
        let mut out = vec![Dispatch {
            kernel: Kernel::new("conv_tex", "pack_dw_weight"),
            params: params(&base),
            binds: vec![Bind::read(1), Bind::texture_write(1)],
            grid: [1, u(t.c4), 1],
        }];
        let bias = bias_bind(g);
        for z0 in (0..g.n).step_by(t.nb) {
            let nb = t.nb.min(g.n - z0);
            for j in 0..t.chunks {
                // Chunk j: channel texels cc4·j .. (fewer in the last).
                let c0 = 4 * t.cc4 * j;
                let cin = (4 * t.cc4).min(g.cin - c0);
                let p = ConvTexParams {
                    cin: u(cin),
                    c4: u(cin.div_ceil(4)),
                    x_off: u(c0) * base.xs_c,
                    ci4_0: u(t.cc4 * j),
                    z0: u(z0),
                    nb: u(nb),
                    ..base
                };
                out.push(pack_image(&p, t.wp, nb * t.hp));
                out.push(Dispatch {
                    kernel: Kernel::new("conv_tex", "conv_dw").with("DS", self.stride as f64),
                    params: params(&p),
                    binds: vec![
                        Bind::texture_read(1),
                        Bind::texture_read(0),
                        Bind::write(0),
                        bias,
                    ],
                    grid: [groups(g.wo / 4 * g.ho, 64), p.c4, u(nb)],
                });
            }
        }
        out
    }

    /// The fields every texture-path dispatch shares: geometry, strides of the dense NCHW
    /// input and output, the signed weight strides; `(c4, hp, wp)` of the image texture.
    fn tex_params(
        &self,
        g: &Geom,
        (c4, hp, wp): (usize, usize, usize),
        wstrides: [i32; 5],
    ) -> ConvTexParams {
        let u = |v: usize| v as u32;
        ConvTexParams {
            cin: u(g.cin),
            h: u(g.h),
            w: u(g.w),
            pad: u(self.padding),
            stride: u(self.stride),
            kh: u(g.kh),
            kw: u(g.kw),
            c4: u(c4),
            ho: u(g.ho),
            wo: u(g.wo),
            cout: u(g.cout),
            hp: u(hp),
            wp: u(wp),
            xs_n: u(g.cin * g.h * g.w),
            xs_c: u(g.h * g.w),
            xs_h: u(g.w),
            ws_co: wstrides[0],
            ws_ci: wstrides[1],
            ws_ky: wstrides[2],
            ws_kx: wstrides[3],
            w_off: wstrides[4],
            ys_n: u(g.cout * g.ho * g.wo),
            ys_c: u(g.ho * g.wo),
            has_bias: g.has_bias as u32,
            ..Default::default()
        }
    }

    fn encode_tex(&self, g: &Geom, t: &ConvTex, wstrides: [i32; 5]) -> Vec<Dispatch> {
        let u = |v: usize| v as u32;
        let base = ConvTexParams {
            tiles_n: u(t.tiles_n),
            tiles: u(t.tiles),
            ..self.tex_params(g, (t.c4, t.hp, t.wp), wstrides)
        };
        // Chunk j: input channels 4·cc4·j .. (fewer in the last), its own weight texture.
        let chunk = |j: usize| {
            let c0 = 4 * t.cc4 * j;
            let cin = (4 * t.cc4).min(g.cin - c0);
            ConvTexParams {
                cin: u(cin),
                c4: u(cin.div_ceil(4)),
                x_off: base.x_off + u(c0) * base.xs_c,
                w_off: wstrides[4] + c0 as i32 * wstrides[1],
                has_bias: (g.has_bias && j == 0) as u32,
                accumulate: (j > 0) as u32,
                ..base
            }
        };
        let mut out: Vec<Dispatch> = (0..t.chunks)
            .map(|j| {
                let c = chunk(j);
                Dispatch {
                    kernel: Kernel::new("conv_tex", "pack_conv_weight"),
                    params: params(&c),
                    binds: vec![Bind::read(1), Bind::texture_write(1 + j)],
                    grid: [groups(c.c4 as usize, 64), u(8 * t.w_panels), u(g.kh * g.kw)],
                }
            })
            .collect();
        let bias = bias_bind(g);
        for z0 in (0..g.n).step_by(t.nb) {
            let nb = t.nb.min(g.n - z0);
            for j in 0..t.chunks {
                let p = ConvTexParams {
                    z0: u(z0),
                    nb: u(nb),
                    ..chunk(j)
                };
                out.push(pack_image(&p, t.wp, nb * t.hp));
                out.push(Dispatch {
                    kernel: Kernel::new("conv_tex", "conv_panel").with("SGS", t.sgs as f64),
                    params: params(&p),
                    binds: vec![
                        Bind::texture_read(1 + j),
                        Bind::texture_read(0),
                        Bind::write(0),
                        bias,
                    ],
                    grid: [u(t.tiles), 1, u(nb)],
                });
            }
        }
        out
    }

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

    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        self.backward_rule(cx)
    }

    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|s| s.desc.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        self.dense_dispatches(cx.caps, &g, self.dense_wstrides(&g))
    }

    /// Texture 0 is the input image; textures 1, 2, .. the packed weights (input 1), one per
    /// channel chunk.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t >= 1).then_some(1)
    }

    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
        match self.geom(&shapes) {
            Ok(g) => self.textures(caps, &g),
            Err(_) => Vec::new(),
        }
    }
}

impl Conv2d {
    /// The forward geometry behind a gradient op: x shape [N, Cin, H, W] and w shape.
    fn grad_geom(&self, op: &str, x: &[usize], w: &[usize], dy: &[usize]) -> Result<Geom> {
        let g = self.geom(&[x, w]).map_err(|e| match e {
            Error::Shape { msg, .. } => Error::shape(op, msg, &[x, w, dy]),
            e => e,
        })?;
        if dy != [g.n, g.cout, g.ho, g.wo] {
            return Err(Error::shape(
                op,
                format!(
                    "output gradient must be [{}, {}, {}, {}]",
                    g.n, g.cout, g.ho, g.wo
                ),
                &[x, w, dy],
            ));
        }
        Ok(g)
    }

    /// Forward params for geometry `g`, dense NCHW strides, no tiling fields.
    fn dense_params(&self, g: &Geom) -> ConvParams {
        let (cin_g, cout_g) = (g.cin / self.groups, g.cout / self.groups);
        ConvParams {
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
            ws_co: (cin_g * g.kh * g.kw) as i32,
            ws_ci: (g.kh * g.kw) as i32,
            ws_ky: g.kw as i32,
            ws_kx: 1,
            w_off: 0,
            ys_n: (g.cout * g.ho * g.wo) as u32,
            ys_c: (g.ho * g.wo) as u32,
            ys_h: g.wo as u32,
            y_off: 0,
            ..Default::default()
        }
    }

    fn backward_rule(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let n_in = cx.inputs.len();
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None; n_in]);
        };
        let (x, w) = (cx.inputs[0], cx.inputs[1]);
        let xs = cx.g.shape(x).to_vec();
        let ws = cx.g.shape(w).to_vec();
        let dx = cx.g.apply1(
            Conv2dBackwardData {
                conv: self.clone(),
                in_hw: [xs[2], xs[3]],
            },
            &[gy, w],
        )?;
        let dw = cx.g.apply1(
            Conv2dBackwardWeight {
                conv: self.clone(),
                kernel: [ws[2], ws[3]],
            },
            &[x, gy],
        )?;
        let mut out = vec![Some(dx), Some(dw)];
        if n_in == 3 {
            let db = cx.g.apply1(
                super::elementwise::ReduceBroadcast {
                    b_shape: vec![ws[0], 1, 1],
                },
                &[gy],
            )?;
            out.push(Some(cx.g.reshape(db, &[ws[0]])?));
        }
        Ok(out)
    }
}

/// Data gradient of `Conv2d`: dx [N, Cin, H, W] from dy [N, Cout, Ho, Wo] and w
/// [Cout, Cin/groups, kh, kw] (a transposed convolution). `in_hw` is the forward input's
/// H × W (not recoverable from Ho × Wo when the stride does not divide evenly).
#[derive(Clone, Debug)]
pub struct Conv2dBackwardData {
    pub conv: Conv2d,
    pub in_hw: [usize; 2],
}

impl Conv2dBackwardData {
    fn geom(&self, shapes: &[&[usize]]) -> Result<Geom> {
        let name = self.name();
        let [dy, w] = shapes else {
            return Err(Error::shape(name, "takes dy and w", shapes));
        };
        if dy.len() != 4 || w.len() != 4 {
            return Err(Error::shape(
                name,
                "dy must be [N, Cout, Ho, Wo] and w [Cout, Cin/groups, kh, kw]",
                shapes,
            ));
        }
        let x = [dy[0], w[1] * self.conv.groups, self.in_hw[0], self.in_hw[1]];
        self.conv.grad_geom(&name, &x, w, dy)
    }
}

impl Conv2dBackwardData {
    /// A stride-1, square-kernel, ungrouped data gradient is a forward convolution: dx =
    /// conv(dy, w transposed and flipped), padding k − 1 − p, with w addressed through signed
    /// strides instead of a rearranged copy. The forward op, its geometry and weight strides.
    fn as_forward(&self, g: &Geom) -> Option<(Conv2d, Geom, [i32; 5])> {
        if !(self.conv.stride == 1
            && self.conv.groups == 1
            && self.conv.padding < g.kh.min(g.kw)
            && g.kh == g.kw)
        {
            return None;
        }
        let fwd = Conv2d {
            stride: 1,
            padding: g.kh - 1 - self.conv.padding,
            groups: 1,
        };
        let tg = Geom {
            n: g.n,
            cin: g.cout,
            h: g.ho,
            w: g.wo,
            cout: g.cin,
            kh: g.kh,
            kw: g.kw,
            ho: g.h,
            wo: g.w,
            has_bias: false,
        };
        let (kh, kw) = (g.kh as i32, g.kw as i32);
        let wstrides = [
            kh * kw,
            g.cin as i32 * kh * kw,
            -kw,
            -1,
            (kh - 1) * kw + kw - 1,
        ];
        Some((fwd, tg, wstrides))
    }
}

impl Op for Conv2dBackwardData {
    fn name(&self) -> String {
        format!(
            "conv2d_backward_data(stride={}, padding={}, groups={}, in_hw={:?})",
            self.conv.stride, self.conv.padding, self.conv.groups, self.in_hw
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
        if inputs.iter().any(|d| d.dtype != DType::F32) {
            return Err(Error::shape(self.name(), "needs f32 operands", &shapes));
        }
        let g = self.geom(&shapes)?;
        Ok(vec![TensorDesc::f32(&[g.n, g.cin, g.h, g.w])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        let dy = inputs[0].as_f32()?;
        let w = inputs[1].as_f32()?;
        let grp = self.conv.groups;
        let (cin_g, cout_g) = (g.cin / grp, g.cout / grp);
        let (s, pad) = (self.conv.stride as isize, self.conv.padding as isize);
        let mut dx = vec![0.0f64; g.n * g.cin * g.h * g.w];
        for n in 0..g.n {
            for co in 0..g.cout {
                let gr = co / cout_g;
                for oh in 0..g.ho {
                    for ow in 0..g.wo {
                        let d = dy[((n * g.cout + co) * g.ho + oh) * g.wo + ow] as f64;
                        for ci in 0..cin_g {
                            let c = gr * cin_g + ci;
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
                                    let wv = w[((co * cin_g + ci) * g.kh + ky) * g.kw + kx];
                                    dx[((n * g.cin + c) * g.h + ih as usize) * g.w
                                        + iw as usize] += wv as f64 * d;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(vec![HostTensor::f32(
            &[g.n, g.cin, g.h, g.w],
            dx.into_iter().map(|v| v as f32).collect(),
        )?])
    }
    /// Texture 0 is dy's image; textures 1, 2, .. the packed (flipped) weights, input 1.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t >= 1).then_some(1)
    }

    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
        let Ok(g) = self.geom(&shapes) else {
            return Vec::new();
        };
        match self.as_forward(&g) {
            Some((fwd, tg, _)) => fwd.textures(caps, &tg),
            None => Vec::new(),
        }
    }

    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|s| s.desc.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        if let Some((fwd, tg, wstrides)) = self.as_forward(&g) {
            return fwd.dense_dispatches(cx.caps, &tg, wstrides);
        }
        let cin_g = g.cin / self.conv.groups;
        let tm = [1usize, 2, 4, 8]
            .into_iter()
            .find(|&t| t >= cin_g)
            .unwrap_or(8);
        let p_tiles = (g.h * g.w).div_ceil(WGX);
        let m_tiles = cin_g.div_ceil(tm);
        let tiles = p_tiles * m_tiles * self.conv.groups * g.n;
        if tiles > u32::MAX as usize {
            return Err(Error::shape(
                self.name(),
                format!("{tiles} workgroups is too many"),
                &shapes,
            ));
        }
        let p = ConvParams {
            p_tiles: p_tiles as u32,
            m_tiles: m_tiles as u32,
            tiles: tiles as u32,
            ..self.conv.dense_params(&g)
        };
        Ok(vec![Dispatch {
            kernel: Kernel::new("conv2d_backward", "conv_dx").with("TM", tm as f64),
            params: params(&p),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
            grid: [tiles as u32, 1, 1],
        }])
    }
}

/// Weight gradient of `Conv2d`: dw [Cout, Cin/groups, kh, kw] from x [N, Cin, H, W] and dy
/// [N, Cout, Ho, Wo], summed over N·Ho·Wo in a fixed order.
#[derive(Clone, Debug)]
pub struct Conv2dBackwardWeight {
    pub conv: Conv2d,
    pub kernel: [usize; 2],
}

impl Conv2dBackwardWeight {
    fn geom(&self, shapes: &[&[usize]]) -> Result<Geom> {
        let name = self.name();
        let [x, dy] = shapes else {
            return Err(Error::shape(name, "takes x and dy", shapes));
        };
        if x.len() != 4 || dy.len() != 4 {
            return Err(Error::shape(
                name,
                "x must be [N, Cin, H, W] and dy [N, Cout, Ho, Wo]",
                shapes,
            ));
        }
        if self.conv.groups == 0 || x[1] % self.conv.groups != 0 {
            return Err(Error::shape(
                name,
                format!("groups = {} must divide Cin", self.conv.groups),
                shapes,
            ));
        }
        let w = [
            dy[1],
            x[1] / self.conv.groups,
            self.kernel[0],
            self.kernel[1],
        ];
        self.conv.grad_geom(&name, x, &w, dy)
    }
}

impl Conv2dBackwardWeight {
    /// The texture path (CPU adapters): dW as an M = Cout × N = Cin·kh·kw × K = N·Ho·Wo
    /// product of dy and im2col(x), both packed into panel textures (shaders/conv_tex.wgsl)
    /// for matmul_tex.wgsl's mm_panel. Needs groups = 1, whole texels of output pixels per
    /// batch entry and K within a texture row (8192 on lavapipe), else the buffer kernels.
    fn tex_grid(&self, caps: &Caps, g: &Geom) -> Option<PanelGrid> {
        if !caps.texture_operands || self.conv.groups != 1 || !(g.ho * g.wo).is_multiple_of(4) {
            return None;
        }
        let (m, n, k) = (g.cout, g.cin * g.kh * g.kw, g.n * g.ho * g.wo);
        if [g.n * g.cin * g.h * g.w, g.n * g.cout * g.ho * g.wo, m * n]
            .iter()
            .any(|&v| v >= i32::MAX as usize)
        {
            return None;
        }
        let grid = PanelGrid::new(m, n, k)?;
        (texture::fits(caps, k, grid.a_panels, 1) && texture::fits(caps, k, grid.b_panels, 1))
            .then_some(grid)
    }

    fn encode_tex(&self, g: &Geom, grid: &PanelGrid) -> Vec<Dispatch> {
        let u = |v: usize| v as u32;
        let k4 = texture::k4_of(grid.k);
        let p = ConvTexParams {
            cin: u(g.cin),
            h: u(g.h),
            w: u(g.w),
            pad: u(self.conv.padding),
            stride: u(self.conv.stride),
            kh: u(g.kh),
            kw: u(g.kw),
            ho: u(g.ho),
            wo: u(g.wo),
            cout: u(g.cout),
            xs_n: u(g.cin * g.h * g.w),
            xs_c: u(g.h * g.w),
            xs_h: u(g.w),
            ys_n: u(g.cout * g.ho * g.wo),
            ys_c: u(g.ho * g.wo),
            kdim: u(grid.k),
            k4: u(k4),
            ..Default::default()
        };
        vec![
            Dispatch {
                kernel: Kernel::new("conv_tex", "pack_dy_panels"),
                params: params(&p),
                binds: vec![Bind::read(1), Bind::texture_write(0)],
                grid: [groups(k4, 64), u(8 * grid.a_panels), 1],
            },
            Dispatch {
                kernel: Kernel::new("conv_tex", "pack_im2col_panels"),
                params: params(&p),
                binds: vec![Bind::read(0), Bind::texture_write(1)],
                grid: [groups(k4, 64), u(8 * grid.b_panels), 1],
            },
            grid.product(1, false, 1.0, None),
        ]
    }
}

impl Op for Conv2dBackwardWeight {
    fn name(&self) -> String {
        format!(
            "conv2d_backward_weight(stride={}, padding={}, groups={}, kernel={:?})",
            self.conv.stride, self.conv.padding, self.conv.groups, self.kernel
        )
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
        if inputs.iter().any(|d| d.dtype != DType::F32) {
            return Err(Error::shape(self.name(), "needs f32 operands", &shapes));
        }
        let g = self.geom(&shapes)?;
        Ok(vec![TensorDesc::f32(&[
            g.cout,
            g.cin / self.conv.groups,
            g.kh,
            g.kw,
        ])])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        let x = inputs[0].as_f32()?;
        let dy = inputs[1].as_f32()?;
        let grp = self.conv.groups;
        let (cin_g, cout_g) = (g.cin / grp, g.cout / grp);
        let (s, pad) = (self.conv.stride as isize, self.conv.padding as isize);
        let mut dw = vec![0.0f32; g.cout * cin_g * g.kh * g.kw];
        for co in 0..g.cout {
            let gr = co / cout_g;
            for ci in 0..cin_g {
                let c = gr * cin_g + ci;
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let mut acc = 0.0f64;
                        for n in 0..g.n {
                            for oh in 0..g.ho {
                                let ih = oh as isize * s - pad + ky as isize;
                                if ih < 0 || ih >= g.h as isize {
                                    continue;
                                }
                                for ow in 0..g.wo {
                                    let iw = ow as isize * s - pad + kx as isize;
                                    if iw < 0 || iw >= g.w as isize {
                                        continue;
                                    }
                                    acc += dy[((n * g.cout + co) * g.ho + oh) * g.wo + ow] as f64
                                        * x[((n * g.cin + c) * g.h + ih as usize) * g.w
                                            + iw as usize]
                                            as f64;
                                }
                            }
                        }
                        dw[((co * cin_g + ci) * g.kh + ky) * g.kw + kx] = acc as f32;
                    }
                }
            }
        }
        Ok(vec![HostTensor::f32(&[g.cout, cin_g, g.kh, g.kw], dw)?])
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
        match self
            .geom(&shapes)
            .ok()
            .and_then(|g| self.tex_grid(caps, &g))
        {
            Some(grid) => vec![
                texture::texture_size(grid.k, grid.a_panels, 1),
                texture::texture_size(grid.k, grid.b_panels, 1),
            ],
            None => Vec::new(),
        }
    }

    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|s| s.desc.shape.as_slice()).collect();
        let g = self.geom(&shapes)?;
        if let Some(grid) = self.tex_grid(cx.caps, &g) {
            return Ok(self.encode_tex(&g, &grid));
        }
        let tiles = g.cout * (g.cin / self.conv.groups) * g.kh * g.kw;
        if tiles > u32::MAX as usize || g.n * g.ho * g.wo > u32::MAX as usize {
            return Err(Error::shape(self.name(), "too large", &shapes));
        }
        let p = ConvParams {
            tiles: tiles as u32,
            ..self.conv.dense_params(&g)
        };
        // Few output rows per group (depthwise): one workgroup per weight element reducing
        // over all positions. Otherwise the tiled implicit GEMM, whose 32×32 tiles reuse each
        // loaded value 4 times per lane.
        let (cin_g, cout_g) = (g.cin / self.conv.groups, g.cout / self.conv.groups);
        let ncols = cin_g * g.kh * g.kw;
        // With subgroups of at least 8 lanes and at least 32 channels per group: conv_dw_sg
        // (64 channels × 4 columns per invocation, dy shared by subgroupBroadcast).
        if cx.caps.subgroups && cx.caps.subgroup_min >= 8 && cout_g >= 32 && ncols >= 8 {
            let grid = [
                ncols.div_ceil(256) as u32,
                cout_g.div_ceil(DW_SG_ROWS) as u32,
                self.conv.groups as u32,
            ];
            if grid.iter().any(|d| *d > 65535) {
                return Err(Error::shape(self.name(), "grid over 65535 tiles", &shapes));
            }
            return Ok(vec![Dispatch {
                kernel: Kernel::new("conv2d_backward_sg", "conv_dw_sg"),
                params: params(&p),
                binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
                grid,
            }]);
        }
        if cout_g >= 8 && ncols >= 8 {
            let grid = [
                ncols.div_ceil(32) as u32,
                cout_g.div_ceil(32) as u32,
                self.conv.groups as u32,
            ];
            if grid.iter().any(|d| *d > 65535) {
                return Err(Error::shape(self.name(), "grid over 65535 tiles", &shapes));
            }
            return Ok(vec![Dispatch {
                kernel: Kernel::new("conv2d_backward", "conv_dw_tiled"),
                params: params(&p),
                binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
                grid,
            }]);
        }
        Ok(vec![Dispatch {
            kernel: Kernel::new("conv2d_backward", "conv_dw"),
            params: params(&p),
            binds: vec![Bind::read(0), Bind::read(1), Bind::write(0)],
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
    let w3b = w3.clone();
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
            inputs: vec![x.clone(), w1_40, b40],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "conv2d backward data 3×3 s2 p1 [2,10,5,4]→[2,6,9,7]".into(),
            op: Arc::new(Conv2dBackwardData {
                conv: Conv2d {
                    stride: 2,
                    padding: 1,
                    groups: 1,
                },
                in_hw: [9, 7],
            }),
            inputs: vec![pseudo_random(&[2, 10, 5, 4], 20, 1.0), w3b],
            atol: 1e-5,
            rtol: 1e-5,
        },
        Case {
            name: "conv2d backward weight 3×3 s2 p1 depthwise [2,6,9,7]".into(),
            op: Arc::new(Conv2dBackwardWeight {
                conv: Conv2d {
                    stride: 2,
                    padding: 1,
                    groups: 6,
                },
                kernel: [3, 3],
            }),
            inputs: vec![x, pseudo_random(&[2, 6, 5, 4], 21, 1.0)],
            atol: 1e-4,
            rtol: 1e-4,
        },
    ]
}
