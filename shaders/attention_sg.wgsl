// Fused multi-head attention, flash style, subgroup variant (needs subgroups of exactly 8
// invocations, consecutive in local_invocation_index, as CPU drivers form them). src/shaders.rs
// prepends the loader: attention_kv_buffer.wgsl (module attention_sg) or
// attention_kv_texture.wgsl (module attention_tex, texture operands): `kv4`, `q16`, `head_origin`,
// and the output writer `put4`. Same contract, params, flags and layout as attention.wgsl, but
// nothing goes through workgroup memory and there are no barriers. Made for CPU drivers
// (lavapipe / llvmpipe), where any storage or workgroup load inside a loop becomes a scalar
// loop over the invocations (even for an address all of them share) and a barrier is a
// coroutine switch.
//
// The work of a subgroup (32 query rows: 4 row sets × 8 lanes) is split two ways:
// - q·k by rows: each lane owns its 4 rows' q and softmax state; per key, lane t loads dims
//   4t..4t+3 of each 32-dim chunk and subgroupBroadcast hands them to every lane.
// - P·V by dims: each lane owns its dims (8 for head dims over 32, else 4) of all 32 rows'
//   output, loads those dims of the values itself (no broadcast), and takes each row's weights
//   and rescale by broadcast from the lane that owns the row: 32 row broadcasts per group of
//   4 keys instead of 64 value broadcasts per key.

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
// binding(2), the output `out`, and its writer `put4`: attention_out_buffer.wgsl (module
// attention_sg) or attention_kv_texture.wgsl (vec4 stores).
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

// The unnormalised output, by dims: this lane's dims dl .. dl + 3 (slot 0) and dl + 4 .. dl + 7
// (slot 1, head dims over 32) of the subgroup's 32 rows; row set r of lane l is row 8r + l,
// at od[2·(8r + l) + slot].
var<private> od: array<vec4<f32>, 64>;
// q of this invocation's 4 query rows (rows li, BQ + li, 2·BQ + li, 3·BQ + li of the tile), 16
// head dims per matrix (column c = dims 4c..4c+3). Blocks past DV/4 are never touched (the DV
// tests fold away once DV is specialised).
var<private> q0: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> q1: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> q2: array<mat4x4<f32>, 4>;  // q · scale · log2(e)
var<private> q3: array<mat4x4<f32>, 4>;  // q · scale · log2(e)

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

// Output row i (= 8r + l) of the subgroup: this lane's slots of it become
// o · A + Σ_j W[j] · v_j, with A the row's rescale, W its weights of the group's 4 keys and
// V0, V1 this lane's dims of the 4 values (column j: key j; V1: slot 1). Accumulator-major
// (see panel.wgsl).
fn pv_row(i: u32, A: f32, W: vec4<f32>, V0: mat4x4<f32>, V1: mat4x4<f32>) {
    od[2u * i] = fma(vec4<f32>(W.w), V0[3], fma(vec4<f32>(W.z), V0[2], fma(vec4<f32>(W.y), V0[1], fma(vec4<f32>(W.x), V0[0], od[2u * i] * A))));
    if (DV > 8u) {
        od[2u * i + 1u] = fma(vec4<f32>(W.w), V1[3], fma(vec4<f32>(W.z), V1[2], fma(vec4<f32>(W.y), V1[1], fma(vec4<f32>(W.x), V1[0], od[2u * i + 1u] * A))));
    }
}

