//! Kernel benchmarks shared by `unitok bench` and `benches/kernels.rs` (criterion), so the two
//! measure exactly the same graphs.
//!
//! Each case builds a one-op graph at UniTok-L sizes (the released model; batch 1 unless the
//! shape says otherwise) with pseudo-random inputs. Timing is GPU-synchronised: `Plan::run` then
//! `Gpu::wait`, wall clock, median of the repetitions, after one warm-up run (pipeline
//! compilation and first-touch excluded; see `LONG_RUN` for runs of seconds). Throughput is
//! divided by a ceiling measured on the same adapter in the same process: the FMA peak for
//! compute-bound kernels (flops, 2 per multiply-add), the vec4 copy bandwidth for memory-bound
//! ones (bytes read + written, each tensor counted once). `unitok bench` reports two ratios:
//! the paired one (`measure_paired`: a probe sample next to every kernel sample, the median of
//! the pairs' ratios), which a shared machine's drifting load mostly cancels out of, and the
//! ratio to the best ceiling reading (`measure_ceiling`, the fastest of its samples, probed
//! before and after the kernels), which any slow phase during the kernel's samples lowers.
//!
//! Building a case's graph is cheap and allocates nothing; the input data is generated only by
//! `prepare` (so tests can build and compile every case without filling gigabytes).

use crate::error::Result;
use crate::graph::{Graph, Plan, TensorId};
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

/// How an input tensor of a case is filled before timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// f32, uniform in [-scale, scale).
    Uniform { seed: u64, scale: f32 },
    /// U32 ids, spread over [0, below).
    Ids { seed: u64, below: u32 },
}

/// A case's inputs (with how to fill them) and the output to keep alive.
pub type Built = (Vec<(TensorId, Fill)>, TensorId);

/// Records a case's op into a graph.
pub type BuildFn = Box<dyn Fn(&mut Graph) -> Result<Built> + Send + Sync>;

pub struct BenchCase {
    pub kernel: &'static str,
    pub shape: String,
    pub work: Work,
    /// Records the op; returns its inputs (with their fill) and the output to keep alive.
    pub build: BuildFn,
}

pub struct Measurement {
    pub kernel: String,
    pub shape: String,
    /// Median wall time of one synchronised run.
    pub seconds: f64,
    /// The fastest run: on a machine shared with other jobs, which only ever add time, the
    /// steadier figure for comparing two builds of a kernel.
    pub fastest: f64,
    pub work: Work,
    /// Timed runs behind the median.
    pub samples: usize,
}

impl Measurement {
    pub fn rate(&self) -> f64 {
        match self.work {
            Work::Flops(f) | Work::Bytes(f) => f / self.seconds / 1e9,
        }
    }
}

fn input(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> (TensorId, Fill) {
    (
        g.input(name, shape, DType::F32),
        Fill::Uniform { seed, scale: 1.0 },
    )
}

/// A layer's weight or bias: a parameter, as in the model, so texture operands pack it on the
/// first run after it was written (the warm-up) instead of on every run (`Op::texture_source`).
fn param(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> (TensorId, Fill) {
    (
        g.param(name, shape, DType::F32),
        Fill::Uniform { seed, scale: 1.0 },
    )
}

fn ids(g: &mut Graph, name: &str, shape: &[usize], below: u32, seed: u64) -> (TensorId, Fill) {
    (g.input(name, shape, DType::U32), Fill::Ids { seed, below })
}

/// The host data for one input.
pub fn fill(shape: &[usize], f: Fill) -> Result<HostTensor> {
    match f {
        Fill::Uniform { seed, scale } => Ok(pseudo_random(shape, seed, scale)),
        Fill::Ids { seed, below } => {
            let n: usize = shape.iter().product();
            // A multiplicative hash: deterministic, spread over the table, no sort order.
            let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
            let data = (0..n)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % below.max(1) as u64) as u32
                })
                .collect();
            HostTensor::u32(shape, data)
        }
    }
}

