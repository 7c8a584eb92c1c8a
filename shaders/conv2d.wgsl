// 2-D convolution, NCHW f32, as an implicit GEMM: C[m, q] = Σ_k A[m, k] · B[k, q] with
// m = output channel (within a group), q = output pixel, k = (input channel, ky, kx). A is the
// weight tensor read through strides (so a transposed or flipped weight view works too), B is
// the input gathered on the fly (never materialised). Groups and batch are part of the grid.
//
// These are the portable kernels; conv2d_sg.wgsl has the faster subgroup variants of the dense
// 3-wide and 1×1 cases, used when the adapter has subgroups.
//
// Work split (tuned for CPU-like drivers such as lavapipe, fine on GPUs): one workgroup owns a
// tile of TM output channels × 64·TN output pixels; each invocation accumulates a TM × TN
// register block. The channel tile is the same for the whole workgroup, so weight addresses
// are workgroup-uniform (GPUs serve them as one scalar load) and each input value loaded by an
// invocation feeds TM multiply-adds. No workgroup memory and no barriers.
//
// Variants (override constants, never shapes):
//   TM, TN   register block (TM ≤ 16 channels, TN ≤ 8 pixels);
//   KS       3: kernel width 3 specialised (each invocation loads one input row segment per
//            (channel, ky) and reuses it across kx and its TN pixels); 0: any kernel, loops
//            read from the params;
//   SS       stride specialisation for KS == 3 (1 or 2); 0 means read p.stride;
//   HAS_BIAS whether binding 3 holds a bias (otherwise it aliases the weights and is unused).

override TM: u32 = 8u;
override TN: u32 = 4u;
override KS: u32 = 0u;
override SS: u32 = 0u;
override HAS_BIAS: bool = false;

const WGX: u32 = 64u;
const TM_MAX: u32 = 16u;
const TN_MAX: u32 = 8u;
const SEG_MAX: u32 = 17u; // (TN_MAX - 1) · 2 + 3

struct Params {
    // geometry (per group)
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
    // input strides (elements; columns are contiguous) and offset
    xs_n: u32,
    xs_c: u32,
    xs_h: u32,
    x_off: u32,
    // weight strides (signed: flipped views for the data gradient) and offset
    ws_co: i32,
    ws_ci: i32,
    ws_ky: i32,
    ws_kx: i32,
    w_off: i32,
    // output strides (columns contiguous) and offset
    ys_n: u32,
    ys_c: u32,
    ys_h: u32,
    y_off: u32,
    // grid decomposition: tiles = p_tiles · m_tiles · groups · batch
    p_tiles: u32,
    m_tiles: u32,
    tiles: u32,
    // column blocks of TN per output row (direct path)
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
    pt: u32, // pixel tile
    co0: u32, // first output channel of the tile, within the group
    g: u32,
    n: u32,
}

fn decode_tile(t: u32) -> Tile {
    var r = t;
    let pt = r % p.p_tiles;
    r = r / p.p_tiles;
    let mt = r % p.m_tiles;
    r = r / p.m_tiles;
    return Tile(pt, mt * TM, r % p.groups, r / p.groups);
}

// Offset of weight (co, ci, ky, kx) with co within the group; co clamped into range so tail
// tiles read valid memory (their results are discarded).
fn w_index(g: u32, co: u32, ci: u32, ky: u32, kx: u32) -> u32 {
    let c = g * p.cout_g + min(co, p.cout_g - 1u);
    return u32(p.w_off + i32(c) * p.ws_co + i32(ci) * p.ws_ci + i32(ky) * p.ws_ky + i32(kx) * p.ws_kx);
}

fn bias_of(g: u32, co: u32) -> f32 {
    if (HAS_BIAS) {
        return bias[g * p.cout_g + min(co, p.cout_g - 1u)];
    }
    return 0.0;
}

