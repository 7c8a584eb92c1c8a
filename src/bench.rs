//! Kernel benchmarks shared by `unitok bench` and `benches/kernels.rs` (criterion), so the two
//! measure exactly the same graphs.
//!
//! Each case builds a one-op graph at UniTok-L sizes with random inputs. Timing is
//! GPU-synchronised: `Plan::run` then `Gpu::wait`, wall clock, median of the repetitions, after
//! one warm-up run (pipeline compilation and first-touch excluded). Throughput is divided by a
//! ceiling measured on the same adapter in the same process: the FMA peak for compute-bound
//! kernels, the vec4 copy bandwidth for memory-bound ones.

use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::selfcheck::pseudo_random;
use crate::tensor::{DType, HostTensor};
use crate::Gpu;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a case's throughput is measured in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    /// Floating-point operations per run (2 per multiply-add).
    Flops(f64),
    /// Bytes moved per run (read + written).
    Bytes(f64),
}

pub struct BenchCase {
    pub kernel: &'static str,
    pub shape: String,
    pub work: Work,
    /// Builds the graph; returns its inputs (with their data) and the output to keep alive.
    pub build:
        Box<dyn Fn(&mut Graph) -> Result<(Vec<(TensorId, HostTensor)>, TensorId)> + Send + Sync>,
}

pub struct Measurement {
    pub kernel: String,
    pub shape: String,
    pub seconds: f64,
    pub work: Work,
}

impl Measurement {
    pub fn rate(&self) -> f64 {
        match self.work {
            Work::Flops(f) | Work::Bytes(f) => f / self.seconds / 1e9,
        }
    }
}

fn input(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> (TensorId, HostTensor) {
    (
        g.input(name, shape, DType::F32),
        pseudo_random(shape, seed, 1.0),
    )
}

/// The ceiling probes.
pub fn fma_case(quick: bool) -> BenchCase {
    let (inv, iters) = if quick { (65536, 256) } else { (262144, 512) };
    BenchCase {
        kernel: "fma_peak",
        shape: format!("{inv} threads x {iters} iters"),
        work: Work::Flops(inv as f64 * iters as f64 * 64.0),
        build: Box::new(move |g| Ok((vec![], g.fma_peak(inv, iters)?))),
    }
}

pub fn copy_case(quick: bool) -> BenchCase {
    let n = if quick { 4 << 20 } else { 16 << 20 };
    BenchCase {
        kernel: "copy",
        shape: format!("[{n}] f32"),
        work: Work::Bytes(8.0 * n as f64),
        build: Box::new(move |g| {
            let x = input(g, "x", &[n], 1);
            let y = g.copy_vec4(x.0)?;
            Ok((vec![x], y))
        }),
    }
}

/// The kernel cases at UniTok-L sizes (the released model).
pub fn kernel_cases() -> Vec<BenchCase> {
    let mut v: Vec<BenchCase> = Vec::new();
    v.push(BenchCase {
        kernel: "gelu_erf",
        shape: "[256, 4096]".into(),
        work: Work::Bytes(2.0 * 4.0 * 256.0 * 4096.0),
        build: Box::new(|g| {
            let x = input(g, "x", &[256, 4096], 1);
            let y = g.gelu(x.0)?;
            Ok((vec![x], y))
        }),
    });
    v
}

/// Time one case: compile, one warm-up run, then `reps` synchronised runs (median).
pub fn measure(gpu: &Arc<Gpu>, case: &BenchCase, reps: usize) -> Result<Measurement> {
    let mut g = Graph::new();
    let (inputs, out) = (case.build)(&mut g)?;
    g.mark_output(out);
    let mut plan = g.compile(gpu)?;
    for (t, d) in &inputs {
        plan.write(*t, d)?;
    }
    plan.run()?;
    gpu.wait()?;
    let mut times: Vec<Duration> = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        plan.run()?;
        gpu.wait()?;
        times.push(t0.elapsed());
    }
    times.sort();
    Ok(Measurement {
        kernel: case.kernel.to_string(),
        shape: case.shape.clone(),
        seconds: times[times.len() / 2].as_secs_f64(),
        work: case.work,
    })
}
