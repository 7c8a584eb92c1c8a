//! Mean over an axis against the CPU reference.

use crate::common::*;
use unitok::graph::run_op_cpu;
use unitok::ops::reduce::Mean;

/// `check_op`, then print the max abs / rel error (visible with --nocapture).
fn check<O: unitok::ops::Op + Clone>(
    op: O,
    inputs: &[&unitok::HostTensor],
    atol: f32,
    rtol: f32,
) -> Vec<unitok::HostTensor> {
    let got = check_op(op.clone(), inputs, atol, rtol);
    let want = unitok::graph::run_op_cpu(&op, inputs).unwrap();
    let (abs, rel, _) = errors(got[0].as_f32().unwrap(), want[0].as_f32().unwrap());
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape.clone()).collect();
    eprintln!(
        "{} on {shapes:?}: max abs err {abs:.2e}, max rel err {rel:.2e}",
        op.name()
    );
    got
}

#[test]
fn mean_every_axis() {
    let x = rand_scaled(&[3, 5, 7], 1, 2.0);
    for axis in 0..3 {
        check(Mean { axis }, &[&x], 1e-6, 1e-5);
    }
}

#[test]
fn mean_over_tokens_and_channels() {
    // The CLIP image branch: [B, L, C] → [B, C]; and means over the last dim (rows kernel).
    let x = rand_scaled(&[2, 256, 64], 2, 1.0);
    check(Mean { axis: 1 }, &[&x], 1e-6, 1e-5);
    let x = rand_scaled(&[4, 1000], 3, 1.0);
    check(Mean { axis: 1 }, &[&x], 1e-6, 1e-5);
    check(Mean { axis: 0 }, &[&x], 1e-6, 1e-5);
}

#[test]
fn mean_rows_and_columns_at_tile_edges() {
    // Rows kernel with 2 invocations a row (128 rows a workgroup).
    for rows in edge_sizes(128) {
        check(
            Mean { axis: 1 },
            &[&rand_tensor(&[rows, 8], rows as u64)],
            1e-6,
            1e-5,
        );
    }
    // Cols kernel: 64 columns a workgroup (SPLIT 4), 16 (SPLIT 16), 4 (SPLIT 64).
    for (a, tile) in [(9, 64), (100, 16), (700, 4)] {
        for inner in edge_sizes(tile) {
            let x = rand_tensor(&[2, a, inner], (a * 1000 + inner) as u64);
            check(Mean { axis: 1 }, &[&x], 1e-6, 1e-5);
        }
    }
}

#[test]
fn mean_reduced_lengths() {
    // Every reduced length over the last axis (rows kernel) and a middle axis (cols kernel).
    for a in [1, 7, 8, 255, 256, 257, 1000] {
        check(
            Mean { axis: 1 },
            &[&rand_tensor(&[3, a], a as u64)],
            1e-6,
            1e-5,
        );
        check(
            Mean { axis: 1 },
            &[&rand_tensor(&[2, a, 5], a as u64 + 1)],
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn mean_odd_shapes() {
    for (shape, axis) in [
        (vec![300], 0),
        (vec![1, 1, 1], 1),
        (vec![1, 5000, 3], 1),
        (vec![7, 1], 1),
        (vec![1, 257], 1),
    ] {
        let x = rand_scaled(&shape, shape.iter().sum::<usize>() as u64, 3.0);
        check(Mean { axis }, &[&x], 1e-6, 1e-5);
    }
}

#[test]
fn mean_rejects_bad_axis() {
    let x = rand_tensor(&[2, 3], 1);
    let e = run_op_cpu(&Mean { axis: 2 }, &[&x])
        .unwrap_err()
        .to_string();
    assert!(e.contains("mean(axis=2)") && e.contains("[2, 3]"), "{e}");
    let mut g = unitok::Graph::new();
    let t = g.input("t", &[2, 3, 4], unitok::DType::F32);
    let m = g.mean(t, 1).unwrap();
    assert_eq!(g.shape(m), &[2, 4]);
}
