//! Conv2d against its CPU reference: dense 3×3 (stride 1/2, padding 0/1), the 1×1 GEMM path,
//! depthwise, grouped and generic kernel shapes, on odd sizes and on/around the register tiles
//! (portable kernels: TM = 8 output channels, TN = 4 or 8 output columns; subgroup kernels:
//! 32 channels × 4 columns; 64 invocations per workgroup).

use crate::common::*;
use std::collections::HashMap;
use unitok::graph::run_op_cpu;
use unitok::ops::conv::Conv2d;
use unitok::{DType, Graph, HostTensor};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-4;

fn conv(stride: usize, padding: usize, groups: usize) -> Conv2d {
    Conv2d {
        stride,
        padding,
        groups,
    }
}

/// Check one configuration with and without bias; returns the max abs error seen.
fn check(
    x: [usize; 4],
    cout: usize,
    k: [usize; 2],
    stride: usize,
    padding: usize,
    groups: usize,
    seed: u64,
) -> f32 {
    let xt = rand_tensor(&x, seed);
    let wt = rand_scaled(&[cout, x[1] / groups, k[0], k[1]], seed + 1, 0.5);
    let bt = rand_tensor(&[cout], seed + 2);
    let op = conv(stride, padding, groups);
    let got = check_op(op.clone(), &[&xt, &wt, &bt], ATOL, RTOL);
    let want = run_op_cpu(&op, &[&xt, &wt, &bt]).unwrap();
    let err_b = errors(got[0].as_f32().unwrap(), want[0].as_f32().unwrap()).0;
    let got = check_op(op.clone(), &[&xt, &wt], ATOL, RTOL);
    let want = run_op_cpu(&op, &[&xt, &wt]).unwrap();
    err_b.max(errors(got[0].as_f32().unwrap(), want[0].as_f32().unwrap()).0)
}

#[test]
fn dense_3x3_odd_sizes_strides_and_padding() {
    let mut worst = 0.0f32;
    for hw in [1, 5, 7, 16, 17] {
        for (stride, padding) in [(1, 1), (2, 1), (1, 0), (2, 0)] {
            if hw + 2 * padding < 3 {
                continue;
            }
            worst = worst.max(check(
                [2, 3, hw, hw + 2],
                9,
                [3, 3],
                stride,
                padding,
                1,
                hw as u64 * 10 + stride as u64,
            ));
        }
    }
    // Widths of whole vec4s of output pixels, which the texture path takes, with and without
    // padding columns.
    for (w, stride, padding) in [(8, 1, 0), (8, 2, 1), (12, 1, 1), (12, 2, 0)] {
        worst = worst.max(check([2, 5, 6, w], 9, [3, 3], stride, padding, 1, w as u64));
    }
    eprintln!("dense 3×3 max abs err {worst:.2e}");
}

#[test]
fn dense_3x3_channel_tile_edges() {
    let mut worst = 0.0f32;
    // TM = 8 output channels per workgroup: 1, 7, 8, 9, 19; Cin spans a few loop lengths.
    for cout in edge_sizes(8) {
        for cin in [1, 4, 9] {
            for stride in [1, 2] {
                worst = worst.max(check(
                    [1, cin, 6, 9],
                    cout,
                    [3, 3],
                    stride,
                    1,
                    1,
                    (cout * 100 + cin) as u64,
                ));
            }
        }
    }
    eprintln!("dense 3×3 channel edges max abs err {worst:.2e}");
}

#[test]
fn dense_3x3_pixel_tile_edges() {
    // 64 invocations per workgroup, each 4 output columns of one row: rows of 4·k±1 columns and
    // enough rows to need several pixel tiles.
    let mut worst = 0.0f32;
    for (h, w) in [(16, 16), (17, 15), (33, 13), (3, 65)] {
        for stride in [1, 2] {
            worst = worst.max(check(
                [2, 2, h, w],
                3,
                [3, 3],
                stride,
                1,
                1,
                (h * 1000 + w) as u64,
            ));
        }
    }
    eprintln!("dense 3×3 pixel edges max abs err {worst:.2e}");
}

