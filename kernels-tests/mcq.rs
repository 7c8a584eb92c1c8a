//! The multi-codebook cosine argmax and code lookup against the f32 CPU reference.

use crate::common::*;
use unitok::graph::{run_op_cpu, run_op_gpu};
use unitok::ops::mcq::{dot_f32, normalize_f32, McqArgmax, McqLookup, MCQ_EPS};
use unitok::ops::Op;
use unitok::{DType, Graph, HostTensor};

/// Run McqArgmax on both sides. Indices must agree, except where the reference's two
/// similarities differ by at most 2e-6 (a near tie that one rounding step can flip; counted and
/// bounded); the GPU's codes must be the unit row of the GPU's own index. Returns the GPU
/// indices and the number of near-tie flips.
fn check_mcq(z: &HostTensor, cb: &HostTensor, exact: bool) -> (Vec<u32>, usize) {
    // Where the adapter takes texture operands (mcq_tex.wgsl) the buffer kernel is checked too.
    let textures = !McqArgmax
        .scratch_textures(&[&z.desc(), &cb.desc()], &gpu().caps)
        .is_empty();
    let mut devices = vec![(gpu(), if textures { "texture" } else { "buffer" })];
    if textures {
        devices.push((gpu_buffers(), "buffer"));
    }
    let mut result = (vec![], 0);
    for (dev, path) in devices {
        result = check_mcq_on(&dev, path, z, cb, exact);
    }
    result
}

fn check_mcq_on(
    dev: &std::sync::Arc<unitok::Gpu>,
    path: &str,
    z: &HostTensor,
    cb: &HostTensor,
    exact: bool,
) -> (Vec<u32>, usize) {
    let label = format!("mcq_argmax ({path}) on {:?} x {:?}", z.shape, cb.shape);
    let want = run_op_cpu(&McqArgmax, &[z, cb]).unwrap_or_else(|e| panic!("{label}: cpu: {e}"));
    let got = run_op_gpu(dev, McqArgmax, &[z, cb]).unwrap_or_else(|e| panic!("{label}: gpu: {e}"));
    let (g, k, d) = (cb.shape[0], cb.shape[1], cb.shape[2]);
    assert_eq!(got[0].shape, want[0].shape, "{label}: index shape");
    assert_eq!(got[1].shape, want[1].shape, "{label}: code shape");
    let (gi, wi) = (got[0].as_u32().unwrap(), want[0].as_u32().unwrap());
    let (zs, cbs) = (z.as_f32().unwrap(), cb.as_f32().unwrap());
    let unit =
        |gg: usize, j: usize| normalize_f32(&cbs[(gg * k + j) * d..(gg * k + j + 1) * d], MCQ_EPS);
    let mut flips = 0;
    let mut max_code_err = 0.0f32;
    for (e, (&a, &b)) in gi.iter().zip(wi).enumerate() {
        let gg = e % g;
        assert!((a as usize) < k, "{label}: index {a} out of range at {e}");
        if a != b {
            let zh = normalize_f32(&zs[e * d..(e + 1) * d], MCQ_EPS);
            let (sa, sb) = (
                dot_f32(&zh, &unit(gg, a as usize)),
                dot_f32(&zh, &unit(gg, b as usize)),
            );
            assert!(
                !exact && (sa - sb).abs() <= 2e-6,
                "{label}: index mismatch at {e}: got {a} (cos {sa}) want {b} (cos {sb})"
            );
            flips += 1;
        }
        let want_code = unit(gg, a as usize);
        let got_code = &got[1].as_f32().unwrap()[e * d..(e + 1) * d];
        for (x, y) in got_code.iter().zip(&want_code) {
            let err = (x - y).abs();
            max_code_err = max_code_err.max(err);
            assert!(
                err <= 1e-6 + 1e-6 * y.abs(),
                "{label}: code at {e}: got {got_code:?} want {want_code:?}"
            );
        }
    }
    assert!(
        flips * 1000 <= gi.len().max(1000),
        "{label}: {flips} near-tie flips in {} indices",
        gi.len()
    );
    eprintln!("{label}: {flips} near-tie flips, max code err {max_code_err:.2e}");
    (gi.to_vec(), flips)
}

