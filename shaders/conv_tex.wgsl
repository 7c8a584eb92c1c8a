// Dense 2-D convolution (groups = 1, any kernel size, stride and padding) and depthwise 3 × 3
// (`conv_dw`, at the end) on texture operands, for CPU adapters (lavapipe); see matmul_tex.wgsl
// for why textures.
//
// An implicit GEMM with K ordered (ky, kx, ci): out[co, pixel] = Σ_k W'[co, k] · X'[k, pixel].
// - pack_conv_weight writes W' in panels of 8 output channels, one texture row per panel and
//   kernel tap t = ky·kw + kx: texel (8·ci4 + l, p·kh·kw + t) holds W[8p + l, 4·ci4 .. +3, ky,
//   kx] (channels padded to c4·4 with zeros, rows past Cout zero), so the texture is only
//   8·c4 wide. Weight strides are signed, so the stride-1 data gradient reads the weights
//   transposed and flipped through this same pack.
// - pack_image writes the zero-padded input with 4 channels per texel: texel (x, y) with
//   y = (b·hp + iy)·c4 + ci4 holds X[b, 4·ci4 .. 4·ci4 + 3, iy − pad, x − pad] (zero outside
//   the image), for the `nb` batch entries of one texture (hp, wp: padded height, width).
// - conv_panel: panel.wgsl's 16 × 16 tile with rows = output channels and columns = output
//   pixels: lane j of the subgroup loads the input texel of pixel 8q + j at (ky, kx, ci4) —
//   neighbouring pixels are neighbouring texels — and broadcasts it. The padding lives in the
//   texture, so the K loop has no bounds checks.

override SGS: u32 = 8u;

struct Params {
    cin: u32,
    h: u32,
    w: u32,
    pad: u32,
    stride: u32,
    kh: u32,
    kw: u32,
    // Texels of 4 channels per input pixel.
    c4: u32,
    ho: u32,
    wo: u32,
    cout: u32,
    hp: u32,
    wp: u32,
    // First batch entry of this texture and how many it holds.
    z0: u32,
    nb: u32,
    // conv_dw: the first texel of channels of this chunk.
    ci4_0: u32,
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
    y_off: u32,
    tiles_n: u32,
    tiles: u32,
    has_bias: u32,
    // conv_panel: add to the output (input-channel chunks after the first, see ops::conv).
    accumulate: u32,
    // Weight gradient: K = batch entries × output pixels, and its texels of 4 per panel row
    // (K rounded up as texture_pack.wgsl does).
    kdim: u32,
    k4: u32,
    _q0: u32,
    _q1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// The packs: 1 = source buffer, 2 = destination texture.
@group(0) @binding(1) var<storage, read> src: array<f32>;
// The same binding as vec4s, for pack_dy_panels.
@group(0) @binding(1) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

// conv_panel: 1 = weight panels, 2 = input texture, 3 = output, 4 = bias.
@group(0) @binding(1) var tw: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var tx: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// x = ci4, y = output channel (every row of the padded panels), z = kernel tap t.
@compute @workgroup_size(64)
fn pack_conv_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ci4 = gid.x;
    if (ci4 >= p.c4) {
        return;
    }
    let co = gid.y;
    let t = gid.z;
    let ky = i32(t / p.kw);
    let kx = i32(t % p.kw);
    var v = vec4<f32>(0.0);
    if (co < p.cout) {
        let base = p.w_off + i32(co) * p.ws_co + ky * p.ws_ky + kx * p.ws_kx;
        for (var e = 0u; e < 4u; e += 1u) {
            let ci = 4u * ci4 + e;
            if (ci < p.cin) {
                v[e] = src[u32(base + i32(ci) * p.ws_ci)];
            }
        }
    }
    textureStore(dst, vec2<u32>(8u * ci4 + co % 8u, (co / 8u) * p.kh * p.kw + t), v);
}

// x over (ci4, padded column) pairs, column fastest; y = padded row of the texture's batch
// entries (b·hp + iy).
@compute @workgroup_size(64)
fn pack_image(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.wp * p.c4) {
        return;
    }
    let x = gid.x % p.wp;
    let ci4 = gid.x / p.wp;
    let row = gid.y;
    let b = row / p.hp;
    let iy = i32(row % p.hp) - i32(p.pad);
    let ix = i32(x) - i32(p.pad);
    var v = vec4<f32>(0.0);
    if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
        let base = p.x_off + (p.z0 + b) * p.xs_n + u32(iy) * p.xs_h + u32(ix);
        for (var e = 0u; e < 4u; e += 1u) {
            let ci = 4u * ci4 + e;
            if (ci < p.cin) {
                v[e] = src[base + ci * p.xs_c];
            }
        }
    }
    textureStore(dst, vec2<u32>(x, row * p.c4 + ci4), v);
}

