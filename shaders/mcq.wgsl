// Multi-codebook quantiser (UniTok's MCQ): cosine argmax and code lookup.
//
// `mcq_argmax`: z [N, G·d] raw features, codebooks [G, K, d] raw rows. For token n and
// sub-codebook g: ẑ = z[n, g·d ..][..d] / max(‖·‖₂, eps), ŵ_j = w_j / max(‖w_j‖₂, eps),
// index = argmax_j ⟨ẑ, ŵ_j⟩, lowest index on ties; outputs the index and ŵ_index.
// One workgroup owns TN tokens of one sub-codebook; KS = 256/TN invocations share a token and
// split the codes between them. Code rows stream through workgroup memory in tiles of `tk`
// rows (normalised once per tile); nothing N×K is ever stored.
//
// `mcq_lookup`: indices [N, G] → ŵ_index concatenated over g; an index >= K gives zeros and
// is never used to read.
//
// Norms are sums of squares in index order, dots are summed in index order, as the CPU
// reference does.

override TN: u32 = 64u;

const WG: u32 = 256u;
const DMAX: u32 = 32u;
const TILE_F: u32 = 2048u;

struct Params {
    n: u32,       // tokens
    g: u32,       // sub-codebooks
    k: u32,       // codes per sub-codebook
    d: u32,       // code width (<= DMAX)
    tk: u32,      // code rows per tile (tk·d <= TILE_F)
    ntiles: u32,  // token tiles per sub-codebook
    eps: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> cb: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(4) var<storage, read_write> code_out: array<f32>;

var<workgroup> wt: array<f32, 2048>;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

@compute @workgroup_size(256)
fn mcq_argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let w = linear_workgroup(wg, nwg);
    let g = w / p.ntiles;
    if (g >= p.g) {
        return; // padding workgroup of a folded grid (uniform across the workgroup)
    }
    let ks = WG / TN;
    let t = lid % TN;
    let s = lid / TN;
    let tok = (w % p.ntiles) * TN + t;
    let valid = tok < p.n;
    let d = p.d;

    // ẑ in registers.
    var zr: array<f32, 32>;
    var ss = 0.0;
    if (valid) {
        let zb = (tok * p.g + g) * d;
        for (var i = 0u; i < d; i++) {
            let v = z[zb + i];
            zr[i] = v;
            ss += v * v;
        }
    }
    let zden = max(sqrt(ss), p.eps);
    for (var i = 0u; i < d; i++) {
        zr[i] = zr[i] / zden;
    }

    var best = -3.0e38;
    var bidx = 0u;
    let base = g * p.k * d;
    for (var k0 = 0u; k0 < p.k; k0 += p.tk) {
        let cnt = min(p.tk, p.k - k0);
        // Coalesced copy of the tile, then each row normalised in place.
        for (var e = lid; e < cnt * d; e += WG) {
            wt[e] = cb[base + k0 * d + e];
        }
        workgroupBarrier();
        for (var c = lid; c < cnt; c += WG) {
            var q = 0.0;
            for (var i = 0u; i < d; i++) {
                let v = wt[c * d + i];
                q += v * v;
            }
            let den = max(sqrt(q), p.eps);
            for (var i = 0u; i < d; i++) {
                wt[c * d + i] = wt[c * d + i] / den;
            }
        }
        workgroupBarrier();
        for (var c = s; c < cnt; c += ks) {
            var acc = 0.0;
            for (var i = 0u; i < d; i++) {
                acc += zr[i] * wt[c * d + i];
            }
            if (acc > best) {
                best = acc;
                bidx = k0 + c;
            }
        }
        workgroupBarrier();
    }

    // Merge the KS partial results of each token: larger wins, lower index on ties.
    bv[lid] = best;
    bi[lid] = bidx;
    workgroupBarrier();
    if (s == 0u && valid) {
        for (var j = 1u; j < ks; j++) {
            let v = bv[j * TN + t];
            let ix = bi[j * TN + t];
            if (v > best || (v == best && ix < bidx)) {
                best = v;
                bidx = ix;
            }
        }
        idx_out[tok * p.g + g] = bidx;
        let rb = base + bidx * d;
        var q = 0.0;
        for (var i = 0u; i < d; i++) {
            let v = cb[rb + i];
            q += v * v;
        }
        let den = max(sqrt(q), p.eps);
        let ob = (tok * p.g + g) * d;
        for (var i = 0u; i < d; i++) {
            code_out[ob + i] = cb[rb + i] / den;
        }
    }
}

@group(0) @binding(0) var<uniform> pl: Params;
@group(0) @binding(1) var<storage, read> lcb: array<f32>;
@group(0) @binding(2) var<storage, read> lidx: array<u32>;
@group(0) @binding(3) var<storage, read_write> lout: array<f32>;

@compute @workgroup_size(256)
fn mcq_lookup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wg, nwg) * WG + lid;
    if (i >= pl.n * pl.g) {
        return;
    }
    let g = i % pl.g;
    let d = pl.d;
    let ix = lidx[i];
    let ob = i * d;
    if (ix >= pl.k) {
        for (var e = 0u; e < d; e++) {
            lout[ob + e] = 0.0;
        }
        return;
    }
    let rb = (g * pl.k + ix) * d;
    var q = 0.0;
    for (var e = 0u; e < d; e++) {
        let v = lcb[rb + e];
        q += v * v;
    }
    let den = max(sqrt(q), pl.eps);
    for (var e = 0u; e < d; e++) {
        lout[ob + e] = lcb[rb + e] / den;
    }
}
