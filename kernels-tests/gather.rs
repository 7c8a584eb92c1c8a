//! Row gather against the CPU reference, including a table split over several bindings.

use crate::common::*;
use unitok::graph::run_op_cpu;
use unitok::ops::gather::GatherRows;
use unitok::ops::{EncodeCx, Op, RowChunk, Storage};
use unitok::{DType, HostTensor, TensorDesc};

fn ids(shape: &[usize], v: u32, seed: u64) -> HostTensor {
    let mut r = Rng::new(seed);
    let n = shape.iter().product();
    HostTensor::u32(shape, (0..n).map(|_| r.below(v)).collect()).unwrap()
}

#[test]
fn gather_rows_widths_and_batches() {
    for d in [1, 7, 64, 257] {
        for v in [1, 10, 300] {
            let table = rand_tensor(&[v, d], (v * 1000 + d) as u64);
            check_op(
                GatherRows,
                &[&table, &ids(&[2, 3, 5], v as u32, d as u64)],
                0.0,
                0.0,
            );
        }
    }
    // Enough ids that the grid has many workgroups, and a 1-D id list.
    let table = rand_tensor(&[77, 96], 3);
    check_op(GatherRows, &[&table, &ids(&[4, 77], 77, 4)], 0.0, 0.0);
    check_op(GatherRows, &[&table, &ids(&[1], 77, 5)], 0.0, 0.0);
}

#[test]
fn gather_rows_out_of_range_ids_give_zeros() {
    let table = rand_tensor(&[10, 5], 1);
    let ids = HostTensor::u32(&[6], vec![9, 10, 0, u32::MAX, 11, 3]).unwrap();
    let got = check_op(GatherRows, &[&table, &ids], 0.0, 0.0);
    let y = got[0].as_f32().unwrap();
    for t in [1, 3, 4] {
        assert!(
            y[t * 5..t * 5 + 5].iter().all(|v| *v == 0.0),
            "row {t}: {:?}",
            &y[t * 5..t * 5 + 5]
        );
    }
}

#[test]
fn gather_rows_table_over_one_binding() {
    // A table just larger than one storage binding is split into row chunks by the executor;
    // the op gathers across them. lavapipe: 128 MiB bindings → 33000 × 1024 f32 = 135 MB.
    let caps = gpu().caps.clone();
    let d = 1024usize;
    let per = (caps.max_storage_binding / (d as u64 * 4)) as usize;
    let v = per + 232;
    let bytes = (v * d * 4) as u64;
    assert!(bytes > caps.max_storage_binding);
    if bytes > (1u64 << 30) {
        eprintln!(
            "skipping the real chunked gather: this adapter binds {} bytes at once (> 1 GiB of test data); \
             the per-chunk encoding is covered by gather_rows_encodes_one_dispatch_per_chunk",
            caps.max_storage_binding
        );
        return;
    }
    let data: Vec<f32> = (0..v * d)
        .map(|i| ((i % 65521) as f32) * 0.5 - (i / d) as f32)
        .collect();
    let table = HostTensor::f32(&[v, d], data).unwrap();
    let ids = HostTensor::u32(
        &[3, 3],
        vec![
            per as u32 - 1,
            per as u32,
            per as u32 + 1,
            0,
            v as u32 - 1,
            v as u32,
            5,
            u32::MAX,
            per as u32,
        ],
    )
    .unwrap();
    let got = check_op(GatherRows, &[&table, &ids], 0.0, 0.0);
    let y = got[0].as_f32().unwrap();
    let t = table.as_f32().unwrap();
    assert_eq!(
        &y[d..2 * d],
        &t[per * d..(per + 1) * d],
        "first row of the second chunk"
    );
    assert!(y[5 * d..6 * d].iter().all(|x| *x == 0.0));
}

