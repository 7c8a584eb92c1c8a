//! The graph executor: memory reuse never aliases live tensors, re-runs give the same result,
//! one submission per run, typed errors for bad graphs.

use crate::common::*;
use std::collections::HashMap;
use unitok::ops::elementwise::UnaryKind;
use unitok::{DType, Graph};

/// A chain long enough that the planner must reuse buffers, with a long-lived tensor that
/// must not be overwritten while it is still needed.
fn chain_graph() -> (
    Graph,
    unitok::TensorId,
    Vec<unitok::TensorId>,
    unitok::TensorId,
) {
    let mut g = Graph::new();
    let x = g.input("x", &[4, 33], DType::F32);
    let keep = g.unary(x, UnaryKind::Affine(0.5, 1.0)).unwrap(); // used at the very end
    let mut h = g.gelu(x).unwrap();
    let mut all = vec![keep, h];
    for i in 0..12 {
        let t = g.scale(h, 1.0 + i as f32 * 0.01).unwrap();
        h = g.add(t, h).unwrap();
        all.push(t);
        all.push(h);
    }
    let y = g.mul(h, keep).unwrap();
    g.mark_output(y);
    (g, x, all, y)
}

#[test]
fn planner_reuses_buffers_without_aliasing_live_tensors() {
    let (g, x, _, y) = chain_graph();
    let gpu = gpu();
    let plan = g.compile(&gpu).unwrap();
    let naive: u64 = g
        .tensors
        .iter()
        .map(|t| t.desc.bytes().div_ceil(4) * 4)
        .sum();
    assert!(
        plan.planned_bytes() < naive / 3,
        "planned {} vs naive {}",
        plan.planned_bytes(),
        naive
    );

    // Check the plan's slot assignment against liveness directly.
    let mut last = HashMap::new();
    for (k, n) in g.nodes.iter().enumerate() {
        for t in n.inputs.iter().chain(&n.outputs) {
            last.insert(*t, k);
        }
    }
    for (k, n) in g.nodes.iter().enumerate() {
        for o in &n.outputs {
            let so = plan.storage_of(*o).unwrap();
            // No tensor that is still live at node k (defined before, used at or after k) may
            // share the buffer of k's output.
            for (j, m) in g.nodes.iter().enumerate().take(k) {
                for t in &m.outputs {
                    if last[t] >= k && *t != *o {
                        assert_ne!(
                            plan.storage_of(*t).unwrap(),
                            so,
                            "node {k} output aliases live tensor from node {j}"
                        );
                    }
                }
            }
            assert_ne!(plan.storage_of(x).unwrap(), so);
        }
    }
    let _ = y;
}

#[test]
fn plan_matches_cpu_and_reruns_with_new_data() {
    let (g, x, _, y) = chain_graph();
    let gpu = gpu();
    let mut plan = g.compile(&gpu).unwrap();
    assert_eq!(plan.dispatch_count(), g.nodes.len());
    for seed in [1u64, 2, 1] {
        let xd = rand_tensor(&[4, 33], seed);
        plan.write(x, &xd).unwrap();
        plan.run().unwrap();
        let got = plan.read(y).unwrap();
        let want = g
            .run_cpu(&HashMap::from([(x, xd)]))
            .unwrap()
            .remove(&y)
            .unwrap();
        assert_close(&format!("chain seed {seed}"), &got, &want, 1e-4, 1e-5);
    }
}

#[test]
fn reading_an_unmarked_intermediate_is_an_error() {
    let (g, x, all, _) = chain_graph();
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(x, &rand_tensor(&[4, 33], 1)).unwrap();
    plan.run().unwrap();
    let err = plan.read(all[3]).unwrap_err().to_string();
    assert!(err.contains("not marked"), "{err}");
}