#[test]
fn pointwise_1x1_gemm_path() {
    // 1×1 s1 p0: 64 invocations × 4 pixels = 256 pixels per tile.
    let mut worst = 0.0f32;
    for (h, w) in [(1, 1), (5, 7), (15, 17), (16, 16), (1, 257)] {
        for (cin, cout) in [(3, 1), (8, 9), (17, 16)] {
            worst = worst.max(check(
                [2, cin, h, w],
                cout,
                [1, 1],
                1,
                0,
                1,
                (h * w + cin * 7 + cout) as u64,
            ));
        }
    }
    eprintln!("1×1 max abs err {worst:.2e}");
}

#[test]
fn generic_kernels_strides_and_padding() {
    // Not the specialised paths: 1×1 with stride/padding, 5×5, non-square, stride 3.
    let mut worst = 0.0f32;
    worst = worst.max(check([2, 5, 9, 7], 6, [1, 1], 2, 0, 1, 1));
    worst = worst.max(check([1, 5, 9, 7], 6, [1, 1], 1, 1, 1, 2));
    worst = worst.max(check([2, 3, 11, 10], 9, [5, 5], 1, 2, 1, 3));
    worst = worst.max(check([1, 3, 11, 10], 4, [2, 3], 2, 1, 1, 4));
    worst = worst.max(check([1, 4, 13, 13], 5, [3, 3], 3, 1, 1, 5));
    worst = worst.max(check([1, 2, 4, 4], 3, [6, 6], 1, 1, 1, 6)); // kernel == padded input
    worst = worst.max(check([1, 2, 9, 8], 5, [5, 3], 1, 2, 1, 7)); // kw = 3 path with kh = 5
    eprintln!("generic max abs err {worst:.2e}");
}

#[test]
fn depthwise_3x3() {
    // groups == Cin == Cout: one channel per workgroup, TN up to 8 output columns.
    let mut worst = 0.0f32;
    for (h, w) in [(1, 1), (5, 7), (7, 8), (16, 17), (9, 33)] {
        for stride in [1, 2] {
            worst = worst.max(check(
                [2, 6, h, w],
                6,
                [3, 3],
                stride,
                1,
                6,
                (h * 100 + w + stride) as u64,
            ));
        }
    }
    worst = worst.max(check([1, 5, 8, 8], 5, [3, 3], 1, 0, 5, 7));
    eprintln!("depthwise max abs err {worst:.2e}");
}

/// The depthwise texture path (conv_tex.wgsl `conv_dw`, where the adapter takes texture
/// operands): output rows of 4 and 8 pixels (one and two quads), strides 1 and 2, padding 0 and
/// 1, a channel count that is not a multiple of 4, batch 2, with and without bias; and with a
/// texture limit of 40, channels in chunks (padded height 10: at most 4 texels per texture, so
/// 18 channels = 5 texels take 2 chunks of 3 and 2) and batch entries in separate textures. The path taken is
/// asserted from the scratch textures (the image, and the 9 × C/4 weight texture).
#[test]
fn depthwise_texture_path() {
    use unitok::ops::Op;
    let mut worst = 0.0f32;
    for (c, h, w, stride, padding) in [
        (6, 8, 8, 1, 1),
        (6, 8, 8, 2, 1),
        (7, 5, 10, 1, 0),
        (10, 9, 16, 2, 1),
        (4, 3, 6, 1, 0),
    ] {
        if takes_texture_operands() {
            let op = conv(stride, padding, c);
            let xs = unitok::TensorDesc::f32(&[2, c, h, w]);
            let ws = unitok::TensorDesc::f32(&[c, 1, 3, 3]);
            let t = op.scratch_textures(&[&xs, &ws], &gpu().caps);
            assert_eq!(
                t.get(1),
                Some(&[9, c.div_ceil(4) as u32]),
                "c {c} {h}×{w} s{stride}"
            );
        }
        worst = worst.max(check(
            [2, c, h, w],
            c,
            [3, 3],
            stride,
            padding,
            c,
            (c * h * w) as u64,
        ));
    }
    eprintln!("depthwise (texture path) max abs err {worst:.2e}");
    if !takes_texture_operands() {
        return;
    }
    let dev = unitok::Gpu::new_narrowed(|caps| caps.max_texture_dim = 40).unwrap();
    let (n, c, h, w) = (3, 18, 8, 8);
    let op = conv(1, 1, c);
    let x = rand_tensor(&[n, c, h, w], 71);
    let wt = rand_scaled(&[c, 1, 3, 3], 72, 0.5);
    let b = rand_tensor(&[c], 73);
    let xs = unitok::TensorDesc::f32(&[n, c, h, w]);
    let ws = unitok::TensorDesc::f32(&[c, 1, 3, 3]);
    let bs = unitok::TensorDesc::f32(&[c]);
    // One batch entry and a chunk of 3 texels per image texture: 10 rows × 3.
    assert_eq!(
        op.scratch_textures(&[&xs, &ws, &bs], &dev.caps)[0],
        [10, 30]
    );
    let want = run_op_cpu(&op, &[&x, &wt, &b]).unwrap();
    let got = unitok::graph::run_op_gpu(&dev, op.clone(), &[&x, &wt, &b]).unwrap();
    assert_close(
        "depthwise in chunks, texture limit 40",
        &got[0],
        &want[0],
        ATOL,
        RTOL,
    );
}

