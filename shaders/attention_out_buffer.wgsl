// The output writer of the buffer attention kernels (attention.wgsl, and attention_sg.wgsl on
// buffers; src/shaders.rs appends it to both): scalar stores, so any head dim and stride.
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn store4(base: u32, d: u32, v: vec4<f32>) {
    let n = p.dim;
    if (d + 3u < n) {
        out[base + d] = v.x;
        out[base + d + 1u] = v.y;
        out[base + d + 2u] = v.z;
        out[base + d + 3u] = v.w;
    } else {
        if (d < n) { out[base + d] = v.x; }
        if (d + 1u < n) { out[base + d + 1u] = v.y; }
        if (d + 2u < n) { out[base + d + 2u] = v.z; }
    }
}

// out[base + d .. + 3] = v (dims past D untouched), or += v when `add`.
fn put4(base: u32, d: u32, v: vec4<f32>, add: bool) {
    var x = v;
    if (add) {
        let last = base + p.dim - 1u;
        let e = base + d;
        x += vec4<f32>(out[min(e, last)], out[min(e + 1u, last)], out[min(e + 2u, last)], out[min(e + 3u, last)]);
    }
    store4(base, d, x);
}

// out[base + d ..] = m (16 dims), or += m when `add`.
fn put16(base: u32, d: u32, m: mat4x4<f32>, add: bool) {
    put4(base, d, m[0], add);
    put4(base, d + 4u, m[1], add);
    put4(base, d + 8u, m[2], add);
    put4(base, d + 12u, m[3], add);
}
