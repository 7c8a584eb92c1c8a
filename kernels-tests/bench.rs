//! The benchmark cases (`unitok bench`, `benches/kernels.rs`) stay buildable: every case's graph
//! records and compiles on the test adapter at its full UniTok-L size. Nothing is run at that
//! size here (on lavapipe the slowest case takes seconds to minutes); only the harness itself
//! is exercised, on the small ceiling probe.

use crate::common::gpu;
use std::collections::HashSet;
use unitok::bench::{self, Fill, Work};
use unitok::DType;

#[test]
fn every_bench_case_builds_and_compiles() {
    let gpu = gpu();
    let mut cases = vec![
        bench::fma_case(false),
        bench::fma_case(true),
        bench::copy_case(false),
        bench::copy_case(true),
    ];
    cases.extend(bench::kernel_cases());
    let mut names = HashSet::new();
    for case in &cases {
        let label = format!("{} {}", case.kernel, case.shape);
        assert!(
            names.insert(label.clone()),
            "{label}: duplicate kernel and shape"
        );
        match case.work {
            Work::Flops(w) | Work::Bytes(w) => assert!(w > 0.0, "{label}: no work"),
        }
        let (g, inputs) = bench::graph(case).unwrap_or_else(|e| panic!("{label}: build: {e}"));
        for (t, f) in &inputs {
            let want = match f {
                Fill::Uniform { .. } => DType::F32,
                Fill::Ids { .. } => DType::U32,
            };
            assert_eq!(g.desc(*t).dtype, want, "{label}: fill does not match dtype");
        }
        let plan = g
            .compile(&gpu)
            .unwrap_or_else(|e| panic!("{label}: compile: {e}"));
        drop(plan);
        gpu.trim_pool();
    }
}

#[test]
fn the_named_unitok_l_shapes_are_benchmarked() {
    let kernels: HashSet<&str> = bench::kernel_cases().iter().map(|c| c.kernel).collect();
    for k in [
        "matmul",
        "linear",
        "attention",
        "conv3x3_s2",
        "conv3x3_s1",
        "conv3x3_dw",
        "dwconv3x3",
        "layernorm",
        "layernorm2d",
        "mcq_argmax",
        "gather_rows",
        "softmax",
        "avg_pool2d",
        "upsample2x",
    ] {
        assert!(kernels.contains(k), "no bench case for {k}");
    }
}

#[test]
fn id_fill_stays_below_its_bound() {
    let t = bench::fill(
        &[3, 77],
        Fill::Ids {
            seed: 2,
            below: 49408,
        },
    )
    .unwrap();
    let ids = t.as_u32().unwrap();
    assert!(ids.iter().all(|&i| i < 49408));
    assert!(
        ids.iter().collect::<HashSet<_>>().len() > 200,
        "ids are not spread"
    );
}

#[test]
fn harness_times_the_small_copy_probe() {
    let m = bench::measure(&gpu(), &bench::copy_case(true), 2).unwrap();
    assert_eq!(m.samples, 2);
    assert!(m.seconds > 0.0 && m.rate().is_finite());
}

/// `measure_paired` takes one probe sample per kernel sample and a ratio per pair: a copy
/// timed against the copy probe itself reads close to 1 (the pairs see the same machine).
#[test]
fn paired_ratio_of_the_probe_against_itself_is_near_one() {
    let gpu = gpu();
    let mut probe = bench::Probe::new(&gpu, bench::copy_case(true)).unwrap();
    let p = bench::measure_paired(&gpu, &bench::copy_case(true), 5, &mut probe).unwrap();
    assert_eq!(p.kernel.samples, 5);
    assert!(p.ceiling > 0.0 && p.ceiling.is_finite());
    assert!(
        (0.5..2.0).contains(&p.ratio),
        "copy against its own probe: ratio {}",
        p.ratio
    );
}