// Weight gradient dW[co, ci, ky, kx] = Σ_k dy[co, k] · x_k(ci, ky, kx) with k = (batch entry,
// output pixel): an M = Cout × N = Cin·kh·kw × K product whose operands these two packs write
// in the panel layout of texture_pack.wgsl, for matmul_tex.wgsl's mm_panel (its C is dW's
// memory layout). Texels of 4 consecutive k never straddle a batch entry: the host only takes
// this path when the output pixels per entry are a multiple of 4. x = k4, y = row.
@compute @workgroup_size(64)
fn pack_dy_panels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4 = gid.x;
    if (k4 >= p.k4) {
        return;
    }
    let co = gid.y;
    let k = 4u * k4;
    var v = vec4<f32>(0.0);
    if (co < p.cout && k < p.kdim) {
        let npix = p.ho * p.wo;
        v = src4[(p.y_off + (k / npix) * p.ys_n + co * p.ys_c + k % npix) / 4u];
    }
    textureStore(dst, vec2<u32>(8u * k4 + co % 8u, co / 8u), v);
}

// Row n = ci·kh·kw + ky·kw + kx of the im2col operand: x at the input pixel that output pixel
// k's window puts under tap (ky, kx), zero in the padding.
@compute @workgroup_size(64)
fn pack_im2col_panels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4 = gid.x;
    if (k4 >= p.k4) {
        return;
    }
    let n = gid.y;
    let taps = p.kh * p.kw;
    var v = vec4<f32>(0.0);
    if (n < p.cin * taps) {
        let ci = n / taps;
        let t = n % taps;
        let ky = t / p.kw;
        let kx = t % p.kw;
        let npix = p.ho * p.wo;
        for (var e = 0u; e < 4u; e += 1u) {
            let k = 4u * k4 + e;
            if (k < p.kdim) {
                let pix = k % npix;
                let iy = i32((pix / p.wo) * p.stride + ky) - i32(p.pad);
                let ix = i32((pix % p.wo) * p.stride + kx) - i32(p.pad);
                if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                    v[e] = src[p.x_off + (k / npix) * p.xs_n + ci * p.xs_c + u32(iy) * p.xs_h + u32(ix)];
                }
            }
        }
    }
    textureStore(dst, vec2<u32>(8u * k4 + n % 8u, n / 8u), v);
}

// Output pixels n .. n + 3 (n a multiple of 4) of channels co (lo) and co + 8 (hi).
fn store_pixels(b: u32, co: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (n >= p.ho * p.wo) {
        return;
    }
    let base = p.y_off + (p.z0 + b) * p.ys_n + n;
    if (co < p.cout) {
        store_channel((base + co * p.ys_c) / 4u, co, lo);
    }
    if (co + 8u < p.cout) {
        store_channel((base + (co + 8u) * p.ys_c) / 4u, co + 8u, hi);
    }
}

// y4[i] = v (+ bias[co]), or += v when accumulating a later channel chunk.
fn store_channel(i: u32, co: u32, v: vec4<f32>) {
    var out = v;
    if (p.has_bias != 0u) {
        out += bias[co];
    }
    if (p.accumulate != 0u) {
        out += y4[i];
    }
    y4[i] = out;
}

