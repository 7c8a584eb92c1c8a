//! Backward of LayerNorm, LayerNorm2d and the chunked L2 normalisation: finite-difference
//! checks of the rules, and the gradient kernels against their CPU references.

use crate::common::*;
use unitok::graph::{run_op_cpu, run_op_gpu};
use unitok::ops::norm::{L2NormChunks, L2NormChunksGrad, LayerNorm, LayerNorm2d, LayerNormGrad};
use unitok::HostTensor;

/// `check_op`, printing the max abs / rel error of every output (visible with --nocapture).
fn check<O: unitok::ops::Op + Clone>(op: O, inputs: &[&HostTensor], atol: f32, rtol: f32) {
    let got = check_op(op.clone(), inputs, atol, rtol);
    let want = run_op_cpu(&op, inputs).unwrap();
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape.clone()).collect();
    let errs: Vec<String> = got
        .iter()
        .zip(&want)
        .map(|(g, w)| {
            let (abs, rel, _) = errors(g.as_f32().unwrap(), w.as_f32().unwrap());
            format!("abs {abs:.2e} rel {rel:.2e}")
        })
        .collect();
    eprintln!("{} on {shapes:?}: {}", op.name(), errs.join("; "));
}

fn affine(c: usize, seed: u64) -> (HostTensor, HostTensor) {
    (
        rand_scaled(&[c], seed, 1.5),
        rand_scaled(&[c], seed + 1, 0.5),
    )
}

#[test]
fn layer_norm_backward_matches_finite_differences() {
    for (shape, seed) in [
        (&[3usize, 7][..], 1u64),
        (&[2, 3, 33], 2),
        (&[2, 257], 3),
        (&[5, 1], 4),
    ] {
        let c = *shape.last().unwrap();
        let x = rand_scaled(shape, seed, 2.0);
        let (g, b) = affine(c, 10 + seed);
        check_backward(LayerNorm { eps: 1e-5 }, &[&x, &g, &b], &[], 1e-2, 5e-3);
    }
}

#[test]
fn layer_norm2d_backward_matches_finite_differences() {
    for (shape, seed) in [
        (&[2usize, 7, 3, 5][..], 1u64),
        (&[1, 4, 8, 8], 2),
        (&[3, 33, 2, 3], 3),
    ] {
        let x = rand_scaled(shape, seed, 2.0);
        let (g, b) = affine(shape[1], 20 + seed);
        check_backward(LayerNorm2d { eps: 1e-6 }, &[&x, &g, &b], &[], 1e-2, 5e-3);
    }
}

#[test]
fn l2_norm_chunks_backward_matches_finite_differences() {
    for (shape, chunk) in [(&[3usize, 24][..], 8usize), (&[2, 257], 257), (&[4, 9], 3)] {
        let x = rand_scaled(shape, chunk as u64, 2.0);
        check_backward(L2NormChunks { chunk, eps: 1e-12 }, &[&x], &[], 1e-3, 5e-3);
    }
}