#[test]
fn grouped_and_channel_multiplier() {
    let mut worst = 0.0f32;
    worst = worst.max(check([2, 6, 7, 5], 4, [3, 3], 1, 1, 2, 1)); // 2 groups, 3 → 2
    worst = worst.max(check([1, 8, 9, 9], 12, [3, 3], 2, 1, 4, 2)); // 4 groups, 2 → 3
    worst = worst.max(check([1, 4, 6, 6], 8, [3, 3], 1, 1, 4, 3)); // depthwise ×2 multiplier
    worst = worst.max(check([2, 6, 5, 5], 9, [1, 1], 1, 0, 3, 4)); // grouped 1×1
    eprintln!("grouped max abs err {worst:.2e}");
}

// With subgroups (lavapipe has them), Cout/groups ≥ 32 takes the subgroup kernels
// (conv2d_sg.wgsl: 32 channels × 4 pixels per invocation, or × 8 pixels for the 3-wide kernel
// where the output is at least 8 wide, in workgroups of 32 where 64 would not all have a
// task); smaller Cout the portable ones.
#[test]
fn subgroup_3x3_tiles_and_edges() {
    let caps = &gpu().caps;
    eprintln!(
        "subgroups: {} ({}..{} lanes)",
        caps.subgroups, caps.subgroup_min, caps.subgroup_max
    );
    let mut worst = 0.0f32;
    for cout in [32, 33, 69] {
        for (stride, padding) in [(1, 1), (2, 1), (2, 0)] {
            worst = worst.max(check(
                [2, 3, 7, 9],
                cout,
                [3, 3],
                stride,
                padding,
                1,
                (cout * 10 + stride) as u64,
            ));
        }
    }
    // Pixel tiles: 64 invocations × 4 columns; rows with 4k±1 columns, several tiles, 1×1 images.
    for (h, w) in [(1, 1), (17, 15), (33, 13), (2, 66)] {
        for stride in [1, 2] {
            worst = worst.max(check(
                [1, 2, h, w],
                32,
                [3, 3],
                stride,
                1,
                1,
                (h * 100 + w) as u64,
            ));
        }
    }
    // 8-pixel blocks: output widths 8k − 1, 8k, 8k + 1 (a last block with 7, 8 or 1 pixels,
    // so the second half of a block is partly, fully or not stored), and tasks around the
    // 32/64-invocation workgroup choice (ho · blocks = 62, 64, 66).
    for (h, w, stride) in [
        (5, 15, 1),
        (5, 16, 1),
        (5, 17, 1),
        (4, 23, 1),
        (9, 31, 2),
        (31, 16, 1),
        (32, 16, 1),
        (33, 16, 1),
    ] {
        worst = worst.max(check(
            [1, 3, h, w],
            32,
            [3, 3],
            stride,
            1,
            1,
            (h * 1000 + w * 10 + stride) as u64,
        ));
    }
    // kh ≠ 3 with kw = 3 (runtime ky loop), and 2 groups of 32 channels.
    worst = worst.max(check([1, 2, 9, 8], 33, [5, 3], 1, 2, 1, 11));
    worst = worst.max(check([2, 4, 6, 7], 64, [3, 3], 2, 1, 2, 12));
    eprintln!("subgroup 3×3 max abs err {worst:.2e}");
}

