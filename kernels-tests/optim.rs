//! Optimizer ops: clipping coefficient and AdamW against the CPU reference over several steps
//! of one compiled plan (in-place updates of parameters and moments).

use crate::common::*;
use std::collections::HashMap;
use unitok::ops::optim::hyper;
use unitok::{DType, Graph, HostTensor};

#[test]
fn clipped_adamw_steps_match_reference() {
    let shapes: [&[usize]; 2] = [&[300], &[7, 33]];
    let mut g = Graph::new();
    let grads: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.input(&format!("g{i}"), s, DType::F32))
        .collect();
    let params: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.param(&format!("p{i}"), s, DType::F32))
        .collect();
    let ms: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.param(&format!("m{i}"), s, DType::F32))
        .collect();
    let vs: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.param(&format!("v{i}"), s, DType::F32))
        .collect();
    let h = g.input("hyper", &[6], DType::F32);
    let clip = g.clip_grad_norm(&grads, 2.0).unwrap();
    g.mark_output(clip);
    for i in 0..2 {
        g.adamw(
            grads[i],
            h,
            clip,
            params[i],
            ms[i],
            vs[i],
            if i == 0 { 0.02 } else { 0.0 },
        )
        .unwrap();
    }
    let gpu = gpu();
    let mut plan = g.compile(&gpu).unwrap();
    let mut cpu_state: HashMap<_, HostTensor> = HashMap::new();
    for i in 0..2 {
        let p = rand_tensor(shapes[i], 100 + i as u64);
        plan.write(params[i], &p).unwrap();
        cpu_state.insert(params[i], p);
        for t in [ms[i], vs[i]] {
            plan.write(t, &HostTensor::zeros(shapes[i])).unwrap();
            cpu_state.insert(t, HostTensor::zeros(shapes[i]));
        }
    }
    for step in 1..=3u32 {
        let hy = hyper(1e-3, 0.9, 0.95, 1e-6, step);
        plan.write(h, &hy).unwrap();
        let mut feeds = cpu_state.clone();
        feeds.insert(h, hy);
        for i in 0..2 {
            let gd = rand_scaled(shapes[i], 10 * step as u64 + i as u64, 3.0);
            plan.write(grads[i], &gd).unwrap();
            feeds.insert(grads[i], gd);
        }
        plan.run().unwrap();
        let vals = g.run_cpu(&feeds).unwrap();
        assert_close(
            &format!("clip step {step}"),
            &plan.read(clip).unwrap(),
            &vals[&clip],
            1e-5,
            1e-5,
        );
        assert!(
            vals[&clip].as_f32().unwrap()[0] < 1.0,
            "clipping must be active in this test"
        );
        for i in 0..2 {
            for t in [params[i], ms[i], vs[i]] {
                assert_close(
                    &format!("step {step} tensor {t:?}"),
                    &plan.read(t).unwrap(),
                    &vals[&t],
                    2e-6,
                    1e-5,
                );
                cpu_state.insert(t, vals[&t].clone());
            }
        }
    }
}
