use crate::common::*;
use unitok::ops::peak::{CopyVec4, FmaPeak};

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
