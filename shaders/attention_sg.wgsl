// Fused multi-head attention, flash style, subgroup variant (needs subgroups of at least 8
// invocations). Same contract, params, flags and layout as attention.wgsl, but K and V never go
// through workgroup memory: per key, invocation t of every group of 8 loads 4 of the key's
// elements straight from the input (dims 4t..4t+3 of each 32-dim chunk) and subgroupBroadcast
// hands them to every invocation. Each element is then loaded once per subgroup instead of
// once per invocation, and there are no barriers at all. Made for CPU drivers (lavapipe /
// llvmpipe), where any storage or workgroup load inside a loop becomes a scalar loop over the
// invocations (even for an address all of them share) and a barrier is a coroutine switch.

override BQ: u32 = 64u;        // query rows per workgroup (= invocations)
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
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

// This invocation's row state, 16 head-dim columns per matrix (column c = dims 4c..4c+3).
// Blocks past DV/4 are never touched (the DV tests fold away once DV is specialised).
var<private> qr: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> orw: array<mat4x4<f32>, 4>; // unnormalised output
// The same for this invocation's second query row (rows li and BQ + li of the tile).
var<private> qs: array<mat4x4<f32>, 4>;
var<private> osw: array<mat4x4<f32>, 4>;

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

// out[base + d..] = m, or += m when `add`.
fn put16(base: u32, d: u32, m: mat4x4<f32>, add: bool) {
    var v = m;
    if (add) {
        let last = base + p.dim - 1u;
        for (var c = 0u; c < 4u; c++) {
            let e = base + d + 4u * c;
            v[c] += vec4<f32>(out[min(e, last)], out[min(e + 1u, last)], out[min(e + 2u, last)], out[min(e + 3u, last)]);
        }
    }
    store16(base, d, v);
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

// Base-2 logits of the key whose head row starts at kb for both rows; t4 = 4·(lane mod 8).
// The key is loaded once for the two rows.
fn score2(kb: u32, t4: u32) -> vec2<f32> {
    let k0 = load4(kb, t4);
    var a = qk32(qr[0], qr[1], k0);
    var b = qk32(qs[0], qs[1], k0);
    if (DV > 8u) {
        let k1 = load4(kb, 32u + t4);
        a += qk32(qr[2], qr[3], k1);
        b += qk32(qs[2], qs[3], k1);
    }
    return vec2<f32>((a.x + a.y) + (a.z + a.w), (b.x + b.y) + (b.z + b.w));
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

struct Pair2 {
    a: Pair, // first row
    b: Pair, // second row
}

// Σ_j w_j · v_j over the 4 keys of the group (head rows v0..v3) for the chunk at column `off`,
// with the weights of both rows (wa, wb); the values are loaded once for the two.
fn pv_chunk2(off: u32, wa: vec4<f32>, wb: vec4<f32>, v0: u32, v1: u32, v2: u32, v3: u32) -> Pair2 {
    let a = load4(v0, off);
    let b = load4(v1, off);
    let c = load4(v2, off);
    let d = load4(v3, off);
    return Pair2(pv4(wa, a, b, c, d), pv4(wb, a, b, c, d));
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

// Each invocation owns two query rows, q0 + li and q0 + BQ + li (a workgroup covers 2·BQ
// rows): every K/V element an invocation loads then feeds both rows, which halves the loads
// per FMA (on lavapipe the loads, not the FMAs, set the speed: 1 row per invocation gave 8
// FMAs per loaded element, 2 rows give 16).
@compute @workgroup_size(BQ)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let t4 = (sl & 7u) * 4u;
    let L = p.seq;
    let causal = (p.flags & 1u) != 0u;
    let havg = (p.flags & 2u) != 0u;
    let save_lse = (p.flags & 4u) != 0u;
    let b = wg.z;
    let q0 = wg.x * 2u * BQ;
    let ia = q0 + li;                // this invocation's query rows
    let ib = q0 + BQ + li;
    let a_ok = ia < L;
    let b_ok = ib < L;
    let qa = min(ia, L - 1u);        // rows past L compute on a real row and write nothing
    let qb = min(ib, L - 1u);
    let in_b = b * p.in_batch;
    // Keys this tile of queries can see.
    var kend = L;
    if (causal) { kend = min(L, q0 + 2u * BQ); }
    var h_begin = wg.y;
    var h_end = wg.y + 1u;
    if (havg) { h_begin = 0u; h_end = p.heads; }
    let zero = mat4x4<f32>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));

    for (var h = h_begin; h < h_end; h++) {
        let abase = in_b + qa * p.in_row + p.q_col + h * p.in_head;
        let bbase = in_b + qb * p.in_row + p.q_col + h * p.in_head;
        qr[0] = load16(abase, 0u) * p.scale;
        qs[0] = load16(bbase, 0u) * p.scale;
        if (DV > 4u) {
            qr[1] = load16(abase, 16u) * p.scale;
            qs[1] = load16(bbase, 16u) * p.scale;
        }
        if (DV > 8u) {
            qr[2] = load16(abase, 32u) * p.scale;
            qr[3] = load16(abase, 48u) * p.scale;
            qs[2] = load16(bbase, 32u) * p.scale;
            qs[3] = load16(bbase, 48u) * p.scale;
        }
        orw[0] = zero; orw[1] = zero; orw[2] = zero; orw[3] = zero;
        osw[0] = zero; osw[1] = zero; osw[2] = zero; osw[3] = zero;
        var ma = NEG;
        var la = 0.0;
        var mb = NEG;
        var lb = 0.0;
        let hk = in_b + p.k_col + h * p.in_head;
        let hv = in_b + p.v_col + h * p.in_head;
        // Groups of 4 keys: scores, one online-softmax update per row, o = o·alpha + p·v. The
        // body is straight-line code (keys past the end are clamped to the last row and
        // masked) and short: longer unrolled groups made driver compile times explode.
        let r = p.in_row;
        let e = L - 1u;
        for (var k = 0u; k < kend; k += 4u) {
            let k0 = min(k, e) * r;
            let k1 = min(k + 1u, e) * r;
            let k2 = min(k + 2u, e) * r;
            let k3 = min(k + 3u, e) * r;
            let s0 = score2(hk + k0, t4);
            let s1 = score2(hk + k1, t4);
            let s2 = score2(hk + k2, t4);
            let s3 = score2(hk + k3, t4);
            let sa = mask4(vec4<f32>(s0.x, s1.x, s2.x, s3.x), k, qa);
            let sb = mask4(vec4<f32>(s0.y, s1.y, s2.y, s3.y), k, qb);
            // Key 0 is valid for every row and the first group holds it, so m is a real
            // logit from then on and masked keys get exp2(NEG − m) = 0.
            let mna = max(ma, max4(sa));
            let mnb = max(mb, max4(sb));
            let alpha_a = exp2(ma - mna);
            let alpha_b = exp2(mb - mnb);
            let wa = exp2(sa - mna);
            let wb = exp2(sb - mnb);
            la = la * alpha_a + dot(wa, vec4<f32>(1.0));
            lb = lb * alpha_b + dot(wb, vec4<f32>(1.0));
            ma = mna;
            mb = mnb;
            let c0 = pv_chunk2(t4, wa, wb, hv + k0, hv + k1, hv + k2, hv + k3);
            orw[0] = orw[0] * alpha_a + c0.a.lo;
            osw[0] = osw[0] * alpha_b + c0.b.lo;
            if (DV > 4u) {
                orw[1] = orw[1] * alpha_a + c0.a.hi;
                osw[1] = osw[1] * alpha_b + c0.b.hi;
            }
            if (DV > 8u) {
                let c1 = pv_chunk2(32u + t4, wa, wb, hv + k0, hv + k1, hv + k2, hv + k3);
                orw[2] = orw[2] * alpha_a + c1.a.lo;
                orw[3] = orw[3] * alpha_a + c1.a.hi;
                osw[2] = osw[2] * alpha_b + c1.b.lo;
                osw[3] = osw[3] * alpha_b + c1.b.hi;
            }
        }
        // Normalise; when averaging, the first head writes its share and later heads add
        // theirs (the same invocation owns the rows for every head, so nothing races).
        var fa = 1.0 / la;
        var fb = 1.0 / lb;
        if (havg) {
            fa *= p.inv_heads;
            fb *= p.inv_heads;
        }
        let add = havg && h != h_begin;
        if (a_ok) {
            let ob = b * p.out_batch + ia * p.out_row + h * p.out_head;
            put16(ob, 0u, orw[0] * fa, add);
            if (DV > 4u) { put16(ob, 16u, orw[1] * fa, add); }
            if (DV > 8u) { put16(ob, 32u, orw[2] * fa, add); put16(ob, 48u, orw[3] * fa, add); }
        }
        if (b_ok) {
            let ob = b * p.out_batch + ib * p.out_row + h * p.out_head;
            put16(ob, 0u, osw[0] * fb, add);
            if (DV > 4u) { put16(ob, 16u, osw[1] * fb, add); }
            if (DV > 8u) { put16(ob, 32u, osw[2] * fb, add); put16(ob, 48u, osw[3] * fb, add); }
        }
        if (save_lse && a_ok) {
            lse[(b * p.heads + h) * L + ia] = (ma + log2(la)) * LN2;
        }
        if (save_lse && b_ok) {
            lse[(b * p.heads + h) * L + ib] = (mb + log2(lb)) * LN2;
        }
    }
}
