// Subgroup variants of the dense convolutions in conv2d.wgsl (same Params layout, same
// bindings): the implicit GEMM with a 32-channel × 4- or 8-pixel register block per invocation, where
// the weights are loaded cooperatively — lane l of each group of 8 loads the weights of channels
// co0 + l + 8i and `subgroupBroadcast` hands them to the others — so each weight load
// instruction brings 8 useful values instead of 1. On CPU drivers (lavapipe) every storage load
// instruction costs far more than an FMA, whatever the lanes' addresses, so this is what makes
// the dense convolutions compute-bound; GPUs get the same reuse through registers.
//
// Used only when the adapter has subgroups of at least 8 lanes (broadcasts read lanes 0..7).
// Entry points:
//   conv3_sg  3-wide kernels (any kh), stride SS (1 or 2), any padding;
//   conv1_sg  1×1, stride 1, no padding (a GEMM over channels; planes contiguous).

override SS: u32 = 1u;
// conv3_sg: pixels per invocation (4 or 8) and invocations per workgroup (32 or 64).
override TN3: u32 = 4u;
override WG3: u32 = 64u;
override HAS_BIAS: bool = false;

const WGX: u32 = 64u;
const TM: u32 = 32u;
const TN: u32 = 4u;

struct Params {
    cin_g: u32,
    h: u32,
    w: u32,
    cout_g: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    groups: u32,
    batch: u32,
    xs_n: u32,
    xs_c: u32,
    xs_h: u32,
    x_off: u32,
    ws_co: i32,
    ws_ci: i32,
    ws_ky: i32,
    ws_kx: i32,
    w_off: i32,
    ys_n: u32,
    ys_c: u32,
    ys_h: u32,
    y_off: u32,
    p_tiles: u32,
    m_tiles: u32,
    tiles: u32,
    cb: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

struct Tile {
    valid: bool,
    pt: u32,
    co0: u32,
    g: u32,
    n: u32,
}

// Out-of-range workgroups (a folded grid's tail) compute tile 0 and store nothing, so every
// invocation reaches the subgroup operations.
fn decode_tile(wg: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let t0 = linear_workgroup(wg, nwg);
    var r = select(0u, t0, t0 < p.tiles);
    let pt = r % p.p_tiles;
    r = r / p.p_tiles;
    let mt = r % p.m_tiles;
    r = r / p.m_tiles;
    return Tile(t0 < p.tiles, pt, mt * TM, r % p.groups, r / p.groups);
}

// Weight (co, ci, ky, kx), co within the group and clamped into range.
fn w_at(g: u32, co: u32, ci: u32, ky: u32, kx: u32) -> f32 {
    let c = g * p.cout_g + min(co, p.cout_g - 1u);
    return wt[u32(p.w_off + i32(c) * p.ws_co + i32(ci) * p.ws_ci + i32(ky) * p.ws_ky + i32(kx) * p.ws_kx)];
}

// The three kx weights of channel co at (ci, ky).
fn w3(g: u32, co: u32, ci: u32, ky: u32) -> vec4<f32> {
    return vec4<f32>(w_at(g, co, ci, ky, 0u), w_at(g, co, ci, ky, 1u), w_at(g, co, ci, ky, 2u), 0.0);
}

fn upd3(a: vec4<f32>, w: vec4<f32>, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(w.z), v2, fma(vec4<f32>(w.y), v1, fma(vec4<f32>(w.x), v0, a)));
}

fn upd4(a: vec4<f32>, w: vec4<f32>, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(w.w), v3, fma(vec4<f32>(w.z), v2, fma(vec4<f32>(w.y), v1, fma(vec4<f32>(w.x), v0, a))));
}

fn ld(xr: i32, iw: i32, row_ok: bool) -> f32 {
    let ok = row_ok && iw >= 0 && iw < i32(p.w);
    return select(0.0, x[u32(select(0, xr + iw, ok))], ok);
}

fn bias_of(g: u32, co: u32) -> f32 {
    if (HAS_BIAS) {
        return bias[g * p.cout_g + co];
    }
    return 0.0;
}

