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
    fn accepts_chunked(&self, i: usize) -> bool {
        i == 0
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
