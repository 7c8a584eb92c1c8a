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

fn ids(shape: &[usize], below: u32, seed: u64) -> HostTensor {
    let mut r = Rng::new(seed);
    let n = shape.iter().product();
    HostTensor::u32(shape, (0..n).map(|_| r.below(below)).collect()).unwrap()
}

#[test]
fn softmax_backward_matches_finite_differences() {
    use unitok::ops::softmax::{Softmax, SoftmaxGrad, SMALL_ROW};
    for n in [1usize, 7, SMALL_ROW, SMALL_ROW + 1, 127, 128, 129, 300] {
        let x = rand_scaled(&[3, n], n as u64, 3.0);
        check_backward(Softmax, &[&x], &[], 1e-2, 3e-3);
    }
    for (rows, n) in [
        (1usize, 1usize),
        (70, 7),
        (5, 32),
        (5, 33),
        (3, 255),
        (2, 257),
        (4, 1000),
    ] {
        let y = rand_tensor(&[rows, n], 11);
        let dy = rand_tensor(&[rows, n], 12);
        check_op(SoftmaxGrad, &[&y, &dy], 1e-5, 1e-4);
    }
}

#[test]
fn mean_backward_matches_finite_differences() {
    use unitok::ops::reduce::{Mean, MeanGrad};
    let x = rand_tensor(&[2, 33, 5], 4);
    for axis in 0..3 {
        check_backward(Mean { axis }, &[&x], &[], 1e-2, 1e-4);
    }
    check_backward(
        Mean { axis: 0 },
        &[&rand_tensor(&[257], 5)],
        &[],
        1e-2,
        1e-4,
    );
    for (shape, axis) in [
        (&[3usize, 257][..], 1usize),
        (&[255, 3], 0),
        (&[2, 7, 256], 1),
        (&[1], 0),
    ] {
        let mut ys = shape.to_vec();
        ys.remove(axis);
        let dy = rand_tensor(&ys, 6);
        check_op(
            MeanGrad {
                axis,
                x_shape: shape.to_vec(),
            },
            &[&dy],
            0.0,
            1e-6,
        );
    }
}

#[test]
fn gather_backward_is_a_deterministic_scatter_add() {
    use unitok::ops::gather::{GatherRows, GatherRowsGrad};
    // Repeated ids sum; out-of-range ids contribute nothing; ids get no gradient. Tables with
    // fewer rows than tokens take the per-row kernel, larger ones the per-token pair.
    for (v, d, idshape) in [
        (300usize, 33usize, &[2usize, 20][..]),
        (1000, 5, &[64]),
        (50, 12, &[2, 5]),
        (7, 63, &[3, 4]),
        (9, 64, &[17]),
        (5, 65, &[2, 3, 2]),
    ] {
        let table = rand_tensor(&[v, d], v as u64);
        let id = ids(idshape, v as u32 + 2, d as u64);
        check_backward(GatherRows, &[&table, &id], &[1], 1e-2, 1e-4);
        let mut dys = idshape.to_vec();
        dys.push(d);
        check_op(
            GatherRowsGrad { rows: v, groups: 1 },
            &[&id, &rand_tensor(&dys, 3)],
            1e-6,
            1e-6,
        );
        // Bit-for-bit repeatable.
        let gpu = gpu();
        let dy = rand_tensor(&dys, 4);
        let op = GatherRowsGrad { rows: v, groups: 1 };
        let a = unitok::graph::run_op_gpu(&gpu, op.clone(), &[&id, &dy]).unwrap();
        let b = unitok::graph::run_op_gpu(&gpu, op, &[&id, &dy]).unwrap();
        assert_eq!(a[0].as_f32().unwrap(), b[0].as_f32().unwrap());
    }
    // The gradient of ids is None.
    let mut g = Graph::new();
    let t = g.input("t", &[4, 3], DType::F32);
    let i = g.input("i", &[2], DType::U32);
    let y = g.gather_rows(t, i).unwrap();
    let node = g.nodes.last().unwrap().clone();
    let gy = g.input("gy", &[2, 3], DType::F32);
    let mut cx = unitok::ops::BackwardCx {
        g: &mut g,
        inputs: &node.inputs,
        outputs: &node.outputs,
        grads: &[Some(gy)],
    };
    let grads = node.op.backward(&mut cx).unwrap();
    assert!(grads[0].is_some() && grads[1].is_none(), "{y:?}");
}

#[test]
fn mcq_backward_matches_finite_differences() {
    use unitok::ops::mcq::{McqArgmax, McqCodeGrad, McqLookup};
    for (g, k, d, n) in [
        (2usize, 5usize, 8usize, 7usize),
        (1, 3, 1, 4),
        (3, 70, 32, 65),
    ] {
        let cb = rand_tensor(&[g, k, d], (g * k) as u64);
        let idx = ids(&[n, g], k as u32 + 1, 9);
        check_backward(McqLookup, &[&cb, &idx], &[1], 1e-3, 3e-3);
        let dy = rand_tensor(&[n, g * d], 10);
        check_op(McqCodeGrad, &[&cb, &idx, &dy], 1e-5, 1e-4);
    }
    // A zero code row (‖w‖ ≤ eps) takes the S / eps branch in both.
    let mut cb = rand_tensor(&[1, 3, 4], 1);
    if let unitok::tensor::HostData::F32(v) = &mut cb.data {
        v[4..8].iter_mut().for_each(|x| *x = 0.0);
    }
    let idx = HostTensor::u32(&[3, 1], vec![0, 2, 2]).unwrap();
    check_op(
        McqCodeGrad,
        &[&cb, &idx, &rand_tensor(&[3, 4], 2)],
        1e-5,
        1e-4,
    );
    // McqArgmax: z gets None; the codebooks get the lookup gradient at the chosen indices.
    let z = rand_tensor(&[9, 16], 3);
    let cb = rand_tensor(&[2, 6, 8], 4);
    let dy = rand_tensor(&[9, 16], 5);
    let mut gr = Graph::new();
    let zi = gr.input("z", &[9, 16], DType::F32);
    let ci = gr.input("cb", &[2, 6, 8], DType::F32);
    gr.mcq_argmax(zi, ci).unwrap();
    let node = gr.nodes.last().unwrap().clone();
    let gy = gr.input("gy", &[9, 16], DType::F32);
    let mut cx = unitok::ops::BackwardCx {
        g: &mut gr,
        inputs: &node.inputs,
        outputs: &node.outputs,
        grads: &[None, Some(gy)],
    };
    let grads = node.op.backward(&mut cx).unwrap();
    assert!(grads[0].is_none());
    let dcb = grads[1].unwrap();
    gr.mark_output(dcb);
    let mut plan = gr.compile(&gpu()).unwrap();
    plan.write(zi, &z).unwrap();
    plan.write(ci, &cb).unwrap();
    plan.write(gy, &dy).unwrap();
    plan.run().unwrap();
    let idx = unitok::graph::run_op_cpu(&McqArgmax, &[&z, &cb])
        .unwrap()
        .remove(0);
    let want = unitok::graph::run_op_cpu(&McqCodeGrad, &[&cb, &idx, &dy])
        .unwrap()
        .remove(0);
    assert_close(
        "mcq_argmax codebook grad",
        &plan.read(dcb).unwrap(),
        &want,
        1e-5,
        1e-4,
    );
}
