// Numerically stable softmax over the last dim: y = exp(x − max) / Σ exp(x − max).
//
// `softmax_rows`: one workgroup per row, any row length. Each invocation keeps an online
// (max, sum) pair over a strided part of the row (one exp per element), the pairs are merged
// in a workgroup tree, and a second sweep writes the normalised values.
// `softmax_small`: one invocation per row for short rows (no barriers at all).

const NEG: f32 = -3.0e38;
const WG: u32 = 128u;

struct Params {
    rows: u32,
    n: u32,      // row length
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

// Online update of (m, s) with one element: one exp of −|x − m|.
fn push(ms: vec2<f32>, v: f32) -> vec2<f32> {
    let d = v - ms.x;
    let e = exp(-abs(d));
    if (d > 0.0) {
        return vec2<f32>(v, ms.y * e + 1.0);
    }
    return vec2<f32>(ms.x, ms.y + e);
}

// Merge two (max, sum) pairs. An empty pair is (NEG, 0).
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

@compute @workgroup_size(128)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = linear_workgroup(wg, nwg);
    if (row >= p.rows) { return; }
    let n = p.n;
    let base = row * n;
    var ms = vec2<f32>(NEG, 0.0);
    for (var k = li; k < n; k += WG) {
        ms = push(ms, x[base + k]);
    }
    red_m[li] = ms.x;
    red_s[li] = ms.y;
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        workgroupBarrier();
        if (li < w) {
            let r = merge(vec2<f32>(red_m[li], red_s[li]), vec2<f32>(red_m[li + w], red_s[li + w]));
            red_m[li] = r.x;
            red_s[li] = r.y;
        }
    }
    workgroupBarrier();
    let m = red_m[0];
    let inv = 1.0 / red_s[0];
    for (var k = li; k < n; k += WG) {
        y[base + k] = exp(x[base + k] - m) * inv;
    }
}

@compute @workgroup_size(64)
fn softmax_small(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = linear_workgroup(wg, nwg) * 64u + li;
    if (row >= p.rows) { return; }
    let n = p.n;
    let base = row * n;
    var m = NEG;
    for (var k = 0u; k < n; k++) { m = max(m, x[base + k]); }
    var s = 0.0;
    for (var k = 0u; k < n; k++) { s += exp(x[base + k] - m); }
    let inv = 1.0 / s;
    for (var k = 0u; k < n; k++) { y[base + k] = exp(x[base + k] - m) * inv; }
}

// softmax_rows for CPU adapters (texture operands, see matmul_tex.wgsl): one lane per row,
// reading x from an rgba32float texture in the row layout (texel (c4, r) = row r, columns
// 4·c4 .. 4·c4 + 3; filled by one copy or pack_rows before), so neither workgroup memory nor
// barriers (on llvmpipe every workgroup load is a loop over the lanes and every barrier a
// coroutine switch, which made softmax_rows ~80 ms for [4096, 256]). Three sweeps: the max,
// the sum of exp(x − max) in 4 partial sums, the normalised values as vec4 stores. The row
// length is a multiple of 4 (the host checks).
@group(0) @binding(1) var tx: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn softmax_rows_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Uniform reads hoisted: inside a loop each is one load per lane per trip on llvmpipe.
    let rows = p.rows;
    let n4 = p.n / 4u;
    let row0 = linear_workgroup(wg, nwg) * 64u + li;
    // Rows past the end compute on the last row and write nothing.
    let row = min(row0, rows - 1u);
    var m4 = vec4<f32>(NEG);
    for (var i = 0u; i < n4; i += 1u) {
        m4 = max(m4, textureLoad(tx, vec2<u32>(i, row)));
    }
    let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var s4 = vec4<f32>(0.0);
    for (var i = 0u; i < n4; i += 1u) {
        s4 += exp(textureLoad(tx, vec2<u32>(i, row)) - m);
    }
    let inv = 1.0 / ((s4.x + s4.y) + (s4.z + s4.w));
    if (row0 < rows) {
        for (var i = 0u; i < n4; i += 1u) {
            y4[row * n4 + i] = exp(textureLoad(tx, vec2<u32>(i, row)) - m) * inv;
        }
    }
}
