//! The graph executor.
//!
//! A `Graph` records tensors (inputs, parameters, intermediates) and op nodes in the order they
//! are added, which is already a topological order. `compile` turns it into a `Plan`:
//! - external tensors (inputs, params) get persistent buffers, split into row chunks when one
//!   binding cannot hold them and every consuming op accepts that (`Op::accepts_chunked`);
//! - an intermediate larger than one binding gets the same persistent row-chunk buffers,
//!   outside the arena, when its producer can write it in chunks (`Op::writes_chunked`) and
//!   every consumer accepts chunks; any other tensor over the limit is an `Error::Limit`
//!   naming the op, the tensor and the limit;
//! - intermediates are packed into a planned arena of reusable slots by liveness: a slot is
//!   free again right after the last op that reads its tensor, and an op's outputs are placed
//!   before its inputs are released, so a reused buffer never aliases a live tensor;
//! - every dispatch gets its pipeline (cached by kernel variant), its uniform block (one
//!   uniform buffer for the whole plan) and its bind group, once.
//!
//! `Plan::run` then encodes all dispatches into one command encoder and submits once; nothing
//! is read back unless asked for (`read`), and only tensors marked as outputs (or externals)
//! can be read. A plan is re-run with new input data without re-planning.

use crate::device::{Access, Gpu, PooledBuffer};
use crate::error::{Error, Result};
use crate::ops::{Dispatch, EncodeCx, Op, RowChunk, Slot, Storage};
use crate::tensor::{DType, HostData, HostTensor, TensorDesc};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Written by the caller before each run.
    Input,
    /// Written once (or updated in place by optimizer ops); persists across runs.
    Param,
    /// Produced by a node.
    Intermediate,
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub desc: TensorDesc,
    pub kind: TensorKind,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Arc<dyn Op>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    pub nodes: Vec<Node>,
    outputs: Vec<TensorId>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    fn add_tensor(&mut self, name: &str, desc: TensorDesc, kind: TensorKind) -> TensorId {
        self.tensors.push(TensorInfo {
            desc,
            kind,
            name: name.to_string(),
        });
        TensorId(self.tensors.len() - 1)
    }

    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType) -> TensorId {
        self.add_tensor(name, TensorDesc::new(shape, dtype), TensorKind::Input)
    }

    pub fn param(&mut self, name: &str, shape: &[usize], dtype: DType) -> TensorId {
        self.add_tensor(name, TensorDesc::new(shape, dtype), TensorKind::Param)
    }

    pub fn desc(&self, t: TensorId) -> &TensorDesc {
        &self.tensors[t.0].desc
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t.0].desc.shape
    }

    /// Record an op; its output tensors are returned.
    pub fn apply(&mut self, op: impl Op, inputs: &[TensorId]) -> Result<Vec<TensorId>> {
        self.apply_shared(Arc::new(op), inputs)
    }

    /// Record an op that is already shared (e.g. from a list of boxed ops).
    pub fn apply_shared(&mut self, op: Arc<dyn Op>, inputs: &[TensorId]) -> Result<Vec<TensorId>> {
        for t in inputs {
            if t.0 >= self.tensors.len() {
                return Err(Error::Graph(format!("{}: unknown tensor {t:?}", op.name())));
            }
        }
        let descs: Vec<&TensorDesc> = inputs.iter().map(|t| &self.tensors[t.0].desc).collect();
        let outs = op.infer(&descs)?;
        let name = op.name();
        let outputs = outs
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                self.add_tensor(
                    &format!("{name}#{}.{i}", self.nodes.len()),
                    d,
                    TensorKind::Intermediate,
                )
            })
            .collect();
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            outputs,
        });
        Ok(self
            .nodes
            .last()
            .map(|n| n.outputs.clone())
            .unwrap_or_default())
    }

    /// Record an op with exactly one output.
    pub fn apply1(&mut self, op: impl Op, inputs: &[TensorId]) -> Result<TensorId> {
        let name = op.name();
        let outs = self.apply(op, inputs)?;
        match outs.as_slice() {
            [t] => Ok(*t),
            _ => Err(Error::Graph(format!(
                "{name}: expected one output, got {}",
                outs.len()
            ))),
        }
    }

    /// Keep this tensor's buffer for reading after a run.
    pub fn mark_output(&mut self, t: TensorId) {
        if !self.outputs.contains(&t) {
            self.outputs.push(t);
        }
    }

    pub fn outputs(&self) -> &[TensorId] {
        &self.outputs
    }

    /// Run the graph on the CPU reference ops. `feeds` must give every input and param.
    pub fn run_cpu(
        &self,
        feeds: &HashMap<TensorId, HostTensor>,
    ) -> Result<HashMap<TensorId, HostTensor>> {
        let mut vals: HashMap<TensorId, HostTensor> = HashMap::new();
        for (i, info) in self.tensors.iter().enumerate() {
            if info.kind != TensorKind::Intermediate {
                let t = feeds.get(&TensorId(i)).ok_or_else(|| {
                    Error::Graph(format!(
                        "run_cpu: no data for {:?} tensor {:?}",
                        info.kind, info.name
                    ))
                })?;
                check_feed(info, t)?;
                vals.insert(TensorId(i), t.clone());
            }
        }
        for node in &self.nodes {
            let ins: Vec<&HostTensor> = node.inputs.iter().map(|t| &vals[t]).collect();
            let mut outs = node.op.cpu(&ins)?;
            // In-place ops return the new values of the inputs they update after their outputs.
            let updated = outs.split_off(node.outputs.len().min(outs.len()));
            for (t, v) in node.outputs.iter().zip(outs) {
                vals.insert(*t, v);
            }
            for (i, v) in node.op.updated_inputs().into_iter().zip(updated) {
                vals.insert(node.inputs[i], v);
            }
        }
        Ok(vals)
    }

    /// Plan memory and encode every dispatch for `gpu`.
    pub fn compile(&self, gpu: &Arc<Gpu>) -> Result<Plan> {
        Plan::new(self, gpu)
    }
}