// Store this invocation's block: channels co0.., pixels q (row oh, columns ow0..ow0+4) with
// `nvalid` of the 4 in range.
fn store_block(t: Tile, yb: u32, nvalid: u32, acc: array<vec4<f32>, TM>) {
    for (var m = 0u; m < TM; m++) {
        let co = t.co0 + m;
        if (co < p.cout_g) {
            let b = bias_of(t.g, co);
            let yc = yb + (t.g * p.cout_g + co) * p.ys_c;
            for (var j = 0u; j < nvalid; j++) {
                y[yc + j] = acc[m][j] + b;
            }
        }
    }
}

// TN3 pixels (4 or 8) × 32 channels per invocation, WG3 (32 or 64) invocations per workgroup.
// 8 pixels load 10 (stride 1) or 17 (stride 2) input values and the same 12 weights per
// (ci, ky) for twice the FMAs of 4 pixels (6 or 9 values): 35 instead of 21 FMAs per loaded
// value at stride 1. A workgroup of 32 keeps narrow outputs (16 columns at stride 2) from
// idling half the invocations.
@compute @workgroup_size(WG3)
fn conv3_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let t = decode_tile(wg, nwg);
    let lane = sl % 8u;
    let ntask = p.ho * p.cb;
    let task = t.pt * WG3 + li;
    let tk = min(task, ntask - 1u);
    let oh = tk / p.cb;
    let ow0 = (tk % p.cb) * TN3;
    let ih0 = i32(oh * SS) - i32(p.pad);
    let iw0 = i32(ow0 * SS) - i32(p.pad);
    let xb = p.x_off + t.n * p.xs_n + t.g * p.cin_g * p.xs_c;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0);
    var a9 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a14 = vec4<f32>(0.0);
    var a15 = vec4<f32>(0.0);
    var a16 = vec4<f32>(0.0);
    var a17 = vec4<f32>(0.0);
    var a18 = vec4<f32>(0.0);
    var a19 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a22 = vec4<f32>(0.0);
    var a23 = vec4<f32>(0.0);
    var a24 = vec4<f32>(0.0);
    var a25 = vec4<f32>(0.0);
    var a26 = vec4<f32>(0.0);
    var a27 = vec4<f32>(0.0);
    var a28 = vec4<f32>(0.0);
    var a29 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    var b4 = vec4<f32>(0.0);
    var b5 = vec4<f32>(0.0);
    var b6 = vec4<f32>(0.0);
    var b7 = vec4<f32>(0.0);
    var b8 = vec4<f32>(0.0);
    var b9 = vec4<f32>(0.0);
    var b10 = vec4<f32>(0.0);
    var b11 = vec4<f32>(0.0);
    var b12 = vec4<f32>(0.0);
    var b13 = vec4<f32>(0.0);
    var b14 = vec4<f32>(0.0);
    var b15 = vec4<f32>(0.0);
    var b16 = vec4<f32>(0.0);
    var b17 = vec4<f32>(0.0);
    var b18 = vec4<f32>(0.0);
    var b19 = vec4<f32>(0.0);
    var b20 = vec4<f32>(0.0);
    var b21 = vec4<f32>(0.0);
    var b22 = vec4<f32>(0.0);
    var b23 = vec4<f32>(0.0);
    var b24 = vec4<f32>(0.0);
    var b25 = vec4<f32>(0.0);
    var b26 = vec4<f32>(0.0);
    var b27 = vec4<f32>(0.0);
    var b28 = vec4<f32>(0.0);
    var b29 = vec4<f32>(0.0);
    var b30 = vec4<f32>(0.0);
    var b31 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let xc = i32(xb + ci * p.xs_c);
        for (var ky = 0u; ky < p.kh; ky++) {
            let ih = ih0 + i32(ky);
            let row_ok = ih >= 0 && ih < i32(p.h);
            let xr = xc + ih * i32(p.xs_h);
            var v0: vec4<f32>;
            var v1: vec4<f32>;
            var v2: vec4<f32>;
            // Pixels 4..7 (TN3 == 8 only).
            var u0: vec4<f32>;
            var u1: vec4<f32>;
            var u2: vec4<f32>;
            if (SS == 2u) {
                let s0 = ld(xr, iw0 + 0, row_ok);
                let s1 = ld(xr, iw0 + 1, row_ok);
                let s2 = ld(xr, iw0 + 2, row_ok);
                let s3 = ld(xr, iw0 + 3, row_ok);
                let s4 = ld(xr, iw0 + 4, row_ok);
                let s5 = ld(xr, iw0 + 5, row_ok);
                let s6 = ld(xr, iw0 + 6, row_ok);
                let s7 = ld(xr, iw0 + 7, row_ok);
                let s8 = ld(xr, iw0 + 8, row_ok);
                v0 = vec4<f32>(s0, s2, s4, s6);
                v1 = vec4<f32>(s1, s3, s5, s7);
                v2 = vec4<f32>(s2, s4, s6, s8);
                if (TN3 == 8u) {
                    let s9 = ld(xr, iw0 + 9, row_ok);
                    let s10 = ld(xr, iw0 + 10, row_ok);
                    let s11 = ld(xr, iw0 + 11, row_ok);
                    let s12 = ld(xr, iw0 + 12, row_ok);
                    let s13 = ld(xr, iw0 + 13, row_ok);
                    let s14 = ld(xr, iw0 + 14, row_ok);
                    let s15 = ld(xr, iw0 + 15, row_ok);
                    let s16 = ld(xr, iw0 + 16, row_ok);
                    u0 = vec4<f32>(s8, s10, s12, s14);
                    u1 = vec4<f32>(s9, s11, s13, s15);
                    u2 = vec4<f32>(s10, s12, s14, s16);
                }
            } else {
                let s0 = ld(xr, iw0 + 0, row_ok);
                let s1 = ld(xr, iw0 + 1, row_ok);
                let s2 = ld(xr, iw0 + 2, row_ok);
                let s3 = ld(xr, iw0 + 3, row_ok);
                let s4 = ld(xr, iw0 + 4, row_ok);
                let s5 = ld(xr, iw0 + 5, row_ok);
                v0 = vec4<f32>(s0, s1, s2, s3);
                v1 = vec4<f32>(s1, s2, s3, s4);
                v2 = vec4<f32>(s2, s3, s4, s5);
                if (TN3 == 8u) {
                    let s6 = ld(xr, iw0 + 6, row_ok);
                    let s7 = ld(xr, iw0 + 7, row_ok);
                    let s8 = ld(xr, iw0 + 8, row_ok);
                    let s9 = ld(xr, iw0 + 9, row_ok);
                    u0 = vec4<f32>(s4, s5, s6, s7);
                    u1 = vec4<f32>(s5, s6, s7, s8);
                    u2 = vec4<f32>(s6, s7, s8, s9);
                }
            }
            // Lane l holds the kx weights of channels co0 + l, + 8, + 16, + 24.
            let q0 = w3(t.g, t.co0 + lane, ci, ky);
            let q1 = w3(t.g, t.co0 + 8u + lane, ci, ky);
            let q2 = w3(t.g, t.co0 + 16u + lane, ci, ky);
            let q3 = w3(t.g, t.co0 + 24u + lane, ci, ky);
            let w0 = subgroupBroadcast(q0, 0u);
            let w1 = subgroupBroadcast(q0, 1u);
            let w2 = subgroupBroadcast(q0, 2u);
            let w3 = subgroupBroadcast(q0, 3u);
            let w4 = subgroupBroadcast(q0, 4u);
            let w5 = subgroupBroadcast(q0, 5u);
            let w6 = subgroupBroadcast(q0, 6u);
            let w7 = subgroupBroadcast(q0, 7u);
            let w8 = subgroupBroadcast(q1, 0u);
            let w9 = subgroupBroadcast(q1, 1u);
            let w10 = subgroupBroadcast(q1, 2u);
            let w11 = subgroupBroadcast(q1, 3u);
            let w12 = subgroupBroadcast(q1, 4u);
            let w13 = subgroupBroadcast(q1, 5u);
            let w14 = subgroupBroadcast(q1, 6u);
            let w15 = subgroupBroadcast(q1, 7u);
            let w16 = subgroupBroadcast(q2, 0u);
            let w17 = subgroupBroadcast(q2, 1u);
            let w18 = subgroupBroadcast(q2, 2u);
            let w19 = subgroupBroadcast(q2, 3u);
            let w20 = subgroupBroadcast(q2, 4u);
            let w21 = subgroupBroadcast(q2, 5u);
            let w22 = subgroupBroadcast(q2, 6u);
            let w23 = subgroupBroadcast(q2, 7u);
            let w24 = subgroupBroadcast(q3, 0u);
            let w25 = subgroupBroadcast(q3, 1u);
            let w26 = subgroupBroadcast(q3, 2u);
            let w27 = subgroupBroadcast(q3, 3u);
            let w28 = subgroupBroadcast(q3, 4u);
            let w29 = subgroupBroadcast(q3, 5u);
            let w30 = subgroupBroadcast(q3, 6u);
            let w31 = subgroupBroadcast(q3, 7u);
            a0 = upd3(a0, w0, v0, v1, v2);
            a1 = upd3(a1, w1, v0, v1, v2);
            a2 = upd3(a2, w2, v0, v1, v2);
            a3 = upd3(a3, w3, v0, v1, v2);
            a4 = upd3(a4, w4, v0, v1, v2);
            a5 = upd3(a5, w5, v0, v1, v2);
            a6 = upd3(a6, w6, v0, v1, v2);
            a7 = upd3(a7, w7, v0, v1, v2);
            a8 = upd3(a8, w8, v0, v1, v2);
            a9 = upd3(a9, w9, v0, v1, v2);
            a10 = upd3(a10, w10, v0, v1, v2);
            a11 = upd3(a11, w11, v0, v1, v2);
            a12 = upd3(a12, w12, v0, v1, v2);
            a13 = upd3(a13, w13, v0, v1, v2);
            a14 = upd3(a14, w14, v0, v1, v2);
            a15 = upd3(a15, w15, v0, v1, v2);
            a16 = upd3(a16, w16, v0, v1, v2);
            a17 = upd3(a17, w17, v0, v1, v2);
            a18 = upd3(a18, w18, v0, v1, v2);
            a19 = upd3(a19, w19, v0, v1, v2);
            a20 = upd3(a20, w20, v0, v1, v2);
            a21 = upd3(a21, w21, v0, v1, v2);
            a22 = upd3(a22, w22, v0, v1, v2);
            a23 = upd3(a23, w23, v0, v1, v2);
            a24 = upd3(a24, w24, v0, v1, v2);
            a25 = upd3(a25, w25, v0, v1, v2);
            a26 = upd3(a26, w26, v0, v1, v2);
            a27 = upd3(a27, w27, v0, v1, v2);
            a28 = upd3(a28, w28, v0, v1, v2);
            a29 = upd3(a29, w29, v0, v1, v2);
            a30 = upd3(a30, w30, v0, v1, v2);
            a31 = upd3(a31, w31, v0, v1, v2);
            if (TN3 == 8u) {
                b0 = upd3(b0, w0, u0, u1, u2);
                b1 = upd3(b1, w1, u0, u1, u2);
                b2 = upd3(b2, w2, u0, u1, u2);
                b3 = upd3(b3, w3, u0, u1, u2);
                b4 = upd3(b4, w4, u0, u1, u2);
                b5 = upd3(b5, w5, u0, u1, u2);
                b6 = upd3(b6, w6, u0, u1, u2);
                b7 = upd3(b7, w7, u0, u1, u2);
                b8 = upd3(b8, w8, u0, u1, u2);
                b9 = upd3(b9, w9, u0, u1, u2);
                b10 = upd3(b10, w10, u0, u1, u2);
                b11 = upd3(b11, w11, u0, u1, u2);
                b12 = upd3(b12, w12, u0, u1, u2);
                b13 = upd3(b13, w13, u0, u1, u2);
                b14 = upd3(b14, w14, u0, u1, u2);
                b15 = upd3(b15, w15, u0, u1, u2);
                b16 = upd3(b16, w16, u0, u1, u2);
                b17 = upd3(b17, w17, u0, u1, u2);
                b18 = upd3(b18, w18, u0, u1, u2);
                b19 = upd3(b19, w19, u0, u1, u2);
                b20 = upd3(b20, w20, u0, u1, u2);
                b21 = upd3(b21, w21, u0, u1, u2);
                b22 = upd3(b22, w22, u0, u1, u2);
                b23 = upd3(b23, w23, u0, u1, u2);
                b24 = upd3(b24, w24, u0, u1, u2);
                b25 = upd3(b25, w25, u0, u1, u2);
                b26 = upd3(b26, w26, u0, u1, u2);
                b27 = upd3(b27, w27, u0, u1, u2);
                b28 = upd3(b28, w28, u0, u1, u2);
                b29 = upd3(b29, w29, u0, u1, u2);
                b30 = upd3(b30, w30, u0, u1, u2);
                b31 = upd3(b31, w31, u0, u1, u2);
            }
        }
    }
    if (!t.valid || task >= ntask) {
        return;
    }
    let yb = p.y_off + t.n * p.ys_n + oh * p.ys_h + ow0;
    store_block(t, yb, min(4u, p.wo - ow0), array<vec4<f32>, TM>(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31));
    if (TN3 == 8u && ow0 + 4u < p.wo) {
        store_block(t, yb + 4u, min(4u, p.wo - ow0 - 4u), array<vec4<f32>, TM>(b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20, b21, b22, b23, b24, b25, b26, b27, b28, b29, b30, b31));
    }
}

