//! Attention backward: finite differences of the CPU forward against the GPU backward (with
//! and without the saved lse, causal, head averaging, the lse output's own gradient), and the
//! gradient kernels against their f64 reference on edge shapes.

use crate::common::*;
use unitok::graph::run_op_cpu;
use unitok::ops::attention::{Attention, AttentionBackward};
use unitok::{DType, Graph};

fn fwd(heads: usize, d: usize, causal: bool, head_average: bool, save_lse: bool) -> Attention {
    Attention {
        heads,
        causal,
        scale: 1.0 / (d as f32).sqrt(),
        head_average,
        save_lse,
    }
}

#[test]
fn attention_backward_matches_finite_differences() {
    let mut seed = 100;
    for (l, d, heads) in [
        (1usize, 8usize, 2usize),
        (5, 16, 1),
        (17, 8, 3),
        (17, 16, 2),
    ] {
        for causal in [false, true] {
            for head_average in [false, true] {
                seed += 1;
                let x = rand_scaled(&[2, l, 3 * heads * d], seed, 1.5);
                // save_lse when exactly one of causal / head_average: the rule then also
                // carries the lse gradient;
                // without it the rule records its own forward for lse.
                let save_lse = causal != head_average;
                check_backward(
                    fwd(heads, d, causal, head_average, save_lse),
                    &[&x],
                    &[],
                    1e-2,
                    2e-3,
                );
            }
        }
    }
}

/// The gradient op on edge shapes (the 64-row workgroups: 63, 64, 65; head dims 1..64).
#[test]
fn attention_backward_kernel_matches_reference() {
    let cases: &[(usize, usize, usize, usize)] = &[
        // (B, L, heads, D)
        (2, 1, 1, 8),
        (1, 63, 2, 16),
        (2, 64, 1, 5),
        (1, 65, 3, 8),
        (1, 19, 1, 64),
        (1, 7, 2, 1),
    ];
    for (k, &(b, l, heads, d)) in cases.iter().enumerate() {
        let x = rand_scaled(&[b, l, 3 * heads * d], 300 + k as u64, 1.5);
        for causal in [false, true] {
            for head_average in [false, true] {
                let lse = run_op_cpu(&fwd(heads, d, causal, head_average, true), &[&x]).unwrap()[1]
                    .clone();
                let od = if head_average { d } else { heads * d };
                let dout = rand_tensor(&[b, l, od], 400 + k as u64);
                let dlse = rand_tensor(&[b, heads, l], 500 + k as u64);
                for (has_dout, has_glse) in [(true, false), (false, true), (true, true)] {
                    let op = AttentionBackward {
                        heads,
                        causal,
                        scale: 1.0 / (d as f32).sqrt(),
                        head_average,
                        has_dout,
                        has_glse,
                    };
                    let mut ins = vec![&x, &lse];
                    if has_dout {
                        ins.push(&dout);
                    }
                    if has_glse {
                        ins.push(&dlse);
                    }
                    check_op(op, &ins, 2e-5, 1e-3);
                }
            }
        }
    }
}

/// The builder agrees with the reference; shape errors are typed.
#[test]
fn attention_backward_builder_and_errors() {
    let (b, l, heads, d) = (2usize, 9usize, 2usize, 8usize);
    let xv = rand_scaled(&[b, l, 3 * heads * d], 7, 1.0);
    let gv = rand_tensor(&[b, l, heads * d], 8);
    let mut g = Graph::new();
    let x = g.input("x", &xv.shape, DType::F32);
    let gy = g.input("gy", &gv.shape, DType::F32);
    let (_, lse) = g.attention_with_lse(x, heads, true, false).unwrap();
    let direct = g
        .attention_backward(x, lse, Some(gy), None, heads, true, false)
        .unwrap();
    g.mark_output(direct);
    let gpu = gpu();
    let mut plan = g.compile(&gpu).unwrap();
    plan.write(x, &xv).unwrap();
    plan.write(gy, &gv).unwrap();
    plan.run().unwrap();
    let want = run_op_cpu(
        &AttentionBackward {
            heads,
            causal: true,
            scale: 1.0 / (d as f32).sqrt(),
            head_average: false,
            has_dout: true,
            has_glse: false,
        },
        &[
            &xv,
            &run_op_cpu(&fwd(heads, d, true, false, true), &[&xv]).unwrap()[1],
            &gv,
        ],
    )
    .unwrap()
    .remove(0);
    let got = plan.read(direct).unwrap();
    assert_close("attention_backward builder", &got, &want, 2e-5, 1e-3);

    let mut g = Graph::new();
    let x = g.input("x", &[1, 4, 48], DType::F32);
    let bad_lse = g.input("lse", &[1, 2, 5], DType::F32);
    let dout = g.input("dout", &[1, 4, 16], DType::F32);
    let err = g
        .attention_backward(x, bad_lse, Some(dout), None, 2, false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("attention_backward") && err.contains("lse"),
        "{err}"
    );
    let lse = g.input("lse2", &[1, 2, 4], DType::F32);
    let err = g
        .attention_backward(x, lse, None, None, 2, false, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs the output gradient"), "{err}");
}
