//! Matmul and linear against the CPU reference: every transpose combination on shapes at,
//! one short of and one past each tile edge (8 rows, 64/256 columns, 4 k), batches with a
//! batched or a shared b, bias, alpha, the `linear` builder, a weight larger than one storage
//! binding (row chunks), shape errors, and the variant choice itself. Every numeric case runs
//! the subgroup kernel (where the adapter has subgroups) and the portable kernels.

use crate::common::*;
use std::collections::HashMap;
use unitok::graph::{run_op_cpu, run_op_gpu};
use unitok::ops::matmul::{Matmul, TM, TM_SG};
use unitok::ops::{EncodeCx, Op, RowChunk, Storage};
use unitok::{DType, Graph, HostTensor, TensorDesc};

/// a and b shapes for `op` with the given batch dims and sizes.
fn operands(
    op: &Matmul,
    batch: &[usize],
    b_batched: bool,
    m: usize,
    k: usize,
    n: usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut a = batch.to_vec();
    a.extend(if op.trans_a { [k, m] } else { [m, k] });
    let mut b = if b_batched {
        batch.to_vec()
    } else {
        Vec::new()
    };
    b.extend(if op.trans_b { [n, k] } else { [k, n] });
    (a, b)
}

/// f32 accumulation over k terms of size ~1: allow a few ulps per term.
fn tol(k: usize) -> (f32, f32) {
    (2e-6 * (k as f32).max(1.0).sqrt() * 4.0, 1e-4)
}

/// The product kernel `op` encodes for operands of shapes a and b on an adapter with `caps`,
/// and whether it is the bounds-checked variant.
pub(crate) fn chosen_kernel(
    caps: &unitok::device::Caps,
    op: &Matmul,
    a: &[usize],
    b: &[usize],
) -> (&'static str, bool) {
    let inputs = [a, b].map(|s| Storage {
        desc: TensorDesc::f32(s),
        chunks: vec![RowChunk {
            start: 0,
            rows: s[0],
        }],
    });
    let out = op.infer(&[&inputs[0].desc, &inputs[1].desc]).unwrap();
    let cx = EncodeCx {
        inputs: &inputs,
        outputs: &out,
        output_chunks: &[],
        scratch: &[],
        caps,
    };
    let d = op.encode(&cx).unwrap();
    let textures = op.scratch_textures(&[&inputs[0].desc, &inputs[1].desc], caps);
    if !textures.is_empty() {
        // Texture path: packs or copies into the two textures, then the product.
        assert_eq!(textures.len(), 2);
        assert!(d.len() >= 3);
        return (d[d.len() - 1].kernel.entry, false);
    }
    assert_eq!(d.len(), 1);
    assert!(op
        .scratch_textures(&[&inputs[0].desc, &inputs[1].desc], caps)
        .is_empty());
    let check = d[0]
        .kernel
        .constants
        .iter()
        .find(|(n, _)| *n == "CHECK")
        .unwrap()
        .1;
    (d[0].kernel.entry, check == 1.0)
}

fn check(
    op: Matmul,
    batch: &[usize],
    b_batched: bool,
    m: usize,
    k: usize,
    n: usize,
    bias: bool,
    seed: u64,
) {
    let (sa, sb) = operands(&op, batch, b_batched, m, k, n);
    let a = rand_tensor(&sa, seed);
    let b = rand_tensor(&sb, seed + 1);
    let c = rand_tensor(&[n], seed + 2);
    let (atol, rtol) = tol(k);
    let ins: Vec<&HostTensor> = if bias { vec![&a, &b, &c] } else { vec![&a, &b] };
    // The texture kernel where the adapter takes texture operands and the subgroup kernel
    // (check_op runs both), and the portable kernels.
    check_op(op.clone(), &ins, atol, rtol);
    if gpu().caps.subgroups {
        check_op(op.without_subgroups(), &ins, atol, rtol);
    }
}

const COMBOS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

#[test]
fn rows_around_the_tile_edge() {
    for (ta, tb) in COMBOS {
        for m in edge_sizes(TM)
            .into_iter()
            .chain(edge_sizes(TM_SG))
            .chain([12])
        {
            // k = 20 and n = 64: the vec4 kernel; k = 19: the scalar kernel.
            check(Matmul::new(ta, tb), &[], false, m, 20, 64, false, m as u64);
            check(
                Matmul::new(ta, tb),
                &[],
                false,
                m,
                19,
                36,
                false,
                100 + m as u64,
            );
        }
    }
}

