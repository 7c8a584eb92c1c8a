//! Tensors larger than one storage binding, on small shapes: a device whose planning limit is
//! lowered (`Gpu::new_with_max_binding`, the test override of the adapter's
//! max_storage_buffer_binding_size) splits a token table, its gradient (an intermediate) and its
//! AdamW moments into row chunks. The chunked plan must give exactly the one-buffer plan's bits,
//! over several re-runs; a tensor over the limit that some op cannot take in chunks is a typed
//! `Error::Limit`.

use crate::common::*;
use std::sync::{Arc, OnceLock};
use unitok::ops::optim::hyper;
use unitok::{DType, Error, Gpu, Graph, HostTensor, TensorId};

/// The planning limit of the small device: the [100, 20] f32 table (8000 B) takes 4 chunks of
/// 30, 30, 30 and 10 rows (chunk offsets 600, 1200, 1800 elements: not multiples of the
/// Σg² kernel's 256 invocations), every other tensor of the graphs below fits one binding.
const LIMIT: u64 = 2400;
const V: usize = 100;
const D: usize = 20;
const N: usize = 8;

fn small_gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new_with_max_binding(LIMIT).expect("a second device"))
        .clone()
}

struct TrainGraph {
    g: Graph,
    table: TensorId,
    m: TensorId,
    v: TensorId,
    ids: TensorId,
    target: TensorId,
    hyper: TensorId,
    grad: TensorId,
    clip: TensorId,
    loss: TensorId,
}

/// gather → MSE loss → backward → global-norm clip → AdamW on the table.
fn train_graph() -> TrainGraph {
    let mut g = Graph::new();
    let table = g.param("token_table", &[V, D], DType::F32);
    let m = g.param("m", &[V, D], DType::F32);
    let v = g.param("v", &[V, D], DType::F32);
    let ids = g.input("ids", &[N], DType::U32);
    let target = g.input("target", &[N, D], DType::F32);
    let hyper_t = g.input("hyper", &[6], DType::F32);
    let y = g.gather_rows(table, ids).unwrap();
    let loss = g.mse_loss(y, target).unwrap();
    let grad = g.backward(loss, &[table]).unwrap()[0];
    // A small max norm, so clipping is active and the coefficient depends on every chunk.
    let clip = g.clip_grad_norm(&[grad], 1e-3).unwrap();
    g.adamw(grad, hyper_t, clip, table, m, v, 0.02).unwrap();
    for t in [grad, clip, loss] {
        g.mark_output(t);
    }
    TrainGraph {
        g,
        table,
        m,
        v,
        ids,
        target,
        hyper: hyper_t,
        grad,
        clip,
        loss,
    }
}

/// Run three steps; per step: (grad, clip, loss, table, m, v) as read back.
fn run_steps(gpu: &Arc<Gpu>, t: &TrainGraph) -> (Vec<Vec<HostTensor>>, unitok::graph::Plan) {
    let mut plan = t.g.compile(gpu).unwrap();
    plan.write(t.table, &rand_tensor(&[V, D], 7)).unwrap();
    plan.write(t.m, &HostTensor::zeros(&[V, D])).unwrap();
    plan.write(t.v, &HostTensor::zeros(&[V, D])).unwrap();
    let mut out = Vec::new();
    for step in 1..=3u32 {
        // Repeated ids (their rows sum), ids in every chunk, one out of range (no gradient).
        let ids: Vec<u32> = [3u32, 97, 45, 3, 61, 29, 200, 90]
            .iter()
            .map(|i| (i + step * 7) % 101)
            .collect();
        plan.write(t.ids, &HostTensor::u32(&[N], ids).unwrap())
            .unwrap();
        plan.write(t.target, &rand_tensor(&[N, D], step as u64))
            .unwrap();
        plan.write(t.hyper, &hyper(1e-2, 0.9, 0.95, 1e-6, step))
            .unwrap();
        plan.run().unwrap();
        out.push(
            plan.read_many(&[t.grad, t.clip, t.loss, t.table, t.m, t.v])
                .unwrap(),
        );
    }
    (out, plan)
}

