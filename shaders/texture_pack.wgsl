// Copies a matrix from a storage buffer into the panel layout of an rgba32float storage
// texture, for the texture-operand kernels of CPU adapters (see matmul_tex.wgsl and
// ARCHITECTURE.md, "Texture operands").
//
// Panel layout: an operand X with `rows` rows and K columns is cut into panels of 8 rows;
// texel (8·k4 + l, panel p) holds X[8p + l, 4k4 .. 4k4 + 3]. Eight lanes reading one k4 of
// one panel read 128 contiguous bytes, and one panel's whole K range is contiguous. Rows and
// K past the operand are written as zeros, so consumers need no bounds checks on K. Element
// (r, k) of batch entry z is at src[off + z·zs + r·rs + k·ks]: strides express either
// transpose of the operand in memory.

struct Params {
    rows: u32,
    k: u32,
    rs: u32,
    ks: u32,
    zs: u32,
    off: u32,
    // Panels per batch entry in the texture (rows rounded up to the consumer's tile).
    panels: u32,
    // Texels of 4 k per panel row (K rounded up; the rest is zeros).
    k4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
// The same binding as vec4s, for pack_rows4.
@group(0) @binding(1) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

fn src_at(base: u32, r: u32, k: u32) -> f32 {
    if (r >= p.rows || k >= p.k) {
        return 0.0;
    }
    return src[base + r * p.rs + k * p.ks];
}

// One texel per invocation: x = k4, y = row (every row of the padded panels), z = batch entry.
// Neighbouring lanes read neighbouring k of one row, so row-major sources are read in order.
@compute @workgroup_size(64)
fn pack_panels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4 = gid.x;
    if (k4 >= p.k4) {
        return;
    }
    let r = gid.y;
    let z = gid.z;
    let k = 4u * k4;
    let base = p.off + z * p.zs;
    let v = vec4<f32>(src_at(base, r, k), src_at(base, r, k + 1u), src_at(base, r, k + 2u), src_at(base, r, k + 3u));
    textureStore(dst, vec2<u32>(8u * k4 + r % 8u, z * p.panels + r / 8u), v);
}

// pack_panels for a row-major operand (ks = 1) whose K, row stride and offsets are multiples
// of 4: one vec4 load per texel. On lavapipe a vec4 load is one loop over the lanes with four
// loads inside, so this is ~3× cheaper than four scalar loads.
@compute @workgroup_size(64)
fn pack_rows4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4 = gid.x;
    if (k4 >= p.k4) {
        return;
    }
    let r = gid.y;
    let z = gid.z;
    var v = vec4<f32>(0.0);
    if (r < p.rows && 4u * k4 < p.k) {
        v = src4[(p.off + z * p.zs + r * p.rs) / 4u + k4];
    }
    textureStore(dst, vec2<u32>(8u * k4 + r % 8u, z * p.panels + r / 8u), v);
}

// pack_panels for a column-major operand (rs = 1: X[r .. r + 4, k] contiguous) with rows, k
// stride and offsets multiples of 4: each invocation loads a 4 × 4 block as four vec4s
// (rows r .. r + 3 at k .. k + 3) and writes it transposed as four texels. y = row quad.
@compute @workgroup_size(64)
fn pack_cols4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4 = gid.x;
    if (k4 >= p.k4) {
        return;
    }
    let r = 4u * gid.y;
    let z = gid.z;
    var m = mat4x4<f32>();
    if (r < p.rows) {
        let base = (p.off + z * p.zs + r) / 4u;
        let k = 4u * k4;
        // Column j of m: rows r .. r + 3 at k + j (zero past K).
        for (var j = 0u; j < 4u; j += 1u) {
            if (k + j < p.k) {
                m[j] = src4[base + (k + j) * p.ks / 4u];
            }
        }
    }
    let t = transpose(m);
    let y = z * p.panels + r / 8u;
    for (var i = 0u; i < 4u; i += 1u) {
        textureStore(dst, vec2<u32>(8u * k4 + (r + i) % 8u, y), t[i]);
    }
}

// Row layout instead of panels, for kernels whose lanes read along a row (attention's keys):
// texel (k4, r) = X[r, 4·k4 .. 4·k4 + 3] for a row-major operand aligned to 4 floats (ks = 1,
// batch folded into the rows). y = row.
@compute @workgroup_size(64)
fn pack_rows_natural(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4 = gid.x;
    if (k4 >= p.k4) {
        return;
    }
    let r = gid.y;
    var v = vec4<f32>(0.0);
    if (r < p.rows && 4u * k4 < p.k) {
        v = src4[(p.off + r * p.rs) / 4u + k4];
    }
    textureStore(dst, vec2<u32>(k4, r), v);
}
