// Conv2d backward, NCHW f32. The uniform block is the forward `Params` of conv2d.wgsl with the
// forward geometry (cin_g/h/w: the forward input, cout_g/ho/wo: the forward output); the
// strides x* address the forward input (or its gradient), y* the forward output's gradient,
// w* the weights (signed, as in the forward).
//
// conv_dx: data gradient, a transposed convolution as an implicit GEMM. M = input channels of
//   a group (TM per invocation, the tile shared by the workgroup so weight addresses are
//   workgroup-uniform), N = input pixels (one per invocation), K = (output channel, ky, kx).
//   dx[ci, ih, iw] = Σ_{co, ky, kx} w[co, ci, ky, kx] · dy[co, oh, ow] with
//   oh·s = ih + pad − ky. The stride's dilation of dy is implicit: ky only runs over the
//   residue class ky ≡ ih + pad (mod s), so no dilated buffer and no wasted taps.
// conv_dw: weight gradient, dw[co, ci, ky, kx] = Σ_{n, oh, ow} dy[n, co, oh, ow] ·
//   x[n, ci, oh·s − pad + ky, ow·s − pad + kx]. One workgroup per weight element; lane l sums
//   positions l, l + 64, ... of N·Ho·Wo in order, then a fixed tree in workgroup memory:
//   deterministic, no atomics.

override TM: u32 = 4u;

const WGX: u32 = 64u;
const TM_MAX: u32 = 16u;

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

// conv_dx bindings: dy, w → dx
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn w_index(g: u32, co: u32, ci: u32, ky: u32, kx: u32) -> u32 {
    let c = g * p.cout_g + co;
    return u32(p.w_off + i32(c) * p.ws_co + i32(ci) * p.ws_ci + i32(ky) * p.ws_ky + i32(kx) * p.ws_kx);
}

// Grid: tiles = p_tiles · m_tiles · groups · batch, p_tiles = ⌈H·W / 64⌉, m_tiles = ⌈cin_g / TM⌉.
@compute @workgroup_size(64)
fn conv_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = linear_workgroup(wg, nwg);
    if (t >= p.tiles) {
        return;
    }
    var r = t;
    let pt = r % p.p_tiles;
    r = r / p.p_tiles;
    let ci0 = (r % p.m_tiles) * TM;
    r = r / p.m_tiles;
    let g = r % p.groups;
    let n = r / p.groups;

    let hw = p.h * p.w;
    let q = pt * WGX + li;
    let qc = min(q, hw - 1u);
    let ih = qc / p.w;
    let iw = qc % p.w;
    let s = p.stride;
    let th = ih + p.pad; // = oh·s + ky
    let tw = iw + p.pad;
    let ky0 = th % s;
    let kx0 = tw % s;
    let yb = p.y_off + n * p.ys_n + g * p.cout_g * p.ys_c;

    var acc: array<f32, TM_MAX>;
    for (var co = 0u; co < p.cout_g; co++) {
        let yc = yb + co * p.ys_c;
        for (var ky = ky0; ky < p.kh; ky += s) {
            if (ky > th) {
                break;
            }
            let oh = (th - ky) / s;
            if (oh >= p.ho) {
                continue;
            }
            let yr = yc + oh * p.ys_h;
            for (var kx = kx0; kx < p.kw; kx += s) {
                if (kx > tw) {
                    break;
                }
                let ow = (tw - kx) / s;
                if (ow >= p.wo) {
                    continue;
                }
                let dv = dy[yr + ow];
                for (var m = 0u; m < TM; m++) {
                    let ci = min(ci0 + m, p.cin_g - 1u);
                    acc[m] = fma(wt[w_index(g, co, ci, ky, kx)], dv, acc[m]);
                }
            }
        }
    }

    if (q >= hw) {
        return;
    }
    let xb = p.x_off + n * p.xs_n + ih * p.xs_h + iw;
    for (var m = 0u; m < TM; m++) {
        let ci = ci0 + m;
        if (ci < p.cin_g) {
            dx[xb + (g * p.cin_g + ci) * p.xs_c] = acc[m];
        }
    }
}

// conv_dw bindings: x, dy → dw (dw is written through the w strides).
@group(0) @binding(1) var<storage, read> xin: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

var<workgroup> part: array<f32, 64>;