fn check_feed(info: &TensorInfo, t: &HostTensor) -> Result<()> {
    let host_ok = matches!(
        (info.desc.dtype, t.dtype()),
        (DType::F32 | DType::F16, DType::F32) | (DType::U32, DType::U32)
    );
    if t.shape != info.desc.shape || !host_ok {
        return Err(Error::Graph(format!(
            "tensor {:?} is {:?} {:?}, data given is {:?} {:?}",
            info.name,
            info.desc.dtype,
            info.desc.shape,
            t.dtype(),
            t.shape
        )));
    }
    Ok(())
}

/// Where a tensor lives in a plan.
#[derive(Clone, Debug)]
enum Home {
    /// Persistent buffers, one per row chunk: inputs, params, and intermediates stored as row
    /// chunks (over one binding).
    External(Vec<(usize, RowChunk)>),
    /// An arena slot.
    Arena(usize),
}

/// One recorded step of a plan: a compute dispatch, or a buffer → texture copy (texture
/// operands, `Dispatch::copy_to_texture`), which goes between compute passes.
enum Encoded {
    Dispatch {
        pipeline: Arc<crate::device::Pipeline>,
        bind_group: wgpu::BindGroup,
        grid: [u32; 3],
        label: String,
        /// Fills the cached texture with this index (see `Plan::caches`).
        cache: Option<usize>,
    },
    Copy {
        buffer: usize,
        texture: usize,
        copy: crate::ops::TextureCopy,
        label: String,
        cache: Option<usize>,
    },
}

impl Encoded {
    fn label(&self) -> &str {
        match self {
            Encoded::Dispatch { label, .. } | Encoded::Copy { label, .. } => label,
        }
    }
    fn cache(&self) -> Option<usize> {
        match self {
            Encoded::Dispatch { cache, .. } | Encoded::Copy { cache, .. } => *cache,
        }
    }
}

/// A texture that holds a packed parameter for the plan's lifetime (`Op::texture_source`):
/// the parameter, and the write count of it that the texture holds (None: never packed).
struct CachedTexture {
    param: TensorId,
    packed: Option<u64>,
}

pub struct Plan {
    gpu: Arc<Gpu>,
    tensors: Vec<TensorInfo>,
    homes: Vec<Option<Home>>,
    buffers: Vec<Option<PooledBuffer>>,
    readable: Vec<bool>,
    dispatches: Vec<Encoded>,
    /// Scratch textures (texture operands), shared by every op that asks for the same size,
    /// and the textures that keep packed parameters.
    textures: Vec<wgpu::Texture>,
    caches: Vec<CachedTexture>,
    /// Times each tensor was written by `write`/`zero` (the cached textures' staleness).
    writes: Vec<u64>,
    planned_bytes: u64,
    arena_bytes: u64,
    chunked_bytes: u64,
    texture_bytes: u64,
    dispatches_per_submission: usize,
    last_submission: u64,
}

/// What one binding of a dispatch points at: (buffer index, offset, size) or a texture index.
enum Resource {
    Buffer(usize, u64, u64),
    Texture(usize),
}

/// Split `desc` into row chunks that each fit one binding.
fn chunk_rows(desc: &TensorDesc, max_binding: u64) -> Option<Vec<RowChunk>> {
    let rows = desc.shape.first().copied().unwrap_or(1).max(1);
    let row_bytes = desc.bytes() / rows as u64;
    if row_bytes == 0 || row_bytes > max_binding {
        return None;
    }
    let per = (max_binding / row_bytes) as usize;
    Some(
        (0..rows)
            .step_by(per)
            .map(|s| RowChunk {
                start: s,
                rows: per.min(rows - s),
            })
            .collect(),
    )
}

/// The row chunks a tensor is stored in (one covering every row unless it is split).
fn chunks_of(home: &Option<Home>, desc: &TensorDesc) -> Vec<RowChunk> {
    match home {
        Some(Home::External(parts)) => parts.iter().map(|(_, c)| *c).collect(),
        _ => vec![RowChunk::whole(desc)],
    }
}

fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(4).max(1) * 4
}

