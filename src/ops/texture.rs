//! Texture operands: the panel layout that the texture kernels of CPU adapters read, and the
//! dispatch that fills it (`shaders/texture_pack.wgsl`).
//!
//! Why: on lavapipe a divergent storage-buffer load costs ~30× a storage-texture load, so the
//! compute-heavy kernels copy each operand once into an rgba32float texture and run their
//! inner loops on texture loads (`device` module doc, ARCHITECTURE.md "Texture operands").
//!
//! Layout: an operand read as `rows` × K is cut into panels of `PANEL` rows; texel
//! (PANEL·k4 + l, panel p) holds rows PANEL·p + l, columns 4·k4 .. 4·k4 + 3. Batch entries are
//! stacked: entry z's panels start at texture row z·panels. Rows and K past the operand are
//! zero, so the kernels never bounds-check K.
//!
//! Row layout (`pack_rows`): texel (k4, r) holds row r, columns 4·k4 .. 4·k4 + 3, for kernels
//! whose lanes read along one row (attention's token rows, `mm_rows`). Where the memory rows
//! are whole 256-byte copy rows, `natural_copy` fills it with the copy engine instead (a memcpy
//! on CPU adapters, where a packing kernel pays a buffer load and a texture store per texel).

use super::{groups, params, Bind, Dispatch, Kernel, TextureCopy};
use crate::device::Caps;

/// Rows per panel = lanes of the subgroups that read them.
pub const PANEL: usize = 8;
/// Texels of 4 k are padded (with zeros) to a multiple of this, so consumers can unroll their
/// K loop by it.
pub const K4_STEP: usize = 2;

/// Texels of 4 k per panel row for an inner dimension `k`.
pub fn k4_of(k: usize) -> usize {
    k.div_ceil(4).div_ceil(K4_STEP) * K4_STEP
}

/// A matrix operand in a storage buffer, read as `rows` × `k`: element (r, k) of batch entry z
/// sits at `off + z·zs + r·rs + k·ks`, so strides express either transpose.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub rows: usize,
    pub k: usize,
    pub rs: usize,
    pub ks: usize,
    pub zs: usize,
    pub off: usize,
    pub batch: usize,
}

