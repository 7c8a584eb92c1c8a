// Reconstruction losses: mean |x − y| (L1) and mean (x − y)² (MSE) over all elements, and
// their gradients. The forward is one workgroup with a fixed-order tree (deterministic).

override KIND: u32 = 0u; // 0: L1, 1: MSE

struct Params {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn term(d: f32) -> f32 {
    if (KIND == 0u) { return abs(d); }
    return d * d;
}

@compute @workgroup_size(256)
fn loss_forward(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var i = li; i < p.n; i = i + 256u) {
        s = s + term(x[i] - y[i]);
    }
    let total = workgroup_sum_256(li, s);
    if (li == 0u) {
        out[0] = total / f32(p.n);
    }
}

@group(0) @binding(0) var<uniform> pg: Params;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read> gl: array<f32>; // dL/dloss, [1]
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

// d/dx of the mean loss (d/dy is its negation): L1 → sign(x − y)/n (0 at 0, as torch), MSE → 2(x − y)/n.
@compute @workgroup_size(256)
fn loss_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= pg.n) { return; }
    let d = gx[i] - gy[i];
    var g = 2.0 * d;
    if (KIND == 0u) { g = sign(d); }
    dx[i] = g * gl[0] / f32(pg.n);
}

// ---- cross-entropy over rows: logits [rows, classes], labels u32 [rows] ----
// Forward: mean over rows of logsumexp(row) − row[label], one workgroup, each lane owning whole
// rows, then a fixed-order tree (deterministic). Backward: one lane per row writes
// (softmax(row) − onehot(label)) · dL / rows.

@group(0) @binding(0) var<uniform> pc: Params; // n = rows, _p0 = classes
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> ce_out: array<f32>;

fn row_lse(r: u32, c: u32) -> f32 {
    var m = logits[r * c];
    for (var j = 1u; j < c; j = j + 1u) {
        m = max(m, logits[r * c + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < c; j = j + 1u) {
        s = s + exp(logits[r * c + j] - m);
    }
    return m + log(s);
}

@compute @workgroup_size(256)
fn cross_entropy(@builtin(local_invocation_index) li: u32) {
    let c = pc._p0;
    var s = 0.0;
    for (var r = li; r < pc.n; r = r + 256u) {
        s = s + row_lse(r, c) - logits[r * c + labels[r]];
    }
    let total = workgroup_sum_256(li, s);
    if (li == 0u) {
        ce_out[0] = total / f32(pc.n);
    }
}

@group(0) @binding(3) var<storage, read> ce_gl: array<f32>; // dL/dloss, [1]
@group(0) @binding(4) var<storage, read_write> ce_dx: array<f32>;

@compute @workgroup_size(64)
fn cross_entropy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = linear_workgroup(wg, nwg) * 64u + li;
    if (r >= pc.n) { return; }
    let c = pc._p0;
    let lse = row_lse(r, c);
    let scale = ce_gl[0] / f32(pc.n);
    let label = labels[r];
    for (var j = 0u; j < c; j = j + 1u) {
        var g = exp(logits[r * c + j] - lse);
        if (j == label) { g = g - 1.0; }
        ce_dx[r * c + j] = g * scale;
    }
}