#[test]
fn columns_around_the_tile_edge() {
    for (ta, tb) in COMBOS {
        for n in edge_sizes(64).into_iter().chain([255, 256, 257, 512]) {
            check(Matmul::new(ta, tb), &[], false, 16, 12, n, false, n as u64);
        }
    }
}

#[test]
fn inner_dim_around_the_vector_width() {
    for (ta, tb) in COMBOS {
        for k in edge_sizes(4).into_iter().chain([64, 67]) {
            check(Matmul::new(ta, tb), &[], false, 8, k, 64, false, k as u64);
            check(
                Matmul::new(ta, tb),
                &[],
                false,
                9,
                k,
                21,
                true,
                50 + k as u64,
            );
        }
    }
}

#[test]
fn batched_and_shared_b() {
    for (ta, tb) in COMBOS {
        for b_batched in [true, false] {
            // [2, 3] batch dims; a fitting shape, a vec4 shape with edges and an odd shape.
            check(Matmul::new(ta, tb), &[2, 3], b_batched, 8, 16, 64, false, 1);
            check(Matmul::new(ta, tb), &[2, 3], b_batched, 12, 16, 40, true, 2);
            check(Matmul::new(ta, tb), &[2, 3], b_batched, 5, 7, 9, true, 3);
        }
    }
}

#[test]
fn bias_and_alpha() {
    for (ta, tb) in COMBOS {
        check(
            Matmul::new(ta, tb).scaled(0.125),
            &[],
            false,
            16,
            32,
            256,
            true,
            7,
        );
        check(
            Matmul::new(ta, tb).scaled(-2.0),
            &[3],
            true,
            7,
            5,
            3,
            true,
            8,
        );
    }
}

#[test]
fn odd_shapes() {
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 65),
        (31, 13, 129),
        (100, 3, 300),
    ];
    for (i, (m, k, n)) in shapes.into_iter().enumerate() {
        for (ta, tb) in COMBOS {
            check(
                Matmul::new(ta, tb),
                &[2],
                i % 2 == 0,
                m,
                k,
                n,
                i % 2 == 1,
                20 + i as u64,
            );
        }
    }
}

#[test]
fn empty_inner_dim_gives_bias() {
    let a = HostTensor::zeros(&[3, 0]);
    let b = HostTensor::zeros(&[0, 5]);
    let c = rand_tensor(&[5], 1);
    let out = check_op(Matmul::new(false, false), &[&a, &b, &c], 0.0, 0.0);
    assert_eq!(out[0].as_f32().unwrap()[5..10], c.as_f32().unwrap()[..]);
}