#[test]
fn wrong_input_data_is_a_typed_error() {
    let (g, x, _, _) = chain_graph();
    let mut plan = g.compile(&gpu()).unwrap();
    let err = plan
        .write(x, &rand_tensor(&[4, 32], 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[4, 33]") && err.contains("[4, 32]"), "{err}");
}

#[test]
fn shape_mismatch_names_op_and_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", &[3, 4], DType::F32);
    let b = g.input("b", &[5], DType::F32);
    let err = g.add(a, b).unwrap_err().to_string();
    assert!(
        err.contains("binary(Add)") && err.contains("[3, 4]") && err.contains("[5]"),
        "{err}"
    );
}

#[test]
fn pool_recycles_buffers_after_plans_drop() {
    // A device of its own: the shared one's pool also holds the buffers of tests running
    // beside this one, which made the count below depend on the test schedule.
    let gpu = unitok::Gpu::new().unwrap();
    let (g, x, _, y) = chain_graph();
    for _ in 0..3 {
        let mut plan = g.compile(&gpu).unwrap();
        plan.write(x, &rand_tensor(&[4, 33], 1)).unwrap();
        plan.run().unwrap();
        plan.read(y).unwrap();
    }
    gpu.wait().unwrap();
    let before = gpu.memory();
    for _ in 0..5 {
        let mut plan = g.compile(&gpu).unwrap();
        plan.write(x, &rand_tensor(&[4, 33], 1)).unwrap();
        plan.run().unwrap();
        plan.read(y).unwrap();
    }
    gpu.wait().unwrap();
    let after = gpu.memory();
    // Plans compiled after the first three reuse their pooled buffers: nothing grows.
    assert!(
        after.live_bytes + after.pooled_bytes <= before.live_bytes + before.pooled_bytes,
        "{before:?} -> {after:?}"
    );
}

#[test]
fn split_submissions_give_the_same_bits() {
    let (g, x, _, y) = chain_graph();
    let gpu = gpu();
    let xd = rand_tensor(&[4, 33], 5);
    let mut one = g.compile(&gpu).unwrap();
    one.write(x, &xd).unwrap();
    one.run().unwrap();
    let mut split = g.compile(&gpu).unwrap();
    split.set_dispatches_per_submission(3);
    split.write(x, &xd).unwrap();
    split.run().unwrap();
    assert_eq!(
        one.read(y).unwrap().as_f32().unwrap(),
        split.read(y).unwrap().as_f32().unwrap()
    );
}

#[test]
fn zeroing_a_param_on_the_device() {
    let mut g = Graph::new();
    let p = g.param("p", &[5, 7], DType::F32);
    let y = g.scale(p, 2.0).unwrap();
    g.mark_output(y);
    let mut plan = g.compile(&gpu()).unwrap();
    plan.write(p, &rand_tensor(&[5, 7], 3)).unwrap();
    plan.zero(p).unwrap();
    plan.run().unwrap();
    assert!(plan
        .read(p)
        .unwrap()
        .as_f32()
        .unwrap()
        .iter()
        .all(|v| *v == 0.0));
    assert!(plan
        .read(y)
        .unwrap()
        .as_f32()
        .unwrap()
        .iter()
        .all(|v| *v == 0.0));
    // Intermediates cannot be written or zeroed.
    assert!(plan.zero(y).is_err());
}

/// A weight's packed texture (texture operands) is kept across runs and repacked after every
/// `write` or `zero` of the weight; a parameter that the graph updates in place is repacked on
/// every run. Compared with the CPU reference after each change, so a stale texture fails.
#[test]
fn kept_weight_textures_follow_every_change() {
    let gpu = gpu();
    let mut g = Graph::new();
    let x = g.input("x", &[5, 8], DType::F32);
    let w = g.param("w", &[12, 8], DType::F32);
    let y = g.linear(x, w, None).unwrap();
    // A second weight that a later op of the same graph scales in place after using it.
    let u = g.param("u", &[12, 8], DType::F32);
    let z = g.linear(x, u, None).unwrap();
    g.unary_in_place(u, UnaryKind::Affine(2.0, 0.0)).unwrap();
    g.mark_output(y);
    g.mark_output(z);
    let mut plan = g.compile(&gpu).unwrap();
    let xv = rand_tensor(&[5, 8], 1);
    plan.write(x, &xv).unwrap();
    let expect = |wv: &unitok::HostTensor| {
        unitok::graph::run_op_cpu(&unitok::ops::matmul::Matmul::new(false, true), &[&xv, wv])
            .unwrap()
            .remove(0)
    };
    let scaled = |t: &unitok::HostTensor, f: f32| {
        unitok::HostTensor::f32(
            &t.shape,
            t.as_f32().unwrap().iter().map(|v| v * f).collect(),
        )
        .unwrap()
    };
    let mut uv = rand_tensor(&[12, 8], 3);
    plan.write(u, &uv).unwrap();
    for (step, wv) in [rand_tensor(&[12, 8], 2), rand_tensor(&[12, 8], 4)]
        .iter()
        .enumerate()
    {
        plan.write(w, wv).unwrap();
        for run in 0..2 {
            plan.run().unwrap();
            let label = format!("write {step}, run {run}");
            assert_close(
                &format!("{label}: y"),
                &plan.read(y).unwrap(),
                &expect(wv),
                1e-5,
                1e-5,
            );
            assert_close(
                &format!("{label}: z"),
                &plan.read(z).unwrap(),
                &expect(&uv),
                1e-5,
                1e-5,
            );
            uv = scaled(&uv, 2.0);
        }
    }
    zero_and_check(
        &mut plan,
        w,
        y,
        &expect(&unitok::HostTensor::zeros(&[12, 8])),
    );
}

/// Zeroes weight `w` on the device and checks output `y` against `expect` exactly: a kept
/// texture that missed the zero still holds the old weight.
fn zero_and_check(
    plan: &mut unitok::graph::Plan,
    w: unitok::graph::TensorId,
    y: unitok::graph::TensorId,
    expect: &unitok::HostTensor,
) {
    plan.zero(w).unwrap();
    plan.run().unwrap();
    assert_close("after zero", &plan.read(y).unwrap(), expect, 0.0, 0.0);
}

/// The same for a texture the copy engine fills (A · B with a weight b: `mm_rows` reads plain
/// copies): the kept copy of the weight follows every write and zero.
#[test]
fn kept_copied_textures_follow_every_change() {
    let gpu = gpu();
    if !takes_texture_operands() {
        return;
    }
    let op = unitok::ops::matmul::Matmul::new(false, false);
    assert_eq!(
        crate::matmul::chosen_kernel(&gpu.caps, &op, &[9, 64], &[64, 128]).0,
        "mm_rows"
    );
    let mut g = Graph::new();
    let x = g.input("x", &[9, 64], DType::F32);
    let w = g.param("w", &[64, 128], DType::F32);
    let y = g.matmul(x, w, false, false).unwrap();
    g.mark_output(y);
    let mut plan = g.compile(&gpu).unwrap();
    let xv = rand_tensor(&[9, 64], 1);
    plan.write(x, &xv).unwrap();
    let expect = |wv: &unitok::HostTensor| {
        unitok::graph::run_op_cpu(&op, &[&xv, wv])
            .unwrap()
            .remove(0)
    };
    for (step, wv) in [rand_tensor(&[64, 128], 2), rand_tensor(&[64, 128], 3)]
        .iter()
        .enumerate()
    {
        plan.write(w, wv).unwrap();
        for run in 0..2 {
            plan.run().unwrap();
            let got = plan.read(y).unwrap();
            assert_close(
                &format!("write {step}, run {run}"),
                &got,
                &expect(wv),
                1e-5,
                1e-5,
            );
        }
    }
    zero_and_check(
        &mut plan,
        w,
        y,
        &expect(&unitok::HostTensor::zeros(&[64, 128])),
    );
}
