// Fused multi-head attention, flash style, subgroup variant (needs subgroups of at least 8
// invocations). Same contract, params, flags and layout as attention.wgsl, but K and V never go
// through workgroup memory: per key, invocation t of every group of 8 loads 4 of the key's
// elements straight from the input (dims 4t..4t+3 of each 32-dim chunk) and subgroupBroadcast
// hands them to every invocation. Each element is then loaded once per subgroup instead of
// once per invocation, and there are no barriers at all (CPU implementations such as lavapipe
// turn per-invocation loads of a shared address inside loops into gathers).

override BQ: u32 = 64u;        // query rows per workgroup (= invocations)
override DV: u32 = 16u;        // vec4 slots per head row: 4, 8, 16 or 32 (D <= 4·DV)

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
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;


// This invocation's row state, 16 head-dim columns per matrix (column c = dims 4c..4c+3).
// Blocks past DV/4 are never touched (the DV tests fold away once DV is specialised).
var<private> qr: array<mat4x4<f32>, 8>;  // q · scale · log2(e)
var<private> orw: array<mat4x4<f32>, 8>; // unnormalised output
var<private> acc: array<mat4x4<f32>, 8>; // sum of normalised head outputs (averaging)

// Four elements of one head row starting at column `d` (zero past D). Branch-free: the
// indices are clamped into the row and the extra elements selected away, so the loop bodies
// that call it stay single basic blocks (masked control flow is costly on CPU drivers).
fn load4(base: u32, d: u32) -> vec4<f32> {
    let last = p.dim - 1u;
    let dv = vec4<u32>(d, d + 1u, d + 2u, d + 3u);
    let v = vec4<f32>(
        qkv[base + min(dv.x, last)], qkv[base + min(dv.y, last)],
        qkv[base + min(dv.z, last)], qkv[base + min(dv.w, last)]);
    return select(vec4<f32>(0.0), v, dv <= vec4<u32>(last));
}

fn load16(base: u32, d: u32) -> mat4x4<f32> {
    return mat4x4<f32>(load4(base, d), load4(base, d + 4u), load4(base, d + 8u), load4(base, d + 12u));
}

fn store4(base: u32, d: u32, v: vec4<f32>) {
    let n = p.dim;
    if (d + 3u < n) {
        out[base + d] = v.x;
        out[base + d + 1u] = v.y;
        out[base + d + 2u] = v.z;
        out[base + d + 3u] = v.w;
    } else {
        if (d < n) { out[base + d] = v.x; }
        if (d + 1u < n) { out[base + d + 1u] = v.y; }
        if (d + 2u < n) { out[base + d + 2u] = v.z; }
    }
}

fn store16(base: u32, d: u32, m: mat4x4<f32>) {
    store4(base, d, m[0]);
    store4(base, d + 4u, m[1]);
    store4(base, d + 8u, m[2]);
    store4(base, d + 12u, m[3]);
}

// q·k over one 32-dim chunk whose piece 4t..4t+3 this invocation holds in `kc`.
fn qk32(qa: mat4x4<f32>, qb: mat4x4<f32>, kc: vec4<f32>) -> vec4<f32> {
    var a = qa[0] * subgroupBroadcast(kc, 0u) + qa[1] * subgroupBroadcast(kc, 1u)
        + qa[2] * subgroupBroadcast(kc, 2u) + qa[3] * subgroupBroadcast(kc, 3u);
    if (DV > 4u) {
        a += qb[0] * subgroupBroadcast(kc, 4u) + qb[1] * subgroupBroadcast(kc, 5u)
            + qb[2] * subgroupBroadcast(kc, 6u) + qb[3] * subgroupBroadcast(kc, 7u);
    }
    return a;
}

// Base-2 logit of the key whose head row starts at kb; t4 = 4·(lane mod 8).
fn score(kb: u32, t4: u32) -> f32 {
    var a = qk32(qr[0], qr[1], load4(kb, t4));
    if (DV > 8u) { a += qk32(qr[2], qr[3], load4(kb, 32u + t4)); }
    if (DV > 16u) {
        a += qk32(qr[4], qr[5], load4(kb, 64u + t4));
        a += qk32(qr[6], qr[7], load4(kb, 96u + t4));
    }
    return (a.x + a.y) + (a.z + a.w);
}

struct Pair {
    lo: mat4x4<f32>, // dims held by lanes 0..3 of a 32-dim chunk
    hi: mat4x4<f32>, // lanes 4..7
}

