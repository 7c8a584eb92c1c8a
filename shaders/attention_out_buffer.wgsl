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

fn store16(base: u32, d: u32, m: mat4x4<f32>) {
    store4(base, d, m[0]);
    store4(base, d + 4u, m[1]);
    store4(base, d + 8u, m[2]);
    store4(base, d + 12u, m[3]);
}

// out[base + d..] = m, or += m when `add`.
fn put16(base: u32, d: u32, m: mat4x4<f32>, add: bool) {
    var v = m;
    if (add) {
        let last = base + p.dim - 1u;
        for (var c = 0u; c < 4u; c++) {
            let e = base + d + 4u * c;
            v[c] += vec4<f32>(out[min(e, last)], out[min(e + 1u, last)], out[min(e + 2u, last)], out[min(e + 3u, last)]);
        }
    }
    store16(base, d, v);
}