// Grid: tiles = Cout · cin_g · kh · kw workgroups (one per weight element).
@compute @workgroup_size(64)
fn conv_dw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // No early return before the barriers: out-of-range workgroups compute a clamped element
    // and skip the store.
    let t = linear_workgroup(wg, nwg);
    let tc = min(t, p.tiles - 1u);
    var r = tc;
    let kx = r % p.kw;
    r = r / p.kw;
    let ky = r % p.kh;
    r = r / p.kh;
    let ci = r % p.cin_g;
    let cog = r / p.cin_g; // output channel, all groups
    let g = cog / p.cout_g;
    let co = cog % p.cout_g;

    let hwo = p.ho * p.wo;
    let total = p.batch * hwo;
    let s = p.stride;
    let hi = i32(p.h);
    let wi = i32(p.w);
    var sum = 0.0;
    for (var i = li; i < total; i += WGX) {
        let n = i / hwo;
        let pq = i % hwo;
        let oh = pq / p.wo;
        let ow = pq % p.wo;
        let ih = i32(oh * s + ky) - i32(p.pad);
        let iw = i32(ow * s + kx) - i32(p.pad);
        if (ih >= 0 && ih < hi && iw >= 0 && iw < wi) {
            let xv = xin[p.x_off + n * p.xs_n + (g * p.cin_g + ci) * p.xs_c + u32(ih) * p.xs_h + u32(iw)];
            let gv = gy[p.y_off + n * p.ys_n + cog * p.ys_c + oh * p.ys_h + ow];
            sum = fma(gv, xv, sum);
        }
    }
    part[li] = sum;
    workgroupBarrier();
    for (var k = 32u; k > 0u; k = k >> 1u) {
        if (li < k) {
            part[li] = part[li] + part[li + k];
        }
        workgroupBarrier();
    }
    if (li == 0u && t < p.tiles) {
        dw[w_index(g, co, ci, ky, kx)] = part[0];
    }
}

// conv_dw_tiled: the weight gradient as a tiled implicit GEMM per group: M = output channels of
// the group, N = (ci, ky, kx), K = (n, oh, ow). A workgroup of 8×8 lanes owns a 32×32 output
// tile (4×4 per lane) and streams K in chunks of 16 through workgroup memory: dy[co, k] and the
// implicitly im2col'ed x[k, (ci, ky, kx)] (zero outside the padded input). Each element's sum
// runs over K in a fixed order: deterministic, no atomics.
// Grid: (⌈N / 32⌉, ⌈M / 32⌉, groups).
const DT: u32 = 32u;
const DK: u32 = 16u;

var<workgroup> tile_dy: array<array<f32, 32>, 16>;
var<workgroup> tile_x: array<array<f32, 32>, 16>;

@compute @workgroup_size(64)
fn conv_dw_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wg.z;
    let khw = p.kh * p.kw;
    let ncols = p.cin_g * khw;
    let hwo = p.ho * p.wo;
    let ktotal = p.batch * hwo;
    let m0 = wg.y * DT;
    let n0 = wg.x * DT;
    let tr = (li / 8u) * 4u; // this lane's rows (co) within the tile
    let tc = (li % 8u) * 4u; // this lane's columns
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    // Lane li loads column li % 32 of rows li / 32 + 2r (r < 8) of each 16 × 32 tile: its
    // column's (ci, ky, kx) is fixed, and its K position advances by 2 per load, so (n, oh, ow)
    // is stepped instead of divided out.
    let col = li % DT;
    let co_ld = m0 + col;
    let j = n0 + col;
    let ci_ld = j / khw;
    let t_ld = j - ci_ld * khw;
    let ky_ld = t_ld / p.kw;
    let kx_ld = t_ld - ky_ld * p.kw;
    let y_ch = p.y_off + (g * p.cout_g + co_ld) * p.ys_c;
    let x_ch = p.x_off + (g * p.cin_g + ci_ld) * p.xs_c;
    let k_first = li / DT;
    var n = k_first / hwo;
    var oh = (k_first - n * hwo) / p.wo;
    var ow = k_first - n * hwo - oh * p.wo;
    for (var k0 = 0u; k0 < ktotal; k0 += DK) {
        for (var r = 0u; r < 8u; r++) {
            let kk = k_first + 2u * r;
            var vy = 0.0;
            var vx = 0.0;
            if (k0 + kk < ktotal) {
                if (co_ld < p.cout_g) {
                    vy = gy[y_ch + n * p.ys_n + oh * p.ys_h + ow];
                }
                if (j < ncols) {
                    let ih = i32(oh * p.stride + ky_ld) - i32(p.pad);
                    let iw = i32(ow * p.stride + kx_ld) - i32(p.pad);
                    if (ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w)) {
                        vx = xin[x_ch + n * p.xs_n + u32(ih) * p.xs_h + u32(iw)];
                    }
                }
            }
            tile_dy[kk][col] = vy;
            tile_x[kk][col] = vx;
            ow += 2u;
            while (ow >= p.wo) {
                ow -= p.wo;
                oh += 1u;
                if (oh >= p.ho) {
                    oh = 0u;
                    n += 1u;
                }
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = tile_dy[kk][tr + i];
                b[i] = tile_x[kk][tc + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let co = m0 + tr + i;
        if (co >= p.cout_g) { continue; }
        for (var j = 0u; j < 4u; j++) {
            let col = n0 + tc + j;
            if (col >= ncols) { continue; }
            let ci = col / khw;
            let t = col - ci * khw;
            let ky = t / p.kw;
            dw[w_index(g, co, ci, ky, t - ky * p.kw)] = acc[i][j];
        }
    }
}