fn codebooks(g: usize, k: usize, d: usize, seed: u64) -> HostTensor {
    // UniTok's init scale (uniform ±8^-1/2/36); the normalisation makes the scale irrelevant.
    rand_scaled(&[g, k, d], seed, 0.0098)
}

#[test]
fn argmax_tokens_at_tile_edges() {
    // Small problems use 16 tokens a workgroup.
    for (g, d) in [(1, 4), (8, 8)] {
        for n in edge_sizes(16) {
            let z = rand_tensor(&[n, g * d], (n * 10 + g) as u64);
            check_mcq(&z, &codebooks(g, 257, d, n as u64), false);
        }
    }
}

#[test]
fn argmax_codes_at_tile_edges() {
    // A code tile holds 2048 / d rows: 512 for d = 4, 256 for d = 8; 16 invocations split them.
    for (g, d) in [(1, 4), (1, 8), (8, 4), (8, 8)] {
        for k in edge_sizes(2048 / d) {
            let z = rand_tensor(&[35, g * d], (k + g + d) as u64);
            check_mcq(&z, &codebooks(g, k, d, k as u64 + 77), false);
        }
    }
}

#[test]
fn argmax_many_tokens_batched() {
    // Large problems use 64 tokens a workgroup: UniTok's shape (G = 8, d = 8) with 8·256 + 17
    // tokens, and G = 1 with 16400 tokens; z with a leading batch dim.
    let z = rand_scaled(&[2065, 64], 1, 3.0);
    check_mcq(&z, &codebooks(8, 300, 8, 2), false);
    let z = rand_tensor(&[16400, 4], 3);
    check_mcq(&z, &codebooks(1, 100, 4, 4), false);
    let z = rand_tensor(&[3, 17, 64], 5);
    let (idx, _) = check_mcq(&z, &codebooks(8, 64, 8, 6), false);
    assert_eq!(idx.len(), 3 * 17 * 8);
}

/// Codebook [1, 600, 8] whose row `r` is duplicated at `dups` (same bits), with power-of-two
/// multiples at `muls` (which normalise to the same bits), and z = 3.7 · that row.
fn tie_case(r: usize, dups: &[usize], muls: &[(usize, f32)]) -> (HostTensor, HostTensor) {
    let (k, d) = (600, 8);
    let mut cb = codebooks(1, k, d, 99).into_f32().unwrap();
    let row: Vec<f32> = cb[r * d..(r + 1) * d].to_vec();
    for &j in dups {
        cb[j * d..(j + 1) * d].copy_from_slice(&row);
    }
    for &(j, m) in muls {
        for i in 0..d {
            cb[j * d + i] = row[i] * m;
        }
    }
    let z: Vec<f32> = (0..4).flat_map(|_| row.iter().map(|v| v * 3.7)).collect();
    (
        HostTensor::f32(&[4, 8], z).unwrap(),
        HostTensor::f32(&[1, k, d], cb).unwrap(),
    )
}

#[test]
fn argmax_ties_take_the_lowest_index() {
    // Duplicates across splits (3, 100) and across code tiles (259, 515): 3 wins.
    let (z, cb) = tie_case(3, &[100, 259, 515], &[]);
    let (idx, _) = check_mcq(&z, &cb, true);
    assert_eq!(idx, vec![3; 4]);
    // The row itself at 517, an exact duplicate at 260 (a later tile) and 2× / 0.5× multiples
    // at 7 and 401: the multiple at 7 normalises to the same vector and wins.
    let (z, cb) = tie_case(517, &[260], &[(7, 2.0), (401, 0.5)]);
    let unit = |j: usize| normalize_f32(&cb.as_f32().unwrap()[j * 8..j * 8 + 8], MCQ_EPS);
    assert_eq!(
        unit(7),
        unit(517),
        "2x row normalises to the same bits on the CPU"
    );
    let (idx, _) = check_mcq(&z, &cb, true);
    assert_eq!(idx, vec![7; 4]);
}