// Any kernel size, stride and padding. Each invocation owns TN consecutive output columns of
// one output row.
@compute @workgroup_size(64)
fn conv_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = linear_workgroup(wg, nwg);
    if (t >= p.tiles) {
        return;
    }
    let tile = decode_tile(t);
    let ntask = p.ho * p.cb;
    let task = tile.pt * WGX + li;
    let tk = min(task, ntask - 1u);
    let oh = tk / p.cb;
    let ow0 = (tk % p.cb) * TN;
    let stride = select(p.stride, SS, SS != 0u);
    let ih0 = i32(oh * stride) - i32(p.pad);
    let iw0 = i32(ow0 * stride) - i32(p.pad);
    let xb = p.x_off + tile.n * p.xs_n + tile.g * p.cin_g * p.xs_c;
    let wi = i32(p.w);
    let hi = i32(p.h);

    var acc: array<array<f32, TN_MAX>, TM_MAX>;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let xc = i32(xb + ci * p.xs_c);
        for (var ky = 0u; ky < p.kh; ky++) {
            let ih = ih0 + i32(ky);
            let row_ok = ih >= 0 && ih < hi;
            let xr = xc + ih * i32(p.xs_h);
            if (KS == 3u) {
                // The row segment under this invocation's TN windows: (TN-1)·S + 3 values.
                var seg: array<f32, SEG_MAX>;
                for (var e = 0u; e < (TN - 1u) * SS + 3u; e++) {
                    let iw = iw0 + i32(e);
                    let ok = row_ok && iw >= 0 && iw < wi;
                    seg[e] = select(0.0, x[u32(select(0, xr + iw, ok))], ok);
                }
                for (var kx = 0u; kx < 3u; kx++) {
                    for (var m = 0u; m < TM; m++) {
                        let wv = wt[w_index(tile.g, tile.co0 + m, ci, ky, kx)];
                        for (var j = 0u; j < TN; j++) {
                            acc[m][j] = fma(wv, seg[j * SS + kx], acc[m][j]);
                        }
                    }
                }
            } else {
                for (var kx = 0u; kx < p.kw; kx++) {
                    var xv: array<f32, TN_MAX>;
                    for (var j = 0u; j < TN; j++) {
                        let iw = iw0 + i32(j * stride + kx);
                        let ok = row_ok && iw >= 0 && iw < wi;
                        xv[j] = select(0.0, x[u32(select(0, xr + iw, ok))], ok);
                    }
                    for (var m = 0u; m < TM; m++) {
                        let wv = wt[w_index(tile.g, tile.co0 + m, ci, ky, kx)];
                        for (var j = 0u; j < TN; j++) {
                            acc[m][j] = fma(wv, xv[j], acc[m][j]);
                        }
                    }
                }
            }
        }
    }

    if (task >= ntask) {
        return;
    }
    let yb = p.y_off + tile.n * p.ys_n + oh * p.ys_h + ow0;
    for (var m = 0u; m < TM; m++) {
        let co = tile.co0 + m;
        if (co < p.cout_g) {
            let b = bias_of(tile.g, co);
            let yc = yb + (tile.g * p.cout_g + co) * p.ys_c;
            for (var j = 0u; j < TN; j++) {
                if (ow0 + j < p.wo) {
                    y[yc + j] = acc[m][j] + b;
                }
            }
        }
    }
}

// 1×1, stride 1, no padding: a plain GEMM over channels, out[co, q] = Σ_ci w[co, ci]·x[ci, q],
// with each input plane and output plane contiguous (q = row · w + col). Each invocation owns
// TN consecutive pixels.
@compute @workgroup_size(64)
fn conv_1x1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = linear_workgroup(wg, nwg);
    if (t >= p.tiles) {
        return;
    }
    let tile = decode_tile(t);
    let hw = p.ho * p.wo;
    let q0 = (tile.pt * WGX + li) * TN;
    let xb = p.x_off + tile.n * p.xs_n + tile.g * p.cin_g * p.xs_c;

    var acc: array<array<f32, TN_MAX>, TM_MAX>;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let xc = xb + ci * p.xs_c;
        var xv: array<f32, TN_MAX>;
        for (var j = 0u; j < TN; j++) {
            xv[j] = x[xc + min(q0 + j, hw - 1u)];
        }
        for (var m = 0u; m < TM; m++) {
            let wv = wt[w_index(tile.g, tile.co0 + m, ci, 0u, 0u)];
            for (var j = 0u; j < TN; j++) {
                acc[m][j] = fma(wv, xv[j], acc[m][j]);
            }
        }
    }

    let yb = p.y_off + tile.n * p.ys_n + q0;
    for (var m = 0u; m < TM; m++) {
        let co = tile.co0 + m;
        if (co < p.cout_g) {
            let b = bias_of(tile.g, co);
            let yc = yb + (tile.g * p.cout_g + co) * p.ys_c;
            for (var j = 0u; j < TN; j++) {
                if (q0 + j < hw) {
                    y[yc + j] = acc[m][j] + b;
                }
            }
        }
    }
}
