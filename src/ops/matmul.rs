//! Matrix products: batched `Matmul` with either operand transposed, an optional bias over the
//! output columns and a scale, and the PyTorch-style `Graph::linear` built on it.
//!
//! Shapes: a is [batch..., M, K] ([batch..., K, M] with `trans_a`), b is [batch..., K, N]
//! ([batch..., N, K] with `trans_b`) where b either has exactly a's batch dims or none (one
//! matrix shared by the whole batch, e.g. a weight), bias is [N]; the output is
//! [batch..., M, N]. A shared b with an untransposed a folds the batch into M.
//!
//! A shared, transposed b (a Linear weight [out, in]) may be larger than one storage binding:
//! it is then stored as row chunks and each chunk is one dispatch writing its own range of
//! output columns.
//!
//! Kernels (shaders/matmul.wgsl, shaders/matmul_sg.wgsl): register-blocked without workgroup
//! memory or barriers; a workgroup shares its rows and each invocation owns a block of rows ×
//! one vec4 of columns, with f32 accumulators.
//! - `mm_sg` (64 rows per invocation): where the adapter has subgroups of >= 8 lanes, the A
//!   block is loaded once per subgroup and shared with `subgroupBroadcast`;
//! - `mm_vec` (8 rows): the same without subgroups; both need K, N (unless `trans_b`) and M
//!   (if `trans_a`) to be multiples of 4, and run without any bounds checks (`CHECK` = false)
//!   when M and N also fill whole tiles;
//! - `mm_scalar` (8 rows, scalar loads, clamped indices) takes every other shape.
//!
//! On CPU adapters that take texture operands (`Caps::texture_operands`, shaders/matmul_tex.wgsl)
//! the operands are read from textures instead: `mm_rows` for A · B whose rows are whole
//! 256-byte copy rows (both copied by the copy engine, B in vertical strips of columns: no
//! packing pass), else
//! `mm_panel` on both operands packed into 8-row panels (any transpose; N a multiple of 4).

use super::texture::{self, Operand, PANEL};
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op, TextureCopy};
use crate::device::Caps;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// Rows per invocation (and per workgroup tile); `TM` in the shader.
pub const TM: usize = 8;
/// Rows per invocation of the subgroup kernel.
pub const TM_SG: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default, Debug)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    tiles: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    sa: u32,
    sb: u32,
    sc: u32,
    alpha: f32,
    has_bias: u32,
    _p: [u32; 3],
}

/// out = alpha · op(a) · op(b) (+ bias), op = transpose when the flag is set.
/// Inputs: a, b and optionally bias [N].
#[derive(Clone, Debug)]
pub struct Matmul {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// Use the subgroup kernel where the adapter has subgroups of at least 8 lanes (the
    /// default); false always takes the portable kernels (tests, driver workarounds).
    pub subgroups: bool,
    /// Use the texture-operand kernel where `caps.texture_operands` (the default; it also
    /// needs `subgroups`); false takes the buffer kernels (tests, A/B comparisons).
    pub textures: bool,
}

impl Matmul {
    pub fn new(trans_a: bool, trans_b: bool) -> Self {
        Matmul {
            trans_a,
            trans_b,
            alpha: 1.0,
            subgroups: true,
            textures: true,
        }
    }
    pub fn without_subgroups(mut self) -> Self {
        self.subgroups = false;
        self
    }
    pub fn without_textures(mut self) -> Self {
        self.textures = false;
        self
    }
    pub fn scaled(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }
}

/// Resolved sizes of one matmul.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    /// b has no batch dims.
    shared: bool,
}

