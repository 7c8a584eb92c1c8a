//! Conv2d, AvgPool2d and UpsampleNearest2x backward: finite-difference checks of the rules and
//! every gradient kernel against its CPU reference on edge shapes.

use crate::common::*;
use unitok::ops::conv::{Conv2d, Conv2dBackwardData, Conv2dBackwardWeight};
use unitok::ops::pool::{
    AvgPool2d, AvgPool2dBackward, UpsampleNearest2x, UpsampleNearest2xBackward,
};

fn conv(stride: usize, padding: usize, groups: usize) -> Conv2d {
    Conv2d {
        stride,
        padding,
        groups,
    }
}

/// (N, Cin, H, W, Cout, k, stride, padding, groups)
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const CASES: &[Case] = &[
    (2, 3, 5, 6, 4, 3, 1, 1, 1), // dense 3×3 s1
    (2, 3, 7, 6, 5, 3, 2, 1, 1), // dense 3×3 s2, odd H
    (1, 4, 6, 6, 3, 1, 1, 0, 1), // 1×1
    (2, 4, 5, 7, 4, 3, 2, 1, 4), // depthwise s2
    (1, 4, 5, 5, 6, 3, 1, 1, 2), // grouped
    (1, 2, 6, 5, 3, 2, 2, 0, 1), // even kernel, stride 2, last column dropped
    (1, 2, 4, 4, 2, 1, 2, 1, 1), // padding beyond a 1×1 kernel
];

#[test]
fn conv2d_backward_matches_finite_differences() {
    for (i, &(n, cin, h, w, cout, k, s, p, g)) in CASES.iter().enumerate() {
        let x = rand_tensor(&[n, cin, h, w], 100 + i as u64);
        let wt = rand_scaled(&[cout, cin / g, k, k], 200 + i as u64, 0.5);
        let b = rand_tensor(&[cout], 300 + i as u64);
        check_backward(conv(s, p, g), &[&x, &wt, &b], &[], 1e-2, 2e-3);
    }
    // without a bias
    let x = rand_tensor(&[2, 3, 5, 4], 9);
    let wt = rand_scaled(&[2, 3, 3, 3], 10, 0.5);
    check_backward(conv(2, 1, 1), &[&x, &wt], &[], 1e-2, 2e-3);
}