#[test]
fn argmax_zero_vectors() {
    // A zero token normalises to zero: all similarities are 0 and index 0 wins. Zero code rows
    // are zero unit codes.
    let mut cb = codebooks(2, 40, 4, 1).into_f32().unwrap();
    cb[..4].fill(0.0);
    let cb = HostTensor::f32(&[2, 40, 4], cb).unwrap();
    let mut z = rand_tensor(&[3, 8], 2).into_f32().unwrap();
    z[8..16].fill(0.0);
    let z = HostTensor::f32(&[3, 8], z).unwrap();
    let (idx, _) = check_mcq(&z, &cb, true);
    assert_eq!(&idx[2..4], &[0, 0]);
}

#[test]
fn lookup_matches_reference_and_argmax_codes() {
    for (g, d) in [(1, 4), (8, 8)] {
        let k = 300;
        let cb = codebooks(g, k, d, (g * d) as u64);
        let mut r = Rng::new(7);
        let n = 37;
        let mut ix: Vec<u32> = (0..n * g).map(|_| r.below(k as u32)).collect();
        ix[0] = k as u32; // invalid → zeros
        ix[n * g - 1] = u32::MAX;
        let idx = HostTensor::u32(&[n, g], ix).unwrap();
        let got = check_op(McqLookup, &[&cb, &idx], 1e-6, 1e-6);
        let y = got[0].as_f32().unwrap();
        assert!(y[..d].iter().all(|v| *v == 0.0));
        assert!(y[y.len() - d..].iter().all(|v| *v == 0.0));
    }
    // Through the graph: lookup of the argmax indices reproduces the argmax codes exactly.
    let mut gr = Graph::new();
    let z = gr.input("z", &[2, 50, 64], DType::F32);
    let cbt = gr.param("cb", &[8, 200, 8], DType::F32);
    let (ix, codes) = gr.mcq_argmax(z, cbt).unwrap();
    assert_eq!(gr.shape(ix), &[2, 50, 8]);
    let back = gr.mcq_lookup(cbt, ix).unwrap();
    gr.mark_output(ix);
    gr.mark_output(codes);
    gr.mark_output(back);
    let mut plan = gr.compile(&gpu()).unwrap();
    plan.write(z, &rand_tensor(&[2, 50, 64], 8)).unwrap();
    plan.write(cbt, &codebooks(8, 200, 8, 9)).unwrap();
    plan.run().unwrap();
    let out = plan.read_many(&[codes, back]).unwrap();
    assert_eq!(out[0], out[1]);
}

#[test]
fn mcq_shape_errors() {
    let z = rand_tensor(&[4, 60], 1);
    let cb = codebooks(8, 10, 8, 2);
    let e = run_op_cpu(&McqArgmax, &[&z, &cb]).unwrap_err().to_string();
    assert!(
        e.contains("mcq_argmax") && e.contains("[4, 60]") && e.contains("[8, 10, 8]"),
        "{e}"
    );
    let wide = codebooks(1, 10, 33, 3);
    let z = rand_tensor(&[4, 33], 1);
    let e = run_op_cpu(&McqArgmax, &[&z, &wide])
        .unwrap_err()
        .to_string();
    assert!(e.contains("d = 33"), "{e}");
    let bad_idx = rand_tensor(&[4, 8], 1);
    let e = run_op_cpu(&McqLookup, &[&cb, &bad_idx])
        .unwrap_err()
        .to_string();
    assert!(e.contains("mcq_lookup") && e.contains("U32"), "{e}");
}