impl Matmul {
    fn dims(&self, a: &[usize], b: &[usize], bias: Option<&[usize]>) -> Result<Dims> {
        let err = |msg: String| {
            let mut shapes = vec![a, b];
            if let Some(s) = bias {
                shapes.push(s);
            }
            Error::shape(self.name(), msg, &shapes)
        };
        if a.len() < 2 || b.len() < 2 {
            return Err(err("a and b need rank >= 2".into()));
        }
        let (ra, rb) = (a.len(), b.len());
        let (m, k) = if self.trans_a {
            (a[ra - 1], a[ra - 2])
        } else {
            (a[ra - 2], a[ra - 1])
        };
        let (kb, n) = if self.trans_b {
            (b[rb - 1], b[rb - 2])
        } else {
            (b[rb - 2], b[rb - 1])
        };
        if k != kb {
            return Err(err(format!(
                "inner dims differ: a gives K = {k}, b gives K = {kb}"
            )));
        }
        let shared = rb == 2;
        if !shared && a[..ra - 2] != b[..rb - 2] {
            return Err(err("b must have the same batch dims as a, or none".into()));
        }
        if let Some(s) = bias {
            if s != [n] {
                return Err(err(format!("bias must be [N] = [{n}]")));
            }
        }
        let batch = a[..ra - 2].iter().product();
        Ok(Dims {
            batch,
            m,
            k,
            n,
            shared,
        })
    }
}

/// Rows (and columns) of the output one subgroup of `mm_panel` computes: 2 panels.
const PANEL_TILE: usize = 2 * PANEL;

/// The `mm_panel` grid of an M × N × K product (shaders/matmul_tex.wgsl): 16 × 16·sgs
/// outputs per workgroup, and how many panels its A and B textures hold per batch entry. Also
/// used by ops whose operands are packed by their own kernels (the convolution weight
/// gradient).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PanelGrid {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Subgroups per workgroup, side by side in columns.
    pub sgs: usize,
    pub tiles_m: usize,
    pub tiles_n: usize,
    pub a_panels: usize,
    pub b_panels: usize,
}

impl PanelGrid {
    /// None where `mm_panel` cannot store C (N not a multiple of 4) or the grid is too large.
    pub fn new(m: usize, n: usize, k: usize) -> Option<PanelGrid> {
        if !n.is_multiple_of(4) || m == 0 || n == 0 || k == 0 {
            return None;
        }
        let sgs = n.div_ceil(PANEL_TILE).next_power_of_two().min(8);
        let tiles_m = m.div_ceil(PANEL_TILE);
        let tiles_n = n.div_ceil(PANEL_TILE * sgs);
        (tiles_m * tiles_n < u32::MAX as usize).then_some(PanelGrid {
            m,
            n,
            k,
            sgs,
            tiles_m,
            tiles_n,
            a_panels: 2 * tiles_m,
            b_panels: 2 * sgs * tiles_n,
        })
    }

    /// The product of textures 0 (A panels) and 1 (B panels, shared by the batch when
    /// `b_shared`) into output 0 ([batch, M, N]), times alpha, plus `bias` [N] when given.
    pub fn product(
        &self,
        batch: usize,
        b_shared: bool,
        alpha: f32,
        bias: Option<Bind>,
    ) -> Dispatch {
        let u = |v: usize| v as u32;
        let tiles = self.tiles_m * self.tiles_n;
        let p = PanelParams {
            m: u(self.m),
            n: u(self.n),
            k4: u(texture::k4_of(self.k)),
            a_panels: u(self.a_panels),
            b_panels: if b_shared { 0 } else { u(self.b_panels) },
            tiles_n: u(self.tiles_n),
            tiles: u(tiles),
            sc: u(self.m * self.n),
            has_bias: bias.is_some() as u32,
            alpha,
            ..Default::default()
        };
        texture_product("mm_panel", self.sgs, &p, bias, batch)
    }
}

/// The texture path of one matmul: operand layouts and the `mm_panel` grid.
#[derive(Clone, Copy, Debug)]
struct TexPlan {
    a: Operand,
    b: Operand,
    grid: PanelGrid,
    batch: usize,
    shared: bool,
    /// A · B with both operands copied as they are (`mm_rows`) instead of packed into panels.
    rows: Option<RowsPlan>,
}

/// `mm_rows` (shaders/matmul_tex.wgsl): the copies of A and B into textures 0 and 1, and its
/// grid of 8 × 32·sgs output tiles.
#[derive(Clone, Copy, Debug)]
struct RowsPlan {
    a: TextureCopy,
    /// B in vertical strips of whole subgroups' columns, so that one subgroup's walk down K
    /// reads contiguous memory instead of one 4·N-byte row per k.
    b: texture::Strips,
    sgs: usize,
    tiles_m: usize,
    tiles_n: usize,
}

