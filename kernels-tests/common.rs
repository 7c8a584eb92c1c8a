//! Shared test harness: one device per test process, deterministic data, and the
//! CPU-reference-vs-GPU comparison that every kernel test uses.

use std::sync::{Arc, OnceLock};
use unitok::graph::{run_op_cpu, run_op_gpu};
use unitok::ops::Op;
use unitok::{Gpu, HostTensor, TensorDesc};

/// The device for this test process. There is no skip: without an adapter every GPU test fails
/// with the reason (CI sets UNITOK_REQUIRE_ADAPTER=1 so the GL fallback does not count either).
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(g) => {
            eprintln!("test adapter: {}", g.describe());
            g
        }
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    })
    .clone()
}

/// A second device on the same adapter that never takes texture operands, so ops that read
/// textures where `gpu()` allows it are also checked on their buffer kernels.
pub fn gpu_buffers() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new_without_texture_operands() {
        Ok(g) => g,
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    })
    .clone()
}

/// Whether the test adapter takes texture operands, for the tests of the texture paths (which
/// return early where it does not). GPUs do not; a CPU adapter must unless
/// `UNITOK_TEXTURE_OPERANDS=0` turns them off, so on lavapipe, the CI adapter, those tests can
/// never silently skip.
pub fn takes_texture_operands() -> bool {
    let g = gpu();
    if !g.caps.texture_operands {
        let off = std::env::var("UNITOK_TEXTURE_OPERANDS").is_ok_and(|v| v.trim() == "0");
        assert!(
            g.info.device_type != wgpu::DeviceType::Cpu || off,
            "a CPU adapter should take texture operands"
        );
    }
    g.caps.texture_operands
}

/// xorshift64*: deterministic test data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    #[allow(dead_code)]
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

pub fn rand_tensor(shape: &[usize], seed: u64) -> HostTensor {
    rand_scaled(shape, seed, 1.0)
}

pub fn rand_scaled(shape: &[usize], seed: u64, scale: f32) -> HostTensor {
    let mut r = Rng::new(seed);
    let n = shape.iter().product();
    HostTensor::f32(shape, (0..n).map(|_| r.uniform() * scale).collect()).unwrap()
}

/// Sizes at and around a tile edge: 1, tile−1, tile, tile+1 and a larger odd size.
pub fn edge_sizes(tile: usize) -> Vec<usize> {
    let mut v = vec![
        1,
        tile.saturating_sub(1).max(1),
        tile,
        tile + 1,
        2 * tile + 3,
    ];
    v.dedup();
    v
}

/// Max abs and max rel error of `got` against `want`, and the worst index.
pub fn errors(got: &[f32], want: &[f32]) -> (f32, f32, usize) {
    let mut worst = (0.0f32, 0.0f32, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let abs = (g - w).abs();
        let rel = abs / w.abs().max(1e-6);
        if !(abs <= worst.0) {
            worst.0 = abs;
            worst.2 = i;
        }
        if rel > worst.1 {
            worst.1 = rel;
        }
    }
    worst
}

/// Passes when every element satisfies |g − w| ≤ atol + rtol·|w|; the failure message reports
/// the max abs and rel error and the worst element.
pub fn assert_close(label: &str, got: &HostTensor, want: &HostTensor, atol: f32, rtol: f32) {
    assert_eq!(got.shape, want.shape, "{label}: shape");
    match (&got.data, &want.data) {
        (unitok::tensor::HostData::U32(g), unitok::tensor::HostData::U32(w)) => {
            if let Some(i) = g.iter().zip(w).position(|(a, b)| a != b) {
                panic!("{label}: index mismatch at {i}: got {} want {}", g[i], w[i]);
            }
        }
        _ => {
            let (g, w) = (got.as_f32().unwrap(), want.as_f32().unwrap());
            let (abs, rel, i) = errors(g, w);
            let bad = g
                .iter()
                .zip(w)
                .position(|(a, b)| !((a - b).abs() <= atol + rtol * b.abs()));
            if let Some(j) = bad {
                panic!(
                    "{label}: max abs err {abs:.3e} (at {i}: got {} want {}), max rel err {rel:.3e}; \
                     first failure at {j}: got {} want {} (atol {atol:e}, rtol {rtol:e})",
                    g[i], w[i], g[j], w[j]
                );
            }
        }
    }
}

