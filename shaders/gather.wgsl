// Row gather out[t, :] = table[ids[t], :] over one row chunk of the table.
// The table may be split into row chunks across several buffers (it can exceed one storage
// binding); one dispatch per chunk binds that chunk and writes only the output rows whose id
// falls in [start, start + rows). Ids >= v (out of range) are never used to read: the
// dispatch with `zero_oob` = 1 writes zeros for them, so every output element is written once.

struct Params {
    n: u32,        // number of ids
    d: u32,        // row width
    start: u32,    // first table row in this chunk
    rows: u32,     // rows in this chunk
    v: u32,        // table rows in total
    zero_oob: u32, // 1: this dispatch writes zeros for out-of-range ids
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + lid;
    if (i >= p.n * p.d) {
        return;
    }
    let t = i / p.d;
    let j = i - t * p.d;
    let id = ids[t];
    if (id >= p.start && id - p.start < p.rows) {
        out[i] = table[(id - p.start) * p.d + j];
    } else if (p.zero_oob == 1u && id >= p.v) {
        out[i] = 0.0;
    }
}