/// Output columns of one `mm_rows` subgroup: a texel of 4 per lane.
const ROWS_TILE_N: usize = 4 * PANEL;

impl RowsPlan {
    /// Where A · B (row-major, not transposed) can be read from plain copies: rows of whole
    /// 256-byte copy rows and textures within the limits.
    fn new(a: &Operand, b: &Operand, grid: &PanelGrid, batch: usize, caps: &Caps) -> Option<Self> {
        if a.ks != 1 || b.rs != 1 || batch > caps.max_workgroups_per_dim as usize {
            return None;
        }
        let n = grid.n;
        let sgs = n.div_ceil(ROWS_TILE_N).next_power_of_two().min(8);
        Some(RowsPlan {
            a: texture::natural_copy(a, caps)?,
            b: texture::Strips::new(texture::natural_copy(b, caps)?, PANEL, caps),
            sgs,
            tiles_m: grid.m.div_ceil(PANEL),
            tiles_n: n.div_ceil(ROWS_TILE_N * sgs),
        })
    }
}

/// A product kernel of shaders/matmul_tex.wgsl (`mm_panel` or `mm_rows`): A in texture 0, B in
/// texture 1, C into output 0, `p.tiles` workgroups per batch entry.
fn texture_product(
    entry: &'static str,
    sgs: usize,
    p: &PanelParams,
    bias: Option<Bind>,
    batch: usize,
) -> Dispatch {
    Dispatch {
        kernel: Kernel::new("matmul_tex", entry).with("SGS", sgs as f64),
        params: params(p),
        binds: vec![
            Bind::texture_read(0),
            Bind::texture_read(1),
            Bind::write(0),
            // Without a bias, any input stands in for the unread binding.
            bias.unwrap_or(Bind::read(0)),
        ],
        grid: [p.tiles, 1, batch as u32],
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default, Debug)]
struct PanelParams {
    m: u32,
    n: u32,
    k4: u32,
    a_panels: u32,
    b_panels: u32,
    tiles_n: u32,
    tiles: u32,
    sc: u32,
    has_bias: u32,
    alpha: f32,
    /// mm_rows: texel columns per strip of B's texture, and texture rows per strip.
    strip: u32,
    strip_rows: u32,
}

impl Matmul {
    /// The texture path for these operands, when it is enabled and everything fits.
    fn tex_plan(&self, a: &TensorDesc, b: &TensorDesc, caps: &Caps) -> Option<TexPlan> {
        if !(self.textures && self.subgroups && caps.texture_operands) {
            return None;
        }
        // A b over one binding is stored in row chunks; the pack reads one buffer.
        if b.bytes() > caps.max_storage_binding {
            return None;
        }
        let d = self.dims(&a.shape, &b.shape, None).ok()?;
        if d.batch * d.m * d.n == 0 || d.k == 0 {
            return None;
        }
        for v in [a.numel(), b.numel(), d.batch * d.m * d.n] {
            if v >= u32::MAX as usize {
                return None;
            }
        }
        // A shared b with a row-major a: the batch is just more rows.
        let (batch, m) = if d.shared && !self.trans_a {
            (1, d.batch * d.m)
        } else {
            (d.batch, d.m)
        };
        let (k, n) = (d.k, d.n);
        let grid = PanelGrid::new(m, n, k)?;
        let b_batch = if d.shared { 1 } else { batch };
        if !texture::fits(caps, k, grid.a_panels, batch)
            || !texture::fits(caps, k, grid.b_panels, b_batch)
        {
            return None;
        }
        let a_op = if self.trans_a {
            Operand {
                rows: m,
                k,
                rs: 1,
                ks: m,
                zs: m * k,
                off: 0,
                batch,
            }
        } else {
            Operand {
                rows: m,
                k,
                rs: k,
                ks: 1,
                zs: m * k,
                off: 0,
                batch,
            }
        };
        let b_zs = if d.shared { 0 } else { k * n };
        let b_op = if self.trans_b {
            Operand {
                rows: n,
                k,
                rs: k,
                ks: 1,
                zs: b_zs,
                off: 0,
                batch: b_batch,
            }
        } else {
            Operand {
                rows: n,
                k,
                rs: 1,
                ks: n,
                zs: b_zs,
                off: 0,
                batch: b_batch,
            }
        };
        let rows = if self.trans_a || self.trans_b {
            None
        } else {
            RowsPlan::new(&a_op, &b_op, &grid, batch, caps)
        };
        Some(TexPlan {
            a: a_op,
            b: b_op,
            grid,
            batch,
            shared: d.shared,
            rows,
        })
    }

