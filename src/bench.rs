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

/// Deterministic random weights for any config, generated per key on demand (so a 3.3 GB model
/// is never held on the host at once): LayerNorm weights 1, biases and norms' shifts 0,
/// everything else uniform with std ≈ 0.02. For timing and memory planning, not for accuracy.
pub struct RandomWeights {
    shapes: std::collections::HashMap<String, Vec<usize>>,
}

impl RandomWeights {
    pub fn new(cfg: &crate::config::UnitokConfig) -> Result<Self> {
        Ok(RandomWeights {
            shapes: crate::model::expected_keys(cfg)?.into_iter().collect(),
        })
    }
}

impl crate::model::WeightSource for RandomWeights {
    fn tensor(&self, key: &str) -> Result<HostTensor> {
        let shape = self
            .shapes
            .get(key)
            .ok_or_else(|| crate::Error::Invalid(format!("no such key {key}")))?;
        let n: usize = shape.iter().product();
        let is_norm = key.contains("norm") || key.contains("ln_");
        let data = if key.ends_with("bias") || key.ends_with("pos_embed") {
            vec![0.0; n]
        } else if is_norm && key.ends_with("weight") {
            vec![1.0; n]
        } else {
            let seed = key.bytes().fold(1469598103934665603u64, |h, b| {
                (h ^ b as u64).wrapping_mul(1099511628211)
            });
            let t = pseudo_random(&[n], seed, 0.0346); // uniform ±a has std a/√3 ≈ 0.02
            return t.reshape(shape);
        };
        HostTensor::f32(shape, data)
    }
}

/// Timing of one model graph: compile + weight upload, and the median synchronised run.
pub struct ModelTiming {
    pub what: String,
    pub setup_s: f64,
    pub run_s: f64,
    pub planned_bytes: u64,
    pub arena_bytes: u64,
    pub dispatches: usize,
}

/// Time encode (image → codes) and decode (codes → image) of `cfg` at its image size.
pub fn model_timings(
    gpu: &Arc<Gpu>,
    cfg: &crate::config::UnitokConfig,
    batch: usize,
    reps: usize,
) -> Result<Vec<ModelTiming>> {
    use crate::model::{ImageHeads, ModelGraph};
    let w = RandomWeights::new(cfg)?;
    let size = cfg.img_size;
    let tokens = cfg.tokens_for(size)?;
    let none = ImageHeads {
        decoder: false,
        clip: false,
        taps: false,
    };
    let dec = ImageHeads {
        decoder: true,
        clip: false,
        taps: false,
    };
    let mut out = Vec::new();
    for what in ["encode", "decode"] {
        let t0 = Instant::now();
        let (mut plan, input, data) = if what == "encode" {
            let m = ModelGraph::image(cfg, batch, size, none)?;
            let img = pseudo_random(&[batch, 3, size, size], 7, 1.0);
            (m.compile(gpu, &w)?, "image", img)
        } else {
            let m = ModelGraph::codes(cfg, batch, tokens, dec)?;
            let k = cfg.codebook_size() as u32;
            let idx: Vec<u32> = (0..batch * tokens * cfg.num_codebooks)
                .map(|i| (i as u32 * 2654435761) % k)
                .collect();
            (
                m.compile(gpu, &w)?,
                "indices",
                HostTensor::u32(&[batch * tokens, cfg.num_codebooks], idx)?,
            )
        };
        let want = if what == "encode" { "indices" } else { "recon" };
        plan.run(&[(input, &data)], &[want])?;
        let setup_s = t0.elapsed().as_secs_f64();
        let mut times = Vec::new();
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            plan.run(&[(input, &data)], &[want])?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        out.push(ModelTiming {
            what: format!("{what} {} b{batch} {size}x{size}", cfg.model),
            setup_s,
            run_s: times[times.len() / 2],
            planned_bytes: plan.plan.planned_bytes(),
            arena_bytes: plan.plan.arena_bytes(),
            dispatches: plan.plan.dispatch_count(),
        });
    }
    Ok(out)
}
