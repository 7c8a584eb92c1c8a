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

/// `Gpu::new_with_shader_dir` (behind `unitok bench --ab-shaders`) takes a module from the
/// folder where it holds one, and the built-in module otherwise: a folder `elementwise.wgsl`
/// whose unary kernel writes 7 everywhere replaces the built-in copy, while the softmax module,
/// absent from the folder, still matches its reference. A missing folder is an error.
#[test]
fn shader_folder_replaces_only_its_modules() {
    use unitok::graph::{run_op_cpu, run_op_gpu};
    use unitok::ops::elementwise::{Unary, UnaryKind};
    use unitok::ops::softmax::Softmax;
    let dir = std::env::temp_dir().join(format!("unitok-shader-folder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = unitok::shaders::SHADERS
        .iter()
        .find(|(n, _)| *n == "elementwise")
        .unwrap()
        .1;
    // Every entry point keeps its name and bindings; the scalar `unary` (the path of an odd
    // element count) writes 7.
    let sevens = builtin.replace(
        "out[i] = unary_op(a[i]);",
        "out[i] = 7.0 + 0.0 * unary_op(a[i]);",
    );
    assert_ne!(
        sevens, builtin,
        "the test's edit no longer applies to elementwise.wgsl"
    );
    std::fs::write(dir.join("elementwise.wgsl"), sevens).unwrap();
    let dev = unitok::Gpu::new_with_shader_dir(&dir).unwrap();
    let x = crate::common::rand_scaled(&[3, 37], 5, 2.0);
    let copy = Unary {
        kind: UnaryKind::Copy,
        out_shape: None,
    };
    let got = run_op_gpu(&dev, copy, &[&x]).unwrap();
    assert!(got[0].as_f32().unwrap().iter().all(|&v| v == 7.0));
    let softmax = Softmax;
    let want = run_op_cpu(&softmax, &[&x]).unwrap();
    let got = run_op_gpu(&dev, softmax, &[&x]).unwrap();
    crate::common::assert_close("softmax, built-in module", &got[0], &want[0], 1e-6, 1e-5);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(unitok::Gpu::new_with_shader_dir(&dir).is_err());
}
