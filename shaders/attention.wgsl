// Fused multi-head attention, flash style.
//
// One workgroup per (query tile of BQ rows, head or all heads, batch). Each invocation owns one
// query row: its scaled q, its output accumulator and its online-softmax state (running max m
// and sum l, in base 2) live in registers. K and V tiles of BK keys stream through workgroup
// memory; every invocation reads the same K/V element at a time (a broadcast), so the only
// barriers are the two per tile around the cooperative load. Nothing of size L×L exists.
//
// Layout comes from the uniform block (strides and column offsets in elements), so the same
// kernel reads packed qkv [B, L, 3·H·D] (timm / PyTorch MHA in_proj order) or any layout with
// per-token rows. With HAVG the workgroup loops over every head and writes the mean of the
// heads' outputs; otherwise grid y is the head. With SAVE_LSE it also writes the natural
// log-sum-exp of each row's scaled logits to lse[(b·H + h)·L + i] (for a recomputing backward).

override BQ: u32 = 64u;        // query rows per workgroup (= invocations)
override BK: u32 = 32u;        // keys per K/V tile (<= BK_MAX)
override DV: u32 = 16u;        // vec4 slots per head row (D <= 4·DV, DV <= DV_MAX)
override CAUSAL: bool = false; // mask key j > query i
override HAVG: bool = false;   // average the heads instead of concatenating them
override SAVE_LSE: bool = false;

const BK_MAX: u32 = 64u;
const DV_MAX: u32 = 32u;
// A finite "minus infinity" (WGSL has no infinity literal).
const NEG: f32 = -3.0e38;
const LN2: f32 = 0.69314718055994531;

struct Params {
    seq: u32,              // L
    heads: u32,            // H
    dim: u32,              // D
    in_row: u32,           // elements between tokens of the input
    in_batch: u32,         // elements between batches of the input
    q_col: u32,            // column of head 0's q inside a token row
    k_col: u32,
    v_col: u32,
    in_head: u32,          // columns between heads inside q/k/v
    out_row: u32,          // elements between tokens of the output
    out_batch: u32,        // elements between batches of the output
    out_head: u32,         // columns between heads of the output (unused with HAVG)
    scale: f32,            // softmax scale · log2(e)
    inv_heads: f32,        // 1/H (HAVG)
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

var<workgroup> ks: array<vec4<f32>, BK * DV>;
var<workgroup> vs: array<vec4<f32>, BK * DV>;

// Four elements of one head row starting at column `d` (zero past D).
fn load4(base: u32, d: u32) -> vec4<f32> {
    let n = p.dim;
    var r = vec4<f32>(0.0);
    if (d + 3u < n) {
        r = vec4<f32>(qkv[base + d], qkv[base + d + 1u], qkv[base + d + 2u], qkv[base + d + 3u]);
    } else {
        if (d < n) { r.x = qkv[base + d]; }
        if (d + 1u < n) { r.y = qkv[base + d + 1u]; }
        if (d + 2u < n) { r.z = qkv[base + d + 2u]; }
    }
    return r;
}

fn store4(base: u32, d: u32, v: vec4<f32>) {
    let n = p.dim;
    if (d < n) { out[base + d] = v.x; }
    if (d + 1u < n) { out[base + d + 1u] = v.y; }
    if (d + 2u < n) { out[base + d + 2u] = v.z; }
    if (d + 3u < n) { out[base + d + 3u] = v.w; }
}

@compute @workgroup_size(BQ)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let L = p.seq;
    let b = wg.z;
    let q0 = wg.x * BQ;
    let i = q0 + li;                 // this invocation's query row
    let row_ok = i < L;
    let qi = min(i, L - 1u);         // rows past L compute on a real row and write nothing
    let in_b = b * p.in_batch;
    // Keys this tile of queries can see.
    var kend = L;
    if (CAUSAL) { kend = min(L, q0 + BQ); }
    var h_begin = wg.y;
    var h_end = wg.y + 1u;
    if (HAVG) { h_begin = 0u; h_end = p.heads; }

    var acc: array<vec4<f32>, DV_MAX>;
    for (var c = 0u; c < DV; c++) { acc[c] = vec4<f32>(0.0); }

    for (var h = h_begin; h < h_end; h++) {
        var q: array<vec4<f32>, DV_MAX>;
        var o: array<vec4<f32>, DV_MAX>;
        let qbase = in_b + qi * p.in_row + p.q_col + h * p.in_head;
        for (var c = 0u; c < DV; c++) {
            q[c] = load4(qbase, c * 4u) * p.scale;
            o[c] = vec4<f32>(0.0);
        }
        var m = NEG;
        var l = 0.0;
        for (var k0 = 0u; k0 < kend; k0 += BK) {
            workgroupBarrier(); // the previous tile is no longer read
            for (var e = li; e < BK * DV; e += BQ) {
                let j = e / DV;
                let c = e % DV;
                let key = min(k0 + j, L - 1u); // keys past L are masked below
                let rb = in_b + key * p.in_row + h * p.in_head;
                ks[e] = load4(rb + p.k_col, c * 4u);
                vs[e] = load4(rb + p.v_col, c * 4u);
            }
            workgroupBarrier();
            // Scores of this tile (base-2 logits), masked to NEG.
            var s: array<f32, BK_MAX>;
            var mt = NEG;
            for (var j = 0u; j < BK; j++) {
                var a = vec4<f32>(0.0);
                for (var c = 0u; c < DV; c++) {
                    a += q[c] * ks[j * DV + c];
                }
                var v = (a.x + a.y) + (a.z + a.w);
                let key = k0 + j;
                if (key >= L || (CAUSAL && key > qi)) { v = NEG; }
                s[j] = v;
                mt = max(mt, v);
            }
            // Key 0 is valid for every row and the first tile holds it, so m is a real logit
            // from then on and masked keys get exp2(NEG − m) = 0.
            let mn = max(m, mt);
            let alpha = exp2(m - mn);
            l *= alpha;
            for (var c = 0u; c < DV; c++) { o[c] *= alpha; }
            for (var j = 0u; j < BK; j++) {
                let pj = exp2(s[j] - mn);
                l += pj;
                for (var c = 0u; c < DV; c++) {
                    o[c] += pj * vs[j * DV + c];
                }
            }
            m = mn;
        }
        let inv_l = 1.0 / l;
        if (HAVG) {
            for (var c = 0u; c < DV; c++) { acc[c] += o[c] * inv_l; }
        } else if (row_ok) {
            let ob = b * p.out_batch + i * p.out_row + h * p.out_head;
            for (var c = 0u; c < DV; c++) { store4(ob, c * 4u, o[c] * inv_l); }
        }
        if (SAVE_LSE && row_ok) {
            lse[(b * p.heads + h) * L + i] = (m + log2(l)) * LN2;
        }
    }
    if (HAVG && row_ok) {
        let ob = b * p.out_batch + i * p.out_row;
        for (var c = 0u; c < DV; c++) { store4(ob, c * 4u, acc[c] * p.inv_heads); }
    }
}
