// Matmul with both operands in rgba32float storage textures, for CPU adapters (lavapipe).
//
// Why textures: on Mesa's llvmpipe a divergent storage-buffer load is a loop over the 8 SIMD
// lanes with a bounds check and a branch per component (about 27 ns per vec4 per invocation
// on the 2-core CI machine), while a storage-texture load is a branch-free gather (about
// 0.8 ns). So each operand is first copied once into the panel layout of texture_pack.wgsl
// (one buffer load per element) and the K loop here runs on texture loads only.
//
// One subgroup of 8 lanes computes 16 rows × 16 columns: lane l owns row 8·(p0 + i) + l of
// RP = 2 row panels and loads their texels; lane j also loads column 8·(q0 + c) + j of the
// subgroup's 2 column panels, and subgroupBroadcast shares those values. Per 4 k every lane
// does 128 FMAs for 4 texture loads. A workgroup is SGS subgroups side by side in columns.
// Needs subgroups of exactly 8 lanes (the host checks). K past the operands is zero in the
// textures and the textures cover whole tiles, so only the stores are bounds-checked.

override SGS: u32 = 8u;

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    // Row panels of A and column panels of B per batch entry in their textures (0 for a B
    // shared by the whole batch).
    a_panels: u32,
    b_panels: u32,
    tiles_n: u32,
    tiles: u32,
    // Elements between batch entries of C.
    sc: u32,
    has_bias: u32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var ta: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var tb: texture_storage_2d<rgba32float, read>;
// N is a multiple of 4 (the host checks), so C and the bias are read and written as vec4s: on
// lavapipe a vec4 store costs about what one scalar store does.
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<vec4<f32>>;

// acc[j] += a · (value of lane j), for the 8 columns of one column panel.
fn panel_fma(acc: ptr<function, array<vec2<f32>, 8>>, a: vec2<f32>, b: f32) {
    (*acc)[0] = fma(a, vec2<f32>(subgroupBroadcast(b, 0u)), (*acc)[0]);
    (*acc)[1] = fma(a, vec2<f32>(subgroupBroadcast(b, 1u)), (*acc)[1]);
    (*acc)[2] = fma(a, vec2<f32>(subgroupBroadcast(b, 2u)), (*acc)[2]);
    (*acc)[3] = fma(a, vec2<f32>(subgroupBroadcast(b, 3u)), (*acc)[3]);
    (*acc)[4] = fma(a, vec2<f32>(subgroupBroadcast(b, 4u)), (*acc)[4]);
    (*acc)[5] = fma(a, vec2<f32>(subgroupBroadcast(b, 5u)), (*acc)[5]);
    (*acc)[6] = fma(a, vec2<f32>(subgroupBroadcast(b, 6u)), (*acc)[6]);
    (*acc)[7] = fma(a, vec2<f32>(subgroupBroadcast(b, 7u)), (*acc)[7]);
}

// Columns col .. col + 3 of rows row0 (lo) and row0 + 8 (hi) of C.
fn store4(z: u32, row0: u32, col: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (col >= p.n) {
        return;
    }
    var bv = vec4<f32>(0.0);
    if (p.has_bias != 0u) {
        bv = bias[col / 4u];
    }
    let base = (z * p.sc + col) / 4u;
    if (row0 < p.m) {
        c[base + row0 * p.n / 4u] = p.alpha * lo + bv;
    }
    if (row0 + 8u < p.m) {
        c[base + (row0 + 8u) * p.n / 4u] = p.alpha * hi + bv;
    }
}