/// Run `op` on the CPU reference and on the GPU and compare every output.
pub fn check_op<O: Op + Clone>(
    op: O,
    inputs: &[&HostTensor],
    atol: f32,
    rtol: f32,
) -> Vec<HostTensor> {
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape.clone()).collect();
    let label = format!("{} on {:?}", op.name(), shapes);
    let want = run_op_cpu(&op, inputs).unwrap_or_else(|e| panic!("{label}: cpu: {e}"));
    // Ops that take texture operands on this adapter are also run on the buffer kernels.
    let descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc()).collect();
    let textures = !op
        .scratch_textures(&descs.iter().collect::<Vec<_>>(), &gpu().caps)
        .is_empty();
    if textures {
        let got = run_op_gpu(&gpu_buffers(), op.clone(), inputs)
            .unwrap_or_else(|e| panic!("{label}: gpu (buffer kernels): {e}"));
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(
                &format!("{label} output {k} (buffer kernels)"),
                g,
                w,
                atol,
                rtol,
            );
        }
    }
    let got = run_op_gpu(&gpu(), op, inputs).unwrap_or_else(|e| panic!("{label}: gpu: {e}"));
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(&format!("{label} output {k}"), g, w, atol, rtol);
    }
    got
}

/// Finite-difference check of an op's backward rule. The loss is L = Σ_k Σ gy_k ⊙ y_k with
/// fixed random output gradients gy_k; the GPU gradients of L (the op's backward ops run on
/// the device) are compared with central differences of the CPU reference forward in f64
/// sums, at up to `samples` elements of each f32 input. Inputs listed in `skip` (indices,
/// non-differentiable ones) are not checked.
pub fn check_backward<O: Op + Clone>(
    op: O,
    inputs: &[&HostTensor],
    skip: &[usize],
    eps: f32,
    tol: f32,
) {
    use unitok::graph::Graph;
    let label = format!(
        "backward of {} on {:?}",
        op.name(),
        inputs.iter().map(|t| t.shape.clone()).collect::<Vec<_>>()
    );
    let mut g = Graph::new();
    let ids: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| g.input(&format!("x{i}"), &t.shape, t.dtype()))
        .collect();
    let outs = g
        .apply(op.clone(), &ids)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let gy_data: Vec<HostTensor> = outs
        .iter()
        .enumerate()
        .map(|(k, o)| rand_tensor(&g.shape(*o).to_vec(), 7000 + k as u64))
        .collect();
    let gys: Vec<_> = gy_data
        .iter()
        .enumerate()
        .map(|(k, t)| g.input(&format!("gy{k}"), &t.shape, t.dtype()))
        .collect();
    let grads = {
        let node = g.nodes.last().unwrap().clone();
        let gy_opt: Vec<Option<_>> = gys.iter().map(|t| Some(*t)).collect();
        let mut cx = unitok::ops::BackwardCx {
            g: &mut g,
            inputs: &node.inputs,
            outputs: &node.outputs,
            grads: &gy_opt,
        };
        node.op
            .backward(&mut cx)
            .unwrap_or_else(|e| panic!("{label}: {e}"))
    };
    let check: Vec<(usize, _)> = grads
        .iter()
        .enumerate()
        .filter(|(i, gr)| !skip.contains(i) && gr.is_some())
        .map(|(i, gr)| (i, gr.unwrap()))
        .collect();
    for (_, gr) in &check {
        g.mark_output(*gr);
    }
    let gpu = gpu();
    let mut plan = g.compile(&gpu).unwrap_or_else(|e| panic!("{label}: {e}"));
    for (id, t) in ids.iter().zip(inputs) {
        plan.write(*id, t).unwrap();
    }
    for (id, t) in gys.iter().zip(&gy_data) {
        plan.write(*id, t).unwrap();
    }
    plan.run().unwrap();
    let loss = |xs: &[HostTensor]| -> f64 {
        let refs: Vec<&HostTensor> = xs.iter().collect();
        let ys = op.cpu(&refs).unwrap();
        ys.iter()
            .zip(&gy_data)
            .map(|(y, gy)| {
                y.as_f32()
                    .unwrap()
                    .iter()
                    .zip(gy.as_f32().unwrap())
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
            })
            .sum()
    };
    for (i, gr) in check {
        let got = plan.read(gr).unwrap();
        let got = got.as_f32().unwrap();
        let n = inputs[i].numel();
        let scale = got.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        let step = (n / 48).max(1);
        let mut worst = 0.0f32;
        for e in (0..n).step_by(step) {
            let mut plus: Vec<HostTensor> = inputs.iter().map(|t| (*t).clone()).collect();
            let mut minus = plus.clone();
            if let unitok::tensor::HostData::F32(v) = &mut plus[i].data {
                v[e] += eps;
            }
            if let unitok::tensor::HostData::F32(v) = &mut minus[i].data {
                v[e] -= eps;
            }
            let fd = ((loss(&plus) - loss(&minus)) / (2.0 * eps as f64)) as f32;
            let err = (fd - got[e]).abs() / scale;
            worst = worst.max(err);
            assert!(err <= tol, "{label}: input {i} element {e}: gpu {} vs finite difference {fd} (error {err:.2e} of max |grad| {scale:.2e}, tol {tol:e})", got[e]);
        }
        eprintln!("{label}: input {i}: worst FD error {worst:.2e} of max |grad|");
    }
}
