//! Row gather (embedding lookup): table [V, D] f32, ids U32 [...] → [..., D].
//!
//! The table may be larger than one storage binding (UniTok's text token embedding is
//! 49408 × 768 f32 = 152 MB, over lavapipe's 128 MiB): the op accepts a chunked table, and
//! encodes one dispatch per row chunk, each writing only the output rows whose id falls in its
//! chunk (`shaders/gather.wgsl`).
//!
//! **Out-of-range ids** (id ≥ V) are never used to read: their output rows are zeros (written by
//! the first chunk's dispatch). PyTorch's `nn.Embedding` would raise instead; callers that need
//! that check validate ids on the host.

use super::norm::arity_err;
use super::{groups, params, Bind, Dispatch, EncodeCx, Kernel, Op};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct Params {
    n: u32,
    d: u32,
    start: u32,
    rows: u32,
    v: u32,
    zero_oob: u32,
    _p: [u32; 2],
}

/// out[..., :] = table[ids[...], :]; rows of out-of-range ids are zeros. Inputs: table, ids.
#[derive(Clone, Debug)]
pub struct GatherRows;

impl Op for GatherRows {
    fn name(&self) -> String {
        "gather_rows".into()
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [table, ids] = inputs else {
            return Err(arity_err(&self.name(), inputs, 2));
        };
        if table.dtype != DType::F32 || table.rank() != 2 || ids.dtype != DType::U32 {
            return Err(Error::shape(
                self.name(),
                "needs an f32 table [V, D] and U32 ids",
                &[&table.shape, &ids.shape],
            ));
        }
        if table.numel() == 0 || ids.numel() == 0 {
            return Err(Error::shape(
                self.name(),
                "empty tensors are not supported",
                &[&table.shape, &ids.shape],
            ));
        }
        let mut shape = ids.shape.clone();
        shape.push(table.shape[1]);
        Ok(vec![TensorDesc::f32(&shape)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (table, ids) = (inputs[0].as_f32()?, inputs[1].as_u32()?);
        let (v, d) = (inputs[0].shape[0], inputs[0].shape[1]);
        let mut out = vec![0.0f32; ids.len() * d];
        for (o, &id) in out.chunks_mut(d).zip(ids) {
            if (id as usize) < v {
                o.copy_from_slice(&table[id as usize * d..(id as usize + 1) * d]);
            }
        }
        let mut shape = inputs[1].shape.clone();
        shape.push(d);
        Ok(vec![HostTensor::f32(&shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (v, d) = (cx.input(0).shape[0], cx.input(0).shape[1]);
        let n = cx.input(1).numel();
        Ok(cx.inputs[0]
            .chunks
            .iter()
            .enumerate()
            .map(|(k, c)| Dispatch {
                kernel: Kernel::new("gather", "gather_rows"),
                params: params(&Params {
                    n: n as u32,
                    d: d as u32,
                    start: c.start as u32,
                    rows: c.rows as u32,
                    v: v as u32,
                    zero_oob: (k == 0) as u32,
                    _p: [0; 2],
                }),
                binds: vec![Bind::read_chunk(0, k), Bind::read(1), Bind::write(0)],
                grid: [groups(n * d, 256), 1, 1],
            })
            .collect())
    }
    fn backward(&self, cx: &mut super::BackwardCx) -> Result<Vec<Option<TensorId>>> {
        let Some(gy) = cx.grads[0] else {
            return Ok(vec![None, None]);
        };
        let (table, ids) = (cx.inputs[0], cx.inputs[1]);
        let rows = cx.g.shape(table)[0];
        // [V, D], the table's shape: written in row chunks when the table is chunked.
        let dt =
            cx.g.apply1(GatherRowsGrad { rows, groups: 1 }, &[ids, gy])?;
        Ok(vec![Some(dt), None])
    }
    fn accepts_chunked(&self, i: usize) -> bool {
        i == 0
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Default)]
struct ScatterParams {
    n: u32,
    g: u32,
    k: u32,
    d: u32,
    eps: f32,
    /// The flat table rows (gi·K + k) this dispatch writes: [r0, r0 + nr), an output row chunk.
    r0: u32,
    nr: u32,
    _p: u32,
}

/// Deterministic scatter-add, the table gradient of a row gather: with `groups` = G ids per
/// token and `rows` = K table rows per group, ids U32 [..., G] and dy f32 [..., G, D] (or
/// [..., G·D]) give out [G, K, D] with out[g, k, :] = Σ_t dy[t, g, :] over the tokens t whose
/// id in group g is k, summed in token order (no atomics). Ids ≥ K contribute nothing.
/// Inputs: ids, dy. With G = 1 (the gradient of `GatherRows`) the output is [K, D].
///
/// The output may be written as row chunks (`writes_chunked`: a table gradient larger than one
/// storage binding, like UniTok's 49408 × 768 text token table): each chunk's dispatches write
/// only the table rows in its range, with the same per-row sums, so the bits do not depend on
/// the split.
#[derive(Clone, Debug)]
pub struct GatherRowsGrad {
    pub rows: usize,
    pub groups: usize,
}

impl GatherRowsGrad {
    /// (tokens, row width) after checking the operands.
    fn dims(&self, ids: &TensorDesc, dy: &TensorDesc) -> Result<(usize, usize)> {
        let err = |m: &str| Error::shape(self.name(), m, &[&ids.shape, &dy.shape]);
        if ids.dtype != DType::U32 || dy.dtype != DType::F32 {
            return Err(err("needs U32 ids and f32 dy"));
        }
        let (g, k) = (self.groups, self.rows);
        if g == 0 || k == 0 || ids.numel() == 0 || ids.rank() < 1 {
            return Err(err("empty operands are not supported"));
        }
        if g > 1 && ids.last() != g {
            return Err(err("ids must be [..., G]"));
        }
        let n = ids.numel() / g;
        let d = dy.numel() / ids.numel().max(1);
        if d == 0
            || d * ids.numel() != dy.numel()
            || dy.shape[..ids.rank() - 1] != ids.shape[..ids.rank() - 1]
        {
            return Err(err(
                "dy must be [..., G·D] (or [ids..., D]) for ids [..., G]",
            ));
        }
        if n * g * d >= u32::MAX as usize || g * k * d >= u32::MAX as usize {
            return Err(err("more than 2^32 elements"));
        }
        Ok((n, d))
    }
}

impl GatherRowsGrad {
    fn out_desc(&self, d: usize) -> TensorDesc {
        if self.groups == 1 {
            TensorDesc::f32(&[self.rows, d])
        } else {
            TensorDesc::f32(&[self.groups, self.rows, d])
        }
    }
}

impl Op for GatherRowsGrad {
    fn name(&self) -> String {
        format!("gather_rows_grad(G={}, K={})", self.groups, self.rows)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<Vec<TensorDesc>> {
        let [ids, dy] = inputs else {
            return Err(arity_err(&self.name(), inputs, 2));
        };
        let (_, d) = self.dims(ids, dy)?;
        Ok(vec![self.out_desc(d)])
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
        let (ids, dy) = (inputs[0].as_u32()?, inputs[1].as_f32()?);
        let (n, d) = self.dims(&inputs[0].desc(), &inputs[1].desc())?;
        let (g, k) = (self.groups, self.rows);
        let mut out = vec![0.0f32; g * k * d];
        for t in 0..n {
            for gi in 0..g {
                let e = t * g + gi;
                let id = ids[e] as usize;
                if id < k {
                    let o = &mut out[(gi * k + id) * d..(gi * k + id + 1) * d];
                    for (a, b) in o.iter_mut().zip(&dy[e * d..(e + 1) * d]) {
                        *a += *b;
                    }
                }
            }
        }
        Ok(vec![HostTensor::f32(&self.out_desc(d).shape, out)?])
    }
    fn encode(&self, cx: &EncodeCx) -> Result<Vec<Dispatch>> {
        let (n, d) = self.dims(cx.input(0), cx.input(1))?;
        // Flat table rows (gi·K + k) per row of the output's dimension 0.
        let per_row = if self.groups == 1 { 1 } else { self.rows };
        let mut out = Vec::new();
        for (c, chunk) in cx.output_chunks(0).iter().enumerate() {
            let (r0, nr) = (chunk.start * per_row, chunk.rows * per_row);
            let p = params(&ScatterParams {
                n: n as u32,
                g: self.groups as u32,
                k: self.rows as u32,
                d: d as u32,
                r0: r0 as u32,
                nr: nr as u32,
                ..Default::default()
            });
            // Per table row, every row scans all n tokens: K·n work. From the tokens' side
            // (zero the rows, then each first occurrence sums its id's rows): K + n² work.
            // Same bits.
            if n < self.rows {
                out.push(Dispatch {
                    kernel: Kernel::new("backward_mm", "scatter_rows_zero"),
                    params: p.clone(),
                    binds: vec![Bind::write_chunk(0, c)],
                    grid: [groups(nr * d, 256), 1, 1],
                });
                out.push(Dispatch {
                    kernel: Kernel::new("backward_mm", "scatter_rows_first"),
                    params: p,
                    binds: vec![Bind::read(0), Bind::read(1), Bind::write_chunk(0, c)],
                    grid: [(n * self.groups) as u32, 1, 1],
                });
            } else {
                out.push(Dispatch {
                    kernel: Kernel::new("backward_mm", "scatter_rows"),
                    params: p,
                    binds: vec![Bind::read(0), Bind::read(1), Bind::write_chunk(0, c)],
                    grid: [nr as u32, 1, 1],
                });
            }
        }
        Ok(out)
    }
    fn writes_chunked(&self, o: usize) -> bool {
        o == 0
    }
}

impl Graph {
    /// Rows of `table` [V, D] at U32 `ids` [...] → [..., D]; out-of-range ids give zero rows.
    pub fn gather_rows(&mut self, table: TensorId, ids: TensorId) -> Result<TensorId> {
        self.apply1(GatherRows, &[table, ids])
    }
}

pub fn selfcheck_cases() -> Vec<crate::selfcheck::Case> {
    use crate::selfcheck::{pseudo_random, Case};
    use std::sync::Arc;
    let table = pseudo_random(&[50, 12], 31, 1.0);
    let ids = HostTensor {
        shape: vec![2, 5],
        data: crate::tensor::HostData::U32(vec![0, 49, 7, 7, 50, 3, 1000, 12, 48, 1]),
    };
    vec![Case {
        name: "gather_rows [50,12] ids [2,5]".into(),
        op: Arc::new(GatherRows),
        inputs: vec![table, ids],
        atol: 0.0,
        rtol: 0.0,
    }]
}
