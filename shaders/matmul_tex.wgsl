// Matmul with both operands in rgba32float storage textures, for CPU adapters (lavapipe).
//
// Why textures: on Mesa's llvmpipe a divergent storage-buffer load is a loop over the 8 SIMD
// lanes with a bounds check and a branch per component (about 27 ns per vec4 per invocation
// on the 2-core CI machine), while a storage-texture load is a branch-free gather (about
// 0.8 ns). So each operand is first copied once into the panel layout of texture_pack.wgsl
// (one buffer load per element) and the K loop here runs on texture loads only.
//
// mm_panel: the register tile is panel.wgsl's (16 × 16 outputs per 8-lane subgroup); a
// workgroup is SGS subgroups side by side in columns. K past the operands is zero in the
// textures and the textures cover whole tiles, so only the stores are bounds-checked.
// mm_rows (A · B, both row-major with 256-byte rows): the operands are copied as they are by
// the copy engine (a memcpy), which saves the two packing passes; see its comment.

override SGS: u32 = 8u;

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    // Row panels of A and column panels of B per batch entry in their textures (0 for a B
    // shared by the whole batch); texture rows per batch entry for mm_rows.
    a_panels: u32,
    b_panels: u32,
    tiles_n: u32,
    tiles: u32,
    // Elements between batch entries of C.
    sc: u32,
    has_bias: u32,
    alpha: f32,
    // mm_rows: B's texture holds its columns in vertical strips of `strip` texels, strip s in
    // rows s·strip_rows .. (s + 1)·strip_rows.
    strip: u32,
    strip_rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var ta: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var tb: texture_storage_2d<rgba32float, read>;
