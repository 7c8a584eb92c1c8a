//! Ops: what the graph records and the executor runs.
//!
//! One file per op family (ratchet's pattern). Each op is a plain struct of its attributes
//! (no shapes: those come from its inputs) and implements `Op`:
//! - `infer` checks operand shapes and returns output descriptions (a typed error otherwise);
//! - `cpu` is the plain-Rust reference every kernel is tested against, and also lets a whole
//!   graph run on the CPU (`Graph::run_cpu`) as a model-level reference;
//! - `encode` returns the dispatches that compute it: a kernel variant (shader, entry point,
//!   override constants), a small uniform block with the shapes, the tensors to bind and the
//!   workgroup grid. Shapes live in the uniform so pipelines are shared across shapes.
//!
//! Convenience builders (`Graph::matmul`, `Graph::add`, ...) live next to each op.

use crate::device::{Access, Caps};
use crate::error::Result;
use crate::tensor::{HostTensor, TensorDesc};
use std::fmt::Debug;

pub mod attention;
pub mod cast;
pub mod conv;
pub mod elementwise;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod mcq;
pub mod norm;
pub mod optim;
pub mod peak;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod texture;

/// Which tensor of the op a binding refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Input(usize),
    Output(usize),
    Scratch(usize),
    /// Scratch texture `i` of the op (`Op::scratch_textures`).
    Texture(usize),
}

/// One storage binding of a dispatch. `chunk` selects a row chunk of a tensor that is split
/// across several buffers (see `Storage`): an input the op accepts chunked
/// (`Op::accepts_chunked`) or an output it writes chunked (`Op::writes_chunked`); it is 0 for
/// everything else.
#[derive(Clone, Copy, Debug)]
pub struct Bind {
    pub slot: Slot,
    pub chunk: usize,
    pub access: Access,
}

impl Bind {
    pub fn read(i: usize) -> Self {
        Bind {
            slot: Slot::Input(i),
            chunk: 0,
            access: Access::Read,
        }
    }
    pub fn read_chunk(i: usize, chunk: usize) -> Self {
        Bind {
            slot: Slot::Input(i),
            chunk,
            access: Access::Read,
        }
    }
    pub fn write(o: usize) -> Self {
        Bind {
            slot: Slot::Output(o),
            chunk: 0,
            access: Access::ReadWrite,
        }
    }
    /// Row chunk `chunk` of output `o` (for ops that say `writes_chunked(o)`).
    pub fn write_chunk(o: usize, chunk: usize) -> Self {
        Bind {
            slot: Slot::Output(o),
            chunk,
            access: Access::ReadWrite,
        }
    }
    pub fn scratch(s: usize) -> Self {
        Bind {
            slot: Slot::Scratch(s),
            chunk: 0,
            access: Access::ReadWrite,
        }
    }
    /// Scratch texture `t`, read by the kernel (`texture_storage_2d<rgba32float, read>`).
    pub fn texture_read(t: usize) -> Self {
        Bind {
            slot: Slot::Texture(t),
            chunk: 0,
            access: Access::TextureRead,
        }
    }
    /// Scratch texture `t`, written by the kernel (`texture_storage_2d<rgba32float, write>`).
    pub fn texture_write(t: usize) -> Self {
        Bind {
            slot: Slot::Texture(t),
            chunk: 0,
            access: Access::TextureWrite,
        }
    }
    /// An input the op updates in place (optimizer state, parameters).
    pub fn update(i: usize) -> Self {
        Bind {
            slot: Slot::Input(i),
            chunk: 0,
            access: Access::ReadWrite,
        }
    }
    /// Row chunk `chunk` of an input the op updates in place (and accepts chunked).
    pub fn update_chunk(i: usize, chunk: usize) -> Self {
        Bind {
            slot: Slot::Input(i),
            chunk,
            access: Access::ReadWrite,
        }
    }
}

/// A kernel variant: the pipeline cache key apart from the binding layout.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub shader: &'static str,
    pub entry: &'static str,
    /// WGSL `override` values (tile sizes, flags). Never shapes.
    pub constants: Vec<(&'static str, f64)>,
}