    fn encode_tex(&self, t: &TexPlan, has_bias: bool) -> Vec<Dispatch> {
        let bias = has_bias.then_some(Bind::read(2));
        let Some(r) = t.rows else {
            return vec![
                texture::pack(&t.a, t.grid.a_panels, 0, 0),
                texture::pack(&t.b, t.grid.b_panels, 1, 1),
                t.grid.product(t.batch, t.shared, self.alpha, bias),
            ];
        };
        let u = |v: usize| v as u32;
        let g = &t.grid;
        let p = PanelParams {
            m: u(g.m),
            n: u(g.n),
            k4: u(g.k / 4),
            a_panels: u(g.m),
            b_panels: if t.shared { 0 } else { u(g.k) },
            tiles_n: u(r.tiles_n),
            tiles: u(r.tiles_m * r.tiles_n),
            sc: u(g.m * g.n),
            has_bias: has_bias as u32,
            alpha: self.alpha,
            strip: u(r.b.strip),
            strip_rows: r.b.rows(),
        };
        let mut out = vec![Dispatch::copy_to_texture(0, 0, r.a)];
        out.extend(r.b.fills(1, 1));
        out.push(texture_product("mm_rows", r.sgs, &p, bias, t.batch));
        out
    }
}

impl Op for Matmul {
    fn name(&self) -> String {
        let t = |x: bool| if x { "T" } else { "N" };
        if self.alpha == 1.0 {
            format!("matmul({}{})", t(self.trans_a), t(self.trans_b))
        } else {
            format!(
                "matmul({}{}, alpha={})",
                t(self.trans_a),
                t(self.trans_b),
                self.alpha
            )
        }
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let (a, b, bias) = match inputs {
            [a, b] => (a, b, None),
            [a, b, c] => (a, b, Some(c)),
            _ => {
                return Err(Error::shape(
                    self.name(),
                    "takes a, b and an optional bias",
                    &[],
                ))
            }
        };
        if inputs.iter().any(|d| d.dtype != DType::F32) {
            let shapes: Vec<&[usize]> = inputs.iter().map(|d| d.shape.as_slice()).collect();
            return Err(Error::shape(self.name(), "needs f32 operands", &shapes));
        }
        let d = self.dims(&a.shape, &b.shape, bias.map(|x| x.shape.as_slice()))?;
        let mut shape = a.shape[..a.rank() - 2].to_vec();
        shape.extend([d.m, d.n]);
        Ok(vec![TensorDesc::f32(&shape)])
    }

    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc()).collect();
        let out = self.infer(&descs.iter().collect::<Vec<_>>())?.remove(0);
        let d = self.dims(
            &inputs[0].shape,
            &inputs[1].shape,
            inputs.get(2).map(|t| t.shape.as_slice()),
        )?;
        let (a, b) = (inputs[0].as_f32()?, inputs[1].as_f32()?);
        let bias = match inputs.get(2) {
            Some(t) => Some(t.as_f32()?),
            None => None,
        };
        let (m, k, n) = (d.m, d.k, d.n);
        let mut c = vec![0.0f32; d.batch * m * n];
        let mut arow = vec![0.0f64; k];
        let mut row = vec![0.0f64; n];
        for z in 0..d.batch {
            let az = &a[z * m * k..(z + 1) * m * k];
            let bz = if d.shared {
                b
            } else {
                &b[z * k * n..(z + 1) * k * n]
            };
            for i in 0..m {
                for (p, x) in arow.iter_mut().enumerate() {
                    *x = if self.trans_a {
                        az[p * m + i]
                    } else {
                        az[i * k + p]
                    } as f64;
                }
                if self.trans_b {
                    // Rows of b are contiguous over k: one dot product per output.
                    for (j, r) in row.iter_mut().enumerate() {
                        *r = arow
                            .iter()
                            .zip(&bz[j * k..(j + 1) * k])
                            .map(|(x, y)| x * *y as f64)
                            .sum();
                    }
                } else {
                    row.iter_mut().for_each(|x| *x = 0.0);
                    for (p, av) in arow.iter().enumerate() {
                        for (r, bv) in row.iter_mut().zip(&bz[p * n..(p + 1) * n]) {
                            *r += av * *bv as f64;
                        }
                    }
                }
                let o = &mut c[(z * m + i) * n..(z * m + i + 1) * n];
                for (j, (oc, r)) in o.iter_mut().zip(&row).enumerate() {
                    let bj = bias.map_or(0.0, |bb| bb[j] as f64);
                    *oc = (self.alpha as f64 * r + bj) as f32;
                }
            }
        }
        Ok(vec![HostTensor::f32(&out.shape, c)?])
    }

    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        let [a, b, ..] = inputs else {
            return Vec::new();
        };
        match self.tex_plan(a, b, caps) {
            Some(TexPlan { rows: Some(r), .. }) => vec![r.a.size, r.b.size()],
            Some(t) => vec![
                texture::texture_size(t.a.k, t.grid.a_panels, t.a.batch),
                texture::texture_size(t.b.k, t.grid.b_panels, t.b.batch),
            ],
            None => Vec::new(),
        }
    }

    /// Texture 0 is filled from a, texture 1 from b.
    fn texture_source(&self, t: usize) -> Option<usize> {
        (t < 2).then_some(t)
    }

    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (a, b) = (cx.input(0), cx.input(1));
        let has_bias = cx.inputs.len() == 3;
        if cx.inputs[1].chunks.len() <= 1 {
            if let Some(t) = self.tex_plan(a, b, cx.caps) {
                return Ok(self.encode_tex(&t, has_bias));
            }
        }
        let d = self.dims(
            &a.shape,
            &b.shape,
            cx.inputs.get(2).map(|s| s.desc.shape.as_slice()),
        )?;
        if d.batch * d.m * d.n == 0 {
            return Ok(Vec::new());
        }
        let chunks = &cx.inputs[1].chunks;
        if chunks.len() > 1 && !(self.trans_b && d.shared) {
            return Err(Error::Limit {
                op: self.name(),
                what: format!(
                    "b {:?} split into {} chunks (only a shared, transposed b can be)",
                    b.shape,
                    chunks.len()
                ),
                need: b.bytes(),
                limit_name: "max_storage_buffer_binding_size",
                limit: cx.caps.max_storage_binding,
            });
        }
        // A shared b with a row-major a: the batch is just more rows.
        let (batch, m) = if d.shared && !self.trans_a {
            (1, d.batch * d.m)
        } else {
            (d.batch, d.m)
        };
        let (k, n_total) = (d.k, d.n);
        let too_big = |what: &str, v: usize| Error::Limit {
            op: self.name(),
            what: format!(
                "{what} of a {:?} × {:?} product (u32 indexing)",
                a.shape, b.shape
            ),
            need: v as u64,
            limit_name: "u32 element index",
            limit: u32::MAX as u64,
        };
        for (what, v) in [
            ("a", a.numel()),
            ("b", b.numel()),
            ("output", batch * m * n_total),
        ] {
            if v >= u32::MAX as usize {
                return Err(too_big(what, v));
            }
        }
        let u = |v: usize| v as u32;
        let mut out = Vec::with_capacity(chunks.len());
        for (ci, ch) in chunks.iter().enumerate() {
            // Without chunks this is the whole of b: start 0, all N columns.
            let (start, n) = if chunks.len() > 1 {
                (ch.start, ch.rows)
            } else {
                (0, n_total)
            };
            let vec_ok =
                k % 4 == 0 && (self.trans_b || n % 4 == 0) && (!self.trans_a || m % 4 == 0);
            let sg = vec_ok && self.subgroups && cx.caps.subgroups && cx.caps.subgroup_min >= 8;
            let tm = if sg { TM_SG } else { TM };
            // 64 invocations (256 columns) per workgroup for wide products, 16 (64 columns) for
            // narrow ones and for the scalar fallback (fewer pipelines to compile).
            let wgx = if n >= 256 && vec_ok { 64 } else { 16 };
            // Narrow products (n < 256) always take the checked variant: they are cheap, and
            // that halves the pipelines to compile.
            let fit = vec_ok && wgx == 64 && m % tm == 0 && n % (4 * wgx) == 0;
            let tiles_n = n.div_ceil(4 * wgx);
            let tiles = tiles_n * m.div_ceil(tm);
            if tiles >= u32::MAX as usize {
                return Err(too_big("tile count", tiles));
            }
            let p = Params {
                m: u(m),
                n: u(n),
                k: u(k),
                tiles_n: u(tiles_n),
                tiles: u(tiles),
                lda: u(if self.trans_a { m } else { k }),
                ldb: u(if self.trans_b { k } else { n }),
                ldc: u(n_total),
                a_off: 0,
                b_off: 0,
                c_off: u(start),
                bias_off: u(start),
                sa: u(m * k),
                sb: if d.shared { 0 } else { u(k * n) },
                sc: u(m * n_total),
                alpha: self.alpha,
                has_bias: has_bias as u32,
                _p: [0; 3],
            };
            let (shader, entry) = match (sg, vec_ok) {
                (true, _) => ("matmul_sg", "mm_sg"),
                (false, true) => ("matmul", "mm_vec"),
                _ => ("matmul", "mm_scalar"),
            };
            let kernel = Kernel::new(shader, entry)
                .with("TRANS_A", self.trans_a as u8 as f64)
                .with("TRANS_B", self.trans_b as u8 as f64)
                .with("CHECK", !fit as u8 as f64)
                .with("WGX", wgx as f64);
            let bias_bind = if has_bias {
                Bind::read(2)
            } else {
                Bind::read(0)
            };
            out.push(Dispatch {
                kernel,
                params: params(&p),
                binds: vec![
                    Bind::read(0),
                    Bind::read_chunk(1, ci),
                    Bind::write(0),
                    bias_bind,
                ],
                grid: [groups(tiles, 1), 1, u(batch)],
            });
        }
        Ok(out)
    }

    /// With A' = op(a), B' = op(b) and C = alpha·A'·B' (+ bias):
    /// dA' = alpha·dC·B'ᵀ, dB' = alpha·A'ᵀ·dC, dbias = Σ_rows dC. Each is one `Matmul` on the
    /// stored operands with other transpose flags; a shared b sums over the batch (folded into
    /// the rows when a is untransposed, else a deterministic `ReduceBroadcast` over the batch);
    /// the bias gradient is a deterministic column sum (`ReduceBroadcast` to [N]).
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gc) = cx.grads[0] else {
            return Ok(vec![None; cx.inputs.len()]);
        };
        let (a, b) = (cx.inputs[0], cx.inputs[1]);
        let (ash, bsh) = (cx.g.shape(a).to_vec(), cx.g.shape(b).to_vec());
        let d = self.dims(&ash, &bsh, None)?;
        let (ta, tb) = (self.trans_a, self.trans_b);
        let mm = |ta: bool, tb: bool| {
            let mut op = Matmul::new(ta, tb).scaled(self.alpha);
            op.subgroups = self.subgroups;
            op.textures = self.textures;
            op
        };
        // Data gradient of a.
        let da = if !d.shared {
            if ta {
                // dA = B'·dCᵀ [K, M].
                cx.g.apply1(mm(tb, true), &[b, gc])?
            } else {
                // dA = dC·B'ᵀ [M, K].
                cx.g.apply1(mm(false, !tb), &[gc, b])?
            }
        } else {
            // Shared b: dC·B'ᵀ per batch item (b is the shared operand), transposed for trans_a.
            let x = cx.g.apply1(mm(false, !tb), &[gc, b])?;
            if ta {
                cx.g.transpose(x)?
            } else {
                x
            }
        };
        // Weight gradient of b.
        let db = if !d.shared {
            if tb {
                // dB = dCᵀ·A' [N, K].
                cx.g.apply1(mm(true, ta), &[gc, a])?
            } else {
                // dB = A'ᵀ·dC [K, N].
                cx.g.apply1(mm(!ta, false), &[a, gc])?
            }
        } else if !ta {
            // Fold the batch into the rows: a [B·M, K], dC [B·M, N]; the product sums over it.
            let rows = d.batch * d.m;
            let a2 = cx.g.reshape(a, &[rows, d.k])?;
            let g2 = cx.g.reshape(gc, &[rows, d.n])?;
            if tb {
                cx.g.apply1(mm(true, false), &[g2, a2])?
            } else {
                cx.g.apply1(mm(true, false), &[a2, g2])?
            }
        } else {
            // a [batch..., K, M]: per-item products, then a fixed-order sum over the batch.
            let per = if tb {
                cx.g.apply1(mm(true, true), &[gc, a])?
            } else {
                cx.g.apply1(mm(false, false), &[a, gc])?
            };
            let flat = cx.g.reshape(per, &[d.batch, bsh[0], bsh[1]])?;
            cx.g.apply1(
                super::elementwise::ReduceBroadcast { b_shape: bsh },
                &[flat],
            )?
        };
        let mut out = vec![Some(da), Some(db)];
        if cx.inputs.len() == 3 {
            out.push(Some(cx.g.apply1(
                super::elementwise::ReduceBroadcast { b_shape: vec![d.n] },
                &[gc],
            )?));
        }
        Ok(out)
    }

    fn accepts_chunked(&self, i: usize) -> bool {
        // A transposed b ([N, K], a Linear weight) splits along N into column ranges of the
        // output; encode rejects the batched case.
        i == 1 && self.trans_b
    }
}