impl Operand {
    /// A single contiguous row-major `rows` × `k` matrix at the start of its tensor.
    pub fn row_major(rows: usize, k: usize) -> Self {
        Operand {
            rows,
            k,
            rs: k,
            ks: 1,
            zs: 0,
            off: 0,
            batch: 1,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    rows: u32,
    k: u32,
    rs: u32,
    ks: u32,
    zs: u32,
    off: u32,
    panels: u32,
    k4: u32,
}

/// Size in texels (width, height) of the texture of `batch` entries of `panels` panels over K.
pub fn texture_size(k: usize, panels: usize, batch: usize) -> [u32; 2] {
    [(PANEL * k4_of(k)) as u32, (batch * panels) as u32]
}

/// Whether such a texture fits the adapter and its pack dispatch the grid limits.
pub fn fits(caps: &Caps, k: usize, panels: usize, batch: usize) -> bool {
    let [w, h] = texture_size(k, panels, batch);
    let max = caps.max_texture_dim as usize;
    let grid = caps.max_workgroups_per_dim as usize;
    k > 0
        && panels > 0
        && (w as usize) <= max
        && (h as usize) <= max
        && PANEL * panels <= grid
        && batch <= grid
}

/// The dispatch that writes operand `x` (graph input `input`) into scratch texture `texture`
/// with `panels` panels per batch entry (at least `rows / PANEL`, rounded up to the consumer's
/// tile; the extra rows are written as zeros). Operands aligned to 4 floats take vec4 loads:
/// `pack_rows4` when rows are contiguous, `pack_cols4` when columns are (a transpose);
/// everything else `pack_panels`.
pub fn pack(x: &Operand, panels: usize, input: usize, texture: usize) -> Dispatch {
    let u = |v: usize| v as u32;
    let k4 = k4_of(x.k);
    let p = PackParams {
        rows: u(x.rows),
        k: u(x.k),
        rs: u(x.rs),
        ks: u(x.ks),
        zs: u(x.zs),
        off: u(x.off),
        panels: u(panels),
        k4: u(k4),
    };
    let aligned = [x.zs, x.off].iter().all(|v| v % 4 == 0);
    let (entry, rows_per_y) =
        if aligned && x.ks == 1 && x.k.is_multiple_of(4) && x.rs.is_multiple_of(4) {
            ("pack_rows4", 1)
        } else if aligned && x.rs == 1 && x.rows.is_multiple_of(4) && x.ks.is_multiple_of(4) {
            ("pack_cols4", 4)
        } else {
            ("pack_panels", 1)
        };
    Dispatch {
        kernel: Kernel::new("texture_pack", entry),
        params: params(&p),
        binds: vec![Bind::read(input), Bind::texture_write(texture)],
        grid: [groups(k4, 64), u(PANEL * panels / rows_per_y), u(x.batch)],
    }
}

/// Size in texels of the row-layout texture of a `rows` × `k` operand.
pub fn rows_texture_size(k: usize, rows: usize) -> [u32; 2] {
    [k.div_ceil(4) as u32, rows as u32]
}

/// Whether a row-layout texture fits the adapter, and `x` is a row-major operand aligned to 4
/// floats as `pack_rows` needs.
pub fn rows_fit(caps: &Caps, x: &Operand) -> bool {
    let [w, h] = rows_texture_size(x.k, x.rows);
    x.k > 0
        && x.rows > 0
        && x.batch == 1
        && x.ks == 1
        && [x.k, x.rs, x.off].iter().all(|v| v % 4 == 0)
        && w <= caps.max_texture_dim
        && h <= caps.max_texture_dim
        && h <= caps.max_workgroups_per_dim
}

/// The dispatch that writes operand `x` (graph input `input`, see `rows_fit`) into scratch
/// texture `texture` in the row layout.
pub fn pack_rows(x: &Operand, input: usize, texture: usize) -> Dispatch {
    let u = |v: usize| v as u32;
    let k4 = x.k.div_ceil(4);
    let p = PackParams {
        rows: u(x.rows),
        k: u(x.k),
        rs: u(x.rs),
        ks: 1,
        zs: 0,
        off: u(x.off),
        panels: 0,
        k4: u(k4),
    };
    Dispatch {
        kernel: Kernel::new("texture_pack", "pack_rows_natural"),
        params: params(&p),
        binds: vec![Bind::read(input), Bind::texture_write(texture)],
        grid: [groups(k4, 64), u(x.rows), 1],
    }
}

/// The copy-engine fill of operand `x` into a texture in its own memory layout ("natural"):
/// texel (c4, y) = memory row y, columns 4·c4 .. 4·c4 + 3, where the memory rows are x's rows
/// (ks = 1) or its k (rs = 1, a transpose), batch entries stacked. None where the copy engine
/// cannot do it: a memory row not a whole number of 256-byte copy rows, an offset not on a
/// texel, batch entries not back to back, or a texture over the limit.
pub fn natural_copy(x: &Operand, caps: &Caps) -> Option<TextureCopy> {
    let (cols, stride, lines) = if x.ks == 1 {
        (x.k, x.rs, x.rows)
    } else if x.rs == 1 {
        (x.rows, x.ks, x.k)
    } else {
        return None;
    };
    let size = [cols / 4, x.batch * lines];
    let max = caps.max_texture_dim as usize;
    let ok = cols > 0
        && cols.is_multiple_of(4)
        && stride >= cols
        && (4 * stride).is_multiple_of(256)
        && x.off.is_multiple_of(4)
        && (x.batch == 1 || x.zs == lines * stride)
        && size[0] <= max
        && size[1] <= max
        && 4 * stride <= u32::MAX as usize;
    ok.then(|| TextureCopy {
        offset: 4 * x.off as u64,
        bytes_per_row: (4 * stride) as u32,
        size: [size[0] as u32, size[1] as u32],
        origin_y: 0,
    })
}

/// A plain copy (`natural_copy`) cut into vertical strips of `strip` texel columns, one copy
/// each, stacked top to bottom in the texture: column c4 of row r lands at texel
/// (c4 mod strip, (c4 / strip) · rows + r) with `rows` the copy's height. A kernel walking down
/// the rows of a few columns then reads contiguous memory instead of one texture row per step
/// (a new page every few steps once rows are kilobytes wide, out of the prefetchers' reach).
#[derive(Clone, Copy, Debug)]
pub struct Strips {
    pub copy: TextureCopy,
    /// Texel columns per strip.
    pub strip: usize,
    pub strips: usize,
}

impl Strips {
    /// The narrowest strips, a multiple of `unit` texels wide (or the whole width), whose
    /// stack fits the texture height.
    pub fn new(copy: TextureCopy, unit: usize, caps: &Caps) -> Strips {
        let (w4, h) = (copy.size[0] as usize, (copy.size[1] as usize).max(1));
        let per_texture = (caps.max_texture_dim as usize / h).max(1);
        let strip = w4
            .div_ceil(per_texture)
            .next_multiple_of(unit.max(1))
            .min(w4)
            .max(1);
        Strips {
            copy,
            strip,
            strips: w4.div_ceil(strip),
        }
    }

    /// Texture rows per strip.
    pub fn rows(&self) -> u32 {
        self.copy.size[1]
    }

    /// The texture: the strips stacked.
    pub fn size(&self) -> [u32; 2] {
        [self.strip as u32, self.strips as u32 * self.rows()]
    }

    /// One copy per strip.
    pub fn copies(&self) -> impl Iterator<Item = TextureCopy> + '_ {
        let w4 = self.copy.size[0] as usize;
        (0..self.strips).map(move |s| TextureCopy {
            offset: self.copy.offset + 16 * (s * self.strip) as u64,
            bytes_per_row: self.copy.bytes_per_row,
            size: [(w4 - s * self.strip).min(self.strip) as u32, self.rows()],
            origin_y: s as u32 * self.rows(),
        })
    }

    /// The copy dispatches from graph input `input` into scratch texture `texture`.
    pub fn fills(&self, input: usize, texture: usize) -> Vec<Dispatch> {
        self.copies()
            .map(|c| Dispatch::copy_to_texture(input, texture, c))
            .collect()
    }
}

/// How a row-major operand reaches a row-layout texture (texel (c4, r) = row r, columns
/// 4·c4 .. 4·c4 + 3): by the copy engine where its rows are whole 256-byte copy rows
/// (`natural_copy`), else by the `pack_rows` kernel.
#[derive(Clone, Copy, Debug)]
pub enum RowFill {
    Copy(TextureCopy),
    Pack(Operand),
}

impl RowFill {
    /// The fill of `x` (a single row-major operand), if a row-layout texture fits the adapter.
    pub fn choose(x: &Operand, caps: &Caps) -> Option<Self> {
        natural_copy(x, caps)
            .map(RowFill::Copy)
            .or_else(|| rows_fit(caps, x).then_some(RowFill::Pack(*x)))
    }

    /// Size in texels of the texture it fills.
    pub fn size(&self) -> [u32; 2] {
        match self {
            RowFill::Copy(c) => c.size,
            RowFill::Pack(x) => rows_texture_size(x.k, x.rows),
        }
    }

    /// The dispatch that fills scratch texture `texture` from graph input `input`.
    pub fn fill(&self, input: usize, texture: usize) -> Dispatch {
        match self {
            RowFill::Copy(c) => Dispatch::copy_to_texture(input, texture, *c),
            RowFill::Pack(x) => pack_rows(x, input, texture),
        }
    }
}
