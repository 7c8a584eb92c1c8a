// Gradient kernels of the matmul/softmax/mean/gather/mcq family (the matmul gradients are
// matmuls and need none). Every reduction runs in a fixed order: no atomics anywhere.
//
// - `softmax_grad_rows` / `softmax_grad_small`: dx = y ⊙ (dy − Σ dy ⊙ y) per row, one fused
//   pass (a workgroup per row with a tree sum, or one invocation per short row).
// - `mean_grad`: dx[o, i, j] = dy[o, j] · scale (the mean's 1/A broadcast back over the axis).
// - `scatter_rows`: the gather's table gradient, dtable[r, :] = Σ_{t: ids[t] = r} dy[t, :]
//   summed in index order; one workgroup per table row, scanning all ids. Every scatter kernel
//   writes the rows [r0, r0 + nr) of one output row chunk (the whole table unless the table
//   gradient is larger than one binding).
// - `mcq_code_grad`: the codebook gradient of the unit-code lookup: per code row (g, k), the
//   same in-order scatter sum S over tokens whose index in group g is k, then the backward of
//   ŵ = w / max(‖w‖, eps): (S − ŵ⟨ŵ, S⟩) / ‖w‖, or S / eps where ‖w‖ ≤ eps.

const WG: u32 = 128u;

struct SoftmaxParams {
    rows: u32,
    n: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> sp: SoftmaxParams;
@group(0) @binding(1) var<storage, read> s_y: array<f32>;
@group(0) @binding(2) var<storage, read> s_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_dx: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(128)
fn softmax_grad_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = linear_workgroup(wg, nwg);
    if (row >= sp.rows) { return; }
    let base = row * sp.n;
    var acc = 0.0;
    for (var k = li; k < sp.n; k += WG) {
        acc += s_dy[base + k] * s_y[base + k];
    }
    red[li] = acc;
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        workgroupBarrier();
        if (li < w) {
            red[li] = red[li] + red[li + w];
        }
    }
    workgroupBarrier();
    let s = red[0];
    for (var k = li; k < sp.n; k += WG) {
        s_dx[base + k] = s_y[base + k] * (s_dy[base + k] - s);
    }
}

@compute @workgroup_size(64)
fn softmax_grad_small(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = linear_workgroup(wg, nwg) * 64u + li;
    if (row >= sp.rows) { return; }
    let base = row * sp.n;
    var s = 0.0;
    for (var k = 0u; k < sp.n; k++) { s += s_dy[base + k] * s_y[base + k]; }
    for (var k = 0u; k < sp.n; k++) { s_dx[base + k] = s_y[base + k] * (s_dy[base + k] - s); }
}

struct MeanParams {
    total: u32,   // elements of dx
    a: u32,       // length of the reduced axis
    inner: u32,   // its stride
    scale: f32,   // 1 / a
}

@group(0) @binding(0) var<uniform> mp: MeanParams;
@group(0) @binding(1) var<storage, read> m_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> m_dx: array<f32>;

@compute @workgroup_size(256)
fn mean_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= mp.total) { return; }
    let j = i % mp.inner;
    let o = i / (mp.inner * mp.a);
    m_dx[i] = m_dy[o * mp.inner + j] * mp.scale;
}

struct ScatterParams {
    n: u32,      // tokens (rows of ids)
    g: u32,      // ids per token (groups); the gather has 1
    k: u32,      // table rows per group
    d: u32,      // row width
    eps: f32,    // mcq: normalisation eps
    r0: u32,     // the flat table rows gi·K + k this dispatch writes: [r0, r0 + nr) (a row
    nr: u32,     // chunk of the output; c_out / z_out index rows from r0)
    _p2: u32,
}

@group(0) @binding(0) var<uniform> cp: ScatterParams;
@group(0) @binding(1) var<storage, read> c_ids: array<u32>;
@group(0) @binding(2) var<storage, read> c_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_out: array<f32>;