impl Plan {
    fn new(g: &Graph, gpu: &Arc<Gpu>) -> Result<Plan> {
        let caps = &gpu.caps;
        let n = g.tensors.len();
        let mut homes: Vec<Option<Home>> = vec![None; n];
        let mut buf_sizes: Vec<u64> = Vec::new();
        let mut readable = vec![false; n];
        for t in &g.outputs {
            readable[t.0] = true;
        }

        // Tensors larger than one binding are stored as row chunks in persistent buffers when
        // every op that touches them can bind chunks: inputs and params when every consumer
        // `accepts_chunked`; intermediates when, in addition, their producer `writes_chunked`.
        // Anything else over the limit is a typed error naming the op and the tensor.
        let limit = caps.max_storage_binding;
        let over = |t: &TensorId| padded(g.tensors[t.0].desc.bytes()) > limit;
        let too_big = |op: String, role: String, t: &TensorId, why: &str| {
            let info = &g.tensors[t.0];
            Error::Limit {
                op,
                what: format!(
                    "{role}: tensor {:?} {:?} {:?} ({why})",
                    info.name, info.desc.dtype, info.desc.shape
                ),
                need: info.desc.bytes(),
                limit_name: "max_storage_buffer_binding_size",
                limit,
            }
        };
        let mut needs_chunks = vec![false; n];
        for node in &g.nodes {
            for (i, t) in node.inputs.iter().enumerate() {
                if over(t) {
                    if !node.op.accepts_chunked(i) {
                        return Err(too_big(
                            node.op.name(),
                            format!("input {i}"),
                            t,
                            "the op does not accept row chunks",
                        ));
                    }
                    needs_chunks[t.0] = true;
                }
            }
            for (o, t) in node.outputs.iter().enumerate() {
                if over(t) {
                    if !node.op.writes_chunked(o) {
                        return Err(too_big(
                            node.op.name(),
                            format!("output {o}"),
                            t,
                            "the op cannot write row chunks",
                        ));
                    }
                    needs_chunks[t.0] = true;
                }
            }
        }
        let mut chunked_bytes = 0u64;
        for (i, info) in g.tensors.iter().enumerate() {
            let intermediate = info.kind == TensorKind::Intermediate;
            if intermediate && !needs_chunks[i] {
                continue;
            }
            if !intermediate {
                readable[i] = true;
            }
            let chunks = if needs_chunks[i] {
                chunk_rows(&info.desc, limit).ok_or_else(|| Error::Limit {
                    op: "plan".into(),
                    what: format!("one row of tensor {:?} {:?}", info.name, info.desc.shape),
                    need: info.desc.bytes()
                        / info.desc.shape.first().copied().unwrap_or(1).max(1) as u64,
                    limit_name: "max_storage_buffer_binding_size",
                    limit,
                })?
            } else {
                vec![RowChunk::whole(&info.desc)]
            };
            let row_bytes =
                info.desc.bytes() / info.desc.shape.first().copied().unwrap_or(1).max(1) as u64;
            let mut parts = Vec::new();
            for c in chunks {
                let bytes = if needs_chunks[i] {
                    row_bytes * c.rows as u64
                } else {
                    info.desc.bytes()
                };
                buf_sizes.push(padded(bytes));
                if intermediate {
                    chunked_bytes += padded(bytes);
                }
                parts.push((buf_sizes.len() - 1, c));
            }
            homes[i] = Some(Home::External(parts));
        }
        let external_bytes: u64 = buf_sizes.iter().sum();

        // Liveness of intermediates.
        let mut last_use = vec![usize::MAX; n];
        for (k, node) in g.nodes.iter().enumerate() {
            for t in &node.inputs {
                last_use[t.0] = k;
            }
            for t in &node.outputs {
                if last_use[t.0] == usize::MAX {
                    last_use[t.0] = k; // produced but never read: free right away
                }
            }
        }

        // Arena slots, assigned greedily in execution order.
        let mut slot_size: Vec<u64> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut scratch_homes: Vec<Vec<usize>> = Vec::with_capacity(g.nodes.len());
        let take = |need: u64, slot_size: &mut Vec<u64>, free: &mut Vec<usize>| -> usize {
            // Smallest free slot that fits; else grow the largest free one; else a new slot.
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, s)| slot_size[**s] >= need)
                .min_by_key(|(_, s)| slot_size[**s]);
            let pick = fit.map(|(i, _)| i).or_else(|| {
                free.iter()
                    .enumerate()
                    .max_by_key(|(_, s)| slot_size[**s])
                    .map(|(i, _)| i)
            });
            match pick {
                Some(i) => {
                    let s = free.swap_remove(i);
                    slot_size[s] = slot_size[s].max(need);
                    s
                }
                None => {
                    slot_size.push(need);
                    slot_size.len() - 1
                }
            }
        };
        for (k, node) in g.nodes.iter().enumerate() {
            for t in &node.outputs {
                if homes[t.0].is_some() {
                    continue; // chunked: persistent buffers, outside the arena
                }
                let d = &g.tensors[t.0].desc;
                let s = take(padded(d.bytes()), &mut slot_size, &mut free);
                homes[t.0] = Some(Home::Arena(s));
            }
            let in_descs: Vec<&TensorDesc> =
                node.inputs.iter().map(|t| &g.tensors[t.0].desc).collect();
            let mut sc = Vec::new();
            for d in node.op.scratch(&in_descs) {
                sc.push(take(padded(d.bytes()), &mut slot_size, &mut free));
            }
            free.extend(sc.iter().copied());
            scratch_homes.push(sc);
            let mut released: Vec<usize> = Vec::new();
            for t in node.inputs.iter().chain(node.outputs.iter()) {
                if g.tensors[t.0].kind == TensorKind::Intermediate
                    && last_use[t.0] == k
                    && !readable[t.0]
                {
                    if let Some(Home::Arena(s)) = homes[t.0] {
                        if !released.contains(&s) {
                            released.push(s);
                        }
                    }
                }
            }
            free.extend(released);
        }
        let arena_bytes: u64 = slot_size.iter().sum();
        let slot_base = buf_sizes.len();
        buf_sizes.extend(slot_size.iter().copied());

        // Allocate every buffer from the pool.
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let mut buffers = Vec::with_capacity(buf_sizes.len());
        for s in &buf_sizes {
            buffers.push(Some(gpu.alloc(*s, usage)?));
        }
        let buf_of = |home: &Home, chunk: usize| -> Option<usize> {
            match home {
                Home::External(parts) => parts.get(chunk).map(|(b, _)| *b),
                Home::Arena(s) => (chunk == 0).then_some(slot_base + s),
            }
        };

        // Scratch textures: ops run one after another, so the j-th texture of a size that an
        // op asks for is the same texture for every op.
        // A parameter no op updates in place may have its packed texture kept (see
        // `Op::texture_source`).
        let mut updated = vec![false; g.tensors.len()];
        for node in &g.nodes {
            for i in node.op.updated_inputs() {
                if let Some(t) = node.inputs.get(i) {
                    updated[t.0] = true;
                }
            }
        }
        let mut textures: Vec<wgpu::Texture> = Vec::new();
        let mut caches: Vec<CachedTexture> = Vec::new();
        let mut by_size: HashMap<[u32; 2], Vec<usize>> = HashMap::new();
        let mut texture_homes: Vec<Vec<usize>> = Vec::with_capacity(g.nodes.len());
        // Per node: for each of its textures, the cache index when it is a kept one.
        let mut texture_caches: Vec<Vec<Option<usize>>> = Vec::with_capacity(g.nodes.len());
        for node in &g.nodes {
            let in_descs: Vec<&TensorDesc> =
                node.inputs.iter().map(|t| &g.tensors[t.0].desc).collect();
            let mut used: HashMap<[u32; 2], usize> = HashMap::new();
            let mut homes_k = Vec::new();
            let mut caches_k = Vec::new();
            for (ti, size) in node
                .op
                .scratch_textures(&in_descs, caps)
                .into_iter()
                .enumerate()
            {
                let param = node
                    .op
                    .texture_source(ti)
                    .and_then(|i| node.inputs.get(i).copied())
                    .filter(|t| g.tensors[t.0].kind == TensorKind::Param && !updated[t.0]);
                if let Some(param) = param {
                    textures.push(gpu.texture(size[0], size[1])?);
                    homes_k.push(textures.len() - 1);
                    caches.push(CachedTexture {
                        param,
                        packed: None,
                    });
                    caches_k.push(Some(caches.len() - 1));
                    continue;
                }
                caches_k.push(None);
                let j = used.entry(size).or_insert(0);
                let list = by_size.entry(size).or_default();
                if list.len() <= *j {
                    textures.push(gpu.texture(size[0], size[1]).map_err(|e| match e {
                        Error::Limit {
                            what,
                            need,
                            limit_name,
                            limit,
                            ..
                        } => Error::Limit {
                            op: node.op.name(),
                            what,
                            need,
                            limit_name,
                            limit,
                        },
                        e => e,
                    })?);
                    list.push(textures.len() - 1);
                }
                homes_k.push(list[*j]);
                *j += 1;
            }
            texture_homes.push(homes_k);
            texture_caches.push(caches_k);
        }
        let texture_bytes: u64 = textures
            .iter()
            .map(|t| t.width() as u64 * t.height() as u64 * 16)
            .sum();
        let views: Vec<wgpu::TextureView> = textures
            .iter()
            .map(|t| t.create_view(&Default::default()))
            .collect();

        // Encode: uniform blocks, pipelines, bind groups.
        let align = caps.min_uniform_offset_alignment.max(16) as u64;
        let mut all: Vec<(usize, Dispatch)> = Vec::new();
        for (k, node) in g.nodes.iter().enumerate() {
            let inputs: Vec<Storage> = node
                .inputs
                .iter()
                .map(|t| {
                    let desc = g.tensors[t.0].desc.clone();
                    let chunks = chunks_of(&homes[t.0], &desc);
                    Storage { desc, chunks }
                })
                .collect();
            let output_chunks: Vec<Vec<RowChunk>> = node
                .outputs
                .iter()
                .map(|t| chunks_of(&homes[t.0], &g.tensors[t.0].desc))
                .collect();
            let outputs: Vec<TensorDesc> = node
                .outputs
                .iter()
                .map(|t| g.tensors[t.0].desc.clone())
                .collect();
            let in_descs: Vec<&TensorDesc> =
                node.inputs.iter().map(|t| &g.tensors[t.0].desc).collect();
            let scratch = node.op.scratch(&in_descs);
            let cx = EncodeCx {
                inputs: &inputs,
                outputs: &outputs,
                output_chunks: &output_chunks,
                scratch: &scratch,
                caps,
            };
            for d in node.op.encode(&cx)? {
                all.push((k, d));
            }
        }
        let mut uniform_data: Vec<u8> = Vec::new();
        let mut offsets = Vec::with_capacity(all.len());
        for (_, d) in &all {
            let off = (uniform_data.len() as u64).div_ceil(align) * align;
            uniform_data.resize(off as usize, 0);
            uniform_data.extend_from_slice(&d.params);
            if d.params.is_empty() {
                uniform_data.extend_from_slice(&[0u8; 16]);
            }
            offsets.push(off);
        }
        uniform_data.resize(uniform_data.len().max(16), 0);
        let uniform = gpu.alloc(
            uniform_data.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        gpu.upload(&uniform.buffer, 0, &uniform_data)?;
        let uniform_index = buffers.len();
        buffers.push(Some(uniform));

        let mut dispatches = Vec::with_capacity(all.len());
        for ((k, d), off) in all.iter().zip(offsets) {
            let node = &g.nodes[*k];
            let label = format!("{}::{}", node.op.name(), d.kernel.entry);
            let cache = cache_filled_by(d, &texture_caches[*k]);
            if let Some(copy) = d.as_copy() {
                dispatches.push(encode_copy(
                    d,
                    copy,
                    (label, cache),
                    node,
                    &homes,
                    &texture_homes[*k],
                    &buf_of,
                    &buffers,
                    &textures,
                )?);
                continue;
            }
            let layout: Vec<Access> = d.binds.iter().map(|b| b.access).collect();
            let pipeline = gpu.pipeline(
                d.kernel.shader,
                d.kernel.entry,
                &d.kernel.constants,
                &layout,
            )?;
            let grid =
                fold_grid(d.grid, caps.max_workgroups_per_dim).ok_or_else(|| Error::Limit {
                    op: label.clone(),
                    what: format!("dispatch grid {:?}", d.grid),
                    need: d.grid.iter().copied().max().unwrap_or(0) as u64,
                    limit_name: "max_compute_workgroups_per_dimension",
                    limit: caps.max_workgroups_per_dim as u64,
                })?;
            let mut entries_src: Vec<Resource> = Vec::new();
            let plen = if d.params.is_empty() {
                16
            } else {
                d.params.len() as u64
            };
            entries_src.push(Resource::Buffer(uniform_index, off, plen));
            for b in &d.binds {
                let (t, desc) = match b.slot {
                    Slot::Input(i) => (Some(node.inputs.get(i).copied()), None),
                    Slot::Output(i) => (Some(node.outputs.get(i).copied()), None),
                    Slot::Scratch(i) => (
                        None,
                        scratch_homes[*k]
                            .get(i)
                            .map(|s| (*s, scratch_bytes(node, g, i))),
                    ),
                    Slot::Texture(i) => {
                        let ti = texture_homes[*k].get(i).ok_or_else(|| {
                            Error::Graph(format!("{label}: binds texture {i} it did not ask for"))
                        })?;
                        entries_src.push(Resource::Texture(*ti));
                        continue;
                    }
                };
                let (bi, size) = match (t, desc) {
                    (Some(Some(t)), _) => {
                        let home = homes[t.0].as_ref().ok_or_else(|| {
                            Error::Graph(format!("{label}: tensor without storage"))
                        })?;
                        let bi = buf_of(home, b.chunk).ok_or_else(|| {
                            Error::Graph(format!(
                                "{label}: binds chunk {} of {:?}",
                                b.chunk, g.tensors[t.0].name
                            ))
                        })?;
                        let size = match home {
                            Home::External(parts) if parts.len() > 1 => buf_sizes[bi],
                            _ => padded(g.tensors[t.0].desc.bytes()),
                        };
                        (bi, size)
                    }
                    (_, Some((s, bytes))) => (slot_base + s, padded(bytes)),
                    _ => {
                        return Err(Error::Graph(format!(
                            "{label}: binding {:?} out of range",
                            b.slot
                        )))
                    }
                };
                if b.access == Access::ReadWrite {
                    if let Slot::Input(i) = b.slot {
                        let t = node.inputs[i];
                        if g.tensors[t.0].kind == TensorKind::Input {
                            return Err(Error::Graph(format!(
                                "{label}: updates input tensor {:?} in place",
                                g.tensors[t.0].name
                            )));
                        }
                    }
                }
                entries_src.push(Resource::Buffer(bi, 0, size));
            }
            let entries: Vec<wgpu::BindGroupEntry> = entries_src
                .iter()
                .enumerate()
                .map(|(i, r)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: match r {
                        Resource::Buffer(bi, off, size) => {
                            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &buffers[*bi]
                                    .as_ref()
                                    .expect("plan buffers exist until drop")
                                    .buffer,
                                offset: *off,
                                size: wgpu::BufferSize::new(*size),
                            })
                        }
                        Resource::Texture(ti) => wgpu::BindingResource::TextureView(&views[*ti]),
                    },
                })
                .collect();
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: &pipeline.layout,
                entries: &entries,
            });
            dispatches.push(Encoded::Dispatch {
                pipeline,
                bind_group,
                grid,
                label,
                cache,
            });
        }
        gpu.check("compiling the graph")?;
        Ok(Plan {
            gpu: gpu.clone(),
            tensors: g.tensors.clone(),
            homes,
            buffers,
            readable,
            dispatches,
            textures,
            caches,
            writes: vec![0; g.tensors.len()],
            planned_bytes: external_bytes + arena_bytes + texture_bytes,
            arena_bytes,
            chunked_bytes,
            texture_bytes,
            dispatches_per_submission: std::env::var("UNITOK_DISPATCHES_PER_SUBMISSION")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            last_submission: 0,
        })
    }

    /// Bytes of device memory this plan holds: external tensors plus the arena.
    pub fn planned_bytes(&self) -> u64 {
        self.planned_bytes
    }

    /// Bytes of the intermediate arena alone.
    pub fn arena_bytes(&self) -> u64 {
        self.arena_bytes
    }

    /// Bytes of the intermediates stored as row chunks (larger than one binding), which live
    /// in persistent buffers outside the arena. Part of `planned_bytes`.
    pub fn chunked_bytes(&self) -> u64 {
        self.chunked_bytes
    }

    /// Bytes of the scratch textures (texture operands, CPU adapters only). Part of
    /// `planned_bytes`.
    pub fn texture_bytes(&self) -> u64 {
        self.texture_bytes
    }

    /// The row chunks of a tensor's storage: one covering every row unless it is larger than
    /// one storage binding and was split.
    pub fn chunks(&self, t: TensorId) -> Result<Vec<RowChunk>> {
        let info = self
            .tensors
            .get(t.0)
            .ok_or_else(|| Error::Graph(format!("unknown tensor {t:?}")))?;
        Ok(chunks_of(&self.homes[t.0], &info.desc))
    }

    /// The shape and dtype of a tensor of this plan.
    pub fn desc(&self, t: TensorId) -> Result<&TensorDesc> {
        self.tensors
            .get(t.0)
            .map(|i| &i.desc)
            .ok_or_else(|| Error::Graph(format!("unknown tensor {t:?}")))
    }

    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    fn external(&self, t: TensorId) -> Result<&[(usize, RowChunk)]> {
        match self.homes.get(t.0) {
            Some(Some(Home::External(parts)))
                if self.tensors[t.0].kind != TensorKind::Intermediate =>
            {
                Ok(parts)
            }
            _ => Err(Error::Graph(format!(
                "tensor {t:?} is not an input or parameter of this plan"
            ))),
        }
    }

    /// Upload data into an input or parameter.
    pub fn write(&mut self, t: TensorId, data: &HostTensor) -> Result<()> {
        let info = self
            .tensors
            .get(t.0)
            .ok_or_else(|| Error::Graph(format!("unknown tensor {t:?}")))?;
        check_feed(info, data)?;
        let dtype = info.desc.dtype;
        let rows = info.desc.shape.first().copied().unwrap_or(1).max(1);
        let bytes: Vec<u8> = match (&data.data, dtype) {
            (HostData::F32(v), DType::F32) => bytemuck::cast_slice(v).to_vec(),
            (HostData::F32(v), DType::F16) => bytemuck::cast_slice(
                &v.iter()
                    .map(|x| half::f16::from_f32(*x))
                    .collect::<Vec<_>>(),
            )
            .to_vec(),
            (HostData::U32(v), DType::U32) => bytemuck::cast_slice(v).to_vec(),
            _ => {
                return Err(Error::Graph(format!(
                    "tensor {:?}: wrong host type",
                    info.name
                )))
            }
        };
        let row_bytes = bytes.len() / rows;
        for (bi, c) in self.external(t)?.to_vec() {
            let part = &bytes[c.start * row_bytes..(c.start + c.rows) * row_bytes];
            let buf = self.buffers[bi]
                .as_ref()
                .ok_or_else(|| Error::Graph("plan buffer missing".into()))?;
            self.gpu.upload(&buf.buffer, 0, part)?;
        }
        self.writes[t.0] += 1;
        Ok(())
    }

    /// Set an input or parameter to zeros on the device (no host data, no staging memory).
    pub fn zero(&mut self, t: TensorId) -> Result<()> {
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("zero"),
            });
        for (bi, _) in self.external(t)?.to_vec() {
            let buf = self.buffers[bi]
                .as_ref()
                .ok_or_else(|| Error::Graph("plan buffer missing".into()))?;
            enc.clear_buffer(&buf.buffer, 0, None);
        }
        self.writes[t.0] += 1;
        self.last_submission = self.gpu.submit(vec![enc.finish()]);
        self.gpu.check("zeroing a tensor")
    }

    /// Encode every dispatch into one command encoder and submit once. Does not wait.
    ///
    /// With `set_dispatches_per_submission(n)` (or `UNITOK_DISPATCHES_PER_SUBMISSION=n` when
    /// the plan was compiled), the dispatches go in groups of n, one submission each, waiting
    /// for each group before submitting the next (except after the last).
    pub fn run(&mut self) -> Result<()> {
        let steps: Vec<&Encoded> = self
            .steps_due()
            .into_iter()
            .map(|k| &self.dispatches[k])
            .collect();
        let per = match self.dispatches_per_submission {
            0 => steps.len().max(1),
            n => n,
        };
        for (k, group) in steps.chunks(per).enumerate() {
            if k > 0 {
                self.gpu.wait()?;
            }
            let mut enc = self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("plan"),
                });
            self.record(&mut enc, group)?;
            self.last_submission = self.gpu.submit(vec![enc.finish()]);
        }
        self.gpu.check("running the graph")
    }

    /// The steps this run executes (indices into `dispatches`), marking the kept textures
    /// filled: steps that fill a kept texture run only when their parameter changed since.
    fn steps_due(&mut self) -> Vec<usize> {
        let current: Vec<bool> = self
            .caches
            .iter()
            .map(|c| c.packed == Some(self.writes[c.param.0]))
            .collect();
        for c in &mut self.caches {
            c.packed = Some(self.writes[c.param.0]);
        }
        (0..self.dispatches.len())
            .filter(|&k| !self.dispatches[k].cache().is_some_and(|c| current[c]))
            .collect()
    }

    /// Record steps into `enc`: runs of dispatches share one compute pass; a copy ends the
    /// pass it interrupts.
    fn record(&self, enc: &mut wgpu::CommandEncoder, steps: &[&Encoded]) -> Result<()> {
        let mut i = 0;
        while i < steps.len() {
            if let Encoded::Copy {
                buffer,
                texture,
                copy,
                ..
            } = steps[i]
            {
                let buffer = &self.buffers[*buffer]
                    .as_ref()
                    .ok_or_else(|| Error::Graph("plan buffer released".into()))?
                    .buffer;
                enc.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: copy.offset,
                            bytes_per_row: Some(copy.bytes_per_row),
                            rows_per_image: None,
                        },
                    },
                    wgpu::TexelCopyTextureInfo {
                        origin: wgpu::Origin3d {
                            x: 0,
                            y: copy.origin_y,
                            z: 0,
                        },
                        ..self.textures[*texture].as_image_copy()
                    },
                    wgpu::Extent3d {
                        width: copy.size[0],
                        height: copy.size[1],
                        depth_or_array_layers: 1,
                    },
                );
                i += 1;
                continue;
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("plan"),
                timestamp_writes: None,
            });
            while let Some(Encoded::Dispatch {
                pipeline,
                bind_group,
                grid,
                ..
            }) = steps.get(i).copied()
            {
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                i += 1;
            }
        }
        Ok(())
    }

    /// Split `run` into submissions of at most `n` dispatches, each waited for before the
    /// next is submitted (0: one submission, the default). The waits bound the work in flight
    /// and let wgpu free what finished submissions held; the released-size training
    /// measurement in benches/RESULTS.md ran with n = 64. Same results either way.
    pub fn set_dispatches_per_submission(&mut self, n: usize) {
        self.dispatches_per_submission = n;
    }

    /// Run the plan once with every dispatch in its own submission, waiting for each: the wall
    /// time per dispatch label, summed over dispatches with the same label, slowest first.
    /// The steps are those `run` would execute (kept textures already filled are skipped).
    /// For finding hot spots only — the waits make the whole run slower than `run`.
    pub fn profile(&mut self) -> Result<Vec<(String, std::time::Duration, usize)>> {
        let mut by_label: HashMap<String, (std::time::Duration, usize)> = HashMap::new();
        self.gpu.wait()?;
        for k in self.steps_due() {
            let t0 = std::time::Instant::now();
            let mut enc = self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("profile"),
                });
            self.record(&mut enc, &[&self.dispatches[k]])?;
            self.last_submission = self.gpu.submit(vec![enc.finish()]);
            self.gpu.wait()?;
            let e = by_label
                .entry(self.dispatches[k].label().to_string())
                .or_default();
            e.0 += t0.elapsed();
            e.1 += 1;
        }
        self.gpu.check("profiling the graph")?;
        let mut v: Vec<_> = by_label.into_iter().map(|(k, (t, n))| (k, t, n)).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        Ok(v)
    }

    /// Names of the dispatches in execution order (for profiling output).
    pub fn dispatch_labels(&self) -> Vec<&str> {
        self.dispatches.iter().map(|d| d.label()).collect()
    }

    /// Read tensors back in one submission (waits for the device).
    pub fn read_many(&self, ts: &[TensorId]) -> Result<Vec<HostTensor>> {
        let mut parts = Vec::new();
        let mut spans = Vec::new();
        for t in ts {
            let info = self
                .tensors
                .get(t.0)
                .ok_or_else(|| Error::Graph(format!("unknown tensor {t:?}")))?;
            if !self.readable[t.0] {
                return Err(Error::Graph(format!(
                    "tensor {:?} was not marked as an output, so its buffer may have been reused",
                    info.name
                )));
            }
            let first = parts.len();
            match &self.homes[t.0] {
                Some(Home::External(ps)) => {
                    let rows = info.desc.shape.first().copied().unwrap_or(1).max(1) as u64;
                    let row_bytes = info.desc.bytes() / rows;
                    for (bi, c) in ps {
                        let b = self.buffers[*bi]
                            .as_ref()
                            .ok_or_else(|| Error::Graph("plan buffer missing".into()))?;
                        parts.push((&b.buffer, 0, row_bytes * c.rows as u64));
                    }
                }
                Some(Home::Arena(_)) | None => {
                    let bi = self.buffer_index(*t)?;
                    let b = self.buffers[bi]
                        .as_ref()
                        .ok_or_else(|| Error::Graph("plan buffer missing".into()))?;
                    parts.push((&b.buffer, 0, info.desc.bytes()));
                }
            }
            spans.push((first, parts.len()));
        }
        let data = self.gpu.download(&parts)?;
        let mut out = Vec::new();
        for (t, (a, b)) in ts.iter().zip(spans) {
            let info = &self.tensors[t.0];
            let bytes: Vec<u8> = data[a..b].concat();
            let ht = match info.desc.dtype {
                DType::F32 => {
                    HostTensor::f32(&info.desc.shape, bytemuck::pod_collect_to_vec(&bytes))?
                }
                DType::U32 => {
                    HostTensor::u32(&info.desc.shape, bytemuck::pod_collect_to_vec(&bytes))?
                }
                DType::F16 => {
                    let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes);
                    HostTensor::f32(&info.desc.shape, h.iter().map(|x| x.to_f32()).collect())?
                }
            };
            out.push(ht);
        }
        Ok(out)
    }

    pub fn read(&self, t: TensorId) -> Result<HostTensor> {
        Ok(self.read_many(&[t])?.remove(0))
    }

    fn buffer_index(&self, t: TensorId) -> Result<usize> {
        // Arena slots follow the external buffers in `buffers`.
        let ext: usize = self
            .homes
            .iter()
            .filter_map(|h| match h {
                Some(Home::External(p)) => Some(p.len()),
                _ => None,
            })
            .sum();
        match &self.homes[t.0] {
            Some(Home::Arena(s)) => Ok(ext + s),
            _ => Err(Error::Graph(format!("tensor {t:?} has no arena slot"))),
        }
    }

    /// The device buffer behind a tensor (for ops outside the graph, e.g. benchmarks).
    pub fn buffer(&self, t: TensorId) -> Result<&wgpu::Buffer> {
        let bi = match &self.homes.get(t.0) {
            Some(Some(Home::External(p))) if p.len() == 1 => p[0].0,
            _ => self.buffer_index(t)?,
        };
        Ok(&self.buffers[bi]
            .as_ref()
            .ok_or_else(|| Error::Graph("plan buffer missing".into()))?
            .buffer)
    }

    /// Buffer identity of each tensor's storage (for tests of the memory planner).
    pub fn storage_of(&self, t: TensorId) -> Option<usize> {
        match self.homes.get(t.0)? {
            Some(Home::External(p)) => p.first().map(|(b, _)| *b),
            Some(Home::Arena(_)) => self.buffer_index(t).ok(),
            None => None,
        }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

fn scratch_bytes(node: &Node, g: &Graph, i: usize) -> u64 {
    let in_descs: Vec<&TensorDesc> = node.inputs.iter().map(|t| &g.tensors[t.0].desc).collect();
    node.op
        .scratch(&in_descs)
        .get(i)
        .map(|d| d.bytes())
        .unwrap_or(0)
}

/// Fold x past the per-dimension cap into y (kernels then use `linear_workgroup()`).
pub fn fold_grid(grid: [u32; 3], max: u32) -> Option<[u32; 3]> {
    let [x, y, z] = grid;
    if x <= max && y <= max && z <= max {
        return Some(grid);
    }
    if y == 1 && z <= max {
        let fx = max;
        let fy = x.div_ceil(fx);
        if fy <= max {
            return Some([fx, fy, z]);
        }
    }
    None
}

impl Drop for Plan {
    fn drop(&mut self) {
        let last = self.last_submission.max(self.gpu.next_submission());
        for b in self.buffers.iter_mut().filter_map(|b| b.take()) {
            self.gpu.release(b, last);
        }
    }
}

/// Resolve a copy step: its source is input `binds[0]` (one buffer), its destination the op's
/// scratch texture `binds[1]`; the copy must lie inside both.
#[allow(clippy::too_many_arguments)]
fn encode_copy(
    d: &Dispatch,
    copy: crate::ops::TextureCopy,
    (label, cache): (String, Option<usize>),
    node: &Node,
    homes: &[Option<Home>],
    texture_home: &[usize],
    buf_of: &dyn Fn(&Home, usize) -> Option<usize>,
    buffers: &[Option<PooledBuffer>],
    textures: &[wgpu::Texture],
) -> Result<Encoded> {
    let bad = |what: &str| Error::Graph(format!("{label}: {what}"));
    let (Some(src), Some(dst)) = (d.binds.first(), d.binds.get(1)) else {
        return Err(bad("a copy binds a source and a texture"));
    };
    let (Slot::Input(i), Slot::Texture(t)) = (src.slot, dst.slot) else {
        return Err(bad("a copy goes from an input to a scratch texture"));
    };
    let home = node
        .inputs
        .get(i)
        .and_then(|t| homes[t.0].as_ref())
        .ok_or_else(|| bad("copy source without storage"))?;
    if matches!(home, Home::External(parts) if parts.len() > 1) {
        return Err(bad("copy source is row-chunked"));
    }
    let buffer = buf_of(home, 0).ok_or_else(|| bad("copy source without storage"))?;
    let texture = *texture_home
        .get(t)
        .ok_or_else(|| bad("copies into a texture it did not ask for"))?;
    let tex = &textures[texture];
    let need = copy.offset
        + copy.bytes_per_row as u64 * (copy.size[1] as u64).saturating_sub(1)
        + copy.size[0] as u64 * 16;
    let have = buffers[buffer].as_ref().map_or(0, |b| b.buffer.size());
    if !copy.offset.is_multiple_of(16)
        || !copy.bytes_per_row.is_multiple_of(256)
        || copy.size[0] > tex.width()
        || copy.size[1] as u64 + copy.origin_y as u64 > tex.height() as u64
        || need > have
    {
        return Err(bad(&format!(
            "copy {copy:?} does not fit a {}×{} texture and a {have}-byte buffer",
            tex.width(),
            tex.height()
        )));
    }
    Ok(Encoded::Copy {
        buffer,
        texture,
        copy,
        label,
        cache,
    })
}

/// The kept texture a step fills, if it is a pure packing step: it writes textures, all of
/// them the same kept one, and no buffer. Such steps are skipped while the texture is current.
fn cache_filled_by(d: &Dispatch, caches: &[Option<usize>]) -> Option<usize> {
    let mut filled = None;
    for b in &d.binds {
        match (b.slot, b.access) {
            (Slot::Texture(t), Access::TextureWrite) => {
                let c = caches.get(t).copied().flatten()?;
                if filled.is_some_and(|f| f != c) {
                    return None;
                }
                filled = Some(c);
            }
            (_, Access::ReadWrite) => return None,
            _ => {}
        }
    }
    filled
}

/// Run one op on the GPU on host data (compile, upload, run, read). For tests and tools.
pub fn run_op_gpu(gpu: &Arc<Gpu>, op: impl Op, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
    run_shared_op_gpu(gpu, Arc::new(op), inputs)
}

/// `run_op_gpu` for an op already behind an `Arc`.
pub fn run_shared_op_gpu(
    gpu: &Arc<Gpu>,
    op: Arc<dyn Op>,
    inputs: &[&HostTensor],
) -> Result<Vec<HostTensor>> {
    let mut g = Graph::new();
    let ids: Vec<TensorId> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| g.input(&format!("in{i}"), &t.shape, t.dtype()))
        .collect();
    let outs = g.apply_shared(op, &ids)?;
    for o in &outs {
        g.mark_output(*o);
    }
    let mut plan = g.compile(gpu)?;
    for (id, t) in ids.iter().zip(inputs) {
        plan.write(*id, t)?;
    }
    plan.run()?;
    plan.read_many(&outs)
}

/// Run one op's CPU reference after checking shapes exactly as the graph would.
pub fn run_op_cpu(op: &dyn Op, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
    let descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc()).collect();
    op.infer(&descs.iter().collect::<Vec<_>>())?;
    op.cpu(inputs)
}