/// Which kernel `encode` picks: the tile-fit variant without bounds checks exactly when the
/// shape fills whole tiles, vec4 loads when the strides allow, scalar otherwise, and the
/// subgroup kernel only where the adapter has subgroups of at least 8 lanes.
#[test]
fn variant_selection() {
    let gpu = gpu();
    let mut no_sg = gpu.caps.clone();
    no_sg.subgroups = false;
    no_sg.texture_operands = false;
    let mut sg = gpu.caps.clone();
    sg.subgroups = true;
    sg.subgroup_min = 8;
    sg.texture_operands = false;
    let mut tex = sg.clone();
    tex.texture_operands = true;
    tex.max_texture_dim = 16384;
    let mut small_sg = sg.clone();
    small_sg.subgroup_min = 4;
    let pick = |caps: &unitok::device::Caps, op: Matmul, a: &[usize], b: &[usize]| {
        chosen_kernel(caps, &op, a, b)
    };
    let nn = || Matmul::new(false, false);
    let c = &no_sg;
    assert_eq!(pick(c, nn(), &[64, 32], &[32, 256]), ("mm_vec", false));
    assert_eq!(
        pick(c, Matmul::new(false, true), &[4, 16, 32], &[256, 32]),
        ("mm_vec", false)
    );
    assert_eq!(
        pick(c, Matmul::new(true, true), &[2, 32, 16], &[2, 512, 32]),
        ("mm_vec", false)
    );
    // Narrow products (n < 256) always take the checked variant.
    assert_eq!(
        pick(c, Matmul::new(true, true), &[2, 32, 16], &[2, 64, 32]),
        ("mm_vec", true)
    );
    assert_eq!(pick(c, nn(), &[65, 32], &[32, 256]), ("mm_vec", true));
    assert_eq!(pick(c, nn(), &[64, 32], &[32, 260]), ("mm_vec", true));
    assert_eq!(
        pick(c, Matmul::new(false, true), &[64, 32], &[7, 32]),
        ("mm_vec", true)
    );
    assert_eq!(pick(c, nn(), &[64, 30], &[30, 256]), ("mm_scalar", true));
    assert_eq!(pick(c, nn(), &[64, 32], &[32, 7]), ("mm_scalar", true));
    assert_eq!(
        pick(c, Matmul::new(true, false), &[32, 6], &[32, 64]),
        ("mm_scalar", true)
    );
    // Subgroups: 16-row tiles.
    assert_eq!(pick(&sg, nn(), &[64, 32], &[32, 256]), ("mm_sg", false));
    assert_eq!(pick(&sg, nn(), &[24, 32], &[32, 256]), ("mm_sg", true));
    assert_eq!(
        pick(&sg, nn().without_subgroups(), &[24, 32], &[32, 256]),
        ("mm_vec", false)
    );
    assert_eq!(pick(&sg, nn(), &[64, 30], &[30, 256]), ("mm_scalar", true));
    assert_eq!(
        pick(&small_sg, nn(), &[64, 32], &[32, 256]),
        ("mm_vec", false)
    );
    // Texture operands: any K and transpose while N is a multiple of 4 and the textures fit;
    // A · B with rows of whole 256-byte copy rows is read from plain copies.
    let tt = || Matmul::new(true, true);
    assert_eq!(pick(&tex, nn(), &[65, 64], &[64, 320]).0, "mm_rows");
    assert_eq!(pick(&tex, nn(), &[2, 9, 128], &[128, 64]).0, "mm_rows");
    assert_eq!(pick(&tex, nn(), &[65, 64], &[64, 260]).0, "mm_panel");
    assert_eq!(pick(&tex, nn(), &[65, 60], &[60, 256]).0, "mm_panel");
    assert_eq!(
        pick(&tex, Matmul::new(false, true), &[64, 64], &[64, 64]).0,
        "mm_panel"
    );
    assert_eq!(
        pick(&tex, Matmul::new(true, false), &[64, 64], &[64, 64]).0,
        "mm_panel"
    );
    assert_eq!(pick(&tex, nn(), &[65, 30], &[30, 260]).0, "mm_panel");
    assert_eq!(pick(&tex, tt(), &[2, 7, 5], &[2, 12, 7]).0, "mm_panel");
    assert_eq!(pick(&tex, nn(), &[64, 32], &[32, 7]).0, "mm_scalar");
    assert_eq!(
        pick(&tex, nn().without_textures(), &[64, 32], &[32, 256]).0,
        "mm_sg"
    );
    assert_eq!(
        pick(&tex, nn().without_subgroups(), &[64, 32], &[32, 256]).0,
        "mm_vec"
    );
    // K = 8200: the texture would be 16400 texels wide.
    assert_eq!(pick(&tex, nn(), &[64, 8200], &[8200, 256]).0, "mm_sg");
}

/// The texture kernel (16 × 16·SGS output tiles, K in texels of 4) around its tile edges, with
/// every transpose, batches with a batched and a shared b, bias and alpha; the kernel choice is
/// asserted so these cases cannot silently test another kernel.
#[test]
fn texture_kernel_around_its_tiles() {
    let gpu = gpu();
    if !takes_texture_operands() {
        return;
    }
    let takes_textures = |op: &Matmul, a: &[usize], b: &[usize]| {
        let (a, b) = (TensorDesc::f32(a), TensorDesc::f32(b));
        op.scratch_textures(&[&a, &b], &gpu.caps).len() == 2
    };
    let mut seed = 900;
    let mut case = 0;
    for (ta, tb) in COMBOS {
        for (batch, b_batched) in [(vec![], false), (vec![3], true), (vec![2], false)] {
            for (m, k, n) in [
                (16, 4, 16),
                (15, 5, 12),
                (17, 7, 20),
                (33, 13, 128),
                (31, 16, 132),
                (8, 3, 124),
                (1, 1, 4),
                (20, 9, 260),
            ] {
                let op = Matmul::new(ta, tb).scaled(if seed % 2 == 0 { 1.0 } else { 0.5 });
                let (sa, sb) = operands(&op, &batch, b_batched, m, k, n);
                assert!(takes_textures(&op, &sa, &sb), "{sa:?} {sb:?}");
                // Every third case with a bias; the others bind a stand-in (a 1-element a
                // included) for the bias binding.
                check_random(op, &sa, &sb, case % 3 == 0, seed);
                seed += 3;
                case += 1;
            }
        }
    }
}

