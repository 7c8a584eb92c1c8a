//! Fused attention vs its f64 CPU reference: sequence lengths around the query tile (64) and
//! the key tiles (32 for D=64, 64 for D≤16), head dims 8/16/64, 1–3 heads, batches, causal and
//! not, head averaging, the log-sum-exp output, large logits and shape errors.

use crate::common::*;
use std::collections::HashMap;
use unitok::device::Caps;
use unitok::graph::{run_op_cpu, run_op_gpu};
use unitok::ops::attention::{Attention, AttentionKernel};
use unitok::ops::{Dispatch, EncodeCx, Op};
use unitok::tensor::TensorDesc;
use unitok::{DType, Graph, HostTensor};

/// Attention with a forced kernel, so both implementations are checked on one adapter.
#[derive(Clone, Debug)]
struct Forced(Attention, AttentionKernel);

impl Op for Forced {
    fn name(&self) -> String {
        format!("{} [{:?}]", self.0.name(), self.1)
    }
    fn infer(&self, inputs: &[&TensorDesc]) -> unitok::Result<Vec<TensorDesc>> {
        self.0.infer(inputs)
    }
    fn cpu(&self, inputs: &[&HostTensor]) -> unitok::Result<Vec<HostTensor>> {
        self.0.cpu(inputs)
    }
    fn scratch(&self, inputs: &[&TensorDesc]) -> Vec<TensorDesc> {
        self.0.scratch(inputs)
    }
    fn scratch_textures(&self, inputs: &[&TensorDesc], caps: &Caps) -> Vec<[u32; 2]> {
        if self.1 == AttentionKernel::Texture8 {
            self.0.scratch_textures(inputs, caps)
        } else {
            Vec::new()
        }
    }
    fn encode(&self, cx: &EncodeCx) -> unitok::Result<Vec<Dispatch>> {
        self.0.encode_with(cx, self.1)
    }
}

/// The kernels this adapter can run.
fn kernels() -> Vec<AttentionKernel> {
    let caps = &gpu().caps;
    let mut v = vec![AttentionKernel::Portable];
    if caps.subgroups && caps.subgroup_min == 8 && caps.subgroup_max == 8 {
        v.push(AttentionKernel::Subgroup8);
    }
    if caps.texture_operands {
        v.push(AttentionKernel::Texture8);
    }
    v
}

/// Texture8 fills a texture first where the head dim is a multiple of 4 (by copies, one per
/// strip of heads, or by the packing kernel), and falls back to the buffer kernel (no texture)
/// otherwise.
#[test]
fn texture_kernel_is_taken_where_it_fits() {
    let caps = gpu().caps.clone();
    if !takes_texture_operands() {
        return;
    }
    // (head dim, fill dispatches): d = 64 makes 1536-byte token rows, which the copy engine
    // cuts into one strip per head (2 heads × q, k, v); d = 16 rows (384 bytes) take the
    // packing kernel; d = 6 cannot use the texture.
    for (d, fills) in [(64, 6), (16, 1), (6, 0)] {
        let packs = fills > 0;
        let a = op(2, d, false, false, false);
        let x = TensorDesc::f32(&[2, 9, 3 * 2 * d]);
        let out = a.infer(&[&x]).unwrap();
        let scratch = a.scratch(&[&x]);
        let inputs = [unitok::ops::Storage {
            desc: x.clone(),
            chunks: vec![unitok::ops::RowChunk::whole(&x)],
        }];
        let cx = EncodeCx {
            inputs: &inputs,
            outputs: &out,
            output_chunks: &[],
            scratch: &scratch,
            caps: &caps,
        };
        let d_list = a.encode_with(&cx, AttentionKernel::Texture8).unwrap();
        assert_eq!(d_list.len(), fills + 1, "d = {d}");
        assert_eq!(a.scratch_textures(&[&x], &caps).len(), packs as usize);
        let last = d_list.last().unwrap();
        assert_eq!(
            last.kernel.shader,
            if packs {
                "attention_tex"
            } else {
                "attention_sg"
            }
        );
    }
}

/// The head strips of the qkv texture under a narrowed texture limit: strips of several heads
/// each and a narrower last one (3 heads of d = 64 are 9 head units of 16 texels; 130 rows
/// under a limit of 300 give 2 strips per texture: 80 texels = 5 units, then 4).
#[test]
fn texture_strips_of_several_heads() {
    if !takes_texture_operands() {
        return;
    }
    let dev = unitok::Gpu::new_narrowed(|c| c.max_texture_dim = 300).unwrap();
    let (b, l, heads, d) = (2, 65, 3, 64);
    let x = qkv(b, l, heads, d, 91);
    let xs = TensorDesc::f32(&[b, l, 3 * heads * d]);
    for causal in [false, true] {
        let a = op(heads, d, causal, false, causal);
        assert_eq!(a.scratch_textures(&[&xs], &dev.caps), vec![[80, 260]]);
        let want = run_op_cpu(&a, &[&x]).unwrap();
        let got = run_op_gpu(&dev, Forced(a, AttentionKernel::Texture8), &[&x]).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(
                &format!("strips, causal {causal}, output {i}"),
                g,
                w,
                ATOL,
                RTOL,
            );
        }
    }
}

