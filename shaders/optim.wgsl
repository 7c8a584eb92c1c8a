// Optimizer kernels: per-tensor sums of squares into an accumulator, the global-norm clipping
// coefficient, and the AdamW update (in place on parameter, first and second moments).

struct Params {
    n: u32,        // elements of the tensor / number of accumulated tensors
    slot: u32,     // accumulator slot written by sum_squares
    phase: u32,    // sum_squares_chunk: the chunk's first global element index mod 256
    flags: u32,    // sum_squares_chunk: 1 = first chunk, 2 = last chunk
    max_norm: f32, // clip_coef
    wd: f32,       // adamw: weight decay of this tensor's group
    _p2: f32,
    _p3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;

// acc[slot] = Σ x² over the whole tensor: one workgroup, strided per-thread sums, then a fixed
// tree — deterministic.
@compute @workgroup_size(256)
fn sum_squares(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var i = li; i < p.n; i = i + 256u) {
        let v = x[i];
        s = s + v * v;
    }
    let total = workgroup_sum_256(li, s);
    if (li == 0u) {
        acc[p.slot] = total;
    }
}

@group(0) @binding(0) var<uniform> pq: Params;
@group(0) @binding(1) var<storage, read> xq: array<f32>;
@group(0) @binding(2) var<storage, read_write> accq: array<f32>;
@group(0) @binding(3) var<storage, read_write> carry: array<f32>;

// sum_squares over a tensor stored as row chunks, one dispatch per chunk in order. Invocation
// li owns the elements whose global index is ≡ li (mod 256), as in sum_squares, and carries its
// running sum from chunk to chunk in `carry`; the last chunk does the same fixed tree. The
// additions happen in sum_squares' order, so the result has the same bits for any split.
@compute @workgroup_size(256)
fn sum_squares_chunk(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    if ((pq.flags & 1u) == 0u) {
        s = carry[li];
    }
    for (var i = (li + 256u - pq.phase) % 256u; i < pq.n; i = i + 256u) {
        let v = xq[i];
        s = s + v * v;
    }
    if ((pq.flags & 2u) == 0u) {
        carry[li] = s;
        return;
    }
    let total = workgroup_sum_256(li, s);
    if (li == 0u) {
        accq[pq.slot] = total;
    }
}

@group(0) @binding(0) var<uniform> pc: Params;
@group(0) @binding(1) var<storage, read> sq: array<f32>;
@group(0) @binding(2) var<storage, read_write> coef: array<f32>;

// coef = [min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖] with ‖g‖ = sqrt(Σ_t sq[t]) (torch's clip_grad_norm_).
@compute @workgroup_size(1)
fn clip_coef() {
    var s = 0.0;
    for (var t = 0u; t < pc.n; t = t + 1u) {
        s = s + sq[t];
    }
    let norm = sqrt(s);
    coef[0] = min(1.0, pc.max_norm / (norm + 1e-6));
    coef[1] = norm;
}

@group(0) @binding(0) var<uniform> pa: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> hyper: array<f32>; // lr, beta1, beta2, eps, bc1, bc2
@group(0) @binding(3) var<storage, read> gscale: array<f32>; // [clip coefficient, norm]
@group(0) @binding(4) var<storage, read_write> param: array<f32>;
@group(0) @binding(5) var<storage, read_write> m1: array<f32>;
@group(0) @binding(6) var<storage, read_write> m2: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= pa.n) { return; }
    let lr = hyper[0];
    let b1 = hyper[1];
    let b2 = hyper[2];
    let eps = hyper[3];
    let bc1 = hyper[4];
    let bc2 = hyper[5];
    let g = grad[i] * gscale[0];
    var w = param[i] * (1.0 - lr * pa.wd);
    let m = b1 * m1[i] + (1.0 - b1) * g;
    let v = b2 * m2[i] + (1.0 - b2) * g * g;
    m1[i] = m;
    m2[i] = v;
    w = w - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps);
    param[i] = w;
}
