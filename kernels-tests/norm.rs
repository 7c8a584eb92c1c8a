//! LayerNorm, LayerNorm2d and chunked L2 normalisation against their CPU references.

use crate::common::*;
use unitok::graph::run_op_cpu;
use unitok::ops::norm::{L2NormChunks, LayerNorm, LayerNorm2d};
use unitok::HostTensor;

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

fn affine(c: usize, seed: u64) -> (HostTensor, HostTensor) {
    (
        rand_scaled(&[c], seed, 1.5),
        rand_scaled(&[c], seed + 1, 0.5),
    )
}

#[test]
fn layer_norm_row_lengths() {
    // Row lengths across the threads-per-row variants (1, 2, 64, 128, 256 invocations a row).
    for c in [1, 7, 8, 255, 256, 257, 1000, 4096] {
        let rows: &[usize] = if c >= 1000 { &[2, 3] } else { &[3, 5] };
        let x = rand_scaled(&[rows[0], rows[1], c], c as u64, 3.0);
        let (g, b) = affine(c, 100 + c as u64);
        check(LayerNorm { eps: 1e-6 }, &[&x, &g, &b], 2e-5, 2e-5);
    }
}

#[test]
fn layer_norm_row_count_at_workgroup_edges() {
    // C = 8 packs 128 rows in a workgroup; C = 64 packs 16.
    for (c, per) in [(8, 128), (64, 16)] {
        for rows in edge_sizes(per) {
            let x = rand_scaled(&[rows, c], (rows * 31 + c) as u64, 2.0);
            let (g, b) = affine(c, 7);
            check(LayerNorm { eps: 1e-5 }, &[&x, &g, &b], 2e-5, 2e-5);
        }
    }
}

#[test]
fn layer_norm_large_offset_and_constant_rows() {
    // Data far from zero: the shifted two-pass statistics keep the precision.
    let c = 1000;
    let mut x = rand_scaled(&[4, c], 5, 1.0).into_f32().unwrap();
    for v in x.iter_mut() {
        *v += 1000.0;
    }
    let x = HostTensor::f32(&[4, c], x).unwrap();
    let (g, b) = affine(c, 9);
    check(LayerNorm { eps: 1e-6 }, &[&x, &g, &b], 1e-4, 1e-4);
    // A constant row normalises to exactly beta.
    let x = HostTensor::f32(&[2, 300], vec![12.5; 600]).unwrap();
    let (g, b) = affine(300, 11);
    let got = check(LayerNorm { eps: 1e-6 }, &[&x, &g, &b], 0.0, 0.0);
    assert_eq!(&got[0].as_f32().unwrap()[..300], b.as_f32().unwrap());
}

#[test]
fn layer_norm2d_pixels_channels_batches() {
    // (H, W) give 1, 63, 64, 65 and 132 pixels; channels cover the SPLIT = 4 and 16 variants.
    for (h, w) in [(1, 1), (7, 9), (8, 8), (5, 13), (11, 12)] {
        for c in [1, 7, 8, 33] {
            for n in [1, 3] {
                let x = rand_scaled(&[n, c, h, w], (h * w * 100 + c * 10 + n) as u64, 3.0);
                let (g, b) = affine(c, c as u64);
                check(LayerNorm2d { eps: 1e-6 }, &[&x, &g, &b], 2e-5, 2e-5);
            }
        }
    }
}

#[test]
fn layer_norm2d_many_channels_and_many_pixels() {
    // Long channel loop with few pixels (SPLIT = 64), and many pixels (SPLIT = 4, 64 a tile).
    for shape in [
        [2usize, 300, 3, 5],
        [2, 32, 64, 65],
        [1, 1024, 4, 4],
        [1, 255, 1, 7],
        [2, 256, 2, 5],
        [1, 257, 3, 3],
        [1, 1000, 2, 2],
    ] {
        let x = rand_scaled(&shape, shape[1] as u64, 2.0);
        let (g, b) = affine(shape[1], 3);
        check(LayerNorm2d { eps: 1e-6 }, &[&x, &g, &b], 2e-5, 2e-5);
    }
}