#[test]
fn layer_norm_grad_row_lengths_and_counts() {
    // Row lengths across the threads-per-row variants and the channel tiles of the partial
    // sums (C = 4096: 16 tiles of 256); row counts at the rows-per-workgroup edges.
    for c in [1, 7, 8, 255, 256, 257, 1000, 4096] {
        let rows: &[usize] = if c >= 1000 { &[2, 3] } else { &[3, 5] };
        let x = rand_scaled(&[rows[0], rows[1], c], c as u64, 3.0);
        let g = rand_scaled(&[c], 100 + c as u64, 1.5);
        let dy = rand_tensor(&x.shape, 200 + c as u64);
        check(
            LayerNormGrad {
                eps: 1e-6,
                nchw: false,
            },
            &[&x, &g, &dy],
            1e-4,
            1e-4,
        );
    }
    // C = 8: 32 row lanes in the partial sums (31/32/33 rows), and 300 rows in 10 blocks of 30.
    for rows in edge_sizes(32).into_iter().chain([300]) {
        let x = rand_scaled(&[rows, 8], rows as u64, 2.0);
        let g = rand_scaled(&[8], 7, 1.5);
        let dy = rand_tensor(&x.shape, 8 + rows as u64);
        check(
            LayerNormGrad {
                eps: 1e-5,
                nchw: false,
            },
            &[&x, &g, &dy],
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn layer_norm2d_grad_pixels_channels_batches() {
    // 1, 63, 64, 65 and 132 pixels; channels for SPLIT = 4 / 16 / 64; [2, 3, 17, 19] has 646
    // positions, so the partial sums use several blocks.
    for (n, c, h, w) in [
        (1, 1, 1, 1),
        (2, 7, 7, 9),
        (3, 8, 8, 8),
        (1, 33, 5, 13),
        (2, 300, 11, 12),
        (2, 3, 17, 19),
    ] {
        let x = rand_scaled(&[n, c, h, w], (n * c * h * w) as u64, 3.0);
        let g = rand_scaled(&[c], c as u64, 1.5);
        let dy = rand_tensor(&x.shape, 5 + c as u64);
        check(
            LayerNormGrad {
                eps: 1e-6,
                nchw: true,
            },
            &[&x, &g, &dy],
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn layer_norm_grad_large_offset_and_constant_rows() {
    // Data far from zero: the shifted statistics keep x̂ accurate.
    let c = 1000;
    let mut x = rand_scaled(&[4, c], 5, 1.0).into_f32().unwrap();
    for v in x.iter_mut() {
        *v += 1000.0;
    }
    let x = HostTensor::f32(&[4, c], x).unwrap();
    let g = rand_scaled(&[c], 9, 1.5);
    let dy = rand_tensor(&[4, c], 10);
    check(
        LayerNormGrad {
            eps: 1e-6,
            nchw: false,
        },
        &[&x, &g, &dy],
        2e-3,
        2e-3,
    );
    // Constant rows: x̂ = 0 exactly, dx = (dy·γ − mean(dy·γ))/sqrt(eps), dγ gets nothing.
    let x = HostTensor::f32(&[3, 300], vec![12.5; 900]).unwrap();
    let g = rand_scaled(&[300], 11, 1.5);
    let dy = rand_tensor(&[3, 300], 12);
    check(
        LayerNormGrad {
            eps: 1e-6,
            nchw: false,
        },
        &[&x, &g, &dy],
        1e-3,
        1e-5,
    );
    let x2 = HostTensor::f32(&[2, 5, 3, 4], vec![-3.0; 120]).unwrap();
    let g2 = rand_scaled(&[5], 13, 1.5);
    let dy2 = rand_tensor(&[2, 5, 3, 4], 14);
    check(
        LayerNormGrad {
            eps: 1e-6,
            nchw: true,
        },
        &[&x2, &g2, &dy2],
        1e-3,
        1e-5,
    );
}

#[test]
fn layer_norm_grad_is_deterministic() {
    for (shape, nchw) in [(&[300usize, 40][..], false), (&[2, 6, 17, 19], true)] {
        let x = rand_scaled(shape, 3, 2.0);
        // the normalised dim is dim 1 of both shapes
        let g = rand_scaled(&[shape[1]], 4, 1.0);
        let dy = rand_tensor(shape, 5);
        let op = LayerNormGrad { eps: 1e-6, nchw };
        let a = run_op_gpu(&gpu(), op.clone(), &[&x, &g, &dy]).unwrap();
        let b = run_op_gpu(&gpu(), op, &[&x, &g, &dy]).unwrap();
        for (u, v) in a.iter().zip(&b) {
            assert_eq!(u.as_f32().unwrap(), v.as_f32().unwrap(), "{shape:?}");
        }
    }
}

#[test]
fn l2_norm_chunks_grad_chunk_lengths_and_zero_chunks() {
    for chunk in [1, 3, 8, 255, 256, 257, 1024] {
        for rows in [1, 5] {
            let x = rand_scaled(&[rows, 2 * chunk], (chunk + rows) as u64, 2.0);
            let dy = rand_tensor(&x.shape, 3 + chunk as u64);
            check(
                L2NormChunksGrad { chunk, eps: 1e-12 },
                &[&x, &dy],
                1e-5,
                1e-4,
            );
        }
    }
    // Chunks of 8 at the rows-per-workgroup edge (TPR 2: 128 rows a workgroup).
    for rows in edge_sizes(128) {
        let x = rand_scaled(&[rows, 8], rows as u64, 2.0);
        let dy = rand_tensor(&x.shape, 1 + rows as u64);
        check(
            L2NormChunksGrad {
                chunk: 8,
                eps: 1e-12,
            },
            &[&x, &dy],
            1e-5,
            1e-4,
        );
    }
    // A zero chunk (the clamp: dy/eps) next to a tiny one (norm 1e-8 > eps) and a normal one.
    let mut x = vec![0.0f32; 24];
    for (i, v) in x[8..16].iter_mut().enumerate() {
        *v = 1e-8 * (i as f32 - 3.5);
    }
    for (i, v) in x[16..].iter_mut().enumerate() {
        *v = i as f32 - 2.0;
    }
    let x = HostTensor::f32(&[1, 24], x).unwrap();
    let dy = rand_tensor(&[1, 24], 9);
    check(
        L2NormChunksGrad {
            chunk: 8,
            eps: 1e-12,
        },
        &[&x, &dy],
        0.0,
        1e-4,
    );
}

#[test]
fn norm_grads_reject_bad_shapes() {
    let gpu_free = |op: &dyn unitok::ops::Op, ins: &[&HostTensor]| {
        run_op_cpu(op, ins).map(|_| ()).unwrap_err().to_string()
    };
    let x = rand_tensor(&[2, 6], 1);
    let g = rand_tensor(&[6], 2);
    let e = gpu_free(
        &LayerNormGrad {
            eps: 1e-6,
            nchw: false,
        },
        &[&x, &g, &rand_tensor(&[2, 5], 3)],
    );
    assert!(e.contains("layer_norm_grad") && e.contains("dy"), "{e}");
    let e = gpu_free(
        &LayerNormGrad {
            eps: 1e-6,
            nchw: true,
        },
        &[&x, &g, &x],
    );
    assert!(e.contains("NCHW"), "{e}");
    let e = gpu_free(
        &L2NormChunksGrad {
            chunk: 4,
            eps: 1e-12,
        },
        &[&x, &x],
    );
    assert!(e.contains("chunk 4"), "{e}");
}
