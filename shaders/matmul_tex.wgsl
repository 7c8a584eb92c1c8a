// Matmul with both operands in rgba32float storage textures, for CPU adapters (lavapipe).
//
// Why textures: on Mesa's llvmpipe a divergent storage-buffer load is a loop over the 8 SIMD
// lanes with a bounds check and a branch per component (about 27 ns per vec4 per invocation
// on the 2-core CI machine), while a storage-texture load is a branch-free gather (about
// 0.8 ns). So each operand is first copied once into the panel layout of texture_pack.wgsl
// (one buffer load per element) and the K loop here runs on texture loads only.
//
// The register tile is panel.wgsl's (16 × 16 outputs per 8-lane subgroup); a workgroup is
// SGS subgroups side by side in columns. K past the operands is zero in the textures and the
// textures cover whole tiles, so only the stores are bounds-checked.

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
    // k4 is even (texture_pack pads K with zeros): two texels per trip halve the loop control.
    for (var k = 0u; k < p.k4; k += 2u) {
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
