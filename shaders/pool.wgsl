// Spatial resampling over NCHW planes: average pooling and nearest-neighbour 2× upsampling.
// One invocation per output element over a 1-D grid (folded into y past the 65535 cap).
// Planes are addressed through a plane stride and offsets so views can be reused later
// (e.g. for the backward passes).

struct Params {
    total: u32,   // output elements = planes · ho · wo
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    k: u32,       // pooling window (square)
    s: u32,       // pooling stride
    pad: u32,
    include_pad: u32,
    xs_p: u32,    // input plane stride
    x_off: u32,
    ys_p: u32,    // output plane stride
    y_off: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;

// PyTorch AvgPool2d (ceil_mode = false): the window is clipped to the input; the divisor is
// the clipped window (count_include_pad = false) or the window clipped to the padded input.
@compute @workgroup_size(256)
fn avg_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.total) {
        return;
    }
    let ow = i % p.wo;
    let r = i / p.wo;
    let oh = r % p.ho;
    let pl = r / p.ho;
    let hs = i32(oh * p.s) - i32(p.pad);
    let ws = i32(ow * p.s) - i32(p.pad);
    let he = min(hs + i32(p.k), i32(p.h + p.pad));
    let we = min(ws + i32(p.k), i32(p.w + p.pad));
    let padded_count = (he - hs) * (we - ws);
    let h0 = max(hs, 0);
    let w0 = max(ws, 0);
    let h1 = min(he, i32(p.h));
    let w1 = min(we, i32(p.w));
    let xb = p.x_off + pl * p.xs_p;
    var sum = 0.0;
    for (var ih = h0; ih < h1; ih++) {
        let row = xb + u32(ih) * p.w;
        for (var iw = w0; iw < w1; iw++) {
            sum += x[row + u32(iw)];
        }
    }
    let count = select((h1 - h0) * (w1 - w0), padded_count, p.include_pad != 0u);
    y[p.y_off + pl * p.ys_p + oh * p.wo + ow] = sum / f32(max(count, 1));
}

// Nearest-neighbour ×2: out[oh, ow] = in[oh / 2, ow / 2] (ho = 2h, wo = 2w).
@compute @workgroup_size(256)
fn upsample2x(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.total) {
        return;
    }
    let ow = i % p.wo;
    let r = i / p.wo;
    let oh = r % p.ho;
    let pl = r / p.ho;
    y[p.y_off + pl * p.ys_p + oh * p.wo + ow] = x[p.x_off + pl * p.xs_p + (oh / 2u) * p.w + ow / 2u];
}

// upsample2x where the input width is even: one invocation per 4 output pixels of a row, from
// 2 input pixels (one vec2 load, one vec4 store instead of 4 loads and 4 stores: on CPU drivers
// each buffer access is a loop over the lanes whatever its width). total = outputs / 4; the
// offsets and plane strides are even (input) and multiples of 4 (output), as the host checks.
@group(0) @binding(1) var<storage, read> x2: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn upsample2x4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.total) {
        return;
    }
    let q4 = p.wo / 4u;
    let q = i % q4;
    let r = i / q4;
    let oh = r % p.ho;
    let pl = r / p.ho;
    let v = x2[(p.x_off + pl * p.xs_p + (oh / 2u) * p.w) / 2u + q];
    y4[(p.y_off + pl * p.ys_p + oh * p.wo) / 4u + q] = vec4<f32>(v.x, v.x, v.y, v.y);
}

// AvgPool2d backward: one invocation per input element (total = planes · h · w; here x is the
// output gradient dy [planes, ho, wo] and y the input gradient dx [planes, h, w]).
// dx[ih, iw] = Σ over the windows (oh, ow) that contain it of dy[oh, ow] / count(oh, ow), with
// the forward's count rule. Windows containing ih: oh·s − pad ≤ ih < oh·s − pad + k.
@compute @workgroup_size(256)
fn avg_pool_bw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.total) {
        return;
    }
    let iw = i % p.w;
    let r = i / p.w;
    let ih = r % p.h;
    let pl = r / p.h;
    let th = i32(ih + p.pad);
    let tw = i32(iw + p.pad);
    let k = i32(p.k);
    let s = i32(p.s);
    // oh from ⌈(th − k + 1) / s⌉ (at least 0) to min(th / s, ho − 1)
    let oh0 = max(th - k + s, 0) / s;
    let oh1 = min(th / s, i32(p.ho) - 1);
    let ow0 = max(tw - k + s, 0) / s;
    let ow1 = min(tw / s, i32(p.wo) - 1);
    let xb = p.x_off + pl * p.xs_p;
    var sum = 0.0;
    for (var oh = oh0; oh <= oh1; oh++) {
        let hs = oh * s - i32(p.pad);
        let he = min(hs + k, i32(p.h + p.pad));
        let h0 = max(hs, 0);
        let h1 = min(he, i32(p.h));
        for (var ow = ow0; ow <= ow1; ow++) {
            let ws = ow * s - i32(p.pad);
            let we = min(ws + k, i32(p.w + p.pad));
            let w0 = max(ws, 0);
            let w1 = min(we, i32(p.w));
            let count = select((h1 - h0) * (w1 - w0), (he - hs) * (we - ws), p.include_pad != 0u);
            sum += x[xb + u32(oh) * p.wo + u32(ow)] / f32(max(count, 1));
        }
    }
    y[p.y_off + pl * p.ys_p + ih * p.w + iw] = sum;
}

// UpsampleNearest2x backward: dx[i, j] = Σ of the 2×2 block dy[2i..2i+2, 2j..2j+2] (x is dy
// [planes, 2h, 2w], y is dx [planes, h, w]; total = planes · h · w).
@compute @workgroup_size(256)
fn upsample2x_bw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * WG + li;
    if (i >= p.total) {
        return;
    }
    let j = i % p.w;
    let r = i / p.w;
    let ii = r % p.h;
    let pl = r / p.h;
    let b = p.x_off + pl * p.xs_p + (2u * ii) * p.wo + 2u * j;
    let top = x[b] + x[b + 1u];
    let bot = x[b + p.wo] + x[b + p.wo + 1u];
    y[p.y_off + pl * p.ys_p + ii * p.w + j] = top + bot;
}
