use crate::common::*;
use unitok::ops::loss::{RegressionKind, RegressionLoss, RegressionLossGrad};
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
