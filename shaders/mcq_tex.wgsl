// The multi-codebook cosine argmax of mcq.wgsl for CPU adapters (texture operands, see
// matmul_tex.wgsl): same inputs, outputs, order of operations and tie rule, but the codes are
// not staged through workgroup memory — on llvmpipe every divergent workgroup or buffer load
// is a loop over the lanes, which made the portable kernel ~15 s for UniTok's batch of 32 —
// they are read from an rgba32float texture holding the raw codebook rows (flat: texel t =
// (t mod tw, t / tw) holds floats 4t .. 4t + 3 of [G, K, d]), filled by the copy engine or a
// packing kernel (`ops::mcq`).
//
// One lane per (token, sub-codebook); a workgroup is 64 tokens of one sub-codebook. Codes go
// by in groups of 8: lane l loads and normalises code j0 + l, then the 8 unit codes are
// broadcast in index order and every lane scores all 8 — a code is loaded once per 8 lanes
// and nothing N × K is stored. d = 4·D4 with D4 = 1 or 2 (UniTok: d = 8); the host falls back
// to mcq.wgsl otherwise.

override D4: u32 = 2u;

struct Params {
    n: u32,       // tokens
    g: u32,       // sub-codebooks
    k: u32,       // codes per sub-codebook
    tw: u32,      // texture width in texels
    ntiles: u32,  // workgroups (64 tokens) per sub-codebook
    eps: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<vec4<f32>>;
@group(0) @binding(2) var cbt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(4) var<storage, read_write> code_out: array<vec4<f32>>;

// ẑ of this lane (texels 0 and 1) and its best code so far.
var<private> z0: vec4<f32>;
var<private> z1: vec4<f32>;
var<private> best: f32;
var<private> bidx: u32;

// Texel c of code row r (rows over all sub-codebooks).
fn code_texel(r: u32, c: u32, tw: u32) -> vec4<f32> {
    let t = r * D4 + c;
    return textureLoad(cbt, vec2<u32>(t % tw, t / tw));
}

// ss + Σ v_i², one term at a time in index order (as the CPU reference's norms).
fn sumsq(ss: f32, v: vec4<f32>) -> f32 {
    return (((ss + v.x * v.x) + v.y * v.y) + v.z * v.z) + v.w * v.w;
}

// acc + ⟨a, b⟩, one term at a time in index order (as the CPU reference's dots).
fn dot_in_order(acc: f32, a: vec4<f32>, b: vec4<f32>) -> f32 {
    return (((acc + a.x * b.x) + a.y * b.y) + a.z * b.z) + a.w * b.w;
}

// The norm divisor of a code or token of texels v0 (and v1 when D4 = 2).
fn divisor(v0: vec4<f32>, v1: vec4<f32>, eps: f32) -> f32 {
    var ss = sumsq(0.0, v0);
    if (D4 > 1u) {
        ss = sumsq(ss, v1);
    }
    return max(sqrt(ss), eps);
}

// Code j with unit texels a, b: taken when it beats the best so far (so the lowest index keeps
// a tie, codes coming in index order) and exists (j < k).
fn consider(j: u32, k: u32, a: vec4<f32>, b: vec4<f32>) {
    var s = dot_in_order(0.0, z0, a);
    if (D4 > 1u) {
        s = dot_in_order(s, z1, b);
    }
    let take = j < k && s > best;
    best = select(best, s, take);
    bidx = select(bidx, j, take);
}

@compute @workgroup_size(64)
fn mcq_argmax_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let w = linear_workgroup(wg, nwg);
    let g = w / p.ntiles;
    if (g >= p.g) {
        return; // padding workgroup of a folded grid (uniform across the workgroup)
    }
    // Uniform reads hoisted: inside a loop each is one load per lane per trip on llvmpipe.
    let k = p.k;
    let tw = p.tw;
    let eps = p.eps;
    let tok0 = (w % p.ntiles) * 64u + lid;
    // Tokens past the end compute on the last one and write nothing.
    let tok = min(tok0, p.n - 1u);
    let e = tok * p.g + g;
    z0 = z[e * D4];
    z1 = vec4<f32>(0.0);
    if (D4 > 1u) {
        z1 = z[e * D4 + 1u];
    }
    let zden = divisor(z0, z1, eps);
    z0 = z0 / zden;
    z1 = z1 / zden;
    best = -3.0e38;
    bidx = 0u;
    let row0 = g * k;
    for (var j0 = 0u; j0 < k; j0 += 8u) {
        // Lane l's code j0 + l (past the end: the last code, never taken).
        let r = row0 + min(j0 + lane, k - 1u);
        var a = code_texel(r, 0u, tw);
        var b = vec4<f32>(0.0);
        if (D4 > 1u) {
            b = code_texel(r, 1u, tw);
        }
        let den = divisor(a, b, eps);
        a = a / den;
        b = b / den;
        consider(j0, k, subgroupBroadcast(a, 0u), subgroupBroadcast(b, 0u));
        consider(j0 + 1u, k, subgroupBroadcast(a, 1u), subgroupBroadcast(b, 1u));
        consider(j0 + 2u, k, subgroupBroadcast(a, 2u), subgroupBroadcast(b, 2u));
        consider(j0 + 3u, k, subgroupBroadcast(a, 3u), subgroupBroadcast(b, 3u));
        consider(j0 + 4u, k, subgroupBroadcast(a, 4u), subgroupBroadcast(b, 4u));
        consider(j0 + 5u, k, subgroupBroadcast(a, 5u), subgroupBroadcast(b, 5u));
        consider(j0 + 6u, k, subgroupBroadcast(a, 6u), subgroupBroadcast(b, 6u));
        consider(j0 + 7u, k, subgroupBroadcast(a, 7u), subgroupBroadcast(b, 7u));
    }
    if (tok0 < p.n) {
        idx_out[e] = bidx;
        // The chosen unit code, computed as in the loop (the same bits).
        let r = row0 + bidx;
        let a = code_texel(r, 0u, tw);
        var b = vec4<f32>(0.0);
        if (D4 > 1u) {
            b = code_texel(r, 1u, tw);
        }
        let den = divisor(a, b, eps);
        code_out[e * D4] = a / den;
        if (D4 > 1u) {
            code_out[e * D4 + 1u] = b / den;
        }
    }
}
