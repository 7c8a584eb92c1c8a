// Q/K/V loader of attention_sg.wgsl for CPU adapters (texture operands, see matmul_tex.wgsl):
// qkv copied once into an rgba32float texture. Where the copy engine fills it, as vertical
// strips of kv_strip texel columns (whole heads), stacked top to bottom, kv_rows texture rows
// each: column c4 of token row r lands at texel (c4 mod kv_strip, (c4 / kv_strip)·kv_rows + r),
// so a head's rows of q, k and v are one compact block. Else (kv_strip = u32::MAX) in qkv's row
// layout, by texture_pack.wgsl's pack_rows_natural. Needs D, the column offsets and the row
// length to be multiples of 4 and in_batch = L·in_row (the host checks).
@group(0) @binding(4) var kvt: texture_storage_2d<rgba32float, read>;

// Where the head row at column `col` of token 0 of batch entry b starts: texel (x, y). Computed
// once per head, so the key loop does no division.
fn head_origin(b: u32, col: u32) -> vec2<u32> {
    let c4 = col / 4u;
    let s = c4 / p.kv_strip;
    return vec2<u32>(c4 - s * p.kv_strip, s * p.kv_rows + b * p.seq);
}

// Dims d .. d + 3 of the head row at `o` (head_origin) of token `key` (zero past D).
fn kv4(o: vec2<u32>, key: u32, d: u32) -> vec4<f32> {
    let v = textureLoad(kvt, vec2<u32>(o.x + d / 4u, o.y + key));
    return select(vec4<f32>(0.0), v, d < p.dim);
}

fn q16(o: vec2<u32>, row: u32, d: u32) -> mat4x4<f32> {
    return mat4x4<f32>(kv4(o, row, d), kv4(o, row, d + 4u), kv4(o, row, d + 8u), kv4(o, row, d + 12u));
}

// The output as vec4s: D, the output row, head and batch strides are multiples of 4 here (the
// host checks D; the rest follow), and on lavapipe one vec4 store costs about what one scalar
// store does.
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

// out[base + d .. + 3] = v (nothing past D), or += v when `add`.
fn put4(base: u32, d: u32, v: vec4<f32>, add: bool) {
    if (d < p.dim) {
        let i = (base + d) / 4u;
        var x = v;
        if (add) {
            x += out[i];
        }
        out[i] = x;
    }
}
