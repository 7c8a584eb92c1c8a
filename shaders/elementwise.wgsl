// Elementwise kernels: unary maps, broadcasting binary maps (incl. the fused GeGLU gate) and
// the batched transpose of the last two dims. The operation is an override constant, so each
// kind is its own pipeline while shapes stay in the uniform block.

override OP: u32 = 0u;

struct Params {
    n: u32,       // output elements
    nb: u32,      // elements of b (binary) / rows (transpose)
    inner: u32,   // b index = (i / inner) % nb   (binary) / cols (transpose)
    batch: u32,   // transpose batch
    alpha: f32,
    beta: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

fn unary_op(x: f32) -> f32 {
    switch OP {
        case 0u: { return gelu_erf(x); }
        case 1u: { return gelu_tanh(x); }
        case 2u: { return p.alpha * x; }
        case 3u: { return clamp(x, p.alpha, p.beta); }
        case 4u: { return x; }
        case 5u: { return p.alpha * x + p.beta; }
        case 6u: { return exp(x); }
        default: { return x; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.n) { return; }
    out[i] = unary_op(a[i]);
}

// unary4 and binary4: the same maps a vec4 per invocation, where the element counts are
// multiples of 4 (the host checks). On CPU drivers every buffer load or store is a loop over the
// lanes whatever its width, so a vec4 costs about what a scalar does.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn unary4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.n / 4u) { return; }
    let v = a4[i];
    out4[i] = vec4<f32>(unary_op(v.x), unary_op(v.y), unary_op(v.z), unary_op(v.w));
}

@group(0) @binding(0) var<uniform> pb: Params;
@group(0) @binding(1) var<storage, read> xa: array<f32>;
@group(0) @binding(2) var<storage, read> xb: array<f32>;
@group(0) @binding(3) var<storage, read_write> outb: array<f32>;

fn binary_op(x: f32, y: f32) -> f32 {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return gelu_tanh(x) * y; }
        default: { return x + y; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= pb.n) { return; }
    outb[i] = binary_op(xa[i], xb[(i / pb.inner) % pb.nb]);
}

@group(0) @binding(1) var<storage, read> xa4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> xb4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> outb4: array<vec4<f32>>;

// b's elements for output elements 4i .. 4i + 3: b's own vec4 where b runs along the output
// (inner = 1, nb a multiple of 4), else one element of b for all 4 (inner a multiple of 4).
@compute @workgroup_size(256)
fn binary4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= pb.n / 4u) { return; }
    let x = xa4[i];
    var y: vec4<f32>;
    if (pb.inner == 1u) {
        y = xb4[i % (pb.nb / 4u)];
    } else {
        let j = (4u * i / pb.inner) % pb.nb;
        y = vec4<f32>(xb4[j / 4u][j % 4u]);
    }
    outb4[i] = vec4<f32>(binary_op(x.x, y.x), binary_op(x.y, y.y), binary_op(x.z, y.z), binary_op(x.w, y.w));
}

// out[b, c, r] = a[b, r, c]: rows = nb, cols = inner. 16×16 tiles through workgroup memory so
// both the read and the write are coalesced.
var<workgroup> tile: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = p.nb;
    let cols = p.inner;
    let base = wg.z * rows * cols;
    let r = wg.y * 16u + lid.y;
    let c = wg.x * 16u + lid.x;
    if (r < rows && c < cols) {
        tile[lid.y][lid.x] = a[base + r * cols + c];
    }
    workgroupBarrier();
    let orow = wg.x * 16u + lid.y; // output row = input column
    let ocol = wg.y * 16u + lid.x;
    if (orow < cols && ocol < rows) {
        out[base + orow * rows + ocol] = tile[lid.x][lid.y];
    }
}

@group(0) @binding(0) var<uniform> pf: Params;
@group(0) @binding(1) var<storage, read_write> outf: array<f32>;

// out[i] = alpha (constants such as the seed gradient 1 of a loss).
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= pf.n) { return; }
    outf[i] = pf.alpha;
}

// x[i] = f(x[i]) in place (e.g. clamping a parameter after the optimizer step).
@compute @workgroup_size(256)
fn unary_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.n) { return; }
    outf[i] = unary_op(outf[i]);
}

// ---- backward ----

@group(0) @binding(0) var<uniform> pg: Params;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> gout: array<f32>;

fn unary_derivative(x: f32) -> f32 {
    switch OP {
        case 0u: {
            // d/dx 0.5·x·(1 + erf(x/√2)) = Φ(x) + x·φ(x)
            return 0.5 * (1.0 + erf_approx(x * 0.70710678118654752)) + x * 0.39894228040143268 * exp(-0.5 * x * x);
        }
        case 1u: {
            let k = 0.79788456080286536;
            let t = tanh_safe(k * (x + 0.044715 * x * x * x));
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
        }
        case 2u, 5u: { return pg.alpha; }
        case 3u: { return select(0.0, 1.0, x >= pg.alpha && x <= pg.beta); }
        case 6u: { return exp(x); }
        default: { return 1.0; }
    }
}

// dx = dy · f'(x)
@compute @workgroup_size(256)
fn unary_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= pg.n) { return; }
    gout[i] = gy[i] * unary_derivative(gx[i]);
}

@group(0) @binding(0) var<uniform> pr: Params;
@group(0) @binding(1) var<storage, read> rg: array<f32>;
@group(0) @binding(2) var<storage, read_write> rout: array<f32>;

// The gradient of a broadcast operand: out[j] = Σ_{o, r} g[(o·nb + j)·inner + r], summed in a
// fixed order (deterministic; WGSL has no float atomics). n = outer·nb·inner.
@compute @workgroup_size(256)
fn reduce_broadcast(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = linear_workgroup(wg, nwg) * WG + li;
    if (j >= pr.nb) { return; }
    let outer = pr.n / (pr.nb * pr.inner);
    var s = 0.0;
    for (var o = 0u; o < outer; o = o + 1u) {
        let base = (o * pr.nb + j) * pr.inner;
        for (var r = 0u; r < pr.inner; r = r + 1u) {
            s = s + rg[base + r];
        }
    }
    rout[j] = s;
}
