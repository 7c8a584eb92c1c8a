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

// acc[j] += a · column j, for one k: b0 holds columns 0..7 across the lanes, b1 8..15.
fn panel_fma(acc: ptr<function, Panel>, a: vec2<f32>, b0: f32, b1: f32) {
    (*acc)[0] = fma(a, vec2<f32>(subgroupBroadcast(b0, 0u)), (*acc)[0]);
    (*acc)[1] = fma(a, vec2<f32>(subgroupBroadcast(b0, 1u)), (*acc)[1]);
    (*acc)[2] = fma(a, vec2<f32>(subgroupBroadcast(b0, 2u)), (*acc)[2]);
    (*acc)[3] = fma(a, vec2<f32>(subgroupBroadcast(b0, 3u)), (*acc)[3]);
    (*acc)[4] = fma(a, vec2<f32>(subgroupBroadcast(b0, 4u)), (*acc)[4]);
    (*acc)[5] = fma(a, vec2<f32>(subgroupBroadcast(b0, 5u)), (*acc)[5]);
    (*acc)[6] = fma(a, vec2<f32>(subgroupBroadcast(b0, 6u)), (*acc)[6]);
    (*acc)[7] = fma(a, vec2<f32>(subgroupBroadcast(b0, 7u)), (*acc)[7]);
    (*acc)[8] = fma(a, vec2<f32>(subgroupBroadcast(b1, 0u)), (*acc)[8]);
    (*acc)[9] = fma(a, vec2<f32>(subgroupBroadcast(b1, 1u)), (*acc)[9]);
    (*acc)[10] = fma(a, vec2<f32>(subgroupBroadcast(b1, 2u)), (*acc)[10]);
    (*acc)[11] = fma(a, vec2<f32>(subgroupBroadcast(b1, 3u)), (*acc)[11]);
    (*acc)[12] = fma(a, vec2<f32>(subgroupBroadcast(b1, 4u)), (*acc)[12]);
    (*acc)[13] = fma(a, vec2<f32>(subgroupBroadcast(b1, 5u)), (*acc)[13]);
    (*acc)[14] = fma(a, vec2<f32>(subgroupBroadcast(b1, 6u)), (*acc)[14]);
    (*acc)[15] = fma(a, vec2<f32>(subgroupBroadcast(b1, 7u)), (*acc)[15]);
}

// Four k: a0, a1 are the lane's texels of row panels p0 and p0 + 1, b0, b1 its texels of the
// two column panels.
fn panel_step(acc: ptr<function, Panel>, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) {
    panel_fma(acc, vec2<f32>(a0.x, a1.x), b0.x, b1.x);
    panel_fma(acc, vec2<f32>(a0.y, a1.y), b0.y, b1.y);
    panel_fma(acc, vec2<f32>(a0.z, a1.z), b0.z, b1.z);
    panel_fma(acc, vec2<f32>(a0.w, a1.w), b0.w, b1.w);
}

// Columns 4h .. 4h + 3 of row panel `half` (0: p0, 1: p0 + 1) as one vec4.
fn panel_quad(acc: ptr<function, Panel>, h: u32, half: u32) -> vec4<f32> {
    let j = 4u * h;
    if (half == 0u) {
        return vec4<f32>((*acc)[j].x, (*acc)[j + 1u].x, (*acc)[j + 2u].x, (*acc)[j + 3u].x);
    }
    return vec4<f32>((*acc)[j].y, (*acc)[j + 1u].y, (*acc)[j + 2u].y, (*acc)[j + 3u].y);
}