/// One product of random operands of these shapes (seeds seed, seed + 1, and seed + 2 for the
/// bias) against the CPU reference, with the tolerance of its K.
fn check_random(op: Matmul, sa: &[usize], sb: &[usize], with_bias: bool, seed: u64) {
    let k = if op.trans_a {
        sa[sa.len() - 2]
    } else {
        sa[sa.len() - 1]
    };
    let n = if op.trans_b {
        sb[sb.len() - 2]
    } else {
        sb[sb.len() - 1]
    };
    let a = rand_tensor(sa, seed);
    let b = rand_tensor(sb, seed + 1);
    let c = rand_tensor(&[n], seed + 2);
    let (atol, rtol) = tol(k);
    let ins: Vec<&HostTensor> = if with_bias {
        vec![&a, &b, &c]
    } else {
        vec![&a, &b]
    };
    check_op(op, &ins, atol, rtol);
}

/// `mm_rows` (A · B from plain copies, 8 × 32·SGS output tiles) around its tile edges: rows
/// 8 ± 1, columns on and past 32 and 256 (a workgroup of 8 subgroups), K of 1 and 3 copy
/// rows, batches with a batched and a shared b, bias and alpha; the kernel choice is asserted.
#[test]
fn rows_kernel_around_its_tiles() {
    let gpu = gpu();
    if !takes_texture_operands() {
        return;
    }
    let mut seed = 1900;
    for (batch, b_batched) in [(vec![], false), (vec![3], true), (vec![2], false)] {
        for (case, (m, k, n)) in [
            (8, 64, 64),
            (7, 64, 128),
            (9, 192, 64),
            (17, 64, 320),
            (1, 128, 64),
            (24, 64, 576),
        ]
        .into_iter()
        .enumerate()
        {
            let op = Matmul::new(false, false).scaled(if case % 2 == 0 { 1.0 } else { 0.5 });
            let (sa, sb) = operands(&op, &batch, b_batched, m, k, n);
            assert_eq!(
                chosen_kernel(&gpu.caps, &op, &sa, &sb).0,
                "mm_rows",
                "{sa:?} {sb:?}"
            );
            check_random(op, &sa, &sb, case % 3 == 0, seed);
            seed += 3;
        }
    }
}

/// `mm_rows` copies B into its texture as vertical strips, the narrowest (a subgroup's 8
/// texels) where the stack fits the texture height, wider where it does not. A texture limit
/// of 512 makes the wider strips happen on small shapes: K = 64 fits 8 strips (B's 160 texels
/// in strips of 24, the last one 16 wide), and a batched B of 3 × 64 rows fits 2 (strips of
/// 80). Checked against the CPU reference, with the copies counted.
#[test]
fn rows_kernel_with_wider_strips() {
    use unitok::ops::Op;
    if !takes_texture_operands() {
        return;
    }
    let dev = unitok::Gpu::new_narrowed(|c| c.max_texture_dim = 512).unwrap();
    for (batch, strips, seed) in [(vec![], 7usize, 2100u64), (vec![3], 2, 2200)] {
        let op = Matmul::new(false, false);
        let (sa, sb) = operands(&op, &batch, true, 24, 64, 640);
        assert_eq!(chosen_kernel(&dev.caps, &op, &sa, &sb).0, "mm_rows");
        let (da, db) = (TensorDesc::f32(&sa), TensorDesc::f32(&sb));
        let sizes = op.scratch_textures(&[&da, &db], &dev.caps);
        assert_eq!(sizes[1][1] as usize, strips * db.numel() / 640, "{sb:?}");
        let a = rand_tensor(&sa, seed);
        let b = rand_tensor(&sb, seed + 1);
        let want = run_op_cpu(&op, &[&a, &b]).unwrap();
        let got = run_op_gpu(&dev, op.clone(), &[&a, &b]).unwrap();
        let (atol, rtol) = tol(64);
        assert_close(&format!("strips {sb:?}"), &got[0], &want[0], atol, rtol);
    }
}