#[test]
fn gather_rows_encodes_one_dispatch_per_chunk() {
    let caps = gpu().caps.clone();
    let table = Storage {
        desc: TensorDesc::f32(&[100, 8]),
        chunks: vec![
            RowChunk { start: 0, rows: 40 },
            RowChunk {
                start: 40,
                rows: 40,
            },
            RowChunk {
                start: 80,
                rows: 20,
            },
        ],
    };
    let ids = Storage {
        desc: TensorDesc::new(&[3, 4], DType::U32),
        chunks: vec![RowChunk { start: 0, rows: 3 }],
    };
    let outputs = [TensorDesc::f32(&[3, 4, 8])];
    let cx = EncodeCx {
        inputs: &[table, ids],
        outputs: &outputs,
        output_chunks: &[],
        scratch: &[],
        caps: &caps,
    };
    let ds = GatherRows.encode(&cx).unwrap();
    assert_eq!(ds.len(), 3);
    for (k, dsp) in ds.iter().enumerate() {
        assert_eq!(dsp.binds[0].chunk, k);
        let w: &[u32] = bytemuck::cast_slice(&dsp.params[..32]);
        assert_eq!(
            (w[2], w[3], w[4], w[5]),
            ([0, 40, 80][k], [40, 40, 20][k], 100, (k == 0) as u32)
        );
    }
    assert!(GatherRows.accepts_chunked(0) && !GatherRows.accepts_chunked(1));
}

#[test]
fn gather_rows_shape_errors() {
    let table = rand_tensor(&[10, 4], 1);
    let bad = rand_tensor(&[3], 2);
    let e = run_op_cpu(&GatherRows, &[&table, &bad])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gather_rows") && e.contains("U32 ids") && e.contains("[10, 4]"),
        "{e}"
    );
    let mut g = unitok::Graph::new();
    let t = g.param("t", &[10, 4], DType::F32);
    let i = g.input("i", &[2, 7], DType::U32);
    let y = g.gather_rows(t, i).unwrap();
    assert_eq!(g.shape(y), &[2, 7, 4]);
}

#[test]
fn gather_rows_writes_zeros_into_a_reused_buffer() {
    // The output lands in an arena slot that held other data: out-of-range rows must be
    // written as zeros, not left as whatever was there.
    use unitok::Graph;
    let (v, d, n) = (10, 16, 6);
    let mut g = Graph::new();
    let x = g.input("x", &[n, d], DType::F32);
    let table = g.param("table", &[v, d], DType::F32);
    let ids = g.input("ids", &[n], DType::U32);
    let a = g.scale(x, 2.0).unwrap();
    let b = g.scale(a, 0.5).unwrap();
    let y = g.gather_rows(table, ids).unwrap();
    g.mark_output(b);
    g.mark_output(y);
    let mut plan = g.compile(&gpu()).unwrap();
    assert_eq!(
        plan.storage_of(y),
        plan.storage_of(a),
        "the test needs y to reuse a's slot"
    );
    let xs = rand_scaled(&[n, d], 1, 5.0);
    let tab = rand_tensor(&[v, d], 2);
    let idv = HostTensor::u32(&[n], vec![3, 10, 0, 99, 9, u32::MAX]).unwrap();
    plan.write(x, &xs).unwrap();
    plan.write(table, &tab).unwrap();
    plan.write(ids, &idv).unwrap();
    plan.run().unwrap();
    let got = plan.read(y).unwrap();
    let want = run_op_cpu(&GatherRows, &[&tab, &idv]).unwrap();
    assert_close("gather_rows into a reused slot", &got, &want[0], 0.0, 0.0);
}

#[test]
fn gather_rows_large_grid_is_folded() {
    // 16500 ids × 1024 wide = 16.9M outputs: more than 65535 workgroups of 256 in x.
    let table = rand_tensor(&[40, 1024], 9);
    let ids = ids(&[16500], 41, 10); // includes id 40, out of range
    check_op(GatherRows, &[&table, &ids], 0.0, 0.0);
}