#[test]
fn conv2d_backward_data_kernel() {
    // TM tiles (1, 2, 4, 8 channels per group) and pixel tiles of 64: sizes on, under and past.
    let mut cases: Vec<Case> = CASES.to_vec();
    for hw in [7usize, 8, 9] {
        // H·W = 63, 64, 72 ... around the 64-pixel tile
        cases.push((2, 9, hw, 9 - (hw == 9) as usize, 5, 3, 1, 1, 1));
    }
    cases.push((1, 8, 8, 8, 3, 3, 2, 1, 1));
    cases.push((1, 16, 5, 5, 2, 3, 2, 1, 2)); // 8 channels per group, two groups
    cases.push((3, 6, 9, 11, 6, 5, 2, 2, 6)); // depthwise 5×5
    for (i, &(n, cin, h, w, cout, k, s, p, g)) in cases.iter().enumerate() {
        let op = conv(s, p, g);
        let x = rand_tensor(&[n, cin, h, w], 400 + i as u64);
        let wt = rand_scaled(&[cout, cin / g, k, k], 500 + i as u64, 0.5);
        let y = unitok::ops::Op::infer(&op, &[&x.desc(), &wt.desc()]).unwrap();
        let dy = rand_tensor(&y[0].shape, 600 + i as u64);
        check_op(
            Conv2dBackwardData {
                conv: op,
                in_hw: [h, w],
            },
            &[&dy, &wt],
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn conv2d_backward_weight_kernel() {
    let mut cases: Vec<Case> = CASES.to_vec();
    // N·Ho·Wo around the 64-lane reduction: 63, 64, 65 and many rounds
    cases.push((1, 2, 7, 9, 3, 1, 1, 0, 1));
    cases.push((1, 2, 8, 8, 3, 1, 1, 0, 1));
    cases.push((1, 2, 5, 13, 3, 1, 1, 0, 1));
    cases.push((3, 4, 11, 10, 4, 3, 1, 1, 2));
    cases.push((2, 6, 9, 11, 6, 5, 2, 2, 6));
    // The tiled kernel (≥ 8 output channels and ≥ 8 columns per group): 32×32 output tiles
    // (Cout 31/32/33, columns 27/36/40/72/288), K = N·Ho·Wo around the 16-chunk, groups, stride 2.
    for cout in [31, 32, 33] {
        cases.push((2, 4, 5, 5, cout, 3, 1, 1, 1));
    }
    cases.push((1, 3, 6, 6, 8, 3, 2, 1, 1));
    cases.push((2, 40, 4, 4, 40, 1, 1, 0, 1));
    cases.push((1, 16, 6, 6, 16, 3, 1, 1, 2));
    cases.push((1, 9, 1, 1, 9, 1, 1, 0, 1));
    cases.push((3, 32, 3, 5, 40, 3, 1, 1, 1));
    // With subgroups, ≥ 32 output channels per group take conv_dw_sg (64 channels × 256
    // columns per workgroup, the cases above with Cout ≥ 32 included): Cout 63/64/65/129,
    // columns 252/261/257 around 256, stride 2 without padding, batch 2, groups of 32.
    for cout in [63, 64, 65, 129] {
        cases.push((1 + cout % 2, 3, 5, 6, cout, 3, 1, 1, 1));
    }
    cases.push((1, 28, 3, 3, 32, 3, 1, 1, 1));
    cases.push((1, 29, 3, 3, 33, 3, 1, 1, 1));
    cases.push((1, 257, 2, 2, 32, 1, 1, 0, 1));
    cases.push((2, 3, 7, 6, 33, 3, 2, 0, 1));
    cases.push((1, 4, 5, 5, 64, 3, 1, 1, 2));
    for (i, &(n, cin, h, w, cout, k, s, p, g)) in cases.iter().enumerate() {
        let op = conv(s, p, g);
        let x = rand_tensor(&[n, cin, h, w], 700 + i as u64);
        let wt = rand_scaled(&[cout, cin / g, k, k], 800 + i as u64, 0.5);
        let y = unitok::ops::Op::infer(&op, &[&x.desc(), &wt.desc()]).unwrap();
        let dy = rand_tensor(&y[0].shape, 900 + i as u64);
        check_op(
            Conv2dBackwardWeight {
                conv: op,
                kernel: [k, k],
            },
            &[&x, &dy],
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn conv2d_backward_shape_errors() {
    let gpu_free = |r: unitok::Result<Vec<unitok::TensorDesc>>| r.is_err();
    let dy = rand_tensor(&[1, 4, 3, 3], 1);
    let wt = rand_tensor(&[4, 2, 3, 3], 2);
    // in_hw inconsistent with dy's Ho × Wo
    let op = Conv2dBackwardData {
        conv: conv(1, 1, 1),
        in_hw: [5, 5],
    };
    assert!(gpu_free(unitok::ops::Op::infer(
        &op,
        &[&dy.desc(), &wt.desc()]
    )));
    let op = Conv2dBackwardData {
        conv: conv(1, 1, 1),
        in_hw: [3, 3],
    };
    assert!(!gpu_free(unitok::ops::Op::infer(
        &op,
        &[&dy.desc(), &wt.desc()]
    )));
    // weight gradient: channel count not divisible by groups
    let x = rand_tensor(&[1, 3, 3, 3], 3);
    let op = Conv2dBackwardWeight {
        conv: conv(1, 1, 2),
        kernel: [3, 3],
    };
    assert!(gpu_free(unitok::ops::Op::infer(
        &op,
        &[&x.desc(), &dy.desc()]
    )));
}

#[test]
fn pool_backward_matches_finite_differences() {
    for (i, &(k, s, p, inc)) in [
        (2usize, 2usize, 0usize, true),
        (3, 2, 1, false),
        (3, 2, 1, true),
        (3, 1, 1, false),
        (5, 3, 2, true),
    ]
    .iter()
    .enumerate()
    {
        let x = rand_tensor(&[2, 3, 7, 6], 40 + i as u64);
        check_backward(
            AvgPool2d {
                kernel: k,
                stride: s,
                padding: p,
                count_include_pad: inc,
            },
            &[&x],
            &[],
            1e-2,
            1e-3,
        );
    }
    let x = rand_tensor(&[2, 3, 5, 3], 50);
    check_backward(UpsampleNearest2x, &[&x], &[], 1e-2, 1e-3);
}

#[test]
fn pool_backward_kernels() {
    // 256-wide workgroups: planes·H·W on, under and past a multiple.
    for (i, &(n, c, h, w)) in [
        (1usize, 4usize, 8usize, 8usize),
        (1, 1, 15, 17),
        (2, 3, 9, 7),
        (1, 2, 13, 10),
    ]
    .iter()
    .enumerate()
    {
        for (j, &(k, s, p, inc)) in [
            (2usize, 2usize, 0usize, true),
            (3, 2, 1, false),
            (3, 2, 1, true),
            (4, 3, 2, false),
        ]
        .iter()
        .enumerate()
        {
            let pool = AvgPool2d {
                kernel: k,
                stride: s,
                padding: p,
                count_include_pad: inc,
            };
            let x = rand_tensor(&[n, c, h, w], 0);
            let y = unitok::ops::Op::infer(&pool, &[&x.desc()]).unwrap();
            let dy = rand_tensor(&y[0].shape, (10 * i + j) as u64);
            check_op(
                AvgPool2dBackward {
                    pool,
                    in_hw: [h, w],
                },
                &[&dy],
                1e-6,
                1e-5,
            );
        }
        let dy = rand_tensor(&[n, c, 2 * h, 2 * w], 70 + i as u64);
        check_op(UpsampleNearest2xBackward, &[&dy], 0.0, 0.0);
    }
    let odd = rand_tensor(&[1, 1, 3, 4], 1);
    assert!(unitok::ops::Op::infer(&UpsampleNearest2xBackward, &[&odd.desc()]).is_err());
}

/// The weight gradient's texture path (CPU adapters: dy and im2col(x) packed into panels, then
/// matmul_tex's product) around its tiles: Cout 15/16/17/33, Cin·kh·kw 12..108, K = N·Ho·Wo
/// with texels of 4 output pixels that must not straddle a batch entry (Ho·Wo a multiple of 4,
/// batches of 1–3), strides 1/2, padding 0–2. The choice is asserted; check_op also runs the
/// buffer kernels.
#[test]
fn conv2d_backward_weight_texture_path() {
    use unitok::ops::Op;
    let caps = gpu().caps.clone();
    if !takes_texture_operands() {
        return;
    }
    for (i, &(n, cin, h, w, cout, k, s, p)) in [
        (1, 4, 4, 4, 16, 3, 1, 1),
        (2, 4, 6, 6, 15, 3, 1, 1),
        (3, 8, 8, 6, 17, 3, 2, 1),
        (2, 12, 5, 8, 33, 3, 1, 1),
        (1, 5, 5, 9, 16, 2, 1, 0),
        (1, 12, 4, 4, 8, 1, 1, 0),
        (2, 4, 9, 9, 20, 3, 2, 2),
    ]
    .iter()
    .enumerate()
    {
        let op = Conv2dBackwardWeight {
            conv: conv(s, p, 1),
            kernel: [k, k],
        };
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let x = rand_tensor(&[n, cin, h, w], 300 + i as u64);
        let dy = rand_tensor(&[n, cout, ho, wo], 400 + i as u64);
        assert_eq!(
            op.scratch_textures(&[&x.desc(), &dy.desc()], &caps).len(),
            2,
            "case {i}"
        );
        let kk = (n * ho * wo) as f32;
        check_op(op, &[&x, &dy], 2e-5 * kk.sqrt() * 4.0, 1e-4);
    }
}