// One workgroup per table row r = gi·K + k; invocations stride over the row's columns.
@compute @workgroup_size(64)
fn scatter_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let rl = linear_workgroup(wg, nwg);
    if (rl >= cp.nr) { return; }
    let r = cp.r0 + rl;
    let gi = r / cp.k;
    let k = r - gi * cp.k;
    for (var j = li; j < cp.d; j += 64u) {
        var acc = 0.0;
        for (var t = 0u; t < cp.n; t++) {
            let e = t * cp.g + gi;
            if (c_ids[e] == k) {
                acc += c_dy[e * cp.d + j];
            }
        }
        c_out[rl * cp.d + j] = acc;
    }
}

// The same sums for tables much larger than the token count, in two passes: zero the whole
// gradient, then one workgroup per entry e = t·G + gi that is the first token with its id sums
// the dy rows of every token with that id, in token order — the order scatter_rows uses, so
// both give identical bits.
@group(0) @binding(1) var<storage, read_write> z_out: array<f32>;

@compute @workgroup_size(256)
fn scatter_rows_zero(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= cp.nr * cp.d) { return; }
    z_out[i] = 0.0;
}

@compute @workgroup_size(64)
fn scatter_rows_first(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = linear_workgroup(wg, nwg);
    if (e >= cp.n * cp.g) { return; }
    let t = e / cp.g;
    let gi = e - t * cp.g;
    let id = c_ids[e];
    if (id >= cp.k) { return; }
    let r = gi * cp.k + id;
    if (r < cp.r0 || r - cp.r0 >= cp.nr) { return; }
    for (var u = 0u; u < t; u++) {
        if (c_ids[u * cp.g + gi] == id) { return; }
    }
    for (var j = li; j < cp.d; j += 64u) {
        var acc = 0.0;
        for (var u = t; u < cp.n; u++) {
            let f = u * cp.g + gi;
            if (c_ids[f] == id) {
                acc += c_dy[f * cp.d + j];
            }
        }
        c_out[(r - cp.r0) * cp.d + j] = acc;
    }
}

struct McqParams {   // the layout of mcq.rs's Params
    n: u32,
    g: u32,
    k: u32,
    d: u32,
    tk: u32,     // unused
    ntiles: u32, // unused
    eps: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> qp: McqParams;
@group(0) @binding(1) var<storage, read> q_cb: array<f32>;
@group(0) @binding(2) var<storage, read> q_ids: array<u32>;
@group(0) @binding(3) var<storage, read> q_dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> q_out: array<f32>;

const MAXD: u32 = 32u;

// One invocation per code row (gi, k), the row (d ≤ 32) in registers.
@compute @workgroup_size(64)
fn mcq_code_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = linear_workgroup(wg, nwg) * 64u + li;
    if (r >= qp.g * qp.k) { return; }
    let gi = r / qp.k;
    let k = r - gi * qp.k;
    let d = qp.d;
    var s: array<f32, MAXD>;
    var w: array<f32, MAXD>;
    for (var j = 0u; j < MAXD; j++) { s[j] = 0.0; w[j] = 0.0; }
    for (var t = 0u; t < qp.n; t++) {
        let e = t * qp.g + gi;
        if (q_ids[e] == k) {
            for (var j = 0u; j < d; j++) { s[j] += q_dy[e * d + j]; }
        }
    }
    var ss = 0.0;
    for (var j = 0u; j < d; j++) {
        w[j] = q_cb[r * d + j];
        ss += w[j] * w[j];
    }
    let norm = sqrt(ss);
    if (norm > qp.eps) {
        let inv = 1.0 / norm;
        var dot = 0.0;
        for (var j = 0u; j < d; j++) { dot += w[j] * inv * s[j]; }
        for (var j = 0u; j < d; j++) { q_out[r * d + j] = (s[j] - w[j] * inv * dot) * inv; }
    } else {
        for (var j = 0u; j < d; j++) { q_out[r * d + j] = s[j] / qp.eps; }
    }
}