/// check_op on every kernel.
fn check_all(op: Attention, x: &HostTensor, atol: f32, rtol: f32) -> Vec<HostTensor> {
    let mut last = Vec::new();
    for k in kernels() {
        last = check_op(Forced(op.clone(), k), &[x], atol, rtol);
    }
    last
}

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-4;

fn op(heads: usize, d: usize, causal: bool, head_average: bool, save_lse: bool) -> Attention {
    Attention {
        heads,
        causal,
        scale: 1.0 / (d as f32).sqrt(),
        head_average,
        save_lse,
    }
}

fn qkv(b: usize, l: usize, heads: usize, d: usize, seed: u64) -> HostTensor {
    rand_scaled(&[b, l, 3 * heads * d], seed, 2.0)
}

#[test]
fn lengths_and_head_dims() {
    // L = 1, 7, around the key tile of D=64 (32), around the query tile (64), 77 (text), around
    // the subgroup kernel's tile of 4 row sets × 32 invocations (its row sets start at 32, 64
    // and 96; 77 ends inside the third; 127..129 straddle the tile).
    for d in [8, 16, 64] {
        for (k, l) in [1usize, 7, 31, 32, 33, 63, 64, 65, 77, 127, 128, 129]
            .into_iter()
            .enumerate()
        {
            let x = qkv(2, l, 2, d, (d * 1000 + l) as u64);
            for causal in [false, true] {
                check_all(op(2, d, causal, false, k % 2 == 0), &x, ATOL, RTOL);
            }
        }
    }
}

#[test]
fn heads_batches_and_head_average() {
    for d in [8, 16, 64] {
        for (heads, b) in [(1, 2), (2, 1), (3, 2)] {
            let x = qkv(b, 65, heads, d, (heads * 10 + b + d * 100) as u64);
            for causal in [false, true] {
                for avg in [false, true] {
                    check_all(op(heads, d, causal, avg, avg && causal), &x, ATOL, RTOL);
                }
            }
        }
    }
}

#[test]
fn odd_head_dims() {
    // Head dims that are not a multiple of 4 or of the register bucket.
    for d in [1, 3, 5, 13, 20, 33, 63] {
        let x = qkv(1, 40, 2, d, d as u64);
        check_all(op(2, d, true, false, true), &x, ATOL, RTOL);
        check_all(op(2, d, false, true, false), &x, ATOL, RTOL);
    }
}

#[test]
fn single_token_returns_v_and_its_logit() {
    // With one key the softmax is exactly 1: output = v, lse = q·k·scale.
    let (h, d) = (3, 16);
    let x = qkv(2, 1, h, d, 5);
    let got = unitok::graph::run_op_gpu(&gpu(), op(h, d, false, false, true), &[&x]).unwrap();
    let xs = x.as_f32().unwrap();
    for b in 0..2 {
        let row = &xs[b * 3 * h * d..(b + 1) * 3 * h * d];
        let out = &got[0].as_f32().unwrap()[b * h * d..(b + 1) * h * d];
        for (o, v) in out.iter().zip(&row[2 * h * d..]) {
            assert!((o - v).abs() <= 1e-6, "output {o} != v {v}");
        }
        for hi in 0..h {
            let dot: f32 = (0..d)
                .map(|e| row[hi * d + e] * row[h * d + hi * d + e])
                .sum::<f32>()
                / (d as f32).sqrt();
            let lse = got[1].as_f32().unwrap()[b * h + hi];
            assert!(
                (lse - dot).abs() <= 1e-5 * dot.abs().max(1.0),
                "lse {lse} != logit {dot}"
            );
        }
    }
}

