// Fused multi-head attention, flash style: the portable kernel (no subgroups needed; see
// attention_sg.wgsl for the faster one used when the adapter has subgroups of >= 8).
//
// One workgroup per (query tile of BQ rows, head or all heads, batch). Each invocation owns one
// query row: its scaled q, its output accumulator and its online-softmax state (running max m
// and sum l, in base 2) live in registers, as 4×4 matrices (16 head-dim columns each) that are
// only ever indexed with constants, so drivers keep them in registers instead of scratch
// memory. K and V tiles of BK keys stream through workgroup memory; every invocation reads the
// same K/V element at a time (a broadcast), so the only barriers are the two per tile around
// the cooperative load. Nothing of size L×L exists.
//
// Layout comes from the uniform block (strides and column offsets in elements), so the same
// kernel reads packed qkv [B, L, 3·H·D] (timm / PyTorch MHA in_proj order) or any layout with
// per-token rows. Flags: 1 causal (key j > query i masked); 2 average the heads (the workgroup
// loops over every head and writes the mean of their outputs; otherwise grid y is the head);
// 4 also write the natural log-sum-exp of each row's scaled logits to lse[(b·H + h)·L + i]
// (for a backward that recomputes the probabilities).

override BQ: u32 = 64u;        // query rows per workgroup (= invocations)
override BK: u32 = 32u;        // keys per K/V tile, a multiple of 4
override DV: u32 = 16u;        // vec4 slots per head row: 4, 8 or 16 (D <= 4·DV <= 64)

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
    out_head: u32,         // columns between heads of the output (unused when averaging)
    scale: f32,            // softmax scale · log2(e)
    inv_heads: f32,        // 1/H (averaging)
    flags: u32,            // 1: causal (mask key j > query i), 2: average the heads, 4: write lse
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
// binding(2), the output `out`, and its writer `put16`: attention_out_buffer.wgsl.
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

var<workgroup> ks: array<vec4<f32>, BK * DV>;
var<workgroup> vs: array<vec4<f32>, BK * DV>;

// This invocation's row state, 16 head-dim columns per matrix (column c = dims 4c..4c+3).
// Blocks past DV/4 are never touched (the DV tests fold away once DV is specialised).
var<private> qr: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> orw: array<mat4x4<f32>, 4>; // unnormalised output

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

fn load16(base: u32, d: u32) -> mat4x4<f32> {
    return mat4x4<f32>(load4(base, d), load4(base, d + 4u), load4(base, d + 8u), load4(base, d + 12u));
}


// q·k over one 16-column block of key slot `b` (a vec4 index into ks).
fn qk16(q: mat4x4<f32>, b: u32) -> vec4<f32> {
    return q[0] * ks[b] + q[1] * ks[b + 1u] + q[2] * ks[b + 2u] + q[3] * ks[b + 3u];
}

// Base-2 logit of key j of the tile.
fn score(j: u32) -> f32 {
    let b = j * DV;
    var a = qk16(qr[0], b);
    if (DV > 4u) { a += qk16(qr[1], b + 4u); }
    if (DV > 8u) {
        a += qk16(qr[2], b + 8u);
        a += qk16(qr[3], b + 12u);
    }
    return (a.x + a.y) + (a.z + a.w);
}

fn scores4(j: u32) -> vec4<f32> {
    return vec4<f32>(score(j), score(j + 1u), score(j + 2u), score(j + 3u));
}

fn pv16(o: mat4x4<f32>, w: f32, b: u32) -> mat4x4<f32> {
    return mat4x4<f32>(o[0] + w * vs[b], o[1] + w * vs[b + 1u], o[2] + w * vs[b + 2u], o[3] + w * vs[b + 3u]);
}

// o += w · v_j
fn pv(j: u32, w: f32) {
    let b = j * DV;
    orw[0] = pv16(orw[0], w, b);
    if (DV > 4u) { orw[1] = pv16(orw[1], w, b + 4u); }
    if (DV > 8u) {
        orw[2] = pv16(orw[2], w, b + 8u);
        orw[3] = pv16(orw[3], w, b + 12u);
    }
}

