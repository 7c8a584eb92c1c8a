use crate::common::*;
use unitok::ops::peak::{CopyVec4, FmaPeak, LoadProbe};

#[test]
fn fma_peak_matches_reference() {
    for n in edge_sizes(256) {
        check_op(
            FmaPeak {
                invocations: n,
                iters: 37,
            },
            &[],
            1e-4,
            1e-5,
        );
    }
}

#[test]
fn copy_vec4_matches_reference() {
    for n in [4usize, 1020, 1024, 1028, 4100] {
        check_op(CopyVec4, &[&rand_tensor(&[n], n as u64)], 0.0, 0.0);
    }
}

#[test]
fn load_probes_match_reference() {
    // Sources of 16 and 32 vec4s per row (whole copy rows), invocations around the workgroup
    // (64) and past one source's worth, loads wrapping past the last row.
    for (i, (h, w, n)) in [
        (3usize, 16usize, 63usize),
        (5, 32, 64),
        (2, 16, 65),
        (7, 16, 200),
    ]
    .into_iter()
    .enumerate()
    {
        let x = rand_tensor(&[h, 4 * w], 40 + i as u64);
        for texture in [false, true] {
            let op = LoadProbe {
                texture,
                invocations: n,
                loads: 9,
            };
            check_op(op, &[&x], 1e-5, 1e-5);
        }
    }
    let bad = rand_tensor(&[3, 4 * 12], 1);
    let e = unitok::graph::run_op_cpu(
        &LoadProbe {
            texture: true,
            invocations: 4,
            loads: 1,
        },
        &[&bad],
    )
    .unwrap_err();
    assert!(e.to_string().contains("multiple of 16"), "{e}");
}