@compute @workgroup_size(8 * SGS)
fn mm_panel(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32) {
    let tile = linear_workgroup(wg, nwg);
    if (tile >= p.tiles) {
        return;
    }
    let z = wg.z;
    // Row panels p0, p0 + 1 of A; column panels q0, q0 + 1 of B.
    let p0 = 2u * (tile / p.tiles_n);
    let q0 = 2u * (SGS * (tile % p.tiles_n) + sg);
    let ya = z * p.a_panels + p0;
    let yb = z * p.b_panels + q0;
    var c0 = vec2<f32>(0.0);
    var c1 = vec2<f32>(0.0);
    var c2 = vec2<f32>(0.0);
    var c3 = vec2<f32>(0.0);
    var c4 = vec2<f32>(0.0);
    var c5 = vec2<f32>(0.0);
    var c6 = vec2<f32>(0.0);
    var c7 = vec2<f32>(0.0);
    var c8 = vec2<f32>(0.0);
    var c9 = vec2<f32>(0.0);
    var c10 = vec2<f32>(0.0);
    var c11 = vec2<f32>(0.0);
    var c12 = vec2<f32>(0.0);
    var c13 = vec2<f32>(0.0);
    var c14 = vec2<f32>(0.0);
    var c15 = vec2<f32>(0.0);
    for (var k = 0u; k < p.k4; k += 1u) {
        let x = 8u * k + lane;
        let a0 = textureLoad(ta, vec2<u32>(x, ya));
        let a1 = textureLoad(ta, vec2<u32>(x, ya + 1u));
        let b0 = textureLoad(tb, vec2<u32>(x, yb));
        let b1 = textureLoad(tb, vec2<u32>(x, yb + 1u));
        { let a = vec2<f32>(a0.x, a1.x);
          c0 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 0u)), c0);
          c1 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 1u)), c1);
          c2 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 2u)), c2);
          c3 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 3u)), c3);
          c4 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 4u)), c4);
          c5 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 5u)), c5);
          c6 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 6u)), c6);
          c7 = fma(a, vec2<f32>(subgroupBroadcast(b0.x, 7u)), c7);
          c8 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 0u)), c8);
          c9 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 1u)), c9);
          c10 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 2u)), c10);
          c11 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 3u)), c11);
          c12 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 4u)), c12);
          c13 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 5u)), c13);
          c14 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 6u)), c14);
          c15 = fma(a, vec2<f32>(subgroupBroadcast(b1.x, 7u)), c15);
        }
        { let a = vec2<f32>(a0.y, a1.y);
          c0 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 0u)), c0);
          c1 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 1u)), c1);
          c2 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 2u)), c2);
          c3 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 3u)), c3);
          c4 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 4u)), c4);
          c5 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 5u)), c5);
          c6 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 6u)), c6);
          c7 = fma(a, vec2<f32>(subgroupBroadcast(b0.y, 7u)), c7);
          c8 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 0u)), c8);
          c9 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 1u)), c9);
          c10 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 2u)), c10);
          c11 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 3u)), c11);
          c12 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 4u)), c12);
          c13 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 5u)), c13);
          c14 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 6u)), c14);
          c15 = fma(a, vec2<f32>(subgroupBroadcast(b1.y, 7u)), c15);
        }
        { let a = vec2<f32>(a0.z, a1.z);
          c0 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 0u)), c0);
          c1 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 1u)), c1);
          c2 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 2u)), c2);
          c3 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 3u)), c3);
          c4 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 4u)), c4);
          c5 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 5u)), c5);
          c6 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 6u)), c6);
          c7 = fma(a, vec2<f32>(subgroupBroadcast(b0.z, 7u)), c7);
          c8 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 0u)), c8);
          c9 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 1u)), c9);
          c10 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 2u)), c10);
          c11 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 3u)), c11);
          c12 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 4u)), c12);
          c13 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 5u)), c13);
          c14 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 6u)), c14);
          c15 = fma(a, vec2<f32>(subgroupBroadcast(b1.z, 7u)), c15);
        }
        { let a = vec2<f32>(a0.w, a1.w);
          c0 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 0u)), c0);
          c1 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 1u)), c1);
          c2 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 2u)), c2);
          c3 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 3u)), c3);
          c4 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 4u)), c4);
          c5 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 5u)), c5);
          c6 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 6u)), c6);
          c7 = fma(a, vec2<f32>(subgroupBroadcast(b0.w, 7u)), c7);
          c8 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 0u)), c8);
          c9 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 1u)), c9);
          c10 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 2u)), c10);
          c11 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 3u)), c11);
          c12 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 4u)), c12);
          c13 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 5u)), c13);
          c14 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 6u)), c14);
          c15 = fma(a, vec2<f32>(subgroupBroadcast(b1.w, 7u)), c15);
        }
    }
    let row0 = 8u * p0 + lane;
    let col0 = 8u * q0;
    store4(z, row0, col0, vec4<f32>(c0.x, c1.x, c2.x, c3.x), vec4<f32>(c0.y, c1.y, c2.y, c3.y));
    store4(z, row0, col0 + 4u, vec4<f32>(c4.x, c5.x, c6.x, c7.x), vec4<f32>(c4.y, c5.y, c6.y, c7.y));
    store4(z, row0, col0 + 8u, vec4<f32>(c8.x, c9.x, c10.x, c11.x), vec4<f32>(c8.y, c9.y, c10.y, c11.y));
    store4(z, row0, col0 + 12u, vec4<f32>(c12.x, c13.x, c14.x, c15.x), vec4<f32>(c12.y, c13.y, c14.y, c15.y));
}
