//! The kernel self-check behind `unitok selfcheck`: each op family contributes a few small
//! cases, run on the chosen adapter and compared with the CPU reference. It answers "do the
//! kernels compute the right numbers on this machine's driver?" in a few seconds.

use crate::error::Result;
use crate::graph::{run_op_cpu, run_shared_op_gpu};
use crate::ops::Op;
use crate::tensor::{HostData, HostTensor};
use crate::Gpu;
use std::sync::Arc;

pub struct Case {
    pub name: String,
    pub op: Arc<dyn Op>,
    pub inputs: Vec<HostTensor>,
    pub atol: f32,
    pub rtol: f32,
}

pub struct Outcome {
    pub name: String,
    pub max_abs: f32,
    pub max_rel: f32,
    pub ok: bool,
}

/// Deterministic values in [-scale, scale).
pub fn pseudo_random(shape: &[usize], seed: u64, scale: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let data = (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545F4914F6CDD1D) >> 40) as f32 / (1u64 << 24) as f32;
            (u * 2.0 - 1.0) * scale
        })
        .collect();
    HostTensor {
        shape: shape.to_vec(),
        data: HostData::F32(data),
    }
}

/// Every op family's cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(crate::ops::elementwise::selfcheck_cases());
    v.extend(crate::ops::peak::selfcheck_cases());
    v.extend(crate::ops::norm::selfcheck_cases());
    v.extend(crate::ops::reduce::selfcheck_cases());
    v.extend(crate::ops::gather::selfcheck_cases());
    v.extend(crate::ops::mcq::selfcheck_cases());
    v.extend(crate::ops::conv::selfcheck_cases());
    v.extend(crate::ops::pool::selfcheck_cases());
    v.extend(crate::ops::matmul::selfcheck_cases());
    v.extend(crate::ops::attention::selfcheck_cases());
    v.extend(crate::ops::softmax::selfcheck_cases());
    v
}

pub fn run(gpu: &Arc<Gpu>, case: &Case) -> Result<Outcome> {
    let ins: Vec<&HostTensor> = case.inputs.iter().collect();
    let want = run_op_cpu(case.op.as_ref(), &ins)?;
    let got = run_shared_op_gpu(gpu, case.op.clone(), &ins)?;
    let (mut max_abs, mut max_rel, mut ok) = (0.0f32, 0.0f32, true);
    for (g, w) in got.iter().zip(&want) {
        match (&g.data, &w.data) {
            (HostData::F32(g), HostData::F32(w)) => {
                for (a, b) in g.iter().zip(w) {
                    let e = (a - b).abs();
                    max_abs = max_abs.max(e);
                    max_rel = max_rel.max(e / b.abs().max(1e-6));
                    ok &= e <= case.atol + case.rtol * b.abs();
                }
            }
            (HostData::U32(g), HostData::U32(w)) => ok &= g == w,
            _ => ok = false,
        }
    }
    Ok(Outcome {
        name: case.name.clone(),
        max_abs,
        max_rel,
        ok,
    })
}