fn pv4(j: u32, w: vec4<f32>) {
    pv(j, w.x);
    pv(j + 1u, w.y);
    pv(j + 2u, w.z);
    pv(j + 3u, w.w);
}

fn scale_o(a: f32) {
    orw[0] *= a;
    if (DV > 4u) { orw[1] *= a; }
    if (DV > 8u) { orw[2] *= a; orw[3] *= a; }
}

// Mask keys k..k+3 for query row qi: past L, or after qi when causal.
fn mask4(s: vec4<f32>, k: u32, qi: u32) -> vec4<f32> {
    let kv = vec4<u32>(k, k + 1u, k + 2u, k + 3u);
    let causal = vec4<bool>((p.flags & 1u) != 0u);
    let bad = (kv >= vec4<u32>(p.seq)) | ((kv > vec4<u32>(qi)) & causal);
    return select(s, vec4<f32>(NEG), bad);
}

fn max4(v: vec4<f32>) -> f32 {
    return max(max(v.x, v.y), max(v.z, v.w));
}

@compute @workgroup_size(BQ)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let L = p.seq;
    let causal = (p.flags & 1u) != 0u;
    let havg = (p.flags & 2u) != 0u;
    let save_lse = (p.flags & 4u) != 0u;
    let b = wg.z;
    let q0 = wg.x * BQ;
    let i = q0 + li;                 // this invocation's query row
    let row_ok = i < L;
    let qi = min(i, L - 1u);         // rows past L compute on a real row and write nothing
    let in_b = b * p.in_batch;
    // Keys this tile of queries can see.
    var kend = L;
    if (causal) { kend = min(L, q0 + BQ); }
    var h_begin = wg.y;
    var h_end = wg.y + 1u;
    if (havg) { h_begin = 0u; h_end = p.heads; }
    let zero = mat4x4<f32>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));

    for (var h = h_begin; h < h_end; h++) {
        let qbase = in_b + qi * p.in_row + p.q_col + h * p.in_head;
        qr[0] = load16(qbase, 0u) * p.scale;
        if (DV > 4u) { qr[1] = load16(qbase, 16u) * p.scale; }
        if (DV > 8u) {
            qr[2] = load16(qbase, 32u) * p.scale;
            qr[3] = load16(qbase, 48u) * p.scale;
        }
        orw[0] = zero; orw[1] = zero; orw[2] = zero; orw[3] = zero;
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
            let jend = min(BK, kend - k0);
            // Groups of 4 keys: scores, one online-softmax update, then o = o·alpha + p·v.
            // (Short groups: longer unrolled ones made driver compile times explode.)
            for (var j = 0u; j < jend; j += 4u) {
                let s = mask4(scores4(j), k0 + j, qi);
                // Key 0 is valid for every row and the first group holds it, so m is a real
                // logit from then on and masked keys get exp2(NEG − m) = 0.
                let mn = max(m, max4(s));
                let alpha = exp2(m - mn);
                scale_o(alpha);
                let w = exp2(s - mn);
                l = l * alpha + dot(w, vec4<f32>(1.0));
                pv4(j, w);
                m = mn;
            }
        }
        // Normalise; when averaging, the first head writes its share and later heads add
        // theirs (the same invocation owns the row for every head, so nothing races).
        var f = 1.0 / l;
        if (havg) { f *= p.inv_heads; }
        let add = havg && h != h_begin;
        if (row_ok) {
            let ob = b * p.out_batch + i * p.out_row + h * p.out_head;
            put16(ob, 0u, orw[0] * f, add);
            if (DV > 4u) { put16(ob, 16u, orw[1] * f, add); }
            if (DV > 8u) { put16(ob, 32u, orw[2] * f, add); put16(ob, 48u, orw[3] * f, add); }
        }
        if (save_lse && row_ok) {
            lse[(b * p.heads + h) * L + i] = (m + log2(l)) * LN2;
        }
    }
}
