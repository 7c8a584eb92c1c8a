// Fused multi-head attention, flash style, subgroup variant (needs subgroups of at least 8
// invocations). src/shaders.rs prepends the K/V loader `kv4`: attention_kv_buffer.wgsl (module
// attention_sg) or attention_kv_texture.wgsl (module attention_tex, texture operands), which
// also loads the q rows (`q16`) and addresses a head by its origin (`head_origin`). Same contract, params, flags and layout as attention.wgsl, but K and V never go
// through workgroup memory: per key, invocation t of every group of 8 loads 4 of the key's
// elements straight from the input (dims 4t..4t+3 of each 32-dim chunk) and subgroupBroadcast
// hands them to every invocation. Each element is then loaded once per subgroup instead of
// once per invocation, and there are no barriers at all. Made for CPU drivers (lavapipe /
// llvmpipe), where any storage or workgroup load inside a loop becomes a scalar loop over the
// invocations (even for an address all of them share) and a barrier is a coroutine switch.

override BQ: u32 = 32u;        // invocations per workgroup (4 query rows each)
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
    kv_strip: u32,         // texture loader: texel columns per strip (see attention_kv_texture.wgsl)
    kv_rows: u32,          // texture loader: texture rows per strip
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
// binding(2), the output `out`, and its writer `put16`: attention_out_buffer.wgsl (module
// attention_sg) or attention_kv_texture.wgsl (vec4 stores).
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

// Row state of this invocation's NR = 4 query rows (rows li, BQ + li, 2·BQ + li, 3·BQ + li of
// the tile), 16 head-dim columns per matrix (column c = dims 4c..4c+3). Blocks past DV/4 are
// never touched (the DV tests fold away once DV is specialised).
var<private> q0: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> o0: array<mat4x4<f32>, 4>;  // unnormalised output
var<private> q1: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> o1: array<mat4x4<f32>, 4>;  // unnormalised output
var<private> q2: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> o2: array<mat4x4<f32>, 4>;  // unnormalised output
var<private> q3: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> o3: array<mat4x4<f32>, 4>;  // unnormalised output

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

// a + (q_r · k) over one q element per row, the 4 rows as a vec4: dim 16m + 4n + c of the
// rows' q times `b`, that dim of the key (as explicit FMAs: the driver does not contract
// a * b + c).
fn qk_dim(a: vec4<f32>, m: u32, n: u32, c: u32, b: f32) -> vec4<f32> {
    return fma(vec4<f32>(q0[m][n][c], q1[m][n][c], q2[m][n][c], q3[m][n][c]), vec4<f32>(b), a);
}

// a + the 4 rows' partial dot products with component c of the key pieces over one 32-dim
// chunk (q matrices mb, mb + 1), whose piece 4t..4t+3 lane t holds in `kc` (kc: component c).
// Component-major: each broadcast key element is used by the 4 rows at once and dropped, so
// the compiled code keeps one accumulator per row in registers and spills no broadcasts
// (row-major, LLVM kept the source order: one row's 64 products at a time, every broadcast
// saved to the stack for the other three rows).
fn qk_chunk(a: vec4<f32>, mb: u32, c: u32, kc: f32) -> vec4<f32> {
    var r = qk_dim(a, mb, 0u, c, subgroupBroadcast(kc, 0u));
    r = qk_dim(r, mb, 1u, c, subgroupBroadcast(kc, 1u));
    r = qk_dim(r, mb, 2u, c, subgroupBroadcast(kc, 2u));
    r = qk_dim(r, mb, 3u, c, subgroupBroadcast(kc, 3u));
    if (DV > 4u) {
        r = qk_dim(r, mb + 1u, 0u, c, subgroupBroadcast(kc, 4u));
        r = qk_dim(r, mb + 1u, 1u, c, subgroupBroadcast(kc, 5u));
        r = qk_dim(r, mb + 1u, 2u, c, subgroupBroadcast(kc, 6u));
        r = qk_dim(r, mb + 1u, 3u, c, subgroupBroadcast(kc, 7u));
    }
    return r;
}

