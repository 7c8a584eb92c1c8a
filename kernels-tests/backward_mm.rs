//! Backward rules of the matmul/linear, softmax, mean, gather_rows and mcq ops: finite
//! differences of the CPU reference against the GPU backward, and every gradient kernel
//! against its CPU reference on edge shapes.

use crate::common::*;
use unitok::ops::matmul::Matmul;
use unitok::{DType, Graph, HostTensor};

/// Every transpose combination, batched and shared b, alpha, bias, odd sizes and tile edges.
#[test]
fn matmul_backward_matches_finite_differences() {
    // (batch dims, m, k, n, shared b)
    let cases: &[(&[usize], usize, usize, usize, bool)] = &[
        (&[], 7, 5, 9, true),
        (&[2], 9, 12, 8, false),
        (&[2, 3], 5, 4, 7, false),
        (&[3], 9, 8, 17, true),
        (&[2], 16, 12, 64, true),
        (&[], 8, 16, 65, true),
    ];
    let mut seed = 100;
    for &(batch, m, k, n, shared) in cases {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let mut ash = batch.to_vec();
            ash.extend(if ta { [k, m] } else { [m, k] });
            let mut bsh = if shared { vec![] } else { batch.to_vec() };
            bsh.extend(if tb { [n, k] } else { [k, n] });
            seed += 3;
            let a = rand_tensor(&ash, seed);
            let b = rand_tensor(&bsh, seed + 1);
            let bias = rand_tensor(&[n], seed + 2);
            for alpha in [1.0f32, -0.75] {
                check_backward(
                    Matmul::new(ta, tb).scaled(alpha),
                    &[&a, &b],
                    &[],
                    1e-2,
                    2e-3,
                );
            }
            if shared {
                check_backward(
                    Matmul::new(ta, tb).without_subgroups(),
                    &[&a, &b, &bias],
                    &[],
                    1e-2,
                    2e-3,
                );
            }
        }
    }
}

/// `Graph::linear` on a single vector (reshaped around the product) differentiates end to end.
#[test]
fn linear_vector_backward_through_graph() {
    let (i, o) = (13usize, 6usize);
    let x = rand_tensor(&[i], 1);
    let w = rand_tensor(&[o, i], 2);
    let bias = rand_tensor(&[o], 3);
    let mut g = Graph::new();
    let xi = g.input("x", &[i], DType::F32);
    let wi = g.input("w", &[o, i], DType::F32);
    let bi = g.input("b", &[o], DType::F32);
    let y = g.linear(xi, wi, Some(bi)).unwrap();
    let l = g
        .apply1(unitok::ops::reduce::Mean { axis: 0 }, &[y])
        .unwrap();
    let grads = g.backward(l, &[xi, wi, bi]).unwrap();
    for t in &grads {
        g.mark_output(*t);
    }
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(xi, &x).unwrap();
    plan.write(wi, &w).unwrap();
    plan.write(bi, &bias).unwrap();
    plan.run().unwrap();
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    // loss = mean_j (w x + b)_j: dx_i = Σ_j w_ji / o, dw_ji = x_i / o, db_j = 1 / o.
    let dx: Vec<f32> = (0..i)
        .map(|c| (0..o).map(|r| wv[r * i + c]).sum::<f32>() / o as f32)
        .collect();
    let dw: Vec<f32> = (0..o * i).map(|e| xv[e % i] / o as f32).collect();
    let db = vec![1.0 / o as f32; o];
    for (t, want) in grads.iter().zip([dx, dw, db]) {
        let got = plan.read(*t).unwrap();
        let shape = got.shape.clone();
        assert_close(
            "linear grad",
            &got,
            &HostTensor::f32(&shape, want).unwrap(),
            1e-6,
            1e-5,
        );
    }
}