/// The ceiling probes.
pub fn fma_case(quick: bool) -> BenchCase {
    let (inv, iters) = if quick { (65536, 256) } else { (262144, 512) };
    BenchCase {
        kernel: "fma_peak",
        shape: format!("{inv} threads x {iters} iters"),
        work: Work::Flops(
            crate::ops::peak::FmaPeak {
                invocations: inv,
                iters,
            }
            .flops(),
        ),
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

fn prod(dims: &[usize]) -> f64 {
    dims.iter().map(|&d| d as f64).product()
}

/// Bytes of f32 tensors with these element counts.
fn f32_bytes(counts: &[f64]) -> f64 {
    4.0 * counts.iter().sum::<f64>()
}

/// A dense conv case: x [1, cin, h, w], w [cout, cin, 3, 3] + bias, padding 1.
fn conv3x3(
    kernel: &'static str,
    what: &str,
    cin: usize,
    cout: usize,
    hw: usize,
    stride: usize,
) -> BenchCase {
    let ho = (hw + 2 - 3) / stride + 1;
    BenchCase {
        kernel,
        shape: format!("{cin}->{cout} {hw}x{hw} s{stride} ({what})"),
        work: Work::Flops(2.0 * prod(&[cout, ho, ho, cin, 9])),
        build: Box::new(move |g| {
            let x = input(g, "x", &[1, cin, hw, hw], 1);
            let w = param(g, "w", &[cout, cin, 3, 3], 2);
            let b = param(g, "b", &[cout], 3);
            let y = g.conv2d(x.0, w.0, Some(b.0), stride, 1, 1)?;
            Ok((vec![x, w, b], y))
        }),
    }
}

/// The kernel cases at UniTok-L sizes (the released model), one or two per kernel family.
pub fn kernel_cases() -> Vec<BenchCase> {
    let mut v: Vec<BenchCase> = Vec::new();
    // Matmul: a square reference size and the ViT qkv projection (256 tokens, 1024 → 3072).
    v.push(BenchCase {
        kernel: "matmul",
        shape: "1024x1024x1024".into(),
        work: Work::Flops(2.0 * prod(&[1024, 1024, 1024])),
        build: Box::new(|g| {
            let a = input(g, "a", &[1024, 1024], 1);
            let b = input(g, "b", &[1024, 1024], 2);
            let y = g.matmul(a.0, b.0, false, false)?;
            Ok((vec![a, b], y))
        }),
    });
    v.push(BenchCase {
        kernel: "linear",
        shape: "[256,1024]x[3072,1024]T+b (qkv)".into(),
        work: Work::Flops(2.0 * prod(&[256, 1024, 3072])),
        build: Box::new(|g| {
            let x = input(g, "x", &[256, 1024], 1);
            let w = param(g, "w", &[3072, 1024], 2);
            let b = param(g, "b", &[3072], 3);
            let y = g.linear(x.0, w.0, Some(b.0))?;
            Ok((vec![x, w, b], y))
        }),
    });
    // Attention: 16 heads × 256 tokens × head dim 64; QKᵀ and PV are 2·L²·D flops each per head.
    v.push(BenchCase {
        kernel: "attention",
        shape: "qkv [1,256,3072] 16 heads d64".into(),
        work: Work::Flops(4.0 * prod(&[16, 256, 256, 64])),
        build: Box::new(|g| {
            let qkv = input(g, "qkv", &[1, 256, 3072], 1);
            let y = g.attention(qkv.0, 16, false, false)?;
            Ok((vec![qkv], y))
        }),
    });
    // The load paths behind texture operands: one vec4 load from a storage buffer against one
    // from a storage texture (the source is a parameter, so the texture is filled on the
    // warm-up run only). Bytes counted: those loaded.
    for texture in [false, true] {
        let probe = crate::ops::peak::LoadProbe {
            texture,
            invocations: 65536,
            loads: 64,
        };
        v.push(BenchCase {
            kernel: if texture {
                "load_texture"
            } else {
                "load_buffer"
            },
            shape: "65536 invocations x 64 vec4 loads".into(),
            work: Work::Bytes(probe.bytes()),
            build: Box::new(move |g| {
                let x = param(g, "x", &[256, 4096], 1);
                let y = g.apply1(probe.clone(), &[x.0])?;
                Ok((vec![x], y))
            }),
        });
    }
    // Convolutions: the encoder's pool conv, the decoder's up_conv1 conv (after the ×2
    // upsample), and the MBConv depthwise conv at stage 1's hidden width.
    v.push(conv3x3("conv3x3_s2", "encoder pool", 320, 1024, 32, 2));
    v.push(conv3x3("conv3x3_s1", "decoder up_conv1", 1024, 320, 32, 1));
    // The weight gradient of the decoder's up_conv1 conv (the slowest kernel of a training
    // step): dW [320, 1024, 3, 3] from x [1, 1024, 32, 32] and dy [1, 320, 32, 32]; the same
    // flops as the forward conv.
    v.push(BenchCase {
        kernel: "conv3x3_dw",
        shape: "x [1,1024,32,32] dy [1,320,32,32] (up_conv1 weight grad)".into(),
        work: Work::Flops(2.0 * prod(&[320, 32, 32, 1024, 9])),
        build: Box::new(|g| {
            let x = input(g, "x", &[1, 1024, 32, 32], 1);
            let dy = input(g, "dy", &[1, 320, 32, 32], 2);
            let op = crate::ops::conv::Conv2dBackwardWeight {
                conv: crate::ops::conv::Conv2d {
                    stride: 1,
                    padding: 1,
                    groups: 1,
                },
                kernel: [3, 3],
            };
            let dw = g.apply1(op, &[x.0, dy.0])?;
            Ok((vec![x, dy], dw))
        }),
    });
    v.push(BenchCase {
        kernel: "dwconv3x3",
        shape: "[1,1280,32,32] groups 1280 (MBConv)".into(),
        work: Work::Bytes(f32_bytes(&[
            2.0 * prod(&[1280, 32, 32]),
            prod(&[1280, 9]),
            1280.0,
        ])),
        build: Box::new(|g| {
            let x = input(g, "x", &[1, 1280, 32, 32], 1);
            let w = param(g, "w", &[1280, 1, 3, 3], 2);
            let b = param(g, "b", &[1280], 3);
            let y = g.conv2d(x.0, w.0, Some(b.0), 1, 1, 1280)?;
            Ok((vec![x, w, b], y))
        }),
    });
    // Norms.
    v.push(BenchCase {
        kernel: "layernorm",
        shape: "[256,1024]".into(),
        work: Work::Bytes(f32_bytes(&[2.0 * prod(&[256, 1024]), 2.0 * 1024.0])),
        build: Box::new(|g| {
            let x = input(g, "x", &[256, 1024], 1);
            let ga = input(g, "gamma", &[1024], 2);
            let be = input(g, "beta", &[1024], 3);
            let y = g.layer_norm(x.0, ga.0, be.0, 1e-6)?;
            Ok((vec![x, ga, be], y))
        }),
    });
    v.push(BenchCase {
        kernel: "layernorm2d",
        shape: "[1,320,32,32] (encoder pool norm)".into(),
        work: Work::Bytes(f32_bytes(&[2.0 * prod(&[320, 32, 32]), 2.0 * 320.0])),
        build: Box::new(|g| {
            let x = input(g, "x", &[1, 320, 32, 32], 1);
            let ga = input(g, "gamma", &[320], 2);
            let be = input(g, "beta", &[320], 3);
            let y = g.layer_norm2d(x.0, ga.0, be.0, 1e-6)?;
            Ok((vec![x, ga, be], y))
        }),
    });
    // The quantiser: 32 images × 256 tokens, 8 sub-codebooks of 4096 codes of width 8.
    v.push(BenchCase {
        kernel: "mcq_argmax",
        shape: "z [8192,64] cb [8,4096,8] (batch 32)".into(),
        work: Work::Flops(2.0 * prod(&[8192, 8, 4096, 8])),
        build: Box::new(|g| {
            let z = input(g, "z", &[8192, 64], 1);
            let cb = input(g, "codebooks", &[8, 4096, 8], 2);
            let (idx, _codes) = g.mcq_argmax(z.0, cb.0)?;
            Ok((vec![z, cb], idx))
        }),
    });
    // Text token embedding: 32 captions × 77 tokens from the 49408 × 768 table (152 MB, stored
    // as row chunks where a binding is smaller). Bytes: the rows read, the rows written, ids.
    v.push(BenchCase {
        kernel: "gather_rows",
        shape: "[49408,768] at ids [32,77]".into(),
        work: Work::Bytes(f32_bytes(&[2.0 * prod(&[32, 77, 768]), prod(&[32, 77])])),
        build: Box::new(|g| {
            let t = input(g, "table", &[49408, 768], 1);
            let i = ids(g, "ids", &[32, 77], 49408, 2);
            let y = g.gather_rows(t.0, i.0)?;
            Ok((vec![t, i], y))
        }),
    });
    // Attention-logit sized softmax (16 heads × 256 queries, 256 keys).
    v.push(BenchCase {
        kernel: "softmax",
        shape: "[4096,256]".into(),
        work: Work::Bytes(f32_bytes(&[2.0 * prod(&[4096, 256])])),
        build: Box::new(|g| {
            let x = input(g, "x", &[4096, 256], 1);
            let y = g.softmax(x.0)?;
            Ok((vec![x], y))
        }),
    });
    // Stage 1's strided shortcut: AvgPool2d(3, 2, 1, count_include_pad=False) on 160 × 64².
    v.push(BenchCase {
        kernel: "avg_pool2d",
        shape: "[1,160,64,64] k3 s2 p1".into(),
        work: Work::Bytes(f32_bytes(&[prod(&[160, 64, 64]), prod(&[160, 32, 32])])),
        build: Box::new(|g| {
            let x = input(g, "x", &[1, 160, 64, 64], 1);
            let y = g.avg_pool2d(x.0, 3, 2, 1, false)?;
            Ok((vec![x], y))
        }),
    });
    // The decoder's inverse-MBConv `up` at the hidden width: 1280 × 32² → 1280 × 64².
    v.push(BenchCase {
        kernel: "upsample2x",
        shape: "[1,1280,32,32] -> 64x64".into(),
        work: Work::Bytes(f32_bytes(&[prod(&[1280, 32, 32]), prod(&[1280, 64, 64])])),
        build: Box::new(|g| {
            let x = input(g, "x", &[1, 1280, 32, 32], 1);
            let y = g.upsample_nearest2x(x.0)?;
            Ok((vec![x], y))
        }),
    });
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

/// Record a case's graph (output marked); returns it with the inputs to fill.
pub fn graph(case: &BenchCase) -> Result<(Graph, Vec<(TensorId, Fill)>)> {
    let mut g = Graph::new();
    let (inputs, out) = (case.build)(&mut g)?;
    g.mark_output(out);
    Ok((g, inputs))
}

/// Compile a case and upload its input data: ready to `run`.
pub fn prepare(gpu: &Arc<Gpu>, case: &BenchCase) -> Result<Plan> {
    let (g, inputs) = graph(case)?;
    let mut plan = g.compile(gpu)?;
    for (t, f) in inputs {
        let data = fill(g.shape(t), f)?;
        plan.write(t, &data)?;
    }
    Ok(plan)
}

/// A run at least this long makes the warm-up run count as the first sample: the one-off costs
/// it carries (lazy shader JIT, first touch of buffers) are then well under 1% of it. This keeps
/// the slowest cases on a CPU adapter (seconds to minutes per run) from paying for an extra run.
pub const LONG_RUN: Duration = Duration::from_secs(5);

fn timed_run(gpu: &Gpu, plan: &mut Plan) -> Result<Duration> {
    let t0 = Instant::now();
    plan.run()?;
    gpu.wait()?;
    Ok(t0.elapsed())
}

/// The sample at `pick(len)` of the sorted times.
fn summarise(case: &BenchCase, mut times: Vec<Duration>, pick: fn(usize) -> usize) -> Measurement {
    times.sort();
    Measurement {
        kernel: case.kernel.to_string(),
        shape: case.shape.clone(),
        seconds: times[pick(times.len())].as_secs_f64(),
        fastest: times[0].as_secs_f64(),
        work: case.work,
        samples: times.len(),
    }
}

fn median(case: &BenchCase, times: Vec<Duration>) -> Measurement {
    summarise(case, times, |n| n / 2)
}

/// Time one case: compile, one warm-up run, then synchronised runs until `reps` samples
/// (median). The warm-up is the first sample when it took at least `LONG_RUN`.
pub fn measure(gpu: &Arc<Gpu>, case: &BenchCase, reps: usize) -> Result<Measurement> {
    let mut plan = prepare(gpu, case)?;
    let reps = reps.max(1);
    let mut times: Vec<Duration> = Vec::with_capacity(reps);
    let warm = timed_run(gpu, &mut plan)?;
    if warm >= LONG_RUN {
        times.push(warm);
    }
    while times.len() < reps {
        times.push(timed_run(gpu, &mut plan)?);
    }
    Ok(median(case, times))
}

/// Samples of each ceiling probe. Fixed, not `--reps`: the fastest of more samples catches
/// rarer fast phases (best of 100 read ~86 GFLOP/s where best of 5 reads ~72 on the CI VM), so
/// a ceiling that followed `--reps` would make ratios depend on how long one chose to measure.
pub const CEILING_SAMPLES: usize = 5;

/// Time a ceiling probe: as `measure`, but the fastest of `CEILING_SAMPLES` samples. A ceiling
/// is what the adapter can do at best; on a shared machine interference only ever slows a
/// sample down, and a median probe that caught a slow phase would inflate every ratio of the
/// run.
pub fn measure_ceiling(gpu: &Arc<Gpu>, case: &BenchCase) -> Result<Measurement> {
    let mut plan = prepare(gpu, case)?;
    timed_run(gpu, &mut plan)?;
    let times = (0..CEILING_SAMPLES)
        .map(|_| timed_run(gpu, &mut plan))
        .collect::<Result<Vec<_>>>()?;
    Ok(summarise(case, times, |_| 0))
}

/// A ceiling probe compiled once and run next to every sample of a kernel (`measure_paired`).
pub struct Probe {
    case: BenchCase,
    plan: Plan,
}

impl Probe {
    /// Compile and fill the probe and run it once (pipeline compilation and first touch
    /// excluded from its samples).
    pub fn new(gpu: &Arc<Gpu>, case: BenchCase) -> Result<Probe> {
        let mut plan = prepare(gpu, &case)?;
        timed_run(gpu, &mut plan)?;
        Ok(Probe { case, plan })
    }

    /// One timed run: its rate (GFLOP/s or GB/s).
    fn sample(&mut self, gpu: &Gpu) -> Result<f64> {
        let t = timed_run(gpu, &mut self.plan)?.as_secs_f64();
        Ok(match self.case.work {
            Work::Flops(w) | Work::Bytes(w) => w / t / 1e9,
        })
    }
}

/// A kernel timed in pairs with its ceiling probe (`measure_paired`).
pub struct Paired {
    /// The kernel's samples, as `measure` gives them (median time).
    pub kernel: Measurement,
    /// Median of the probe's readings taken next to the kernel's samples.
    pub ceiling: f64,
    /// Median over the pairs of (kernel rate / probe rate).
    pub ratio: f64,
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Time one case as `measure` does, with one probe sample right before or after each kernel
/// sample (alternating), and the ratio taken per pair. On a shared machine the load of other
/// processes drifts over seconds; a pair sees the same load, so the median of the pairs'
/// ratios follows the kernel's efficiency rather than the machine's load at the moment the
/// kernel and the ceiling happened to be sampled (a kernel median against a best-of-N ceiling
/// reads low whenever the kernel's samples met a busier phase than the probe's best).
pub fn measure_paired(
    gpu: &Arc<Gpu>,
    case: &BenchCase,
    reps: usize,
    probe: &mut Probe,
) -> Result<Paired> {
    let mut plan = prepare(gpu, case)?;
    let reps = reps.max(1);
    let (mut times, mut probes) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    let warm = timed_run(gpu, &mut plan)?;
    if warm >= LONG_RUN {
        times.push(warm);
        probes.push(probe.sample(gpu)?);
    }
    while times.len() < reps {
        if times.len() % 2 == 0 {
            probes.push(probe.sample(gpu)?);
            times.push(timed_run(gpu, &mut plan)?);
        } else {
            times.push(timed_run(gpu, &mut plan)?);
            probes.push(probe.sample(gpu)?);
        }
    }
    let work = match case.work {
        Work::Flops(w) | Work::Bytes(w) => w,
    };
    let ratios = times
        .iter()
        .zip(&probes)
        .map(|(t, c)| work / t.as_secs_f64() / 1e9 / c)
        .collect();
    Ok(Paired {
        kernel: median(case, times),
        ceiling: median_f64(probes),
        ratio: median_f64(ratios),
    })
}

/// Where one run of a case spends its time: wall time per dispatch label (each dispatch in its
/// own submission, see `Plan::profile`), after a warm-up run.
pub fn profile(
    gpu: &Arc<Gpu>,
    case: &BenchCase,
) -> Result<Vec<(String, std::time::Duration, usize)>> {
    let mut plan = prepare(gpu, case)?;
    timed_run(gpu, &mut plan)?;
    plan.profile()
}

/// Time one case on two devices (e.g. with and without shader runtime checks), alternating
/// their runs so both see the same machine load: a fair A/B on a shared, noisy machine.
/// Same warm-up and `LONG_RUN` rule as `measure`, per side.
pub fn measure_ab(
    a: &Arc<Gpu>,
    b: &Arc<Gpu>,
    case: &BenchCase,
    reps: usize,
) -> Result<(Measurement, Measurement)> {
    let mut pa = prepare(a, case)?;
    let mut pb = prepare(b, case)?;
    let reps = reps.max(1);
    let (mut ta, mut tb) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    let wa = timed_run(a, &mut pa)?;
    let wb = timed_run(b, &mut pb)?;
    if wa >= LONG_RUN && wb >= LONG_RUN {
        ta.push(wa);
        tb.push(wb);
    }
    while ta.len() < reps {
        // Alternate which side goes first, so neither always follows the other.
        if ta.len() % 2 == 0 {
            ta.push(timed_run(a, &mut pa)?);
            tb.push(timed_run(b, &mut pb)?);
        } else {
            tb.push(timed_run(b, &mut pb)?);
            ta.push(timed_run(a, &mut pa)?);
        }
    }
    Ok((median(case, ta), median(case, tb)))
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
        let data = if key == "logit_scale" {
            vec![(1.0f32 / 0.07).ln(); n] // CLIP's initial temperature (0-d in checkpoints)
        } else if key.ends_with("bias")
            || key.ends_with("pos_embed")
            || key.ends_with("vocab_usage")
        {
            // Zeros; vocab_usage is the quantizer's usage-statistics buffer.
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
    /// With `profile`: wall time and count per dispatch label (`Plan::profile`), slowest first.
    pub profile: Vec<(String, Duration, usize)>,
}

/// Time encode (image → codes) and decode (codes → image) of `cfg` at its image size; with
/// `profile`, one more run with every dispatch waited for on its own (where the time goes).
pub fn model_timings(
    gpu: &Arc<Gpu>,
    cfg: &crate::config::UnitokConfig,
    batch: usize,
    reps: usize,
    profile: bool,
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
            profile: if profile {
                plan.plan.profile()?
            } else {
                Vec::new()
            },
        });
    }
    Ok(out)
}

/// Sizes of a compiled training step (`train_step`), for reports.
pub struct TrainPlanInfo {
    pub planned_bytes: u64,
    pub arena_bytes: u64,
    /// Intermediates larger than one storage binding, stored as row chunks outside the arena.
    pub chunked_bytes: u64,
    pub dispatches: usize,
}

/// Build the training step of `cfg` (reference AdamW settings) at `batch` images with random
/// weights (`RandomWeights`); the build (record, plan, compile, upload) is what `unitok
/// bench-train` times.
pub fn train_step(
    gpu: &Arc<Gpu>,
    cfg: &crate::config::UnitokConfig,
    batch: usize,
) -> Result<(crate::train::step::TrainStep, TrainPlanInfo)> {
    let w = RandomWeights::new(cfg)?;
    let opts = crate::train::step::StepOptions::reference(batch);
    let step = crate::train::step::TrainStep::build(gpu, cfg, opts, &w)?;
    let plan = step.plan();
    let info = TrainPlanInfo {
        planned_bytes: plan.planned_bytes(),
        arena_bytes: plan.arena_bytes(),
        chunked_bytes: plan.chunked_bytes(),
        dispatches: plan.dispatch_count(),
    };
    Ok((step, info))
}

/// A random training batch for `step`: images in [-1, 1] and tokenized captions, both from
/// `seed`.
pub fn train_batch(
    step: &crate::train::step::TrainStep,
    seed: u64,
) -> Result<(HostTensor, HostTensor)> {
    let (b, s) = (step.opts.batch, step.cfg.img_size);
    let images = pseudo_random(&[b, 3, s, s], seed, 1.0);
    let words = [
        "a", "photo", "of", "cat", "dog", "red", "small", "tree", "on", "the",
    ];
    let captions: Vec<String> = (0..b)
        .map(|i| {
            let mut h = seed.wrapping_mul(0x9E3779B97F4A7C15) ^ i as u64;
            (0..8)
                .map(|_| {
                    h = h
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    words[(h >> 33) as usize % words.len()]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Ok((images, step.text_ids(&captions)?))
}