#[test]
fn subgroup_1x1_tiles_and_edges() {
    // Cin is consumed 4 at a time: tails 1..3; pixels in tiles of 256.
    let mut worst = 0.0f32;
    for cin in [1, 2, 3, 4, 5, 9] {
        worst = worst.max(check([2, cin, 5, 7], 32, [1, 1], 1, 0, 1, cin as u64));
    }
    for (h, w) in [(1, 1), (16, 16), (17, 17), (1, 255)] {
        worst = worst.max(check(
            [1, 6, h, w],
            45,
            [1, 1],
            1,
            0,
            1,
            (h * 1000 + w) as u64,
        ));
    }
    worst = worst.max(check([1, 6, 5, 5], 96, [1, 1], 1, 0, 3, 13)); // 3 groups of 32
    eprintln!("subgroup 1×1 max abs err {worst:.2e}");
}

#[test]
fn many_workgroups_fold_the_grid() {
    // 70000 depthwise channels on a 1×1 image: 70000 workgroups, past the 65535 cap of x.
    let x = rand_tensor(&[1, 70000, 1, 1], 9);
    let w = rand_tensor(&[70000, 1, 3, 3], 10);
    check_op(conv(1, 1, 70000), &[&x, &w], ATOL, RTOL);
}

#[test]
fn graph_builder_with_and_without_bias() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 4, 7, 7], DType::F32);
    let w1 = g.param("w1", &[8, 4, 3, 3], DType::F32);
    let b1 = g.param("b1", &[8], DType::F32);
    let wd = g.param("wd", &[8, 1, 3, 3], DType::F32);
    let w2 = g.param("w2", &[5, 8, 1, 1], DType::F32);
    let h = g.conv2d(x, w1, Some(b1), 2, 1, 1).unwrap();
    assert_eq!(g.shape(h), &[2, 8, 4, 4]);
    let h = g.conv2d(h, wd, None, 1, 1, 8).unwrap();
    let y = g.conv2d(h, w2, None, 1, 0, 1).unwrap();
    assert_eq!(g.shape(y), &[2, 5, 4, 4]);
    g.mark_output(y);
    let feeds: HashMap<_, HostTensor> = [
        (x, rand_tensor(&[2, 4, 7, 7], 1)),
        (w1, rand_scaled(&[8, 4, 3, 3], 2, 0.5)),
        (b1, rand_tensor(&[8], 3)),
        (wd, rand_scaled(&[8, 1, 3, 3], 4, 0.5)),
        (w2, rand_scaled(&[5, 8, 1, 1], 5, 0.5)),
    ]
    .into_iter()
    .collect();
    let mut plan = g.compile(&gpu()).unwrap();
    for (t, v) in &feeds {
        plan.write(*t, v).unwrap();
    }
    plan.run().unwrap();
    let got = plan.read(y).unwrap();
    let want = g.run_cpu(&feeds).unwrap().remove(&y).unwrap();
    assert_close("conv chain", &got, &want, 1e-4, 1e-4);
}