#[test]
fn head_average_is_mean_of_concatenated_heads() {
    let (b, l, h, d) = (2, 70, 3, 64);
    let x = qkv(b, l, h, d, 9);
    let gpu = gpu();
    for causal in [false, true] {
        let cat = unitok::graph::run_op_gpu(&gpu, op(h, d, causal, false, false), &[&x])
            .unwrap()
            .remove(0);
        let avg = unitok::graph::run_op_gpu(&gpu, op(h, d, causal, true, false), &[&x])
            .unwrap()
            .remove(0);
        let c = cat.as_f32().unwrap();
        let mean: Vec<f32> = (0..b * l * d)
            .map(|k| {
                (0..h)
                    .map(|hi| c[(k / d) * h * d + hi * d + k % d])
                    .sum::<f32>()
                    / h as f32
            })
            .collect();
        assert_close(
            "mean of heads",
            &avg,
            &HostTensor::f32(&[b, l, d], mean).unwrap(),
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn large_logits_stay_finite_and_accurate() {
    // q and k up to ±40 (logits in the thousands, a hard softmax), v in [-1, 1].
    let (b, l, h, d) = (1, 77, 2, 64);
    let mut x = qkv(b, l, h, d, 13);
    if let unitok::tensor::HostData::F32(v) = &mut x.data {
        for (k, e) in v.iter_mut().enumerate() {
            if k % (3 * h * d) < 2 * h * d {
                *e *= 20.0;
            }
        }
    }
    for causal in [false, true] {
        let got = check_all(op(h, d, causal, false, true), &x, 5e-3, 1e-3);
        assert!(got
            .iter()
            .all(|t| t.as_f32().unwrap().iter().all(|v| v.is_finite())));
        // The lse is in the thousands and still matches closely.
        let want = run_op_cpu(&op(h, d, causal, false, true), &[&x]).unwrap();
        assert_close("lse at large logits", &got[1], &want[1], 1e-2, 1e-5);
    }
}

#[test]
fn builders_record_default_scale_and_lse() {
    let (b, l, h, d) = (2, 33, 2, 16);
    let mut g = Graph::new();
    let x = g.input("qkv", &[b, l, 3 * h * d], DType::F32);
    let y = g.attention(x, h, false, false).unwrap();
    let (ya, lse) = g.attention_with_lse(x, h, true, true).unwrap();
    assert_eq!(g.shape(y), &[b, l, h * d]);
    assert_eq!(g.shape(ya), &[b, l, d]);
    assert_eq!(g.shape(lse), &[b, h, l]);
    for t in [y, ya, lse] {
        g.mark_output(t);
    }
    let xd = qkv(b, l, h, d, 17);
    let want = g.run_cpu(&HashMap::from([(x, xd.clone())])).unwrap();
    // The builder's scale is 1/√D: compare with an explicit op.
    let explicit = run_op_cpu(&op(h, d, false, false, false), &[&xd]).unwrap();
    assert_close("default scale", &want[&y], &explicit[0], 0.0, 0.0);
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(x, &xd).unwrap();
    plan.run().unwrap();
    for t in [y, ya, lse] {
        assert_close(
            &format!("builder output {t:?}"),
            &plan.read(t).unwrap(),
            &want[&t],
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn shape_errors_are_typed() {
    let bad = |shape: &[usize], heads: usize| {
        let x = rand_tensor(shape, 1);
        let e = run_op_cpu(
            &Attention {
                heads,
                causal: false,
                scale: 0.125,
                head_average: false,
                save_lse: false,
            },
            &[&x],
        )
        .unwrap_err();
        assert!(matches!(e, unitok::Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains(&format!("{shape:?}")), "{e}");
        e.to_string()
    };
    // 3·H·D mismatch: 50 is not a multiple of 3·2.
    let msg = bad(&[1, 4, 50], 2);
    assert!(msg.contains("3·heads·head_dim"), "{msg}");
    bad(&[1, 4, 48], 0); // no heads
    bad(&[4, 48], 2); // rank 2
    bad(&[1, 0, 48], 2); // empty sequence
    bad(&[1, 2, 3 * 65], 1); // head dim over the limit
    let mut g = Graph::new();
    let x = g.input("qkv", &[1, 4, 50], DType::F32);
    assert!(g.attention(x, 2, false, false).is_err());
    assert!(g.attention_with_lse(x, 3, false, true).is_err());
}

/// 16 heads × 256 tokens × 64, B = 1 (UniTok's image attention): GFLOP/s over 4·B·H·L²·D flops,
/// median of 3 timed runs after a warm-up. `cargo test --release --test kernels attention_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn attention_speed() {
    let (b, l, h, d) = (1, 256, 16, 64);
    let gpu = gpu();
    for (causal, avg) in [(false, false), (false, true), (true, false)] {
        let mut g = Graph::new();
        let x = g.input("qkv", &[b, l, 3 * h * d], DType::F32);
        let y = g.attention(x, h, causal, avg).unwrap();
        g.mark_output(y);
        let mut plan = g.compile(&gpu).unwrap();
        plan.write(x, &qkv(b, l, h, d, 1)).unwrap();
        plan.run().unwrap();
        gpu.wait().unwrap();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            plan.run().unwrap();
            gpu.wait().unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let flops = 4.0 * (b * h * l * l * d) as f64;
        println!(
            "attention B={b} H={h} L={l} D={d} causal={causal} head_average={avg}: {:.2} ms, {:.2} GFLOP/s (dense count) on {}",
            times[1] * 1e3,
            flops / times[1] / 1e9,
            gpu.describe()
        );
    }
}