// Base-2 logits of key `key` (its head row at origin `o`, see head_origin) for the 4 rows;
// t4 = 4·(lane mod 8). The key is loaded once for all rows. Four partial sums per row (one
// per component), added pairwise at the end.
fn score4(o: vec2<u32>, key: u32, t4: u32) -> vec4<f32> {
    let k0 = kv4(o, key, t4);
    let zero = vec4<f32>(0.0);
    var ax = qk_chunk(zero, 0u, 0u, k0.x);
    var ay = qk_chunk(zero, 0u, 1u, k0.y);
    var az = qk_chunk(zero, 0u, 2u, k0.z);
    var aw = qk_chunk(zero, 0u, 3u, k0.w);
    if (DV > 8u) {
        let k1 = kv4(o, key, 32u + t4);
        ax = qk_chunk(ax, 2u, 0u, k1.x);
        ay = qk_chunk(ay, 2u, 1u, k1.y);
        az = qk_chunk(az, 2u, 2u, k1.z);
        aw = qk_chunk(aw, 2u, 3u, k1.w);
    }
    return (ax + ay) + (az + aw);
}

// Column c of o matrix m of the 4 rows: o_r = o_r · al_r + Σ_j w_r[j] · v_j, where va .. vd
// are the broadcast pieces of the group's 4 values. Accumulator-major (see panel.wgsl): each
// o column takes its rescale and 4 FMAs in a row, so the spilled row state is loaded and
// stored once per 4 keys, and no per-row partial sums are kept.
fn pv_col(m: u32, c: u32, al: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>, va: vec4<f32>, vb: vec4<f32>, vc: vec4<f32>, vd: vec4<f32>) {
    o0[m][c] = fma(vec4<f32>(w0.w), vd, fma(vec4<f32>(w0.z), vc, fma(vec4<f32>(w0.y), vb, fma(vec4<f32>(w0.x), va, o0[m][c] * al.x))));
    o1[m][c] = fma(vec4<f32>(w1.w), vd, fma(vec4<f32>(w1.z), vc, fma(vec4<f32>(w1.y), vb, fma(vec4<f32>(w1.x), va, o1[m][c] * al.y))));
    o2[m][c] = fma(vec4<f32>(w2.w), vd, fma(vec4<f32>(w2.z), vc, fma(vec4<f32>(w2.y), vb, fma(vec4<f32>(w2.x), va, o2[m][c] * al.z))));
    o3[m][c] = fma(vec4<f32>(w3.w), vd, fma(vec4<f32>(w3.z), vc, fma(vec4<f32>(w3.y), vb, fma(vec4<f32>(w3.x), va, o3[m][c] * al.w))));
}

