//! Softmax over the last dim vs the f64 reference: short rows (one invocation per row), rows
//! around and far past the workgroup size, rows of 1, large values, many rows.

use crate::common::*;
use unitok::ops::softmax::{Softmax, SMALL_ROW};
use unitok::HostTensor;

#[test]
fn row_lengths() {
    let mut lens = vec![1, 2, 7, SMALL_ROW - 1, SMALL_ROW, SMALL_ROW + 1, 77];
    lens.extend(edge_sizes(128));
    lens.extend([1000, 4099]);
    for n in lens {
        let x = rand_scaled(&[3, n], n as u64, 6.0);
        check_op(Softmax, &[&x], 1e-7, 1e-5);
    }
}

#[test]
fn batched_shapes_and_many_rows() {
    let x = rand_scaled(&[2, 5, 3, 129], 3, 4.0);
    check_op(Softmax, &[&x], 1e-7, 1e-5);
    let x = rand_scaled(&[1000, 16], 4, 4.0);
    check_op(Softmax, &[&x], 1e-7, 1e-5);
    let x = rand_scaled(&[700, 40], 5, 4.0);
    check_op(Softmax, &[&x], 1e-7, 1e-5);
}

/// Rows of a multiple of 4 take the texture kernel where the adapter takes texture operands
/// (one lane per row, 64 lanes per workgroup): rows around the workgroup, filled by the copy
/// engine (64 floats = one 256-byte copy row) and by the packing kernel (20 floats).
#[test]
fn texture_kernel_rows() {
    use unitok::ops::Op;
    for (rows, n) in [(63, 64), (64, 64), (130, 64), (65, 20), (3, 256)] {
        if takes_texture_operands() {
            let d = unitok::TensorDesc::f32(&[rows, n]);
            assert_eq!(
                Softmax.scratch_textures(&[&d], &gpu().caps).len(),
                1,
                "[{rows}, {n}]"
            );
        }
        let x = rand_scaled(&[rows, n], (rows * n) as u64, 6.0);
        check_op(Softmax, &[&x], 1e-7, 1e-5);
    }
}

#[test]
fn rows_of_one_are_one() {
    let x = rand_scaled(&[5, 1], 6, 1e4);
    let got = check_op(Softmax, &[&x], 0.0, 0.0);
    assert!(got[0].as_f32().unwrap().iter().all(|v| *v == 1.0));
}

#[test]
fn large_values_are_stable() {
    for n in [8, 300] {
        let mut x = rand_scaled(&[4, n], 7, 1.0);
        if let unitok::tensor::HostData::F32(v) = &mut x.data {
            for (k, e) in v.iter_mut().enumerate() {
                // rows shifted by ±1e30-ish, values spread over thousands
                *e = *e * 3000.0 + [1e30, -1e30, 88.0, -1e4][k / n];
            }
        }
        let got = check_op(Softmax, &[&x], 1e-6, 1e-4);
        let g = got[0].as_f32().unwrap();
        assert!(g.iter().all(|v| v.is_finite()));
        for r in g.chunks(n) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
    // Equal huge values: uniform.
    let x = HostTensor::f32(&[1, 300], vec![3.0e38; 300]).unwrap();
    check_op(Softmax, &[&x], 1e-9, 1e-5);
}

#[test]
fn empty_is_a_typed_error() {
    let x = HostTensor::f32(&[3, 0], vec![]).unwrap();
    let e = unitok::graph::run_op_cpu(&Softmax, &[&x]).unwrap_err();
    assert!(e.to_string().contains("[3, 0]"), "{e}");
}