#[test]
fn shape_errors_are_typed() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 4, 5, 5], DType::F32);
    let w_bad_c = g.param("w", &[8, 3, 3, 3], DType::F32);
    let w = g.param("w_ok", &[8, 4, 3, 3], DType::F32);
    let w_big = g.param("w_big", &[8, 4, 8, 8], DType::F32);
    let w_grp = g.param("w_grp", &[6, 2, 3, 3], DType::F32);
    let b_bad = g.param("b", &[7], DType::F32);
    let w3 = g.param("w3", &[8, 4, 3], DType::F32);

    let e = g.conv2d(x, w_bad_c, None, 1, 1, 1).unwrap_err();
    assert!(matches!(e, unitok::Error::Shape { .. }), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("conv2d")
            && s.contains("channel mismatch")
            && s.contains("[1, 4, 5, 5]")
            && s.contains("[8, 3, 3, 3]"),
        "{s}"
    );

    let s = g.conv2d(x, w_big, None, 1, 1, 1).unwrap_err().to_string();
    assert!(s.contains("larger than the padded input 7×7"), "{s}");
    // 8×8 fits once padded by 2.
    assert_eq!(
        g.conv2d(x, w_big, None, 1, 2, 1)
            .map(|t| g.shape(t).to_vec())
            .unwrap(),
        vec![1, 8, 2, 2]
    );

    let s = g
        .conv2d(x, w, Some(b_bad), 1, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(s.contains("bias must be [8]"), "{s}");
    let s = g.conv2d(x, w_grp, None, 1, 1, 4).unwrap_err().to_string();
    assert!(s.contains("must divide"), "{s}"); // 6 output channels in 4 groups
    let s = g.conv2d(x, w, None, 0, 1, 1).unwrap_err().to_string();
    assert!(s.contains("stride"), "{s}");
    let s = g.conv2d(x, w, None, 1, 1, 0).unwrap_err().to_string();
    assert!(s.contains("groups"), "{s}");
    let s = g.conv2d(x, w3, None, 1, 1, 1).unwrap_err().to_string();
    assert!(s.contains("[N, Cin, H, W]"), "{s}");
    let xi = g.input("xi", &[1, 4, 5, 5], DType::U32);
    assert!(g
        .conv2d(xi, w, None, 1, 1, 1)
        .unwrap_err()
        .to_string()
        .contains("f32"));
}

/// The target shape: 3×3, 320 → 1024 channels, 32×32 input, stride 2, padding 1.
/// Prints GFLOP/s (median of 3 timed runs of Plan::run + wait).
#[test]
#[ignore]
fn timing_conv3x3_320_1024_s2() {
    let (n, cin, cout, hw) = (1usize, 320usize, 1024usize, 32usize);
    let gpu = gpu();
    let mut g = Graph::new();
    let x = g.input("x", &[n, cin, hw, hw], DType::F32);
    let w = g.param("w", &[cout, cin, 3, 3], DType::F32);
    let b = g.param("b", &[cout], DType::F32);
    let y = g.conv2d(x, w, Some(b), 2, 1, 1).unwrap();
    g.mark_output(y);
    let mut plan = g.compile(&gpu).unwrap();
    plan.write(x, &rand_tensor(&[n, cin, hw, hw], 1)).unwrap();
    plan.write(w, &rand_scaled(&[cout, cin, 3, 3], 2, 0.05))
        .unwrap();
    plan.write(b, &rand_tensor(&[cout], 3)).unwrap();
    plan.run().unwrap();
    gpu.wait().unwrap();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        plan.run().unwrap();
        gpu.wait().unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (ho, wo) = (hw / 2, hw / 2);
    let flops = 2.0 * (n * cout * ho * wo * cin * 9) as f64;
    let med = times[1];
    println!(
        "conv3x3 {cin}->{cout} {hw}x{hw} s2: median {:.2} ms, {:.2} GFLOP/s (runs {:?} ms)",
        med * 1e3,
        flops / med / 1e9,
        times
            .iter()
            .map(|t| (t * 1e4).round() / 10.0)
            .collect::<Vec<_>>()
    );
}

