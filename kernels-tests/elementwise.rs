use crate::common::*;
use unitok::ops::elementwise::{Binary, BinaryKind, Transpose, Unary, UnaryKind};

#[test]
fn unary_kinds_match_reference() {
    for n in edge_sizes(256) {
        let x = rand_scaled(&[2, n], n as u64, 6.0);
        for kind in [
            UnaryKind::GeluErf,
            UnaryKind::GeluTanh,
            UnaryKind::Scale(-0.75),
            UnaryKind::Clamp(-1.0, 1.0),
            UnaryKind::Copy,
            UnaryKind::Affine(0.5, 0.25),
            UnaryKind::Exp,
        ] {
            check_op(
                Unary {
                    kind,
                    out_shape: None,
                },
                &[&x],
                3e-7,
                1e-6,
            );
        }
    }
}

#[test]
fn gelu_at_extremes_is_finite_and_exact() {
    let x = unitok::HostTensor::f32(&[8], vec![-60.0, -12.0, -5.0, -1e-4, 0.0, 3.0, 12.0, 80.0])
        .unwrap();
    check_op(
        Unary {
            kind: UnaryKind::GeluErf,
            out_shape: None,
        },
        &[&x],
        1e-6,
        1e-6,
    );
    check_op(
        Unary {
            kind: UnaryKind::GeluTanh,
            out_shape: None,
        },
        &[&x],
        1e-6,
        1e-6,
    );
}

#[test]
fn binary_broadcasts() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 257], &[3, 257]),      // residual
        (&[2, 5, 255], &[255]),      // bias over last dim
        (&[2, 7, 4, 3], &[7, 1, 1]), // per-channel over NCHW
        (&[1], &[1]),
        (&[4, 6], &[1, 6]),
        (&[1, 16, 8], &[1, 1, 8]),   // positional embedding at batch 1
        (&[2, 3, 1, 5], &[3, 1, 5]), // a size-1 dim of a inside the block
        // A vec4 per invocation (binary4): b along the output, b one element per 4 outputs;
        // and the scalar kernel where b's count or its repeat is not a multiple of 4.
        (&[3, 256], &[3, 256]),
        (&[2, 3, 12], &[12]),
        (&[2, 8, 4, 4], &[8, 1, 1]),
        (&[2, 3, 4, 4], &[3, 1, 1]),
        (&[2, 4, 3, 3], &[4, 1, 1]),
    ];
    for (i, (a, b)) in cases.iter().enumerate() {
        let ta = rand_scaled(a, 10 + i as u64, 3.0);
        let tb = rand_scaled(b, 20 + i as u64, 3.0);
        for kind in [
            BinaryKind::Add,
            BinaryKind::Sub,
            BinaryKind::Mul,
            BinaryKind::Geglu,
        ] {
            check_op(Binary { kind }, &[&ta, &tb], 1e-6, 1e-6);
        }
    }
}

#[test]
fn binary_rejects_bad_broadcast() {
    let a = rand_tensor(&[2, 3], 1);
    let b = rand_tensor(&[2], 2);
    let err = unitok::graph::run_op_cpu(
        &Binary {
            kind: BinaryKind::Add,
        },
        &[&a, &b],
    )
    .unwrap_err();
    assert!(err.to_string().contains("[2, 3]"), "{err}");
}

#[test]
fn transpose_tiles_and_batches() {
    for r in edge_sizes(16) {
        for c in [1, 15, 16, 17, 40] {
            let x = rand_tensor(&[3, r, c], (r * 100 + c) as u64);
            check_op(Transpose, &[&x], 0.0, 0.0);
        }
    }
}

#[test]
fn large_grid_is_folded() {
    // 65535·256 elements is the cap of one grid dimension; go past it.
    let n = 65536 * 256 + 7;
    let x = rand_tensor(&[n], 3);
    check_op(
        Unary {
            kind: UnaryKind::Scale(2.0),
            out_shape: None,
        },
        &[&x],
        0.0,
        0.0,
    );
}
