//! AvgPool2d and UpsampleNearest2x against their CPU references, plus hand-computed border
//! windows for the divisor rules.

use crate::common::*;
use unitok::graph::run_op_cpu;
use unitok::ops::pool::{AvgPool2d, UpsampleNearest2x};
use unitok::{DType, Graph, HostTensor};

fn pool(kernel: usize, stride: usize, padding: usize, count_include_pad: bool) -> AvgPool2d {
    AvgPool2d {
        kernel,
        stride,
        padding,
        count_include_pad,
    }
}

#[test]
fn avg_pool_odd_sizes_both_divisors() {
    for (h, w) in [(1, 1), (2, 3), (5, 7), (16, 16), (17, 9)] {
        for include in [false, true] {
            for (k, s, p) in [(3, 2, 1), (3, 1, 1), (2, 2, 0), (3, 3, 0), (5, 2, 2)] {
                if k > h + 2 * p || k > w + 2 * p {
                    continue;
                }
                let x = rand_scaled(&[2, 3, h, w], (h * 100 + w + k * 7 + s) as u64, 4.0);
                check_op(pool(k, s, p, include), &[&x], 1e-6, 1e-5);
            }
        }
    }
}

#[test]
fn avg_pool_border_windows_by_hand() {
    // 3×3 input 1..9, k3 s2 p1 → 2×2 output; every window touches the border.
    let x = HostTensor::f32(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    // Valid pixels: top-left {1,2,4,5}, top-right {2,3,5,6}, bottom-left {4,5,7,8}, bottom-right {5,6,8,9}.
    let exclude = check_op(pool(3, 2, 1, false), &[&x], 1e-6, 0.0);
    assert_eq!(exclude[0].as_f32().unwrap(), &[3.0, 4.0, 6.0, 7.0]);
    let include = check_op(pool(3, 2, 1, true), &[&x], 1e-6, 0.0);
    let want = [12.0 / 9.0, 16.0 / 9.0, 24.0 / 9.0, 28.0 / 9.0];
    for (g, w) in include[0].as_f32().unwrap().iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-6,
            "{:?} vs {want:?}",
            include[0].as_f32().unwrap()
        );
    }
}

#[test]
fn avg_pool_many_planes() {
    // The UniTok shortcut shape at a small size, with enough planes for several workgroups.
    let x = rand_tensor(&[2, 160, 17, 16], 5);
    check_op(pool(3, 2, 1, false), &[&x], 1e-6, 1e-5);
}

#[test]
fn avg_pool_shape_errors() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 2, 2, 2], DType::F32);
    let s = g.avg_pool2d(x, 5, 1, 1, false).unwrap_err().to_string();
    assert!(
        s.contains("avg_pool2d")
            && s.contains("larger than the padded input 4×4")
            && s.contains("[1, 2, 2, 2]"),
        "{s}"
    );
    let s = g.avg_pool2d(x, 3, 2, 2, false).unwrap_err().to_string();
    assert!(s.contains("padding must be at most half"), "{s}");
    let s = g.avg_pool2d(x, 3, 0, 1, false).unwrap_err().to_string();
    assert!(s.contains("at least 1"), "{s}");
    let v = g.input("v", &[4, 4], DType::F32);
    assert!(g
        .avg_pool2d(v, 3, 2, 1, false)
        .unwrap_err()
        .to_string()
        .contains("[N, C, H, W]"));
    let y = g.avg_pool2d(x, 3, 2, 1, false).unwrap();
    assert_eq!(g.shape(y), &[1, 2, 1, 1]);
}

#[test]
fn upsample_odd_sizes_and_batch() {
    // Odd widths take the element kernel, even ones the 4-outputs-per-invocation one.
    for (n, c, h, w) in [
        (1, 1, 1, 1),
        (2, 3, 5, 7),
        (3, 2, 16, 17),
        (1, 4, 1, 9),
        (1, 1, 1, 2),
        (2, 3, 5, 8),
        (1, 2, 3, 6),
    ] {
        let x = rand_tensor(&[n, c, h, w], (n * 1000 + c * 100 + h * 10 + w) as u64);
        let got = check_op(UpsampleNearest2x, &[&x], 0.0, 0.0);
        assert_eq!(got[0].shape, vec![n, c, 2 * h, 2 * w]);
    }
}

#[test]
fn upsample_by_hand_and_builder() {
    let x = HostTensor::f32(&[1, 1, 2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let want = run_op_cpu(&UpsampleNearest2x, &[&x]).unwrap();
    #[rustfmt::skip]
    let expect = vec![
        1.0, 1.0, 2.0, 2.0, 3.0, 3.0,
        1.0, 1.0, 2.0, 2.0, 3.0, 3.0,
        4.0, 4.0, 5.0, 5.0, 6.0, 6.0,
        4.0, 4.0, 5.0, 5.0, 6.0, 6.0,
    ];
    assert_eq!(want[0].as_f32().unwrap(), expect.as_slice());
    check_op(UpsampleNearest2x, &[&x], 0.0, 0.0);

    let mut g = Graph::new();
    let t = g.input("x", &[2, 3, 4, 5], DType::F32);
    let u = g.upsample_nearest2x(t).unwrap();
    assert_eq!(g.shape(u), &[2, 3, 8, 10]);
    let bad = g.input("b", &[3, 4, 5], DType::F32);
    let s = g.upsample_nearest2x(bad).unwrap_err().to_string();
    assert!(
        s.contains("upsample_nearest2x") && s.contains("[3, 4, 5]"),
        "{s}"
    );
}
