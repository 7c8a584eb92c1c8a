// Shared helpers, prepended to every kernel file (see src/shaders.rs).

// Index of this workgroup in a 1-D logical grid that the executor may have folded from x into
// y because x exceeded the adapter's per-dimension cap.
fn linear_workgroup(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// erf: Abramowitz & Stegun 7.1.26 refined form, |error| < 1.5e-7 (WGSL has no erf).
fn erf_approx(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
    return select(-y, y, x >= 0.0);
}

// Exact GELU, 0.5·x·(1 + erf(x/√2)).
fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}

// tanh with the argument clamped: some backends lower tanh through exp, which overflows.
fn tanh_safe(x: f32) -> f32 {
    return tanh(clamp(x, -10.0, 10.0));
}

// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
fn gelu_tanh(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh_safe(0.79788456080286536 * (x + 0.044715 * x * x * x)));
}

// Deterministic workgroup reductions: a fixed-order tree over 256 lanes (WGSL has no float
// atomics, and a fixed order makes every sum bit-reproducible). Call from uniform control flow
// with all 256 lanes; every lane gets the total.
var<workgroup> wg_sum: array<f32, 256>;

fn workgroup_sum_256(li: u32, v: f32) -> f32 {
    wg_sum[li] = v;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w / 2u) {
        if (li < w) {
            wg_sum[li] = wg_sum[li] + wg_sum[li + w];
        }
        workgroupBarrier();
    }
    return wg_sum[0];
}
