// K/V and q loader of attention_sg.wgsl, straight from the qkv buffer (its writer is
// attention_out_buffer.wgsl). kv4: dims d .. d + 3 of the head row at column `col` of token
// `key` in batch entry b (zero past D).
fn kv4(b: u32, key: u32, col: u32, d: u32) -> vec4<f32> {
    return load4(b * p.in_batch + key * p.in_row + col, d);
}

// Dims d .. d + 15 of the q head row at column `col` of query `row` in batch entry b.
fn q16(b: u32, row: u32, col: u32, d: u32) -> mat4x4<f32> {
    return load16(b * p.in_batch + row * p.in_row + col, d);
}