#[test]
fn l2_norm_chunks_sizes() {
    for (chunk, c, rows) in [
        (1, 5, 3),
        (7, 14, 5),
        (256, 512, 3),
        (257, 257, 3),
        (4, 64, 7),
        (8, 64, 129),
        (8, 8, 300),
        (255, 510, 3),
        (768, 768, 4),
        (1000, 2000, 2),
    ] {
        let x = rand_scaled(&[rows, c], (chunk * 7 + c) as u64, 4.0);
        check(L2NormChunks { chunk, eps: 1e-12 }, &[&x], 1e-6, 1e-5);
    }
}

#[test]
fn l2_norm_chunks_zero_and_small_chunks() {
    // A zero chunk stays zero (divided by eps); small values still normalise to unit length.
    let mut v = vec![0.0f32; 32];
    for (i, x) in v.iter_mut().enumerate().skip(8).take(8) {
        *x = (i as f32 - 11.5) * 1e-8;
    }
    for (i, x) in v.iter_mut().enumerate().skip(16) {
        *x = (i as f32).sin() * 50.0;
    }
    let x = HostTensor::f32(&[4, 8], v).unwrap();
    let got = check(
        L2NormChunks {
            chunk: 8,
            eps: 1e-12,
        },
        &[&x],
        1e-7,
        1e-6,
    );
    let y = got[0].as_f32().unwrap();
    assert!(y[..8].iter().all(|v| *v == 0.0));
    let n: f32 = y[8..16].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((n - 1.0).abs() < 1e-5, "norm {n}");
}

#[test]
fn shape_errors_name_op_and_shapes() {
    let x = rand_tensor(&[2, 6], 1);
    let (g, b) = affine(5, 1);
    let e = run_op_cpu(&LayerNorm { eps: 1e-6 }, &[&x, &g, &b])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer_norm") && e.contains("[2, 6]") && e.contains("[5]"),
        "{e}"
    );
    let e = run_op_cpu(&LayerNorm2d { eps: 1e-6 }, &[&x, &g, &b])
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer_norm2d") && e.contains("rank 4"), "{e}");
    let e = run_op_cpu(
        &L2NormChunks {
            chunk: 4,
            eps: 1e-12,
        },
        &[&x],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("chunk 4") && e.contains("[2, 6]"), "{e}");
    let e = run_op_cpu(&LayerNorm { eps: 1e-6 }, &[&x])
        .unwrap_err()
        .to_string();
    assert!(e.contains("takes 3 operands"), "{e}");
}

#[test]
fn builders_record_ops() {
    use unitok::{DType, Graph};
    let mut gr = Graph::new();
    let x = gr.input("x", &[2, 4, 3, 3], DType::F32);
    let g = gr.param("g", &[4], DType::F32);
    let b = gr.param("b", &[4], DType::F32);
    let y = gr.layer_norm2d(x, g, b, 1e-6).unwrap();
    assert_eq!(gr.shape(y), &[2, 4, 3, 3]);
    let t = gr.input("t", &[5, 3], DType::F32);
    let g3 = gr.param("g3", &[3], DType::F32);
    let b3 = gr.param("b3", &[3], DType::F32);
    let y = gr.layer_norm(t, g3, b3, 1e-5).unwrap();
    assert_eq!(gr.shape(y), &[5, 3]);
    let u = gr.input("u", &[5, 64], DType::F32);
    let y = gr.l2_normalize_chunks(u, 8).unwrap();
    assert_eq!(gr.shape(y), &[5, 64]);
    assert!(gr.l2_normalize_chunks(u, 7).is_err());
    assert!(gr.layer_norm(t, g, b, 1e-5).is_err());
}