#[test]
fn linear_builder_matches_reference() {
    let gpu = gpu();
    for (xs, bias) in [
        (vec![2, 3, 48], true),
        (vec![5, 48], false),
        (vec![48], true),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", &xs, DType::F32);
        let w = g.param("w", &[40, 48], DType::F32);
        let b = g.param("b", &[40], DType::F32);
        let y = g.linear(x, w, bias.then_some(b)).unwrap();
        let mut want_shape = xs.clone();
        *want_shape.last_mut().unwrap() = 40;
        assert_eq!(g.shape(y), want_shape.as_slice());
        g.mark_output(y);
        let feeds: HashMap<_, _> = [
            (x, rand_tensor(&xs, 1)),
            (w, rand_tensor(&[40, 48], 2)),
            (b, rand_tensor(&[40], 3)),
        ]
        .into_iter()
        .collect();
        let want = g.run_cpu(&feeds).unwrap().remove(&y).unwrap();
        let mut plan = g.compile(&gpu).unwrap();
        for (t, v) in &feeds {
            plan.write(*t, v).unwrap();
        }
        plan.run().unwrap();
        let got = plan.read(y).unwrap();
        let (atol, rtol) = tol(48);
        assert_close(&format!("linear {xs:?}"), &got, &want, atol, rtol);
    }
}