/// The texture path (CPU adapters: conv_tex.wgsl, 16 output channels × 16·SGS pixels per
/// subgroup tile, 4 input channels per texel) around its tiles: output channels 15/16/17/33,
/// input channels 1..9 (texel tails), pixel counts around 16 and 64, strides 1/2, padding
/// 0..2, 1×1, 3×3 and 5×3 kernels, batches of 1 and 3. The path choice is asserted, so the
/// cases cannot silently test another kernel; check_op also runs the buffer kernels.
#[test]
fn texture_path_around_its_tiles() {
    use unitok::ops::Op;
    let caps = gpu().caps.clone();
    if !takes_texture_operands() {
        return;
    }
    let mut worst = 0.0f32;
    let mut seed = 7000;
    for (n, cin, h, w, cout, k, stride, padding) in [
        (1, 4, 4, 4, 16, [3, 3], 1, 1),
        (1, 3, 5, 8, 15, [3, 3], 1, 1),
        (3, 5, 8, 8, 17, [3, 3], 2, 1),
        (1, 9, 8, 16, 33, [3, 3], 1, 0),
        (2, 8, 9, 9, 16, [3, 3], 2, 2),
        (1, 1, 6, 6, 8, [1, 1], 1, 0),
        (2, 6, 7, 10, 20, [5, 3], 1, 2),
        (1, 12, 16, 16, 32, [3, 3], 1, 1),
    ] {
        let op = conv(stride, padding, 1);
        let xs = unitok::TensorDesc::f32(&[n, cin, h, w]);
        let ws = unitok::TensorDesc::f32(&[cout, cin, k[0], k[1]]);
        assert_eq!(
            op.scratch_textures(&[&xs, &ws], &caps).len(),
            2,
            "{:?} {:?}",
            xs.shape,
            ws.shape
        );
        worst = worst.max(check([n, cin, h, w], cout, k, stride, padding, 1, seed));
        seed += 3;
    }
    eprintln!("conv texture path max abs err {worst:.2e}");
}

/// Inputs whose padded image does not fit one texture with the whole batch: the texture path
/// packs and convolves the batch in groups (pack_image / conv_panel per group, one weight
/// pack). A device whose texture limit is lowered to 64 makes that happen on small shapes;
/// with 1024 it is one group. Checked against the CPU reference both ways.
#[test]
fn texture_path_in_batch_groups() {
    use unitok::graph::run_op_gpu;
    use unitok::ops::Op;
    if !takes_texture_operands() {
        return;
    }
    // Padded height 10, 4 input channels per texel × 2 texels = 20 rows per batch entry: 3
    // entries per 64-row texture, so 7 entries take 3 groups.
    let (n, cin, h, w, cout) = (7, 7, 8, 8, 20);
    let x = rand_tensor(&[n, cin, h, w], 81);
    let wt = rand_scaled(&[cout, cin, 3, 3], 82, 0.5);
    let b = rand_tensor(&[cout], 83);
    let op = conv(1, 1, 1);
    let want = run_op_cpu(&op, &[&x, &wt, &b]).unwrap();
    for (limit, groups) in [(64u32, 3usize), (1024, 1)] {
        let dev = unitok::Gpu::new_narrowed(|c| c.max_texture_dim = limit).unwrap();
        let xs = unitok::TensorDesc::f32(&[n, cin, h, w]);
        let ws = unitok::TensorDesc::f32(&[cout, cin, 3, 3]);
        assert_eq!(op.scratch_textures(&[&xs, &ws], &dev.caps).len(), 2);
        let inputs: Vec<unitok::ops::Storage> = [&xs, &ws]
            .iter()
            .map(|d| unitok::ops::Storage {
                desc: (*d).clone(),
                chunks: vec![unitok::ops::RowChunk::whole(d)],
            })
            .collect();
        let out = op.infer(&[&xs, &ws]).unwrap();
        let cx = unitok::ops::EncodeCx {
            inputs: &inputs,
            outputs: &out,
            output_chunks: &[],
            scratch: &[],
            caps: &dev.caps,
        };
        let steps = op.encode(&cx).unwrap();
        assert_eq!(steps.len(), 1 + 2 * groups, "texture limit {limit}");
        let got = run_op_gpu(&dev, op.clone(), &[&x, &wt, &b]).unwrap();
        assert_close(
            &format!("batch groups, texture limit {limit}"),
            &got[0],
            &want[0],
            ATOL,
            RTOL,
        );
    }
}

