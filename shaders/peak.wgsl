// Ceiling probes for `unitok bench`: a pure-FMA kernel (no memory traffic in the loop) for the
// adapter's arithmetic ceiling, a vec4 copy for its memory bandwidth, and the cost of one vec4
// load from a storage buffer against one from a storage texture (load_buffer / load_texture).

struct Params {
    n: u32,      // invocations (fma, loads) / vec4 elements (copy)
    iters: u32,  // FMA loop trips / loads per invocation
    w: u32,      // loads: vec4s per row of the source
    h: u32,      // loads: rows of the source
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

// 12 independent vec4 chains so the FMA units are never waiting on one dependency, and the loop
// body unrolled 4× so loop control is not what is measured: on lavapipe a loop trip costs about
// 1.7× the 8 vec4 FMAs of one step, and with one step per trip this probe read ~2.8× below the
// ALU peak (14 against 38–41 GFLOP/s within minutes on the same machine).
// Longer bodies (8× or 16×) measured lower again. Chains: on the 2-core CI machine 8 read
// ~65 GFLOP/s, 10–14 ~69–71 and 16 less again; 12 it is (a ceiling should not under-read).
// Each chain takes exactly `iters` steps.
@compute @workgroup_size(256)
fn fma_peak(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= p.n) { return; }
    let s = f32(i % 1024u) * 0.0009765625;
    var a0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
    var a1 = a0 + 0.01; var a2 = a0 + 0.02; var a3 = a0 + 0.03;
    var a4 = a0 + 0.04; var a5 = a0 + 0.05; var a6 = a0 + 0.06; var a7 = a0 + 0.07;
    var a8 = a0 + 0.08; var a9 = a0 + 0.09; var a10 = a0 + 0.10; var a11 = a0 + 0.11;
    let m = vec4<f32>(0.999);
    let c = vec4<f32>(0.001);
    for (var k = 0u; k < p.iters / 4u; k = k + 1u) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
        a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
        a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
        a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
        a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c);
    }
    for (var k = 0u; k < p.iters % 4u; k = k + 1u) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
        a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c);
    }
    let t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    out[i] = t.x + t.y + t.z + t.w;
}

@group(0) @binding(0) var<uniform> pc: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn copy_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= pc.n) { return; }
    dst[i] = src[i];
}

// Load probes: invocation i reads `iters` vec4s, one per row (column i mod w, rows from i / w
// on, wrapping), each feeding a chain of 4 dependent vec4 FMAs. Neighbouring invocations read
// neighbouring vec4s, as the kernels' panels do. load_buffer reads a storage buffer,
// load_texture the same values from a read-only storage texture.
@group(0) @binding(1) var src_t: texture_storage_2d<rgba32float, read>;

fn load_chain(a: vec4<f32>, v: vec4<f32>) -> vec4<f32> {
    let b = fma(v, vec4<f32>(0.5), a);
    let c = fma(b, vec4<f32>(0.25), v);
    let d = fma(c, vec4<f32>(0.125), b);
    return fma(d, vec4<f32>(0.0625), c);
}

@compute @workgroup_size(64)
fn load_buffer(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 64u + li;
    if (i >= pc.n) { return; }
    let x = i % pc.w;
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < pc.iters; j += 1u) {
        let y = (i / pc.w + j) % pc.h;
        acc = load_chain(acc, src[y * pc.w + x]);
    }
    dst[i] = acc;
}

@compute @workgroup_size(64)
fn load_texture(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 64u + li;
    if (i >= pc.n) { return; }
    let x = i % pc.w;
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < pc.iters; j += 1u) {
        let y = (i / pc.w + j) % pc.h;
        acc = load_chain(acc, textureLoad(src_t, vec2<u32>(x, y)));
    }
    dst[i] = acc;
}
