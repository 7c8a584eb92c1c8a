// Conversions between f32 and f16 storage. A separate module because it needs `enable f16;`,
// which only adapters with SHADER_F16 accept; the rest of the library never depends on it.
enable f16;

struct Params {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src_h: array<f16>;
@group(0) @binding(2) var<storage, read_write> dst_f: array<f32>;

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = linear_workgroup(wg, nwg) * 256u + li;
    if (i >= p.n) { return; }
    dst_f[i] = f32(src_h[i]);
}

@group(0) @binding(0) var<uniform> q: Params;
@group(0) @binding(1) var<storage, read> src_f: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst_h: array<f16>;

// Two halves per invocation: each writes a whole 32-bit word, so no two invocations share one.
@compute @workgroup_size(256)
fn f32_to_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (linear_workgroup(wg, nwg) * 256u + li) * 2u;
    if (i >= q.n) { return; }
    dst_h[i] = f16(src_f[i]);
    if (i + 1u < q.n) {
        dst_h[i + 1u] = f16(src_f[i + 1u]);
    }
}
