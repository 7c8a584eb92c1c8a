//! Backward rules: finite-difference checks against the CPU reference, and the autodiff pass.

use crate::common::*;
use std::collections::HashMap;
use unitok::ops::elementwise::{
    Binary, BinaryKind, ReduceBroadcast, Transpose, Unary, UnaryGrad, UnaryKind,
};
use unitok::{DType, Graph, HostTensor};

#[test]
fn unary_backward_matches_finite_differences() {
    for n in [1usize, 255, 257] {
        let x = rand_scaled(&[3, n], n as u64, 3.0);
        for kind in [
            UnaryKind::GeluErf,
            UnaryKind::GeluTanh,
            UnaryKind::Scale(-0.7),
            UnaryKind::Affine(1.5, 0.2),
            UnaryKind::Copy,
            UnaryKind::Clamp(-1.0, 1.0),
            UnaryKind::Exp,
        ] {
            let eps = if matches!(kind, UnaryKind::Clamp(..)) {
                1e-4
            } else {
                1e-2
            };
            check_backward(
                Unary {
                    kind,
                    out_shape: None,
                },
                &[&x],
                &[],
                eps,
                2e-3,
            );
        }
        check_backward(
            Unary {
                kind: UnaryKind::Copy,
                out_shape: Some(vec![n, 3]),
            },
            &[&x],
            &[],
            1e-2,
            1e-4,
        );
    }
}

#[test]
fn binary_backward_matches_finite_differences() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 257], &[3, 257]),
        (&[2, 5, 33], &[33]),
        (&[2, 7, 4, 3], &[7, 1, 1]),
        (&[1, 16, 8], &[1, 1, 8]),
    ];
    for (i, (a, b)) in cases.iter().enumerate() {
        let ta = rand_scaled(a, 10 + i as u64, 2.0);
        let tb = rand_scaled(b, 20 + i as u64, 2.0);
        for kind in [
            BinaryKind::Add,
            BinaryKind::Sub,
            BinaryKind::Mul,
            BinaryKind::Geglu,
        ] {
            check_backward(Binary { kind }, &[&ta, &tb], &[], 1e-2, 3e-3);
        }
    }
}

#[test]
fn transpose_backward_matches_finite_differences() {
    check_backward(Transpose, &[&rand_tensor(&[2, 17, 5], 3)], &[], 1e-2, 1e-3);
}

#[test]
fn gradient_kernels_match_their_references() {
    for n in edge_sizes(256) {
        let x = rand_scaled(&[n], 1, 4.0);
        let g = rand_tensor(&[n], 2);
        for kind in [
            UnaryKind::GeluErf,
            UnaryKind::GeluTanh,
            UnaryKind::Clamp(-1.0, 2.0),
            UnaryKind::Exp,
        ] {
            check_op(UnaryGrad { kind }, &[&x, &g], 1e-6, 1e-5);
        }
    }
    for (a, b) in [
        (&[4usize, 300][..], &[300usize][..]),
        (&[2, 3, 5, 7], &[3, 1, 1]),
        (&[513], &[1]),
    ] {
        check_op(
            ReduceBroadcast {
                b_shape: b.to_vec(),
            },
            &[&rand_tensor(a, 5)],
            1e-5,
            1e-5,
        );
    }
}