@compute @workgroup_size(8 * SGS)
fn conv_panel(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32) {
    let tile = linear_workgroup(wg, nwg);
    if (tile >= p.tiles) {
        return;
    }
    let b = wg.z;
    // Row panels p0, p0 + 1 (output channels); column panels q0, q0 + 1 (output pixels).
    let p0 = 2u * (tile / p.tiles_n);
    let q0 = 2u * (SGS * (tile % p.tiles_n) + sg);
    let last = p.ho * p.wo - 1u;
    // This lane's pixel in each column panel (the last pixel past the end: never stored).
    let n0 = min(8u * q0 + lane, last);
    let n1 = min(8u * (q0 + 1u) + lane, last);
    let oy0 = n0 / p.wo;
    let ox0 = n0 % p.wo;
    let oy1 = n1 / p.wo;
    let ox1 = n1 % p.wo;
    // Uniform reads inside the loops are reloaded per trip and per lane on llvmpipe: hoisted.
    let kw = p.kw;
    let stride = p.stride;
    let c4 = p.c4;
    let taps = p.kh * kw;
    let hp = b * p.hp;
    var acc: Panel;
    for (var t = 0u; t < taps; t += 1u) {
        let ky = t / kw;
        let kx = t % kw;
        let x0 = ox0 * stride + kx;
        let x1 = ox1 * stride + kx;
        let y0 = (hp + oy0 * stride + ky) * c4;
        let y1 = (hp + oy1 * stride + ky) * c4;
        let ya = p0 * taps + t;
        for (var ci4 = 0u; ci4 < c4; ci4 += 1u) {
            let xk = 8u * ci4 + lane;
            panel_step(&acc, textureLoad(tw, vec2<u32>(xk, ya)), textureLoad(tw, vec2<u32>(xk, ya + taps)), textureLoad(tx, vec2<u32>(x0, y0 + ci4)), textureLoad(tx, vec2<u32>(x1, y1 + ci4)));
        }
    }
    let co = 8u * p0 + lane;
    for (var h = 0u; h < 4u; h += 1u) {
        store_pixels(b, co, 8u * q0 + 4u * h, panel_quad(&acc, h, 0u), panel_quad(&acc, h, 1u));
    }
}

// Depthwise 3 × 3 (groups = Cin = Cout) with stride DS, on the padded image texture of
// pack_image (4 channels per texel), for CPU adapters where conv_direct's buffer loads are
// ~30× a texel load. pack_dw_weight writes the weights as texel (t, c4) = the 4 channels'
// weight at tap t = 3·ky + kx (through the signed weight strides, as pack_conv_weight); conv_dw
// gives one lane 4 neighbouring output pixels of a row × 4 channels: per kernel row it loads
// the 3·DS + 3 input texels under them once, 144 FMAs per 18 (DS = 1) or 27 (DS = 2) texel
// loads and 9 weight texels.
override DS: u32 = 1u;

// x = tap, y = texel of 4 channels (all of them: the weight texture serves every chunk).
@compute @workgroup_size(16)
fn pack_dw_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c4 = gid.y;
    if (t >= 9u || c4 >= p.c4) {
        return;
    }
    let ky = i32(t / 3u);
    let kx = i32(t % 3u);
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e += 1u) {
        let c = 4u * c4 + e;
        if (c < p.cout) {
            v[e] = src[u32(p.w_off + i32(c) * p.ws_co + ky * p.ws_ky + kx * p.ws_kx)];
        }
    }
    textureStore(dst, vec2<u32>(t, c4), v);
}

// x = output pixel quad (4·ox4 .. + 3 of row oy), y = texel of 4 channels of this chunk, z =
// batch entry of this texture. The chunk's first texel of channels is p.ci4_0.
@compute @workgroup_size(64)
fn conv_dw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let wo4 = p.wo / 4u;
    if (gid.x >= wo4 * p.ho || gid.y >= p.c4) {
        return;
    }
    let ox4 = gid.x % wo4;
    let oy = gid.x / wo4;
    let c4 = gid.y;
    let b = gid.z;
    let wrow = p.ci4_0 + c4;
    let x0 = 4u * ox4 * DS;
    var acc: array<vec4<f32>, 4>;
    for (var ky = 0u; ky < 3u; ky += 1u) {
        let y = (b * p.hp + oy * DS + ky) * p.c4 + c4;
        var win: array<vec4<f32>, 9>;
        for (var i = 0u; i < 3u * DS + 3u; i += 1u) {
            win[i] = textureLoad(tx, vec2<u32>(x0 + i, y));
        }
        for (var kx = 0u; kx < 3u; kx += 1u) {
            let w = textureLoad(tw, vec2<u32>(3u * ky + kx, wrow));
            for (var j = 0u; j < 4u; j += 1u) {
                acc[j] = fma(w, win[j * DS + kx], acc[j]);
            }
        }
    }
    let base = p.y_off + (p.z0 + b) * p.ys_n + oy * p.wo + 4u * ox4;
    for (var e = 0u; e < 4u; e += 1u) {
        let c = 4u * wrow + e;
        if (c < p.cout) {
            var v = vec4<f32>(acc[0][e], acc[1][e], acc[2][e], acc[3][e]);
            if (p.has_bias != 0u) {
                v += bias[c];
            }
            y4[(base + c * p.ys_c) / 4u] = v;
        }
    }
}