// The 4 rows of lane l (rows 8r + l): A their rescales, W0 .. W3 their weights (broadcast
// from lane l by the caller, whose lane index must be a constant).
fn pv_lane(l: u32, A: vec4<f32>, W0: vec4<f32>, W1: vec4<f32>, W2: vec4<f32>, W3: vec4<f32>, V0: mat4x4<f32>, V1: mat4x4<f32>) {
    pv_row(l, A.x, W0, V0, V1);
    pv_row(8u + l, A.y, W1, V0, V1);
    pv_row(16u + l, A.z, W2, V0, V1);
    pv_row(24u + l, A.w, W3, V0, V1);
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

// Query row i (if < L) of batch entry b, head h: this lane's dims dl .. (slots v0, v1).
fn put_row(b: u32, i: u32, h: u32, dl: u32, v0: vec4<f32>, v1: vec4<f32>, add: bool) {
    if (i < p.seq) {
        let ob = b * p.out_batch + i * p.out_row + h * p.out_head;
        put4(ob, dl, v0, add);
        if (DV > 8u) { put4(ob, dl + 4u, v1, add); }
    }
}

// The 4 rows of lane l (query rows lane_row + r·BQ), normalised by F (from lane l).
fn put_lane(b: u32, lane_row: u32, l: u32, h: u32, dl: u32, F: vec4<f32>, add: bool) {
    put_row(b, lane_row, h, dl, od[2u * l] * F.x, od[2u * l + 1u] * F.x, add);
    put_row(b, lane_row + BQ, h, dl, od[2u * (8u + l)] * F.y, od[2u * (8u + l) + 1u] * F.y, add);
    put_row(b, lane_row + 2u * BQ, h, dl, od[2u * (16u + l)] * F.z, od[2u * (16u + l) + 1u] * F.z, add);
    put_row(b, lane_row + 3u * BQ, h, dl, od[2u * (24u + l)] * F.w, od[2u * (24u + l) + 1u] * F.w, add);
}

// Each invocation owns NR = 4 query rows for q·k and the softmax, row0 + r·BQ + li (a
// workgroup covers 4·BQ rows): every key element an invocation loads then feeds all four, which
// quarters the loads per FMA (on lavapipe the loads, not the FMAs, set the speed: 1 row per
// invocation gave 8 FMAs per loaded element, 4 rows give 32). The host runs it with BQ = 32:
// 128 rows per workgroup.
@compute @workgroup_size(BQ)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let t4 = (sl & 7u) * 4u;
    // P·V: this lane's dims of every row of its subgroup (8 per lane for head dims over 32,
    // else 4).
    let dl = select(t4, 2u * t4, DV > 8u);
    let sg_base = li - (sl & 7u);   // local index of the subgroup's lane 0
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

    for (var h = h_begin; h < h_end; h++) {
        let hq = head_origin(b, p.q_col + h * p.in_head);
        q0[0] = q16(hq, qi0, 0u) * p.scale;
        if (DV > 4u) { q0[1] = q16(hq, qi0, 16u) * p.scale; }
        if (DV > 8u) { q0[2] = q16(hq, qi0, 32u) * p.scale; q0[3] = q16(hq, qi0, 48u) * p.scale; }
        var m0 = NEG;
        var l0 = 0.0;
        q1[0] = q16(hq, qi1, 0u) * p.scale;
        if (DV > 4u) { q1[1] = q16(hq, qi1, 16u) * p.scale; }
        if (DV > 8u) { q1[2] = q16(hq, qi1, 32u) * p.scale; q1[3] = q16(hq, qi1, 48u) * p.scale; }
        var m1 = NEG;
        var l1 = 0.0;
        q2[0] = q16(hq, qi2, 0u) * p.scale;
        if (DV > 4u) { q2[1] = q16(hq, qi2, 16u) * p.scale; }
        if (DV > 8u) { q2[2] = q16(hq, qi2, 32u) * p.scale; q2[3] = q16(hq, qi2, 48u) * p.scale; }
        var m2 = NEG;
        var l2 = 0.0;
        q3[0] = q16(hq, qi3, 0u) * p.scale;
        if (DV > 4u) { q3[1] = q16(hq, qi3, 16u) * p.scale; }
        if (DV > 8u) { q3[2] = q16(hq, qi3, 32u) * p.scale; q3[3] = q16(hq, qi3, 48u) * p.scale; }
        var m3 = NEG;
        var l3 = 0.0;
        let z4 = vec4<f32>(0.0);
        od[0] = z4; od[1] = z4; od[2] = z4; od[3] = z4; od[4] = z4; od[5] = z4; od[6] = z4; od[7] = z4; od[8] = z4; od[9] = z4; od[10] = z4; od[11] = z4; od[12] = z4; od[13] = z4; od[14] = z4; od[15] = z4; od[16] = z4; od[17] = z4; od[18] = z4; od[19] = z4; od[20] = z4; od[21] = z4; od[22] = z4; od[23] = z4; od[24] = z4; od[25] = z4; od[26] = z4; od[27] = z4; od[28] = z4; od[29] = z4; od[30] = z4; od[31] = z4; od[32] = z4; od[33] = z4; od[34] = z4; od[35] = z4; od[36] = z4; od[37] = z4; od[38] = z4; od[39] = z4; od[40] = z4; od[41] = z4; od[42] = z4; od[43] = z4; od[44] = z4; od[45] = z4; od[46] = z4; od[47] = z4; od[48] = z4; od[49] = z4; od[50] = z4; od[51] = z4; od[52] = z4; od[53] = z4; od[54] = z4; od[55] = z4; od[56] = z4; od[57] = z4; od[58] = z4; od[59] = z4; od[60] = z4; od[61] = z4; od[62] = z4; od[63] = z4; 
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
            // This lane's dims of the group's 4 values (no broadcast); the rows' weights and
            // rescales are broadcast from the lanes that own the rows.
            let V0 = mat4x4<f32>(kv4(hv, k0, dl), kv4(hv, k1, dl), kv4(hv, k2, dl), kv4(hv, k3, dl));
            var V1 = mat4x4<f32>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
            if (DV > 8u) {
                V1 = mat4x4<f32>(kv4(hv, k0, dl + 4u), kv4(hv, k1, dl + 4u), kv4(hv, k2, dl + 4u), kv4(hv, k3, dl + 4u));
            }
            pv_lane(0u, subgroupBroadcast(al, 0u), subgroupBroadcast(w0, 0u), subgroupBroadcast(w1, 0u), subgroupBroadcast(w2, 0u), subgroupBroadcast(w3, 0u), V0, V1);
            pv_lane(1u, subgroupBroadcast(al, 1u), subgroupBroadcast(w0, 1u), subgroupBroadcast(w1, 1u), subgroupBroadcast(w2, 1u), subgroupBroadcast(w3, 1u), V0, V1);
            pv_lane(2u, subgroupBroadcast(al, 2u), subgroupBroadcast(w0, 2u), subgroupBroadcast(w1, 2u), subgroupBroadcast(w2, 2u), subgroupBroadcast(w3, 2u), V0, V1);
            pv_lane(3u, subgroupBroadcast(al, 3u), subgroupBroadcast(w0, 3u), subgroupBroadcast(w1, 3u), subgroupBroadcast(w2, 3u), subgroupBroadcast(w3, 3u), V0, V1);
            pv_lane(4u, subgroupBroadcast(al, 4u), subgroupBroadcast(w0, 4u), subgroupBroadcast(w1, 4u), subgroupBroadcast(w2, 4u), subgroupBroadcast(w3, 4u), V0, V1);
            pv_lane(5u, subgroupBroadcast(al, 5u), subgroupBroadcast(w0, 5u), subgroupBroadcast(w1, 5u), subgroupBroadcast(w2, 5u), subgroupBroadcast(w3, 5u), V0, V1);
            pv_lane(6u, subgroupBroadcast(al, 6u), subgroupBroadcast(w0, 6u), subgroupBroadcast(w1, 6u), subgroupBroadcast(w2, 6u), subgroupBroadcast(w3, 6u), V0, V1);
            pv_lane(7u, subgroupBroadcast(al, 7u), subgroupBroadcast(w0, 7u), subgroupBroadcast(w1, 7u), subgroupBroadcast(w2, 7u), subgroupBroadcast(w3, 7u), V0, V1);
        }
        // Normalise; when averaging, the first head writes its share and later heads add
        // theirs (the same lane owns the same rows and dims for every head, so nothing races).
        let add = havg && h != h_begin;
        var f = 1.0 / vec4<f32>(l0, l1, l2, l3);
        if (havg) { f *= p.inv_heads; }
        put_lane(b, row0 + sg_base + 0u, 0u, h, dl, subgroupBroadcast(f, 0u), add);
        put_lane(b, row0 + sg_base + 1u, 1u, h, dl, subgroupBroadcast(f, 1u), add);
        put_lane(b, row0 + sg_base + 2u, 2u, h, dl, subgroupBroadcast(f, 2u), add);
        put_lane(b, row0 + sg_base + 3u, 3u, h, dl, subgroupBroadcast(f, 3u), add);
        put_lane(b, row0 + sg_base + 4u, 4u, h, dl, subgroupBroadcast(f, 4u), add);
        put_lane(b, row0 + sg_base + 5u, 5u, h, dl, subgroupBroadcast(f, 5u), add);
        put_lane(b, row0 + sg_base + 6u, 6u, h, dl, subgroupBroadcast(f, 6u), add);
        put_lane(b, row0 + sg_base + 7u, 7u, h, dl, subgroupBroadcast(f, 7u), add);
        if (save_lse && ok0) {
            lse[(b * p.heads + h) * L + i0] = (m0 + log2(l0)) * LN2;
        }
        if (save_lse && ok1) {
            lse[(b * p.heads + h) * L + i1] = (m1 + log2(l1)) * LN2;
        }
        if (save_lse && ok2) {
            lse[(b * p.heads + h) * L + i2] = (m2 + log2(l2)) * LN2;
        }
        if (save_lse && ok3) {
            lse[(b * p.heads + h) * L + i3] = (m3 + log2(l3)) * LN2;
        }
    }
}
