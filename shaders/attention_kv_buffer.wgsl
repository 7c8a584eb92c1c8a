// K/V and q loader of attention_sg.wgsl, straight from the qkv buffer (its writer is
// attention_out_buffer.wgsl). A head row is addressed by its origin (head_origin: the element
// offset of token 0 of batch entry b at column `col`); kv4: dims d .. d + 3 of it for token
// `key` (zero past D).
fn head_origin(b: u32, col: u32) -> vec2<u32> {
    return vec2<u32>(b * p.in_batch + col, 0u);
}

fn kv4(o: vec2<u32>, key: u32, d: u32) -> vec4<f32> {
    return load4(o.x + key * p.in_row, d);
}

// Dims d .. d + 15 of the q head row at origin `o` of query `row`.
fn q16(o: vec2<u32>, row: u32, d: u32) -> mat4x4<f32> {
    return load16(o.x + row * p.in_row, d);
}