// Σ_t w[t] · v_t over four keys for one 32-dim chunk; v_t = this lane's piece of key t.
fn pv4(w: vec4<f32>, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> Pair {
    var r: Pair;
    r.lo = mat4x4<f32>(
        w.x * subgroupBroadcast(a, 0u) + w.y * subgroupBroadcast(b, 0u) + w.z * subgroupBroadcast(c, 0u) + w.w * subgroupBroadcast(d, 0u),
        w.x * subgroupBroadcast(a, 1u) + w.y * subgroupBroadcast(b, 1u) + w.z * subgroupBroadcast(c, 1u) + w.w * subgroupBroadcast(d, 1u),
        w.x * subgroupBroadcast(a, 2u) + w.y * subgroupBroadcast(b, 2u) + w.z * subgroupBroadcast(c, 2u) + w.w * subgroupBroadcast(d, 2u),
        w.x * subgroupBroadcast(a, 3u) + w.y * subgroupBroadcast(b, 3u) + w.z * subgroupBroadcast(c, 3u) + w.w * subgroupBroadcast(d, 3u));
    if (DV > 4u) {
        r.hi = mat4x4<f32>(
            w.x * subgroupBroadcast(a, 4u) + w.y * subgroupBroadcast(b, 4u) + w.z * subgroupBroadcast(c, 4u) + w.w * subgroupBroadcast(d, 4u),
            w.x * subgroupBroadcast(a, 5u) + w.y * subgroupBroadcast(b, 5u) + w.z * subgroupBroadcast(c, 5u) + w.w * subgroupBroadcast(d, 5u),
            w.x * subgroupBroadcast(a, 6u) + w.y * subgroupBroadcast(b, 6u) + w.z * subgroupBroadcast(c, 6u) + w.w * subgroupBroadcast(d, 6u),
            w.x * subgroupBroadcast(a, 7u) + w.y * subgroupBroadcast(b, 7u) + w.z * subgroupBroadcast(c, 7u) + w.w * subgroupBroadcast(d, 7u));
    }
    return r;
}

// Row starts (head-relative) of the 16 keys of the current group, clamped into the sequence.
var<private> vrow: array<u32, 16>;

// Σ_j w_j · v_j over the 16 keys of the group for the 32-dim chunk at column `off`.
fn pv16(off: u32, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> Pair {
    let a = pv4(w0, load4(vrow[0], off), load4(vrow[1], off), load4(vrow[2], off), load4(vrow[3], off));
    let b = pv4(w1, load4(vrow[4], off), load4(vrow[5], off), load4(vrow[6], off), load4(vrow[7], off));
    let c = pv4(w2, load4(vrow[8], off), load4(vrow[9], off), load4(vrow[10], off), load4(vrow[11], off));
    let d = pv4(w3, load4(vrow[12], off), load4(vrow[13], off), load4(vrow[14], off), load4(vrow[15], off));
    var r: Pair;
    r.lo = (a.lo + b.lo) + (c.lo + d.lo);
    if (DV > 4u) { r.hi = (a.hi + b.hi) + (c.hi + d.hi); }
    return r;
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
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let t4 = (sl & 7u) * 4u;
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
    acc[0] = zero; acc[1] = zero; acc[2] = zero; acc[3] = zero;
    acc[4] = zero; acc[5] = zero; acc[6] = zero; acc[7] = zero;

    for (var h = h_begin; h < h_end; h++) {
        let qbase = in_b + qi * p.in_row + p.q_col + h * p.in_head;
        qr[0] = load16(qbase, 0u) * p.scale;
        if (DV > 4u) { qr[1] = load16(qbase, 16u) * p.scale; }
        if (DV > 8u) {
            qr[2] = load16(qbase, 32u) * p.scale;
            qr[3] = load16(qbase, 48u) * p.scale;
        }
        if (DV > 16u) {
            qr[4] = load16(qbase, 64u) * p.scale;
            qr[5] = load16(qbase, 80u) * p.scale;
            qr[6] = load16(qbase, 96u) * p.scale;
            qr[7] = load16(qbase, 112u) * p.scale;
        }
        orw[0] = zero; orw[1] = zero; orw[2] = zero; orw[3] = zero;
        orw[4] = zero; orw[5] = zero; orw[6] = zero; orw[7] = zero;
        var m = NEG;
        var l = 0.0;
        let hk = in_b + p.k_col + h * p.in_head;
        let hv = in_b + p.v_col + h * p.in_head;
        // Groups of 16 keys: scores, one online-softmax update, o = o·alpha + p·v. The body is
        // straight-line code; keys past the end are clamped to the last row and masked.
        for (var k = 0u; k < kend; k += 16u) {
            let r = p.in_row;
            let e = L - 1u;
            let s0 = mask4(vec4<f32>(
                score(hk + min(k, e) * r, t4), score(hk + min(k + 1u, e) * r, t4),
                score(hk + min(k + 2u, e) * r, t4), score(hk + min(k + 3u, e) * r, t4)), k, qi);
            let s1 = mask4(vec4<f32>(
                score(hk + min(k + 4u, e) * r, t4), score(hk + min(k + 5u, e) * r, t4),
                score(hk + min(k + 6u, e) * r, t4), score(hk + min(k + 7u, e) * r, t4)), k + 4u, qi);
            let s2 = mask4(vec4<f32>(
                score(hk + min(k + 8u, e) * r, t4), score(hk + min(k + 9u, e) * r, t4),
                score(hk + min(k + 10u, e) * r, t4), score(hk + min(k + 11u, e) * r, t4)), k + 8u, qi);
            let s3 = mask4(vec4<f32>(
                score(hk + min(k + 12u, e) * r, t4), score(hk + min(k + 13u, e) * r, t4),
                score(hk + min(k + 14u, e) * r, t4), score(hk + min(k + 15u, e) * r, t4)), k + 12u, qi);
            // Key 0 is valid for every row and the first group holds it, so m is a real
            // logit from then on and masked keys get exp2(NEG − m) = 0.
            let mn = max(m, max4(max(max(s0, s1), max(s2, s3))));
            let alpha = exp2(m - mn);
            let w0 = exp2(s0 - mn);
            let w1 = exp2(s1 - mn);
            let w2 = exp2(s2 - mn);
            let w3 = exp2(s3 - mn);
            l = l * alpha + dot((w0 + w1) + (w2 + w3), vec4<f32>(1.0));
            m = mn;
            vrow[0] = hv + min(k, e) * r;
            vrow[1] = hv + min(k + 1u, e) * r;
            vrow[2] = hv + min(k + 2u, e) * r;
            vrow[3] = hv + min(k + 3u, e) * r;
            vrow[4] = hv + min(k + 4u, e) * r;
            vrow[5] = hv + min(k + 5u, e) * r;
            vrow[6] = hv + min(k + 6u, e) * r;
            vrow[7] = hv + min(k + 7u, e) * r;
            vrow[8] = hv + min(k + 8u, e) * r;
            vrow[9] = hv + min(k + 9u, e) * r;
            vrow[10] = hv + min(k + 10u, e) * r;
            vrow[11] = hv + min(k + 11u, e) * r;
            vrow[12] = hv + min(k + 12u, e) * r;
            vrow[13] = hv + min(k + 13u, e) * r;
            vrow[14] = hv + min(k + 14u, e) * r;
            vrow[15] = hv + min(k + 15u, e) * r;
            let c0 = pv16(t4, w0, w1, w2, w3);
            orw[0] = orw[0] * alpha + c0.lo;
            if (DV > 4u) { orw[1] = orw[1] * alpha + c0.hi; }
            if (DV > 8u) {
                let c1 = pv16(32u + t4, w0, w1, w2, w3);
                orw[2] = orw[2] * alpha + c1.lo;
                orw[3] = orw[3] * alpha + c1.hi;
            }
            if (DV > 16u) {
                let c2 = pv16(64u + t4, w0, w1, w2, w3);
                orw[4] = orw[4] * alpha + c2.lo;
                orw[5] = orw[5] * alpha + c2.hi;
                let c3 = pv16(96u + t4, w0, w1, w2, w3);
                orw[6] = orw[6] * alpha + c3.lo;
                orw[7] = orw[7] * alpha + c3.hi;
            }
        }
        let inv_l = 1.0 / l;
        if (havg) {
            acc[0] += orw[0] * inv_l;
            if (DV > 4u) { acc[1] += orw[1] * inv_l; }
            if (DV > 8u) { acc[2] += orw[2] * inv_l; acc[3] += orw[3] * inv_l; }
            if (DV > 16u) {
                acc[4] += orw[4] * inv_l; acc[5] += orw[5] * inv_l;
                acc[6] += orw[6] * inv_l; acc[7] += orw[7] * inv_l;
            }
        } else if (row_ok) {
            let ob = b * p.out_batch + i * p.out_row + h * p.out_head;
            store16(ob, 0u, orw[0] * inv_l);
            if (DV > 4u) { store16(ob, 16u, orw[1] * inv_l); }
            if (DV > 8u) { store16(ob, 32u, orw[2] * inv_l); store16(ob, 48u, orw[3] * inv_l); }
            if (DV > 16u) {
                store16(ob, 64u, orw[4] * inv_l); store16(ob, 80u, orw[5] * inv_l);
                store16(ob, 96u, orw[6] * inv_l); store16(ob, 112u, orw[7] * inv_l);
            }
        }
        if (save_lse && row_ok) {
            lse[(b * p.heads + h) * L + i] = (m + log2(l)) * LN2;
        }
    }
    if (havg && row_ok) {
        let ob = b * p.out_batch + i * p.out_row;
        let s = p.inv_heads;
        store16(ob, 0u, acc[0] * s);
        if (DV > 4u) { store16(ob, 16u, acc[1] * s); }
        if (DV > 8u) { store16(ob, 32u, acc[2] * s); store16(ob, 48u, acc[3] * s); }
        if (DV > 16u) {
            store16(ob, 64u, acc[4] * s); store16(ob, 80u, acc[5] * s);
            store16(ob, 96u, acc[6] * s); store16(ob, 112u, acc[7] * s);
        }
    }
}
