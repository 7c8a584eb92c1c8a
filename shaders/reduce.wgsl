// Mean over one axis of a tensor viewed as [outer, A, inner] (the axis removed):
// - `mean_rows` (inner = 1): TPR invocations share one contiguous row;
// - `mean_cols` (inner > 1): adjacent invocations own adjacent output columns, so reads are
//   coalesced, and SPLIT invocations share one column's loop over A.
// f32 accumulation: strided partial sums, then a tree over the invocations.

override TPR: u32 = 256u;
override SPLIT: u32 = 4u;

const WG: u32 = 256u;

struct Params {
    outer: u32,   // rows: number of rows; cols: outer count
    a: u32,       // length of the reduced axis
    inner: u32,   // stride of the reduced axis
    tiles: u32,   // cols: column tiles per outer index
    eps: f32,     // unused
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn mean_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rpw = WG / TPR;
    let row = linear_workgroup(wg, nwg) * rpw + lid / TPR;
    let t = lid % TPR;
    let valid = row < p.outer;
    let base = select(0u, row * p.a, valid);
    let n = select(0u, p.a, valid);
    var s = 0.0;
    for (var i = t; i < n; i += TPR) {
        s += x[base + i];
    }
    red[lid] = s;
    workgroupBarrier();
    for (var h = TPR / 2u; h > 0u; h = h / 2u) {
        if (t < h) {
            red[lid] = red[lid] + red[lid + h];
        }
        workgroupBarrier();
    }
    if (valid && t == 0u) {
        y[row] = red[lid] / f32(p.a);
    }
}

@compute @workgroup_size(256)
fn mean_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let ct = WG / SPLIT;
    let w = linear_workgroup(wg, nwg);
    let o = w / p.tiles;
    let col = (w % p.tiles) * ct + lid % ct;
    let sidx = lid / ct;
    let valid = o < p.outer && col < p.inner;
    let st = p.inner;
    let base = select(0u, o * p.a * st + col, valid);
    let n = select(0u, p.a, valid);
    var s = 0.0;
    for (var i = sidx; i < n; i += SPLIT) {
        s += x[base + i * st];
    }
    red[lid] = s;
    workgroupBarrier();
    for (var h = SPLIT / 2u; h > 0u; h = h / 2u) {
        if (sidx < h) {
            red[lid] = red[lid] + red[lid + h * ct];
        }
        workgroupBarrier();
    }
    if (valid && sidx == 0u) {
        y[o * st + col] = red[lid] / f32(p.a);
    }
}