impl Kernel {
    pub fn new(shader: &'static str, entry: &'static str) -> Self {
        Kernel {
            shader,
            entry,
            constants: Vec::new(),
        }
    }
    pub fn with(mut self, name: &'static str, value: f64) -> Self {
        self.constants.push((name, value));
        self
    }
}

/// One compute dispatch. Binding 0 of the kernel is the uniform block `params`; bindings
/// 1.. are `binds` in order. `grid` is the logical workgroup count; when x exceeds the
/// adapter's per-dimension cap the executor folds it into y, so kernels whose x can be large
/// must use `linear_workgroup()` from the prelude and bounds-check it.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kernel: Kernel,
    pub params: Vec<u8>,
    pub binds: Vec<Bind>,
    pub grid: [u32; 3],
}

/// A buffer → texture copy in place of a kernel (`Dispatch::copy_to_texture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextureCopy {
    /// Byte offset into the input's buffer (a multiple of 16).
    pub offset: u64,
    /// Bytes between rows in the buffer (a multiple of 256).
    pub bytes_per_row: u32,
    /// Texels copied: width × height, into the texture's left edge from row `origin_y`.
    pub size: [u32; 2],
    /// First texture row written.
    pub origin_y: u32,
}

impl Dispatch {
    /// The `shader` of a copy step; no WGSL module has this name.
    pub const COPY_TO_TEXTURE: &'static str = "<copy buffer to texture>";

    /// Not a kernel: copy rows of input `input` (one buffer, not row-chunked) into scratch
    /// texture `texture` with the device's copy engine — a memcpy on CPU adapters, where a
    /// packing kernel would pay one buffer load per element. The executor records it between
    /// compute passes.
    pub fn copy_to_texture(input: usize, texture: usize, copy: TextureCopy) -> Dispatch {
        let mut params = Vec::with_capacity(16);
        params.extend_from_slice(&copy.offset.to_le_bytes());
        params.extend_from_slice(&copy.bytes_per_row.to_le_bytes());
        params.extend_from_slice(&copy.size[0].to_le_bytes());
        params.extend_from_slice(&copy.size[1].to_le_bytes());
        params.extend_from_slice(&copy.origin_y.to_le_bytes());
        Dispatch {
            kernel: Kernel::new(Self::COPY_TO_TEXTURE, "copy"),
            params,
            binds: vec![Bind::read(input), Bind::texture_write(texture)],
            grid: [0; 3],
        }
    }

    /// The copy this step stands for, if it is one (see `copy_to_texture`).
    pub fn as_copy(&self) -> Option<TextureCopy> {
        if self.kernel.shader != Self::COPY_TO_TEXTURE || self.params.len() < 24 {
            return None;
        }
        let u32_at = |i: usize| {
            u32::from_le_bytes([
                self.params[i],
                self.params[i + 1],
                self.params[i + 2],
                self.params[i + 3],
            ])
        };
        let mut off = [0u8; 8];
        off.copy_from_slice(&self.params[..8]);
        Some(TextureCopy {
            offset: u64::from_le_bytes(off),
            bytes_per_row: u32_at(8),
            size: [u32_at(12), u32_at(16)],
            origin_y: u32_at(20),
        })
    }
}

/// A row range of a tensor split along dimension 0 into several buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowChunk {
    pub start: usize,
    pub rows: usize,
}

impl RowChunk {
    /// The whole of a tensor as one chunk.
    pub fn whole(desc: &TensorDesc) -> Self {
        RowChunk {
            start: 0,
            rows: desc.shape.first().copied().unwrap_or(1),
        }
    }
}

/// How an input is stored: one buffer (one chunk covering all rows) or several.
#[derive(Clone, Debug)]
pub struct Storage {
    pub desc: TensorDesc,
    pub chunks: Vec<RowChunk>,
}

pub struct EncodeCx<'a> {
    pub inputs: &'a [Storage],
    pub outputs: &'a [TensorDesc],
    /// Row chunks of each output; an output missing here (or with an empty list) is one buffer.
    /// Only outputs the op `writes_chunked` are ever split.
    pub output_chunks: &'a [Vec<RowChunk>],
    pub scratch: &'a [TensorDesc],
    pub caps: &'a Caps,
}