#[test]
fn shape_errors_name_the_operands() {
    let a = rand_tensor(&[4, 5], 1);
    let b = rand_tensor(&[6, 3], 2);
    let e = run_op_cpu(&Matmul::new(false, false), &[&a, &b])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("K = 5") && e.contains("K = 6") && e.contains("[4, 5]") && e.contains("[6, 3]"),
        "{e}"
    );
    // Transposes change which dim is K.
    let b = rand_tensor(&[3, 5], 2);
    assert!(run_op_cpu(&Matmul::new(false, true), &[&a, &b]).is_ok());
    let e = run_op_cpu(&Matmul::new(true, true), &[&a, &b])
        .unwrap_err()
        .to_string();
    assert!(e.contains("inner dims differ"), "{e}");
    // Batch dims must match or be absent.
    let a3 = rand_tensor(&[2, 4, 5], 1);
    let b3 = rand_tensor(&[3, 5, 2], 2);
    let e = run_op_cpu(&Matmul::new(false, false), &[&a3, &b3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch dims"), "{e}");
    // Bias must be [N]; rank 1 operands are rejected.
    let b = rand_tensor(&[5, 3], 2);
    let e = run_op_cpu(&Matmul::new(false, false), &[&a, &b, &rand_tensor(&[4], 3)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bias must be [N] = [3]"), "{e}");
    let e = run_op_cpu(&Matmul::new(false, false), &[&rand_tensor(&[5], 1), &b])
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank >= 2"), "{e}");

    let mut g = Graph::new();
    let x = g.input("x", &[2, 48], DType::F32);
    let w = g.param("w", &[40, 47], DType::F32);
    assert!(g
        .linear(x, w, None)
        .unwrap_err()
        .to_string()
        .contains("in = weight dim 1"));
    let w3 = g.param("w3", &[1, 40, 48], DType::F32);
    assert!(g
        .linear(x, w3, None)
        .unwrap_err()
        .to_string()
        .contains("[out, in]"));
    let wb = g.param("w", &[40, 48], DType::F32);
    let bad_bias = g.param("b", &[48], DType::F32);
    assert!(g
        .linear(x, wb, Some(bad_bias))
        .unwrap_err()
        .to_string()
        .contains("bias must be [N] = [40]"));
    assert!(g.matmul(x, wb, false, false).is_err());
    assert!(g.matmul(x, wb, false, true).is_ok());
}

/// More row tiles than one grid dimension holds (65535): the executor folds the grid and the
/// kernel must skip the padding workgroups. All kernels share that code (tile_of/store_row),
/// so the default kernel stands for them (lavapipe spends ~20 µs per workgroup).
#[test]
fn large_grid_is_folded() {
    let gpu = gpu();
    let tm = if gpu.caps.subgroups && gpu.caps.subgroup_min >= 8 {
        TM_SG
    } else {
        TM
    };
    let m = 65536 * tm + 40;
    let a = rand_tensor(&[m, 4], 1);
    let b = rand_tensor(&[4, 4], 2);
    let c = rand_tensor(&[4], 3);
    check_op(Matmul::new(false, false), &[&a, &b, &c], 1e-6, 1e-5);
}

/// A Linear weight larger than one storage binding is stored as row chunks and each chunk is
/// its own dispatch writing its columns of the output (with its slice of the bias).
#[test]
fn weight_larger_than_a_binding_is_chunked() {
    let gpu = gpu();
    let k = 8192;
    let limit = gpu.caps.max_storage_binding;
    let row_bytes = (k * 4) as u64;
    // 104 rows past what one binding holds: two chunks, the second short.
    let n = (limit / row_bytes) as usize + 104;
    if n as u64 * row_bytes > 1 << 30 {
        eprintln!(
            "skipping: this adapter binds {limit} bytes, a weight past that is too big for a test"
        );
        return;
    }
    let m = 3;
    let mut g = Graph::new();
    let x = g.input("x", &[m, k], DType::F32);
    let w = g.param("w", &[n, k], DType::F32);
    let b = g.param("b", &[n], DType::F32);
    let y = g.linear(x, w, Some(b)).unwrap();
    g.mark_output(y);
    let mut plan = g.compile(&gpu).unwrap();
    assert_eq!(plan.dispatch_count(), 2, "one dispatch per weight chunk");
    let xv = rand_tensor(&[m, k], 1);
    let wv = rand_tensor(&[n, k], 2);
    let bv = rand_tensor(&[n], 3);
    plan.write(x, &xv).unwrap();
    plan.write(w, &wv).unwrap();
    plan.write(b, &bv).unwrap();
    plan.run().unwrap();
    let got = plan.read(y).unwrap();
    drop(plan);
    let want = run_op_cpu(&Matmul::new(false, true), &[&xv, &wv, &bv])
        .unwrap()
        .remove(0);
    let (atol, rtol) = tol(k);
    let (abs, rel, _) = errors(got.as_f32().unwrap(), want.as_f32().unwrap());
    eprintln!(
        "chunked linear [{m}, {k}] x [{n}, {k}]: max abs err {abs:.2e}, max rel err {rel:.2e}"
    );
    assert_close("chunked linear", &got, &want, atol, rtol);
}

/// GFLOP/s of square products on this adapter (median of 3 timed runs after a warm-up):
/// `cargo test --release --test kernels matmul::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let gpu = gpu();
    let sizes: Vec<usize> = std::env::var("MM_SIZES")
        .map(|s| s.split(',').map(|x| x.trim().parse().unwrap()).collect())
        .unwrap_or_else(|_| vec![1024]);
    let variants: &[bool] = if gpu.caps.subgroups {
        &[true, false]
    } else {
        &[false]
    };
    for s in sizes {
        for (ta, tb) in COMBOS {
            for &sg in variants {
                let op = if sg {
                    Matmul::new(ta, tb)
                } else {
                    Matmul::new(ta, tb).without_subgroups()
                };
                let mut g = Graph::new();
                let (sa, sb) = operands(&op, &[], false, s, s, s);
                let a = g.input("a", &sa, DType::F32);
                let b = g.input("b", &sb, DType::F32);
                let c = g.apply1(op, &[a, b]).unwrap();
                g.mark_output(c);
                let mut plan = g.compile(&gpu).unwrap();
                plan.write(a, &rand_tensor(&sa, 1)).unwrap();
                plan.write(b, &rand_tensor(&sb, 2)).unwrap();
                plan.run().unwrap();
                gpu.wait().unwrap();
                let mut times = Vec::new();
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    plan.run().unwrap();
                    gpu.wait().unwrap();
                    times.push(t.elapsed().as_secs_f64());
                }
                times.sort_by(|x, y| x.partial_cmp(y).unwrap());
                let flops = 2.0 * (s * s * s) as f64;
                println!(
                    "matmul {s}³ trans_a={ta} trans_b={tb} {}: {:.2} ms, {:.2} GFLOP/s",
                    plan.dispatch_labels()[0],
                    times[1] * 1e3,
                    flops / times[1] / 1e9
                );
            }
        }
    }
}
