// The register tile of the texture-operand kernels (matmul_tex.wgsl, conv_tex.wgsl);
// src/shaders.rs prepends it to both.
//
// One subgroup of exactly 8 lanes computes 16 rows × 16 columns of an output: lane l owns
// rows 8·p0 + l and 8·(p0 + 1) + l (two row panels of the A texture, one texel each per 4 k)
// and the subgroup shares 16 columns: lane j loads the texel of column 8·q + j for the
// subgroup's two column panels, and subgroupBroadcast hands every lane each column's value.
// acc[j] holds column j for the lane's two rows (.x: row panel p0, .y: p0 + 1). Per 4 k every
// lane does 128 FMAs for 4 texture loads.

alias Panel = array<vec2<f32>, 16>;

// Four k: a0, a1 are the lane's texels of row panels p0 and p0 + 1, b0, b1 its texels of the
// two column panels; subgroupBroadcast hands every lane column j's texel.
// Accumulator-major: the accumulators need 32 vector registers (AVX2 has 16), so they live in
// spill slots, and each acc[j] takes its 4 FMAs in a row — one reload and one store per 4 k
// instead of per k. On the 2-core CI machine that made mm_panel ~15 % faster (1024³ median
// 94 → 79 ms): there the spill stores, not the FMAs, set the pace.
fn panel_step(acc: ptr<function, Panel>, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) {
    let ax = vec2<f32>(a0.x, a1.x);
    let ay = vec2<f32>(a0.y, a1.y);
    let az = vec2<f32>(a0.z, a1.z);
    let aw = vec2<f32>(a0.w, a1.w);
    let c0 = subgroupBroadcast(b0, 0u);
    (*acc)[0] = fma(aw, vec2<f32>(c0.w), fma(az, vec2<f32>(c0.z), fma(ay, vec2<f32>(c0.y), fma(ax, vec2<f32>(c0.x), (*acc)[0]))));
    let c8 = subgroupBroadcast(b1, 0u);
    (*acc)[8] = fma(aw, vec2<f32>(c8.w), fma(az, vec2<f32>(c8.z), fma(ay, vec2<f32>(c8.y), fma(ax, vec2<f32>(c8.x), (*acc)[8]))));
    let c1 = subgroupBroadcast(b0, 1u);
    (*acc)[1] = fma(aw, vec2<f32>(c1.w), fma(az, vec2<f32>(c1.z), fma(ay, vec2<f32>(c1.y), fma(ax, vec2<f32>(c1.x), (*acc)[1]))));
    let c9 = subgroupBroadcast(b1, 1u);
    (*acc)[9] = fma(aw, vec2<f32>(c9.w), fma(az, vec2<f32>(c9.z), fma(ay, vec2<f32>(c9.y), fma(ax, vec2<f32>(c9.x), (*acc)[9]))));
    let c2 = subgroupBroadcast(b0, 2u);
    (*acc)[2] = fma(aw, vec2<f32>(c2.w), fma(az, vec2<f32>(c2.z), fma(ay, vec2<f32>(c2.y), fma(ax, vec2<f32>(c2.x), (*acc)[2]))));
    let c10 = subgroupBroadcast(b1, 2u);
    (*acc)[10] = fma(aw, vec2<f32>(c10.w), fma(az, vec2<f32>(c10.z), fma(ay, vec2<f32>(c10.y), fma(ax, vec2<f32>(c10.x), (*acc)[10]))));
    let c3 = subgroupBroadcast(b0, 3u);
    (*acc)[3] = fma(aw, vec2<f32>(c3.w), fma(az, vec2<f32>(c3.z), fma(ay, vec2<f32>(c3.y), fma(ax, vec2<f32>(c3.x), (*acc)[3]))));
    let c11 = subgroupBroadcast(b1, 3u);
    (*acc)[11] = fma(aw, vec2<f32>(c11.w), fma(az, vec2<f32>(c11.z), fma(ay, vec2<f32>(c11.y), fma(ax, vec2<f32>(c11.x), (*acc)[11]))));
    let c4 = subgroupBroadcast(b0, 4u);
    (*acc)[4] = fma(aw, vec2<f32>(c4.w), fma(az, vec2<f32>(c4.z), fma(ay, vec2<f32>(c4.y), fma(ax, vec2<f32>(c4.x), (*acc)[4]))));
    let c12 = subgroupBroadcast(b1, 4u);
    (*acc)[12] = fma(aw, vec2<f32>(c12.w), fma(az, vec2<f32>(c12.z), fma(ay, vec2<f32>(c12.y), fma(ax, vec2<f32>(c12.x), (*acc)[12]))));
    let c5 = subgroupBroadcast(b0, 5u);
    (*acc)[5] = fma(aw, vec2<f32>(c5.w), fma(az, vec2<f32>(c5.z), fma(ay, vec2<f32>(c5.y), fma(ax, vec2<f32>(c5.x), (*acc)[5]))));
    let c13 = subgroupBroadcast(b1, 5u);
    (*acc)[13] = fma(aw, vec2<f32>(c13.w), fma(az, vec2<f32>(c13.z), fma(ay, vec2<f32>(c13.y), fma(ax, vec2<f32>(c13.x), (*acc)[13]))));
    let c6 = subgroupBroadcast(b0, 6u);
    (*acc)[6] = fma(aw, vec2<f32>(c6.w), fma(az, vec2<f32>(c6.z), fma(ay, vec2<f32>(c6.y), fma(ax, vec2<f32>(c6.x), (*acc)[6]))));
    let c14 = subgroupBroadcast(b1, 6u);
    (*acc)[14] = fma(aw, vec2<f32>(c14.w), fma(az, vec2<f32>(c14.z), fma(ay, vec2<f32>(c14.y), fma(ax, vec2<f32>(c14.x), (*acc)[14]))));
    let c7 = subgroupBroadcast(b0, 7u);
    (*acc)[7] = fma(aw, vec2<f32>(c7.w), fma(az, vec2<f32>(c7.z), fma(ay, vec2<f32>(c7.y), fma(ax, vec2<f32>(c7.x), (*acc)[7]))));
    let c15 = subgroupBroadcast(b1, 7u);
    (*acc)[15] = fma(aw, vec2<f32>(c15.w), fma(az, vec2<f32>(c15.z), fma(ay, vec2<f32>(c15.y), fma(ax, vec2<f32>(c15.x), (*acc)[15]))));
}

// Columns 4h .. 4h + 3 of row panel `half` (0: p0, 1: p0 + 1) as one vec4.
fn panel_quad(acc: ptr<function, Panel>, h: u32, half: u32) -> vec4<f32> {
    let j = 4u * h;
    if (half == 0u) {
        return vec4<f32>((*acc)[j].x, (*acc)[j + 1u].x, (*acc)[j + 2u].x, (*acc)[j + 3u].x);
    }
    return vec4<f32>((*acc)[j].y, (*acc)[j + 1u].y, (*acc)[j + 2u].y, (*acc)[j + 3u].y);
}