impl Graph {
    /// op(a) · op(b) for a [batch..., M, K] (or [batch..., K, M] with `trans_a`) and b
    /// [batch..., K, N] (or [batch..., N, K] with `trans_b`), b with a's batch dims or none.
    pub fn matmul(
        &mut self,
        a: TensorId,
        b: TensorId,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<TensorId> {
        self.apply1(Matmul::new(trans_a, trans_b), &[a, b])
    }

    /// PyTorch `Linear`: x [..., in] · wᵀ (+ bias) with w [out, in] and bias [out]; the leading
    /// dims of x are flattened into the rows of one product. Output [..., out].
    pub fn linear(&mut self, x: TensorId, w: TensorId, bias: Option<TensorId>) -> Result<TensorId> {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let err = |msg: &str| Error::shape("linear", msg, &[&xs, &ws]);
        if ws.len() != 2 {
            return Err(err("weight must be [out, in]"));
        }
        if xs.is_empty() || xs[xs.len() - 1] != ws[1] {
            return Err(err("x must be [..., in] with in = weight dim 1"));
        }
        let mut ins = vec![x, w];
        ins.extend(bias);
        if xs.len() >= 2 {
            return self.apply1(Matmul::new(false, true), &ins);
        }
        // A single vector: one row.
        let x2 = self.reshape(x, &[1, ws[1]])?;
        ins[0] = x2;
        let y = self.apply1(Matmul::new(false, true), &ins)?;
        self.reshape(y, &[ws[0]])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let case = |name: &str, op: Matmul, inputs: Vec<HostTensor>| Case {
        name: name.into(),
        op: Arc::new(op),
        inputs,
        atol: 1e-4,
        rtol: 1e-4,
    };
    vec![
        case(
            "matmul NN [2,33,20]x[2,20,37] (scalar, edges)",
            Matmul::new(false, false),
            vec![
                pseudo_random(&[2, 33, 20], 1, 1.0),
                pseudo_random(&[2, 20, 37], 2, 1.0),
            ],
        ),
        case(
            "matmul NN [64,64]x[64,256] (tile fit)",
            Matmul::new(false, false),
            vec![
                pseudo_random(&[64, 64], 3, 1.0),
                pseudo_random(&[64, 256], 4, 1.0),
            ],
        ),
        case(
            "matmul TT [2,36,12]x[2,44,36] (vec4, edges)",
            Matmul::new(true, true),
            vec![
                pseudo_random(&[2, 36, 12], 5, 1.0),
                pseudo_random(&[2, 44, 36], 6, 1.0),
            ],
        ),
        case(
            "linear [3,5,48]x[40,48]+bias (shared weight)",
            Matmul::new(false, true),
            vec![
                pseudo_random(&[3, 5, 48], 7, 1.0),
                pseudo_random(&[40, 48], 8, 1.0),
                pseudo_random(&[40], 9, 1.0),
            ],
        ),
    ]
}
