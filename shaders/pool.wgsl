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