// N is a multiple of 4 (the host checks), so C is written as vec4s: on lavapipe a vec4 store
// costs about what one scalar store does. The bias stays scalar: without one, any input (even
// a single element) stands in for the binding.
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Columns col .. col + 3 of rows row0 (lo) and row0 + 8 (hi) of C.
fn store4(z: u32, row0: u32, col: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (col >= p.n) {
        return;
    }
    var bv = vec4<f32>(0.0);
    if (p.has_bias != 0u) {
        bv = vec4<f32>(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
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
    var acc: Panel;
    // A uniform read inside a loop is reloaded per trip and per lane on llvmpipe: hoisted.
    let k4n = p.k4;
    // k4 is even (texture_pack pads K with zeros): two texels per trip halve the loop control.
    for (var k = 0u; k < k4n; k += 2u) {
        let x = 8u * k + lane;
        panel_step(&acc, textureLoad(ta, vec2<u32>(x, ya)), textureLoad(ta, vec2<u32>(x, ya + 1u)), textureLoad(tb, vec2<u32>(x, yb)), textureLoad(tb, vec2<u32>(x, yb + 1u)));
        let x2 = x + 8u;
        panel_step(&acc, textureLoad(ta, vec2<u32>(x2, ya)), textureLoad(ta, vec2<u32>(x2, ya + 1u)), textureLoad(tb, vec2<u32>(x2, yb)), textureLoad(tb, vec2<u32>(x2, yb + 1u)));
    }
    let row0 = 8u * p0 + lane;
    for (var h = 0u; h < 4u; h += 1u) {
        store4(z, row0, 8u * q0 + 4u * h, panel_quad(&acc, h, 0u), panel_quad(&acc, h, 1u));
    }
}

// Four k of mm_rows: acc[i] += Σ_k a_k(row i, broadcast from lane i) · b_k, where b0 .. b3 hold
// the lane's 4 columns at those k. Accumulator-major, as panel_step.
fn rows_step(acc: ptr<function, array<vec4<f32>, 8>>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
    let a0 = subgroupBroadcast(a, 0u);
    (*acc)[0] = fma(vec4<f32>(a0.w), b3, fma(vec4<f32>(a0.z), b2, fma(vec4<f32>(a0.y), b1, fma(vec4<f32>(a0.x), b0, (*acc)[0]))));
    let a1 = subgroupBroadcast(a, 1u);
    (*acc)[1] = fma(vec4<f32>(a1.w), b3, fma(vec4<f32>(a1.z), b2, fma(vec4<f32>(a1.y), b1, fma(vec4<f32>(a1.x), b0, (*acc)[1]))));
    let a2 = subgroupBroadcast(a, 2u);
    (*acc)[2] = fma(vec4<f32>(a2.w), b3, fma(vec4<f32>(a2.z), b2, fma(vec4<f32>(a2.y), b1, fma(vec4<f32>(a2.x), b0, (*acc)[2]))));
    let a3 = subgroupBroadcast(a, 3u);
    (*acc)[3] = fma(vec4<f32>(a3.w), b3, fma(vec4<f32>(a3.z), b2, fma(vec4<f32>(a3.y), b1, fma(vec4<f32>(a3.x), b0, (*acc)[3]))));
    let a4 = subgroupBroadcast(a, 4u);
    (*acc)[4] = fma(vec4<f32>(a4.w), b3, fma(vec4<f32>(a4.z), b2, fma(vec4<f32>(a4.y), b1, fma(vec4<f32>(a4.x), b0, (*acc)[4]))));
    let a5 = subgroupBroadcast(a, 5u);
    (*acc)[5] = fma(vec4<f32>(a5.w), b3, fma(vec4<f32>(a5.z), b2, fma(vec4<f32>(a5.y), b1, fma(vec4<f32>(a5.x), b0, (*acc)[5]))));
    let a6 = subgroupBroadcast(a, 6u);
    (*acc)[6] = fma(vec4<f32>(a6.w), b3, fma(vec4<f32>(a6.z), b2, fma(vec4<f32>(a6.y), b1, fma(vec4<f32>(a6.x), b0, (*acc)[6]))));
    let a7 = subgroupBroadcast(a, 7u);
    (*acc)[7] = fma(vec4<f32>(a7.w), b3, fma(vec4<f32>(a7.z), b2, fma(vec4<f32>(a7.y), b1, fma(vec4<f32>(a7.x), b0, (*acc)[7]))));
}

// A · B with both operands row-major in their own memory layout, as buffer → texture copies
// wrote them (no packing kernel): A texel (k4, z·a_panels + row) = A[row, 4k4 .. 4k4 + 3],
// and B in vertical strips of `strip` texels, one copy each: B[k, 4c4 .. 4c4 + 3] is texel
// (c4 mod strip, (c4 / strip)·strip_rows + z·b_panels + k) (here a_panels and b_panels count
// texture rows per batch entry: M and K, or 0 for a shared B). The strips keep a subgroup's
// walk down K in contiguous memory: in B's own layout every 4 k were a new 4·N-byte row, a
// new page at N ≥ 1024, which the hardware prefetchers do not follow (1024³: ~5 % faster, a
// quarter fewer samples stalled on its loads). One subgroup computes 8 rows ×
// 32 columns: lane l owns columns 4c4 .. 4c4 + 3 of all 8 rows — one B texel per k, 8 lanes
// reading 128 contiguous bytes — and row l's A texel is shared by subgroupBroadcast: 128 FMAs
// per 5 texture loads and half the broadcasts of mm_panel. K is a multiple of 4 (the copies
// need it); rows and columns past the operands read other valid texels and are never stored.
@compute @workgroup_size(8 * SGS)
fn mm_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32) {
    let tile = linear_workgroup(wg, nwg);
    if (tile >= p.tiles) {
        return;
    }
    let z = wg.z;
    let r0 = 8u * (tile / p.tiles_n);
    let c4 = 8u * (SGS * (tile % p.tiles_n) + sg) + lane;
    let ya = z * p.a_panels + r0 + lane;
    // Lanes past N read a real texel of the last strip; their columns are never stored.
    let cb = min(c4, p.n / 4u - 1u);
    let xb = cb % p.strip;
    let yb = (cb / p.strip) * p.strip_rows + z * p.b_panels;
    var acc: array<vec4<f32>, 8>;
    let k4n = p.k4;  // hoisted, see mm_panel
    for (var k4 = 0u; k4 < k4n; k4 += 1u) {
        let kb = yb + 4u * k4;
        rows_step(&acc, textureLoad(ta, vec2<u32>(k4, ya)), textureLoad(tb, vec2<u32>(xb, kb)), textureLoad(tb, vec2<u32>(xb, kb + 1u)), textureLoad(tb, vec2<u32>(xb, kb + 2u)), textureLoad(tb, vec2<u32>(xb, kb + 3u)));
    }
    let col = 4u * c4;
    if (col >= p.n) {
        return;
    }
    var bv = vec4<f32>(0.0);
    if (p.has_bias != 0u) {
        bv = vec4<f32>(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
    }
    let base = z * p.sc / 4u + c4;
    for (var i = 0u; i < 8u; i += 1u) {
        if (r0 + i < p.m) {
            c[base + (r0 + i) * p.n / 4u] = p.alpha * acc[i] + bv;
        }
    }
}
