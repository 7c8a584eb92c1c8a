// LayerNorm over the last dim (norm.wgsl's `ln_rows`) for CPU adapters (texture operands, see
// matmul_tex.wgsl): one lane per row, reading x, gamma and beta from rgba32float textures in
// the row layout (texel (c4, r) = row r, columns 4·c4 .. 4·c4 + 3; gamma and beta: row 0), so
// neither workgroup memory nor barriers — on llvmpipe every workgroup load is a loop over the
// lanes and every barrier a coroutine switch, which made `ln_rows` ~18 ms for [256, 1024].
// Same statistics as ln_rows: two passes in f32, the mean of the row shifted by its first
// element, then the centred sum of squares; biased variance. C is a multiple of 4 (the host
// checks); each pass keeps 4 partial sums, one per texel lane.

struct Params {
    rows: u32,
    c4: u32,    // texels per row
    c: u32,     // row length
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var tx: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var tg: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var tb: texture_storage_2d<rgba32float, read>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;

fn total(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(64)
fn ln_rows_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Uniform reads hoisted: inside a loop each is one load per lane per trip on llvmpipe.
    let rows = p.rows;
    let c4 = p.c4;
    let n = f32(p.c);
    let eps = p.eps;
    let row0 = linear_workgroup(wg, nwg) * 64u + lid;
    // Rows past the end compute on the last row and write nothing.
    let row = min(row0, rows - 1u);
    let shift = textureLoad(tx, vec2<u32>(0u, row)).x;
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < c4; i += 1u) {
        s += textureLoad(tx, vec2<u32>(i, row)) - shift;
    }
    let mean = shift + total(s) / n;
    var q = vec4<f32>(0.0);
    for (var i = 0u; i < c4; i += 1u) {
        let d = textureLoad(tx, vec2<u32>(i, row)) - mean;
        q += d * d;
    }
    let rstd = 1.0 / sqrt(total(q) / n + eps);
    if (row0 < rows) {
        for (var i = 0u; i < c4; i += 1u) {
            let d = textureLoad(tx, vec2<u32>(i, row)) - mean;
            y[row * c4 + i] = d * rstd * textureLoad(tg, vec2<u32>(i, 0u)) + textureLoad(tb, vec2<u32>(i, 0u));
        }
    }
}

// LayerNorm over the channels of NCHW x (norm.wgsl's `ln_cols`, timm's LayerNorm2d) for CPU
// adapters: x in the row layout with one texture row per (batch entry, channel) — texel
// (p4, b·C + c) = x[b, c, pixels 4·p4 .. 4·p4 + 3] — so one lane holds 4 neighbouring pixels
// and walks the channels, with the same statistics per pixel as ln_cols. Gamma and beta: row
// 0 of their textures. C and H·W are multiples of 4 (the host checks).
struct ColParams {
    cols4: u32,   // texels of 4 pixels per channel (H·W / 4)
    lanes: u32,   // batch entries × cols4
    c: u32,       // channels
    eps: f32,
}

@group(0) @binding(0) var<uniform> pc: ColParams;

@compute @workgroup_size(64)
fn ln_cols_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cols4 = pc.cols4;
    let lanes = pc.lanes;
    let c = pc.c;
    let n = f32(pc.c);
    let eps = pc.eps;
    let lane0 = linear_workgroup(wg, nwg) * 64u + lid;
    // Lanes past the end compute on the last pixels and write nothing.
    let lane = min(lane0, lanes - 1u);
    let p4 = lane % cols4;
    let row0 = (lane / cols4) * c;
    let shift = textureLoad(tx, vec2<u32>(p4, row0));
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < c; i += 1u) {
        s += textureLoad(tx, vec2<u32>(p4, row0 + i)) - shift;
    }
    let mean = shift + s / n;
    var q = vec4<f32>(0.0);
    for (var i = 0u; i < c; i += 1u) {
        let d = textureLoad(tx, vec2<u32>(p4, row0 + i)) - mean;
        q += d * d;
    }
    let rstd = 1.0 / sqrt(q / n + eps);
    if (lane0 < lanes) {
        for (var i4 = 0u; i4 < c / 4u; i4 += 1u) {
            let g = textureLoad(tg, vec2<u32>(i4, 0u));
            let b = textureLoad(tb, vec2<u32>(i4, 0u));
            let r = row0 + 4u * i4;
            y[r * cols4 + p4] = (textureLoad(tx, vec2<u32>(p4, r)) - mean) * rstd * g.x + b.x;
            y[(r + 1u) * cols4 + p4] = (textureLoad(tx, vec2<u32>(p4, r + 1u)) - mean) * rstd * g.y + b.y;
            y[(r + 2u) * cols4 + p4] = (textureLoad(tx, vec2<u32>(p4, r + 2u)) - mean) * rstd * g.z + b.z;
            y[(r + 3u) * cols4 + p4] = (textureLoad(tx, vec2<u32>(p4, r + 3u)) - mean) * rstd * g.w + b.w;
        }
    }
}