@compute @workgroup_size(64)
fn conv1_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let t = decode_tile(wg, nwg);
    let lane = sl % 8u;
    let hw = p.ho * p.wo;
    let q0p = (t.pt * WGX + li) * TN;
    let last = hw - 1u;
    let xb = p.x_off + t.n * p.xs_n + t.g * p.cin_g * p.xs_c;
    let i0 = min(q0p, last);
    let i1 = min(q0p + 1u, last);
    let i2 = min(q0p + 2u, last);
    let i3 = min(q0p + 3u, last);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0);
    var a9 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a14 = vec4<f32>(0.0);
    var a15 = vec4<f32>(0.0);
    var a16 = vec4<f32>(0.0);
    var a17 = vec4<f32>(0.0);
    var a18 = vec4<f32>(0.0);
    var a19 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a22 = vec4<f32>(0.0);
    var a23 = vec4<f32>(0.0);
    var a24 = vec4<f32>(0.0);
    var a25 = vec4<f32>(0.0);
    var a26 = vec4<f32>(0.0);
    var a27 = vec4<f32>(0.0);
    var a28 = vec4<f32>(0.0);
    var a29 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    // Four input channels per step; the tail of Cin reads channel cin_g - 1 with weight 0.
    for (var ci = 0u; ci < p.cin_g; ci += 4u) {
        let c1 = min(ci + 1u, p.cin_g - 1u);
        let c2 = min(ci + 2u, p.cin_g - 1u);
        let c3 = min(ci + 3u, p.cin_g - 1u);
        let x0 = xb + ci * p.xs_c;
        let x1 = xb + c1 * p.xs_c;
        let x2 = xb + c2 * p.xs_c;
        let x3 = xb + c3 * p.xs_c;
        let v0 = vec4<f32>(x[x0 + i0], x[x0 + i1], x[x0 + i2], x[x0 + i3]);
        let v1 = vec4<f32>(x[x1 + i0], x[x1 + i1], x[x1 + i2], x[x1 + i3]);
        let v2 = vec4<f32>(x[x2 + i0], x[x2 + i1], x[x2 + i2], x[x2 + i3]);
        let v3 = vec4<f32>(x[x3 + i0], x[x3 + i1], x[x3 + i2], x[x3 + i3]);
        // Lane l holds the weights of channels co0 + l + 8i for input channels ci..ci+4.
        let m1 = select(0.0, 1.0, ci + 1u < p.cin_g);
        let m2 = select(0.0, 1.0, ci + 2u < p.cin_g);
        let m3 = select(0.0, 1.0, ci + 3u < p.cin_g);
        let q0 = vec4<f32>(w_at(t.g, t.co0 + lane, ci, 0u, 0u), m1 * w_at(t.g, t.co0 + lane, c1, 0u, 0u), m2 * w_at(t.g, t.co0 + lane, c2, 0u, 0u), m3 * w_at(t.g, t.co0 + lane, c3, 0u, 0u));
        let q1 = vec4<f32>(w_at(t.g, t.co0 + 8u + lane, ci, 0u, 0u), m1 * w_at(t.g, t.co0 + 8u + lane, c1, 0u, 0u), m2 * w_at(t.g, t.co0 + 8u + lane, c2, 0u, 0u), m3 * w_at(t.g, t.co0 + 8u + lane, c3, 0u, 0u));
        let q2 = vec4<f32>(w_at(t.g, t.co0 + 16u + lane, ci, 0u, 0u), m1 * w_at(t.g, t.co0 + 16u + lane, c1, 0u, 0u), m2 * w_at(t.g, t.co0 + 16u + lane, c2, 0u, 0u), m3 * w_at(t.g, t.co0 + 16u + lane, c3, 0u, 0u));
        let q3 = vec4<f32>(w_at(t.g, t.co0 + 24u + lane, ci, 0u, 0u), m1 * w_at(t.g, t.co0 + 24u + lane, c1, 0u, 0u), m2 * w_at(t.g, t.co0 + 24u + lane, c2, 0u, 0u), m3 * w_at(t.g, t.co0 + 24u + lane, c3, 0u, 0u));
        a0 = upd4(a0, subgroupBroadcast(q0, 0u), v0, v1, v2, v3);
        a1 = upd4(a1, subgroupBroadcast(q0, 1u), v0, v1, v2, v3);
        a2 = upd4(a2, subgroupBroadcast(q0, 2u), v0, v1, v2, v3);
        a3 = upd4(a3, subgroupBroadcast(q0, 3u), v0, v1, v2, v3);
        a4 = upd4(a4, subgroupBroadcast(q0, 4u), v0, v1, v2, v3);
        a5 = upd4(a5, subgroupBroadcast(q0, 5u), v0, v1, v2, v3);
        a6 = upd4(a6, subgroupBroadcast(q0, 6u), v0, v1, v2, v3);
        a7 = upd4(a7, subgroupBroadcast(q0, 7u), v0, v1, v2, v3);
        a8 = upd4(a8, subgroupBroadcast(q1, 0u), v0, v1, v2, v3);
        a9 = upd4(a9, subgroupBroadcast(q1, 1u), v0, v1, v2, v3);
        a10 = upd4(a10, subgroupBroadcast(q1, 2u), v0, v1, v2, v3);
        a11 = upd4(a11, subgroupBroadcast(q1, 3u), v0, v1, v2, v3);
        a12 = upd4(a12, subgroupBroadcast(q1, 4u), v0, v1, v2, v3);
        a13 = upd4(a13, subgroupBroadcast(q1, 5u), v0, v1, v2, v3);
        a14 = upd4(a14, subgroupBroadcast(q1, 6u), v0, v1, v2, v3);
        a15 = upd4(a15, subgroupBroadcast(q1, 7u), v0, v1, v2, v3);
        a16 = upd4(a16, subgroupBroadcast(q2, 0u), v0, v1, v2, v3);
        a17 = upd4(a17, subgroupBroadcast(q2, 1u), v0, v1, v2, v3);
        a18 = upd4(a18, subgroupBroadcast(q2, 2u), v0, v1, v2, v3);
        a19 = upd4(a19, subgroupBroadcast(q2, 3u), v0, v1, v2, v3);
        a20 = upd4(a20, subgroupBroadcast(q2, 4u), v0, v1, v2, v3);
        a21 = upd4(a21, subgroupBroadcast(q2, 5u), v0, v1, v2, v3);
        a22 = upd4(a22, subgroupBroadcast(q2, 6u), v0, v1, v2, v3);
        a23 = upd4(a23, subgroupBroadcast(q2, 7u), v0, v1, v2, v3);
        a24 = upd4(a24, subgroupBroadcast(q3, 0u), v0, v1, v2, v3);
        a25 = upd4(a25, subgroupBroadcast(q3, 1u), v0, v1, v2, v3);
        a26 = upd4(a26, subgroupBroadcast(q3, 2u), v0, v1, v2, v3);
        a27 = upd4(a27, subgroupBroadcast(q3, 3u), v0, v1, v2, v3);
        a28 = upd4(a28, subgroupBroadcast(q3, 4u), v0, v1, v2, v3);
        a29 = upd4(a29, subgroupBroadcast(q3, 5u), v0, v1, v2, v3);
        a30 = upd4(a30, subgroupBroadcast(q3, 6u), v0, v1, v2, v3);
        a31 = upd4(a31, subgroupBroadcast(q3, 7u), v0, v1, v2, v3);
    }
    if (!t.valid || q0p >= hw) {
        return;
    }
    let yb = p.y_off + t.n * p.ys_n + q0p;
    store_block(t, yb, min(TN, hw - q0p), array<vec4<f32>, TM>(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31));
}
