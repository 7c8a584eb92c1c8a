// Backward of the fused attention (attention.wgsl), flash style: the probabilities are
// recomputed from q, k and the forward's log-sum-exp, nothing of size L×L is stored.
//
// With P = softmax(scale·q·kᵀ) per head (P_ij = exp(scale·q_i·k_j − lse_i)), O = P·v and the
// output gradient dO (already per head: for the head-averaged forward every head gets dO/H):
//   dP_ij = dO_i·v_j,  D_i = Σ_j P_ij dP_ij − glse_i  (= dO_i·O_i − glse_i),
//   dS_ij = P_ij (dP_ij − D_i)   (glse_i is the gradient reaching lse_i, when it reaches any),
//   dq_i = scale Σ_j dS_ij k_j,  dk_j = scale Σ_i dS_ij q_i,  dv_j = Σ_i P_ij dO_i.
// Two entry points, one invocation per row, sums in a fixed order (deterministic, no atomics):
// - attn_bwd_dq: one query row i. A single pass over the keys accumulates D_i, Σ P dP k and
//   Σ P k, so dq_i = scale·(Σ P dP k − D_i Σ P k); it writes dq and D_i (to `delta`).
// - attn_bwd_dkv: one key row j (runs after attn_bwd_dq, reads `delta`); loops over the
//   queries that see key j and writes dk_j and dv_j.
// The gradient is packed like the input: dqkv [B, L, 3·H·D], the q/k/v columns of each head
// written by exactly one invocation. Grid: (⌈L/64⌉, H, B).

const WG: u32 = 64u;
const MAXD: u32 = 64u;

struct Params {
    seq: u32,          // L
    heads: u32,        // H
    dim: u32,          // D (<= 64)
    in_row: u32,       // elements between tokens of qkv / dqkv
    in_batch: u32,     // elements between batches of qkv / dqkv
    k_col: u32,        // column of head 0's k inside a token row
    v_col: u32,
    do_row: u32,       // elements between tokens of dout
    do_batch: u32,     // elements between batches of dout
    do_head: u32,      // columns between heads of dout (0 when the forward averaged heads)
    scale: f32,        // softmax scale (natural base)
    do_mul: f32,       // factor on dout (1/H when the forward averaged heads)
    flags: u32,        // 1: causal, 2: dout present, 4: glse present
    _p1: u32,
    _p2: u32,
    _p3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> glse: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(6) var<storage, read_write> delta: array<f32>;

var<private> ra: array<f32, MAXD>;   // q_i (dq) or k_j (dkv)
var<private> rb: array<f32, MAXD>;   // dO_i (dq) or v_j (dkv)
var<private> acc1: array<f32, MAXD>; // Σ P dP k (dq) or Σ dS q (dkv)
var<private> acc2: array<f32, MAXD>; // Σ P k (dq) or Σ P dO (dkv)

@compute @workgroup_size(WG)
fn attn_bwd_dq(@builtin(global_invocation_id) gid: vec3<u32>) {
    let L = p.seq;
    let i = gid.x;
    if (i >= L) { return; }
    let h = gid.y;
    let b = gid.z;
    let n = p.dim;
    let has_do = (p.flags & 2u) != 0u;
    let in_b = b * p.in_batch;
    let qb = in_b + i * p.in_row + h * n;
    let dob = b * p.do_batch + i * p.do_row + h * p.do_head;
    for (var d = 0u; d < n; d++) {
        ra[d] = qkv[qb + d];
        var g = 0.0;
        if (has_do) { g = dout[dob + d] * p.do_mul; }
        rb[d] = g;
        acc1[d] = 0.0;
        acc2[d] = 0.0;
    }
    let row = (b * p.heads + h) * L + i;
    let li = lse[row];
    var kend = L;
    if ((p.flags & 1u) != 0u) { kend = i + 1u; }
    var dsum = 0.0;
    for (var j = 0u; j < kend; j++) {
        let kb = in_b + j * p.in_row + p.k_col + h * n;
        let vb = in_b + j * p.in_row + p.v_col + h * n;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < n; d++) {
            s += ra[d] * qkv[kb + d];
            dp += rb[d] * qkv[vb + d];
        }
        let pij = exp(s * p.scale - li);
        let w = pij * dp;
        dsum += w;
        for (var d = 0u; d < n; d++) {
            let k = qkv[kb + d];
            acc1[d] += w * k;
            acc2[d] += pij * k;
        }
    }
    if ((p.flags & 4u) != 0u) { dsum -= glse[row]; }
    delta[row] = dsum;
    for (var d = 0u; d < n; d++) {
        dqkv[qb + d] = p.scale * (acc1[d] - dsum * acc2[d]);
    }
}

@compute @workgroup_size(WG)
fn attn_bwd_dkv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let L = p.seq;
    let j = gid.x;
    if (j >= L) { return; }
    let h = gid.y;
    let b = gid.z;
    let n = p.dim;
    let has_do = (p.flags & 2u) != 0u;
    let in_b = b * p.in_batch;
    let kb = in_b + j * p.in_row + p.k_col + h * n;
    let vb = in_b + j * p.in_row + p.v_col + h * n;
    for (var d = 0u; d < n; d++) {
        ra[d] = qkv[kb + d];
        rb[d] = qkv[vb + d];
        acc1[d] = 0.0;
        acc2[d] = 0.0;
    }
    let rows = (b * p.heads + h) * L;
    var i0 = 0u;
    if ((p.flags & 1u) != 0u) { i0 = j; }
    for (var i = i0; i < L; i++) {
        let qb = in_b + i * p.in_row + h * n;
        let dob = b * p.do_batch + i * p.do_row + h * p.do_head;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < n; d++) {
            s += qkv[qb + d] * ra[d];
        }
        if (has_do) {
            for (var d = 0u; d < n; d++) {
                dp += dout[dob + d] * rb[d];
            }
            dp *= p.do_mul;
        }
        let pij = exp(s * p.scale - lse[rows + i]);
        let ds = pij * (dp - delta[rows + i]);
        for (var d = 0u; d < n; d++) {
            acc1[d] += ds * qkv[qb + d];
        }
        if (has_do) {
            let pw = pij * p.do_mul;
            for (var d = 0u; d < n; d++) {
                acc2[d] += pw * dout[dob + d];
            }
        }
    }
    for (var d = 0u; d < n; d++) {
        dqkv[kb + d] = p.scale * acc1[d];
        dqkv[vb + d] = acc2[d];
    }
}