impl EncodeCx<'_> {
    pub fn input(&self, i: usize) -> &TensorDesc {
        &self.inputs[i].desc
    }
    /// The row chunks of output `o` (one covering every row unless the executor split it).
    pub fn output_chunks(&self, o: usize) -> Vec<RowChunk> {
        match self.output_chunks.get(o) {
            Some(c) if !c.is_empty() => c.clone(),
            _ => vec![RowChunk::whole(&self.outputs[o])],
        }
    }
}

pub trait Op: Debug + Send + Sync + 'static {
    fn name(&self) -> String;
    /// Output descriptions for these inputs, or a shape error.
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>>;
    /// The CPU reference.
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>>;
    /// The GPU dispatches.
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>>;
    /// Temporary buffers the dispatches need, live only during this op.
    fn scratch(&self, _inputs: &[&TensorDesc]) -> Vec<TensorDesc> {
        Vec::new()
    }
    /// Scratch rgba32float textures (width, height in texels) the dispatches need, live only
    /// during this op; only where `caps.texture_operands` (see `device`). Ops that run one
    /// after another share them, so nothing may be read from a texture the op did not write.
    fn scratch_textures(&self, _inputs: &[&TensorDesc], _caps: &Caps) -> Vec<[u32; 2]> {
        Vec::new()
    }
    /// The input whose values alone determine scratch texture `t` (the op's dispatches that
    /// write `t` read only that input). When it is a parameter that no op of the graph updates
    /// in place, the executor gives the op its own texture for the plan's lifetime and runs the
    /// dispatches that write it only after the parameter was written: a weight is then packed
    /// once per upload, not once per run.
    fn texture_source(&self, _t: usize) -> Option<usize> {
        None
    }
    /// Whether input `i` may be split into row chunks over several buffers (for tensors
    /// larger than one storage binding). Ops that say yes must bind every chunk.
    fn accepts_chunked(&self, _i: usize) -> bool {
        false
    }
    /// Whether output `o` may be written as row chunks over several buffers (an intermediate
    /// larger than one storage binding). Ops that say yes must write every chunk
    /// (`Bind::write_chunk`, `EncodeCx::output_chunks`). The executor splits an intermediate
    /// only when its producer says yes here and every consumer says `accepts_chunked`.
    fn writes_chunked(&self, _o: usize) -> bool {
        false
    }
    /// Inputs this op overwrites in place (optimizer state, accumulators). Its `cpu` returns
    /// their new values after its outputs, in this order.
    fn updated_inputs(&self) -> Vec<usize> {
        Vec::new()
    }
    /// Reverse-mode rule: record into `cx.g` the ops that compute the gradient of the loss with
    /// respect to each input, given the gradients of this op's outputs (`None` where an output
    /// does not reach the loss). Return one entry per input (`None`: no gradient flows, e.g.
    /// integer indices). Backward ops are ordinary graph nodes, so a training step is one graph.
    fn backward(&self, cx: &mut BackwardCx) -> Result<Vec<Option<crate::graph::TensorId>>> {
        Err(crate::error::Error::Graph(format!(
            "{}: no backward rule (needed for the gradient of input shapes {:?})",
            self.name(),
            cx.inputs
                .iter()
                .map(|t| cx.g.shape(*t).to_vec())
                .collect::<Vec<_>>()
        )))
    }
}

/// What a backward rule sees: the graph to record into, the forward node's inputs and outputs
/// (saved activations are just these tensors, kept alive by the planner until their last
/// backward use), and the incoming output gradients.
pub struct BackwardCx<'a> {
    pub g: &'a mut crate::graph::Graph,
    pub inputs: &'a [crate::graph::TensorId],
    pub outputs: &'a [crate::graph::TensorId],
    pub grads: &'a [Option<crate::graph::TensorId>],
}

/// Uniform bytes from a `#[repr(C)]` params struct, padded to 16 bytes.
pub fn params<T: bytemuck::Pod>(p: &T) -> Vec<u8> {
    let mut v = bytemuck::bytes_of(p).to_vec();
    v.resize(v.len().div_ceil(16).max(1) * 16, 0);
    v
}

/// Workgroups needed to cover `n` items with `per` items each.
pub fn groups(n: usize, per: usize) -> u32 {
    n.div_ceil(per) as u32
}