// P·V for the 4 rows over the 32-dim chunk whose texel `off` this lane holds (o matrices mb,
// mb + 1), for the 4 keys j0..j3 of the group (head rows at origin `o`): the values are loaded
// once for all rows, and lane t's piece feeds columns 4t .. 4t + 3.
fn pv_chunk(o: vec2<u32>, off: u32, mb: u32, al: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>, j0: u32, j1: u32, j2: u32, j3: u32) {
    let a = kv4(o, j0, off);
    let b = kv4(o, j1, off);
    let c = kv4(o, j2, off);
    let d = kv4(o, j3, off);
    pv_col(mb, 0u, al, w0, w1, w2, w3, subgroupBroadcast(a, 0u), subgroupBroadcast(b, 0u), subgroupBroadcast(c, 0u), subgroupBroadcast(d, 0u));
    pv_col(mb, 1u, al, w0, w1, w2, w3, subgroupBroadcast(a, 1u), subgroupBroadcast(b, 1u), subgroupBroadcast(c, 1u), subgroupBroadcast(d, 1u));
    pv_col(mb, 2u, al, w0, w1, w2, w3, subgroupBroadcast(a, 2u), subgroupBroadcast(b, 2u), subgroupBroadcast(c, 2u), subgroupBroadcast(d, 2u));
    pv_col(mb, 3u, al, w0, w1, w2, w3, subgroupBroadcast(a, 3u), subgroupBroadcast(b, 3u), subgroupBroadcast(c, 3u), subgroupBroadcast(d, 3u));
    if (DV > 4u) {
        pv_col(mb + 1u, 0u, al, w0, w1, w2, w3, subgroupBroadcast(a, 4u), subgroupBroadcast(b, 4u), subgroupBroadcast(c, 4u), subgroupBroadcast(d, 4u));
        pv_col(mb + 1u, 1u, al, w0, w1, w2, w3, subgroupBroadcast(a, 5u), subgroupBroadcast(b, 5u), subgroupBroadcast(c, 5u), subgroupBroadcast(d, 5u));
        pv_col(mb + 1u, 2u, al, w0, w1, w2, w3, subgroupBroadcast(a, 6u), subgroupBroadcast(b, 6u), subgroupBroadcast(c, 6u), subgroupBroadcast(d, 6u));
        pv_col(mb + 1u, 3u, al, w0, w1, w2, w3, subgroupBroadcast(a, 7u), subgroupBroadcast(b, 7u), subgroupBroadcast(c, 7u), subgroupBroadcast(d, 7u));
    }
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

// Each invocation owns NR = 4 query rows, row0 + r·BQ + li (a workgroup covers 4·BQ rows):
// every K/V element an invocation loads then feeds all four, which quarters the loads per FMA
// (on lavapipe the loads, not the FMAs, set the speed: 1 row per invocation gave 8 FMAs per
// loaded element, 4 rows give 32). The host runs it with BQ = 32: 128 rows per workgroup.
@compute @workgroup_size(BQ)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let t4 = (sl & 7u) * 4u;
    let L = p.seq;
    let causal = (p.flags & 1u) != 0u;
    let havg = (p.flags & 2u) != 0u;
    let save_lse = (p.flags & 4u) != 0u;
    let b = wg.z;
    let row0 = wg.x * 4u * BQ;
    let i0 = row0 + 0u * BQ + li;   // query row 0 of this invocation
    let ok0 = i0 < L;
    let qi0 = min(i0, L - 1u);  // rows past L compute on a real row and write nothing
    let i1 = row0 + 1u * BQ + li;   // query row 1 of this invocation
    let ok1 = i1 < L;
    let qi1 = min(i1, L - 1u);  // rows past L compute on a real row and write nothing
    let i2 = row0 + 2u * BQ + li;   // query row 2 of this invocation
    let ok2 = i2 < L;
    let qi2 = min(i2, L - 1u);  // rows past L compute on a real row and write nothing
    let i3 = row0 + 3u * BQ + li;   // query row 3 of this invocation
    let ok3 = i3 < L;
    let qi3 = min(i3, L - 1u);  // rows past L compute on a real row and write nothing
    // Keys this tile of queries can see.
    var kend = L;
    if (causal) { kend = min(L, row0 + 4u * BQ); }
    var h_begin = wg.y;
    var h_end = wg.y + 1u;
    if (havg) { h_begin = 0u; h_end = p.heads; }
    let zero = mat4x4<f32>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));

    for (var h = h_begin; h < h_end; h++) {
        let hq = head_origin(b, p.q_col + h * p.in_head);
        q0[0] = q16(hq, qi0, 0u) * p.scale;
        if (DV > 4u) { q0[1] = q16(hq, qi0, 16u) * p.scale; }
        if (DV > 8u) { q0[2] = q16(hq, qi0, 32u) * p.scale; q0[3] = q16(hq, qi0, 48u) * p.scale; }
        o0[0] = zero; o0[1] = zero; o0[2] = zero; o0[3] = zero;
        var m0 = NEG;
        var l0 = 0.0;
        q1[0] = q16(hq, qi1, 0u) * p.scale;
        if (DV > 4u) { q1[1] = q16(hq, qi1, 16u) * p.scale; }
        if (DV > 8u) { q1[2] = q16(hq, qi1, 32u) * p.scale; q1[3] = q16(hq, qi1, 48u) * p.scale; }
        o1[0] = zero; o1[1] = zero; o1[2] = zero; o1[3] = zero;
        var m1 = NEG;
        var l1 = 0.0;
        q2[0] = q16(hq, qi2, 0u) * p.scale;
        if (DV > 4u) { q2[1] = q16(hq, qi2, 16u) * p.scale; }
        if (DV > 8u) { q2[2] = q16(hq, qi2, 32u) * p.scale; q2[3] = q16(hq, qi2, 48u) * p.scale; }
        o2[0] = zero; o2[1] = zero; o2[2] = zero; o2[3] = zero;
        var m2 = NEG;
        var l2 = 0.0;
        q3[0] = q16(hq, qi3, 0u) * p.scale;
        if (DV > 4u) { q3[1] = q16(hq, qi3, 16u) * p.scale; }
        if (DV > 8u) { q3[2] = q16(hq, qi3, 32u) * p.scale; q3[3] = q16(hq, qi3, 48u) * p.scale; }
        o3[0] = zero; o3[1] = zero; o3[2] = zero; o3[3] = zero;
        var m3 = NEG;
        var l3 = 0.0;
        let hk = head_origin(b, p.k_col + h * p.in_head);
        let hv = head_origin(b, p.v_col + h * p.in_head);
        // Groups of 4 keys: scores, one online-softmax update per row, o = o·alpha + p·v. Keys
        // past the end are clamped to the last row and masked, so the body has no branches.
        // The scores come from an inner loop over the group's keys whose trip count the
        // driver cannot see (gk = min(4, L)), so it stays a loop: unrolled, LLVM hoisted all
        // 4 keys' loads and 256 broadcasts ahead of their use and spilled them, 11 KB of
        // stack on top of the 16 KB of row state, and the kernel ran ~10 % slower (and
        // slower again whenever other work shared the core's caches). Longer unrolled groups
        // made driver compile times explode.
        let e = L - 1u;
        let gk = min(4u, L);
        for (var k = 0u; k < kend; k += 4u) {
            let k0 = min(k, e);
            let k1 = min(k + 1u, e);
            let k2 = min(k + 2u, e);
            let k3 = min(k + 3u, e);
            // Row r's logits of the group's keys (keys past L stay 0 and are masked below).
            var g0 = vec4<f32>(0.0);
            var g1 = vec4<f32>(0.0);
            var g2 = vec4<f32>(0.0);
            var g3 = vec4<f32>(0.0);
            for (var j = 0u; j < gk; j++) {
                let sj = score4(hk, min(k + j, e), t4);
                let at = vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(j);
                g0 = select(g0, vec4<f32>(sj.x), at);
                g1 = select(g1, vec4<f32>(sj.y), at);
                g2 = select(g2, vec4<f32>(sj.z), at);
                g3 = select(g3, vec4<f32>(sj.w), at);
            }
            // Key 0 is valid for every row and the first group holds it, so m is a real
            // logit from then on and masked keys get exp2(NEG − m) = 0.
            let sr0 = mask4(g0, k, qi0);
            let mn0 = max(m0, max4(sr0));
            let al0 = exp2(m0 - mn0);
            let w0 = exp2(sr0 - mn0);
            l0 = l0 * al0 + dot(w0, vec4<f32>(1.0));
            m0 = mn0;
            let sr1 = mask4(g1, k, qi1);
            let mn1 = max(m1, max4(sr1));
            let al1 = exp2(m1 - mn1);
            let w1 = exp2(sr1 - mn1);
            l1 = l1 * al1 + dot(w1, vec4<f32>(1.0));
            m1 = mn1;
            let sr2 = mask4(g2, k, qi2);
            let mn2 = max(m2, max4(sr2));
            let al2 = exp2(m2 - mn2);
            let w2 = exp2(sr2 - mn2);
            l2 = l2 * al2 + dot(w2, vec4<f32>(1.0));
            m2 = mn2;
            let sr3 = mask4(g3, k, qi3);
            let mn3 = max(m3, max4(sr3));
            let al3 = exp2(m3 - mn3);
            let w3 = exp2(sr3 - mn3);
            l3 = l3 * al3 + dot(w3, vec4<f32>(1.0));
            m3 = mn3;
            let al = vec4<f32>(al0, al1, al2, al3);
            pv_chunk(hv, t4, 0u, al, w0, w1, w2, w3, k0, k1, k2, k3);
            if (DV > 8u) {
                pv_chunk(hv, 32u + t4, 2u, al, w0, w1, w2, w3, k0, k1, k2, k3);
            }
        }
        // Normalise; when averaging, the first head writes its share and later heads add
        // theirs (the same invocation owns the rows for every head, so nothing races).
        let add = havg && h != h_begin;
        var f0 = 1.0 / l0;
        if (havg) { f0 *= p.inv_heads; }
        if (ok0) {
            let ob = b * p.out_batch + i0 * p.out_row + h * p.out_head;
            put16(ob, 0u, o0[0] * f0, add);
            if (DV > 4u) { put16(ob, 16u, o0[1] * f0, add); }
            if (DV > 8u) { put16(ob, 32u, o0[2] * f0, add); put16(ob, 48u, o0[3] * f0, add); }
        }
        if (save_lse && ok0) {
            lse[(b * p.heads + h) * L + i0] = (m0 + log2(l0)) * LN2;
        }
        var f1 = 1.0 / l1;
        if (havg) { f1 *= p.inv_heads; }
        if (ok1) {
            let ob = b * p.out_batch + i1 * p.out_row + h * p.out_head;
            put16(ob, 0u, o1[0] * f1, add);
            if (DV > 4u) { put16(ob, 16u, o1[1] * f1, add); }
            if (DV > 8u) { put16(ob, 32u, o1[2] * f1, add); put16(ob, 48u, o1[3] * f1, add); }
        }
        if (save_lse && ok1) {
            lse[(b * p.heads + h) * L + i1] = (m1 + log2(l1)) * LN2;
        }
        var f2 = 1.0 / l2;
        if (havg) { f2 *= p.inv_heads; }
        if (ok2) {
            let ob = b * p.out_batch + i2 * p.out_row + h * p.out_head;
            put16(ob, 0u, o2[0] * f2, add);
            if (DV > 4u) { put16(ob, 16u, o2[1] * f2, add); }
            if (DV > 8u) { put16(ob, 32u, o2[2] * f2, add); put16(ob, 48u, o2[3] * f2, add); }
        }
        if (save_lse && ok2) {
            lse[(b * p.heads + h) * L + i2] = (m2 + log2(l2)) * LN2;
        }
        var f3 = 1.0 / l3;
        if (havg) { f3 *= p.inv_heads; }
        if (ok3) {
            let ob = b * p.out_batch + i3 * p.out_row + h * p.out_head;
            put16(ob, 0u, o3[0] * f3, add);
            if (DV > 4u) { put16(ob, 16u, o3[1] * f3, add); }
            if (DV > 8u) { put16(ob, 32u, o3[2] * f3, add); put16(ob, 48u, o3[3] * f3, add); }
        }
        if (save_lse && ok3) {
            lse[(b * p.heads + h) * L + i3] = (m3 + log2(l3)) * LN2;
        }
    }
}
