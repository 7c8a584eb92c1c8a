//! Criterion benchmarks of every kernel at UniTok-L sizes, GPU-synchronised (each iteration is
//! `Plan::run` + `Gpu::wait`). The cases are the ones `unitok bench` runs (src/bench.rs), with
//! throughput reported in FLOP/s or bytes/s. `cargo bench --bench kernels`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use unitok::bench::{self, Work};
use unitok::Gpu;

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::new().expect("benchmarks need a GPU adapter");
    let mut cases = vec![bench::fma_case(false), bench::copy_case(false)];
    cases.extend(bench::kernel_cases());
    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);
    for case in cases {
        let mut plan = bench::prepare(&gpu, &case).expect("compile and fill bench graph");
        match case.work {
            Work::Flops(f) => group.throughput(Throughput::Elements(f as u64)),
            Work::Bytes(b) => group.throughput(Throughput::Bytes(b as u64)),
        };
        group.bench_function(format!("{} {}", case.kernel, case.shape), |b| {
            b.iter(|| {
                plan.run().expect("run");
                gpu.wait().expect("wait");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