/// Graph::backward: a tensor used twice gets the sum of both paths; the gradient of a tensor
/// the loss does not depend on is zero; the result matches the closed form.
#[test]
fn autodiff_accumulates_and_matches_closed_form() {
    let mut g = Graph::new();
    let x = g.input("x", &[1], DType::F32);
    let unused = g.input("u", &[3], DType::F32);
    let sq = g.mul(x, x).unwrap(); // x²
    let gl = g.gelu(x).unwrap();
    let y = g.add(sq, gl).unwrap(); // x² + gelu(x)
    let loss = g.scale(y, 3.0).unwrap();
    let grads = g.backward(loss, &[x, unused]).unwrap();
    for t in &grads {
        g.mark_output(*t);
    }
    let gpu = gpu();
    let mut plan = g.compile(&gpu).unwrap();
    for xv in [-1.3f32, 0.2, 2.5] {
        plan.write(x, &HostTensor::f32(&[1], vec![xv]).unwrap())
            .unwrap();
        plan.write(unused, &HostTensor::zeros(&[3])).unwrap();
        plan.run().unwrap();
        let d = plan.read(grads[0]).unwrap().into_f32().unwrap()[0];
        let want = 3.0
            * (2.0 * xv + unitok::ops::elementwise::unary_derivative_ref(UnaryKind::GeluErf, xv));
        assert!((d - want).abs() < 1e-5, "x = {xv}: {d} vs {want}");
        assert_eq!(
            plan.read(grads[1]).unwrap().into_f32().unwrap(),
            vec![0.0; 3]
        );
    }
    // The same graph on the CPU reference executor.
    let vals = g
        .run_cpu(&HashMap::from([
            (x, HostTensor::f32(&[1], vec![0.2]).unwrap()),
            (unused, HostTensor::zeros(&[3])),
        ]))
        .unwrap();
    let want =
        3.0 * (0.4 + unitok::ops::elementwise::unary_derivative_ref(UnaryKind::GeluErf, 0.2));
    assert!((vals[&grads[0]].as_f32().unwrap()[0] - want).abs() < 1e-6);
}

#[test]
fn backward_of_an_op_without_a_rule_is_a_typed_error() {
    let mut g = Graph::new();
    let x = g.input("x", &[4], DType::F32);
    let y = g.copy_vec4(x).unwrap();
    let l = g.reshape(y, &[4]).unwrap();
    let s = g.apply1(unitok::ops::reduce::Mean { axis: 0 }, &[l]);
    let loss = s.unwrap();
    let err = g.backward(loss, &[x]).unwrap_err().to_string();
    assert!(err.contains("no backward rule"), "{err}");
}

/// A stop-gradient passes values through and blocks the gradient: d/dx of (x·sg(x)) is sg(x).
#[test]
fn stop_gradient_blocks_the_gradient() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 33], DType::F32);
    let sx = g.stop_gradient(x).unwrap();
    let y = g.mul(x, sx).unwrap();
    let l = g.mean(y, 1).unwrap();
    let l = g.mean(l, 0).unwrap();
    let dx = g.backward(l, &[x]).unwrap()[0];
    g.mark_output(dx);
    g.mark_output(sx);
    let xd = rand_tensor(&[2, 33], 3);
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(x, &xd).unwrap();
    plan.run().unwrap();
    assert_close(
        "stop_gradient value",
        &plan.read(sx).unwrap(),
        &xd,
        0.0,
        0.0,
    );
    let want: Vec<f32> = xd.as_f32().unwrap().iter().map(|v| v / 66.0).collect();
    let want = HostTensor::f32(&[2, 33], want).unwrap();
    assert_close(
        "d mean(x·sg(x)) / dx",
        &plan.read(dx).unwrap(),
        &want,
        1e-7,
        1e-5,
    );
}

/// An in-place unary runs after the earlier readers of its tensor and changes it for later runs.
#[test]
fn unary_in_place_updates_a_parameter() {
    let mut g = Graph::new();
    let p = g.param("p", &[300], DType::F32);
    let before = g.scale(p, 1.0).unwrap();
    g.mark_output(before);
    g.unary_in_place(p, UnaryKind::Clamp(-0.5, 0.25)).unwrap();
    let pd = rand_scaled(&[300], 9, 2.0);
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(p, &pd).unwrap();
    plan.run().unwrap();
    assert_close(
        "read before the update",
        &plan.read(before).unwrap(),
        &pd,
        0.0,
        0.0,
    );
    let clamped: Vec<f32> = pd
        .as_f32()
        .unwrap()
        .iter()
        .map(|v| v.clamp(-0.5, 0.25))
        .collect();
    let clamped = HostTensor::f32(&[300], clamped).unwrap();
    assert_close(
        "parameter after",
        &plan.read(p).unwrap(),
        &clamped,
        0.0,
        0.0,
    );
    plan.run().unwrap();
    assert_close(
        "second run reads the clamped value",
        &plan.read(before).unwrap(),
        &clamped,
        0.0,
        0.0,
    );
}
