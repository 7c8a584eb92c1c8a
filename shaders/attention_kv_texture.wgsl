// K/V loader of attention_sg.wgsl for CPU adapters (texture operands, see matmul_tex.wgsl):
// the K and V columns of every token row, copied once into an rgba32float texture by
// texture_pack.wgsl's pack_rows4 — texel (c4, b·L + token) holds columns k_col + 4·c4 .. +3 —
// so the key loop reads texels instead of buffer elements. Needs D, the column offsets and
// the row length to be multiples of 4 and in_batch = L·in_row (the host checks).
@group(0) @binding(4) var kvt: texture_storage_2d<rgba32float, read>;

fn kv4(b: u32, key: u32, col: u32, d: u32) -> vec4<f32> {
    let v = textureLoad(kvt, vec2<u32>((col - p.k_col + d) / 4u, b * p.seq + key));
    return select(vec4<f32>(0.0), v, d < p.dim);
}
