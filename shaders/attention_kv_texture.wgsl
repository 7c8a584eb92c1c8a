// Q/K/V loader of attention_sg.wgsl for CPU adapters (texture operands, see matmul_tex.wgsl):
// the token rows of qkv, copied once into an rgba32float texture — texel (c4, b·L + token)
// holds columns 4·c4 .. 4·c4 + 3 (by a buffer copy where rows are whole 256-byte copy rows,
// else by texture_pack.wgsl's pack_rows_natural) — so the q rows and the key loop read texels
// instead of buffer elements. Needs D, the column offsets and the row length to be multiples
// of 4 and in_batch = L·in_row (the host checks).
@group(0) @binding(4) var kvt: texture_storage_2d<rgba32float, read>;

fn kv4(b: u32, key: u32, col: u32, d: u32) -> vec4<f32> {
    let v = textureLoad(kvt, vec2<u32>((col + d) / 4u, b * p.seq + key));
    return select(vec4<f32>(0.0), v, d < p.dim);
}

fn q16(b: u32, row: u32, col: u32, d: u32) -> mat4x4<f32> {
    return mat4x4<f32>(kv4(b, row, col, d), kv4(b, row, col, d + 4u), kv4(b, row, col, d + 8u), kv4(b, row, col, d + 12u));
}

// The output as vec4s: D, the output row, head and batch strides are multiples of 4 here (the
// host checks D; the rest follow), and on lavapipe one vec4 store costs about what one scalar
// store does.
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

// out[base + d..] = m (dims past D untouched), or += m when `add`.
fn put16(base: u32, d: u32, m: mat4x4<f32>, add: bool) {
    for (var c = 0u; c < 4u; c++) {
        let e = d + 4u * c;
        if (e < p.dim) {
            let i = (base + e) / 4u;
            var v = m[c];
            if (add) {
                v += out[i];
            }
            out[i] = v;
        }
    }
}
