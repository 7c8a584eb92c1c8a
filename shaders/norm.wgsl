// Normalisations over one axis of a tensor viewed as [outer, A, inner]:
// - `ln_rows`  (inner = 1): LayerNorm over the last dim; TPR invocations share one row.
// - `ln_cols`  (inner > 1): LayerNorm over a middle axis (LayerNorm2d over C of NCHW);
//   adjacent invocations handle adjacent columns (pixels) so every read is coalesced, and
//   SPLIT invocations share one column.
// - `l2_rows`: x / max(‖x‖₂, eps) over contiguous rows (F.normalize on chunks of the last dim).
//
// Statistics are two-pass in f32: the mean of the row shifted by its first element (exact for
// data with a large offset), then the centred sum of squares. Biased variance, as PyTorch.

// Invocations per row (rows kernels) — a power of two dividing 256.
override TPR: u32 = 256u;
// Invocations per column (cols kernels) — a power of two dividing 256; 256/SPLIT columns per
// workgroup.
override SPLIT: u32 = 4u;

const WG: u32 = 256u;

struct Params {
    outer: u32,   // rows kernels: number of rows; cols kernels: outer count
    a: u32,       // length of the normalised axis
    inner: u32,   // stride of the normalised axis (1 for rows kernels)
    tiles: u32,   // cols kernels: column tiles per outer index
    eps: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 256>;

// Sum of `v` over the TPR invocations of this invocation's row segment; every invocation of
// the workgroup must call it (it contains barriers).
fn seg_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    let t = lid % TPR;
    for (var s = TPR / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[lid - t];
    workgroupBarrier();
    return r;
}

// Sum of `v` over the SPLIT invocations of this column (lid = s·CT + c).
fn col_sum(v: f32, lid: u32) -> f32 {
    let ct = WG / SPLIT;
    red[lid] = v;
    workgroupBarrier();
    let s_idx = lid / ct;
    for (var h = SPLIT / 2u; h > 0u; h = h / 2u) {
        if (s_idx < h) {
            red[lid] = red[lid] + red[lid + h * ct];
        }
        workgroupBarrier();
    }
    let r = red[lid % ct];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn ln_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rpw = WG / TPR;
    let row = linear_workgroup(wg, nwg) * rpw + lid / TPR;
    let t = lid % TPR;
    let valid = row < p.outer;
    let c = p.a;
    let base = select(0u, row * c, valid);
    let n = select(0u, c, valid);
    let shift = select(0.0, x[base], valid);
    var s = 0.0;
    for (var i = t; i < n; i += TPR) {
        s += x[base + i] - shift;
    }
    let mean = shift + seg_sum(s, lid) / f32(c);
    var q = 0.0;
    for (var i = t; i < n; i += TPR) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    let rstd = 1.0 / sqrt(seg_sum(q, lid) / f32(c) + p.eps);
    for (var i = t; i < n; i += TPR) {
        y[base + i] = (x[base + i] - mean) * rstd * gamma[i] + beta[i];
    }
}

@compute @workgroup_size(256)
fn ln_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let ct = WG / SPLIT;
    let w = linear_workgroup(wg, nwg);
    let o = w / p.tiles;
    let col = (w % p.tiles) * ct + lid % ct;
    let sidx = lid / ct;
    let valid = o < p.outer && col < p.inner;
    let c = p.a;
    let st = p.inner;
    let base = select(0u, o * c * st + col, valid);
    let n = select(0u, c, valid);
    let shift = select(0.0, x[base], valid);
    var s = 0.0;
    for (var i = sidx; i < n; i += SPLIT) {
        s += x[base + i * st] - shift;
    }
    let mean = shift + col_sum(s, lid) / f32(c);
    var q = 0.0;
    for (var i = sidx; i < n; i += SPLIT) {
        let d = x[base + i * st] - mean;
        q += d * d;
    }
    let rstd = 1.0 / sqrt(col_sum(q, lid) / f32(c) + p.eps);
    for (var i = sidx; i < n; i += SPLIT) {
        let k = base + i * st;
        y[k] = (x[k] - mean) * rstd * gamma[i] + beta[i];
    }
}

@group(0) @binding(0) var<uniform> pl: Params;
@group(0) @binding(1) var<storage, read> xl: array<f32>;
@group(0) @binding(2) var<storage, read_write> yl: array<f32>;

@compute @workgroup_size(256)
fn l2_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rpw = WG / TPR;
    let row = linear_workgroup(wg, nwg) * rpw + lid / TPR;
    let t = lid % TPR;
    let valid = row < pl.outer;
    let c = pl.a;
    let base = select(0u, row * c, valid);
    let n = select(0u, c, valid);
    var q = 0.0;
    for (var i = t; i < n; i += TPR) {
        let v = xl[base + i];
        q += v * v;
    }
    let denom = max(sqrt(seg_sum(q, lid)), pl.eps);
    for (var i = t; i < n; i += TPR) {
        yl[base + i] = xl[base + i] / denom;
    }
}