/// Inputs whose one padded image (rows × texels of 4 channels) is taller than a texture: the
/// texture path convolves a chunk of input channels at a time into the output, the first chunk
/// with the bias, the others adding (each chunk's weights kept in a texture of their own). A
/// texture limit of 32 makes that happen on small shapes: padded height 10, 22 channels = 6
/// texels, so 2 chunks of 3 texels (12 and 10 channels). Checked against the CPU reference
/// for 3 × 3 and 1 × 1 kernels, as a graph whose weight is a parameter written twice (the
/// kept chunk textures must follow).
#[test]
fn texture_path_in_channel_chunks() {
    use unitok::ops::Op;
    if !takes_texture_operands() {
        return;
    }
    let dev = unitok::Gpu::new_narrowed(|c| c.max_texture_dim = 32).unwrap();
    // 12 output channels: 2 weight panels × 9 taps = 18 texture rows, within the 32.
    let (n, cin, h, w, cout) = (2, 22, 8, 8, 12);
    for (k, padding, stride) in [(3, 1, 1), (3, 1, 2), (1, 0, 1)] {
        let op = conv(stride, padding, 1);
        let xs = unitok::TensorDesc::f32(&[n, cin, h, w]);
        let ws = unitok::TensorDesc::f32(&[cout, cin, k, k]);
        let bs = unitok::TensorDesc::f32(&[cout]);
        // The image texture and one weight texture per chunk.
        let hp = h + 2 * padding;
        let chunks = 6usize.div_ceil(32 / hp);
        assert_eq!(
            op.scratch_textures(&[&xs, &ws, &bs], &dev.caps).len(),
            1 + chunks
        );
        assert!(chunks >= 2, "k {k}: {chunks} chunk(s)");
        let mut g = Graph::new();
        let xi = g.input("x", &[n, cin, h, w], DType::F32);
        let wi = g.param("w", &[cout, cin, k, k], DType::F32);
        let bi = g.param("b", &[cout], DType::F32);
        let y = g.conv2d(xi, wi, Some(bi), stride, padding, 1).unwrap();
        g.mark_output(y);
        let mut plan = g.compile(&dev).unwrap();
        let x = rand_tensor(&[n, cin, h, w], 91);
        let b = rand_tensor(&[cout], 92);
        plan.write(xi, &x).unwrap();
        plan.write(bi, &b).unwrap();
        for (step, seed) in [93u64, 94].into_iter().enumerate() {
            let wt = rand_scaled(&[cout, cin, k, k], seed, 0.5);
            plan.write(wi, &wt).unwrap();
            for run in 0..2 {
                plan.run().unwrap();
                let want = run_op_cpu(&op, &[&x, &wt, &b]).unwrap();
                assert_close(
                    &format!("{k}x{k} stride {stride}, weights {step}, run {run}"),
                    &plan.read(y).unwrap(),
                    &want[0],
                    ATOL,
                    RTOL,
                );
            }
        }
    }
}

/// The image texture is scratch, shared by size between ops, so a pack must write every texel
/// of it, padding included. Here a padding-free convolution (input 10 wide) fills the texture
/// with data, then a padded one of the same texture size (input 8 wide) reads it: stale
/// padding would show in its output. Dense and depthwise second convolutions.
#[test]
fn padding_texels_are_rewritten_in_a_shared_texture() {
    if !takes_texture_operands() {
        return;
    }
    for groups in [1, 4] {
        let mut g = Graph::new();
        let xi = g.input("x", &[1, 4, 8, 10], DType::F32);
        let wa = g.param("wa", &[4, 4, 3, 3], DType::F32);
        let wb = g.param("wb", &[4, 4 / groups, 3, 3], DType::F32);
        let y1 = g.conv2d(xi, wa, None, 1, 0, 1).unwrap();
        let y2 = g.conv2d(y1, wb, None, 1, 1, groups).unwrap();
        g.mark_output(y2);
        let mut plan = g.compile(&gpu()).unwrap();
        let x = rand_tensor(&[1, 4, 8, 10], 301);
        let a = rand_scaled(&[4, 4, 3, 3], 302, 0.5);
        let b = rand_scaled(&[4, 4 / groups, 3, 3], 303, 0.5);
        plan.write(xi, &x).unwrap();
        plan.write(wa, &a).unwrap();
        plan.write(wb, &b).unwrap();
        plan.run().unwrap();
        let mid = run_op_cpu(&conv(1, 0, 1), &[&x, &a]).unwrap();
        let want = run_op_cpu(&conv(1, 1, groups), &[&mid[0], &b]).unwrap();
        assert_close(
            &format!("groups {groups} after an unpadded conv"),
            &plan.read(y2).unwrap(),
            &want[0],
            ATOL,
            RTOL,
        );
    }
}
