use crate::common::*;
use unitok::ops::loss::{
    CrossEntropy, CrossEntropyGrad, RegressionKind, RegressionLoss, RegressionLossGrad,
};
use unitok::{DType, Graph, HostTensor};

#[test]
fn regression_losses_match_reference() {
    for n in edge_sizes(256) {
        let x = rand_scaled(&[2, n], n as u64, 2.0);
        let y = rand_scaled(&[2, n], 1 + n as u64, 2.0);
        for kind in [RegressionKind::L1, RegressionKind::Mse] {
            check_op(RegressionLoss { kind }, &[&x, &y], 1e-6, 1e-5);
            let g = HostTensor::f32(&[1], vec![0.7]).unwrap();
            check_op(RegressionLossGrad { kind }, &[&x, &y, &g], 1e-8, 1e-5);
        }
    }
    // Finite differences need a loss whose f32 rounding is small against eps·gradient: few elements.
    for n in [1usize, 7, 33] {
        let x = rand_scaled(&[2, n], 50 + n as u64, 2.0);
        let y = rand_scaled(&[2, n], 60 + n as u64, 2.0);
        for kind in [RegressionKind::L1, RegressionKind::Mse] {
            check_backward(RegressionLoss { kind }, &[&x, &y], &[], 1e-3, 5e-3);
        }
    }
}

/// A weighted sum of named terms, differentiated end to end: 0.2·L1 + 1.0·MSE.
#[test]
fn weighted_loss_sum_backward() {
    let mut g = Graph::new();
    let x = g.input("x", &[3, 40], DType::F32);
    let t = g.input("t", &[3, 40], DType::F32);
    let l1 = g.l1_loss(x, t).unwrap();
    let l2 = g.mse_loss(x, t).unwrap();
    let a = g.scale(l1, 0.2).unwrap();
    let total = g.add(a, l2).unwrap();
    let dx = g.backward(total, &[x]).unwrap()[0];
    g.mark_output(dx);
    let (xd, td) = (rand_tensor(&[3, 40], 1), rand_tensor(&[3, 40], 2));
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(x, &xd).unwrap();
    plan.write(t, &td).unwrap();
    plan.run().unwrap();
    let got = plan.read(dx).unwrap();
    let want: Vec<f32> = xd
        .as_f32()
        .unwrap()
        .iter()
        .zip(td.as_f32().unwrap())
        .map(|(a, b)| (0.2 * (a - b).signum() + 2.0 * (a - b)) / 120.0)
        .collect();
    assert_close(
        "d total / dx",
        &got,
        &HostTensor::f32(&[3, 40], want).unwrap(),
        1e-7,
        1e-5,
    );
}

fn labels(rows: usize, classes: usize, seed: u64) -> HostTensor {
    let mut r = Rng::new(seed);
    HostTensor::u32(
        &[rows],
        (0..rows).map(|_| r.below(classes as u32)).collect(),
    )
    .unwrap()
}

#[test]
fn cross_entropy_matches_reference() {
    // rows around the 256-lane forward and the 64-row backward workgroup, odd class counts
    for (rows, classes) in [
        (1, 1),
        (2, 2),
        (3, 7),
        (63, 64),
        (65, 5),
        (255, 3),
        (257, 33),
    ] {
        let x = rand_scaled(&[rows, classes], (rows * classes) as u64, 6.0);
        let l = labels(rows, classes, rows as u64);
        check_op(CrossEntropy, &[&x, &l], 1e-6, 1e-5);
        let g = HostTensor::f32(&[1], vec![0.6]).unwrap();
        check_op(CrossEntropyGrad, &[&x, &l, &g], 1e-7, 1e-5);
    }
    for (rows, classes) in [(2, 2), (4, 4), (3, 9)] {
        let x = rand_scaled(&[rows, classes], 77 + rows as u64, 3.0);
        let l = labels(rows, classes, 5);
        check_backward(CrossEntropy, &[&x, &l], &[1], 1e-3, 5e-3);
    }
}

#[test]
fn cross_entropy_rejects_bad_labels() {
    let x = rand_tensor(&[2, 3], 1);
    let l = HostTensor::u32(&[2], vec![0, 3]).unwrap();
    let e = unitok::graph::run_op_cpu(&CrossEntropy, &[&x, &l]).unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
    let wrong = HostTensor::u32(&[3], vec![0, 0, 0]).unwrap();
    let e = unitok::graph::run_op_cpu(&CrossEntropy, &[&x, &wrong]).unwrap_err();
    assert!(e.to_string().contains("cross_entropy"), "{e}");
}