#[test]
fn chunked_table_training_matches_one_buffer_bit_for_bit() {
    let small = small_gpu();
    assert_eq!(small.caps.max_storage_binding, LIMIT);
    let t = train_graph();
    let (want, whole) = run_steps(&gpu(), &t);
    let (got, chunked) = run_steps(&small, &t);

    // The table, its gradient and both moments are split; nothing else is.
    for (name, id) in [("table", t.table), ("grad", t.grad), ("m", t.m), ("v", t.v)] {
        let c = chunked.chunks(id).unwrap();
        assert!(c.len() >= 3, "{name}: {c:?}");
        assert_eq!(c.iter().map(|c| c.rows).sum::<usize>(), V);
        assert_eq!(whole.chunks(id).unwrap().len(), 1, "{name}");
    }
    assert_eq!(chunked.chunks(t.table).unwrap().len(), 4);
    // Planned memory: the gradient's chunks are outside the arena and counted once.
    let grad_bytes = (V * D * 4) as u64;
    assert_eq!(chunked.chunked_bytes(), grad_bytes);
    assert_eq!(whole.chunked_bytes(), 0);
    assert!(chunked.arena_bytes() + grad_bytes <= whole.arena_bytes() + 1024);
    assert!(chunked.planned_bytes() >= chunked.arena_bytes() + 4 * grad_bytes);
    eprintln!(
        "one buffer: planned {} B (arena {} B), {} dispatches; chunked: planned {} B (arena {} B, chunked {} B), {} dispatches",
        whole.planned_bytes(),
        whole.arena_bytes(),
        whole.dispatch_count(),
        chunked.planned_bytes(),
        chunked.arena_bytes(),
        chunked.chunked_bytes(),
        chunked.dispatch_count()
    );
    assert!(chunked.dispatch_count() > whole.dispatch_count());

    let names = ["grad", "clip", "loss", "table", "m", "v"];
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        for ((name, a), b) in names.iter().zip(g).zip(w) {
            assert_eq!(a.shape, b.shape, "step {step} {name}");
            let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
            let diff = a
                .iter()
                .zip(b)
                .position(|(x, y)| x.to_bits() != y.to_bits());
            assert!(
                diff.is_none(),
                "step {} {name}[{}]: chunked {} vs one buffer {}",
                step + 1,
                diff.unwrap(),
                a[diff.unwrap()],
                b[diff.unwrap()]
            );
        }
        let clip = g[1].as_f32().unwrap();
        assert!(clip[0] < 1.0 && clip[1] > 0.0, "clipping active: {clip:?}");
    }
    // And the one-buffer plan is right: the first gradient against the CPU graph.
    let cpu = {
        let mut feeds = std::collections::HashMap::new();
        feeds.insert(t.table, rand_tensor(&[V, D], 7));
        feeds.insert(t.m, HostTensor::zeros(&[V, D]));
        feeds.insert(t.v, HostTensor::zeros(&[V, D]));
        let ids: Vec<u32> = [3u32, 97, 45, 3, 61, 29, 200, 90]
            .iter()
            .map(|i| (i + 7) % 101)
            .collect();
        feeds.insert(t.ids, HostTensor::u32(&[N], ids).unwrap());
        feeds.insert(t.target, rand_tensor(&[N, D], 1));
        feeds.insert(t.hyper, hyper(1e-2, 0.9, 0.95, 1e-6, 1));
        t.g.run_cpu(&feeds).unwrap()
    };
    assert_close("grad vs CPU", &want[0][0], &cpu[&t.grad], 1e-6, 1e-5);
    assert_close("table vs CPU", &want[0][3], &cpu[&t.table], 1e-6, 1e-5);
}

fn limit_err(e: Error) -> (String, String, u64, u64) {
    match e {
        Error::Limit {
            op,
            what,
            need,
            limit,
            ..
        } => (op, what, need, limit),
        other => panic!("expected Error::Limit, got {other}"),
    }
}

#[test]
fn tensors_over_the_binding_limit_without_chunk_support_are_typed_errors() {
    let small = small_gpu();
    // An intermediate split into chunks, read by an op that does not accept chunks.
    let mut g = Graph::new();
    let table = g.param("token_table", &[V, D], DType::F32);
    let ids = g.input("ids", &[N], DType::U32);
    let target = g.input("target", &[N, D], DType::F32);
    let y = g.gather_rows(table, ids).unwrap();
    let s = g.mse_loss(y, target).unwrap();
    let grad = g.backward(s, &[table]).unwrap()[0];
    let doubled = g.scale(grad, 2.0).unwrap();
    g.mark_output(doubled);
    let (op, what, need, limit) = limit_err(g.compile(&small).err().unwrap());
    assert!(op.starts_with("unary("), "{op}");
    assert!(
        what.contains("input 0")
            && what.contains("gather_rows_grad")
            && what.contains("[100, 20]")
            && what.contains("does not accept row chunks"),
        "{what}"
    );
    assert_eq!((need, limit), ((V * D * 4) as u64, LIMIT));

    // An intermediate over the limit whose producer cannot write chunks.
    let mut g = Graph::new();
    let big = g.constant_fill(&[V, D], 1.0).unwrap();
    g.mark_output(big);
    let (op, what, _, limit) = limit_err(g.compile(&small).err().unwrap());
    assert!(op.starts_with("fill("), "{op}");
    assert!(
        what.contains("output 0") && what.contains("cannot write row chunks"),
        "{what}"
    );
    assert_eq!(limit, LIMIT);

    // A parameter over the limit read by an op that does not accept chunks.
    let mut g = Graph::new();
    let table = g.param("token_table", &[V, D], DType::F32);
    let y = g.gelu(table).unwrap();
    g.mark_output(y);
    let (op, what, _, _) = limit_err(g.compile(&small).err().unwrap());
    assert!(op.contains("Gelu"), "{op}");
    assert!(what.contains("token_table"), "{what}");

    // The same graphs plan fine with the adapter's real limit.
    assert!(g.compile(&gpu()).is_ok());
}

/// Both table-gradient kernels address rows [r0, r0 + nr) of one output chunk. In a graph the
/// per-row kernel (tokens ≥ table rows) never meets a chunked output — dy would be at least as
/// large — so its chunk arithmetic is checked at the encoding level, for G > 1 (a chunk of
/// dimension 0 is whole groups of K rows).
#[test]
fn table_gradient_encodes_row_ranges_per_output_chunk() {
    use unitok::ops::gather::GatherRowsGrad;
    use unitok::ops::{EncodeCx, Op, RowChunk, Storage};
    use unitok::TensorDesc;
    let caps = gpu().caps.clone();
    let whole = |d: TensorDesc| Storage {
        chunks: vec![RowChunk::whole(&d)],
        desc: d,
    };
    for (n, k, g) in [(12usize, 10usize, 3usize), (4, 10, 3)] {
        let op = GatherRowsGrad { rows: k, groups: g };
        let inputs = [
            whole(TensorDesc::new(&[n, g], DType::U32)),
            whole(TensorDesc::f32(&[n, g * 5])),
        ];
        let outputs = op.infer(&[&inputs[0].desc, &inputs[1].desc]).unwrap();
        assert_eq!(outputs[0].shape, vec![g, k, 5]);
        let chunks = vec![
            RowChunk { start: 0, rows: 2 },
            RowChunk { start: 2, rows: 1 },
        ];
        let cx = EncodeCx {
            inputs: &inputs,
            outputs: &outputs,
            output_chunks: &[chunks],
            scratch: &[],
            caps: &caps,
        };
        let ds = op.encode(&cx).unwrap();
        let per_chunk = if n >= k { 1 } else { 2 };
        assert_eq!(ds.len(), 2 * per_chunk);
        for (c, (r0, nr)) in [(0u32, 20u32), (20, 10)].into_iter().enumerate() {
            for dsp in &ds[c * per_chunk..(c + 1) * per_chunk] {
                let w: &[u32] = bytemuck::cast_slice(&dsp.params[..32]);
                assert_eq!((w[5], w[6]), (r0, nr), "{}", dsp.kernel.entry);
                assert!(dsp.binds.iter().any(|b| b.chunk == c));
            }
            if n >= k {
                assert_eq!(ds[c].kernel.entry, "scatter_rows");
                assert_eq!(ds[c].grid[0], nr);
            }
        }
    }
}
