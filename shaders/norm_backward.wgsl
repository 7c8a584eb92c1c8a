// Backward kernels of the normalisations (appended to norm.wgsl, whose `red`, `seg_sum`,
// `col_sum`, `TPR` and `SPLIT` they reuse; see src/ops/norm.rs).
//
// LayerNorm (rows, inner = 1) and LayerNorm2d (cols, inner > 1) over [outer, A, inner]:
// - `ln_rows_bwd` / `ln_cols_bwd`: one fused dx kernel per layout. It recomputes the forward
//   statistics exactly as `ln_rows` / `ln_cols` do (shifted two-pass, so x̂ matches the forward
//   bit for bit), then dx = rstd·(dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)), and stores
//   (mean, rstd) of every position in the `stats` scratch for the parameter gradients.
// - `ln_rows_bwd_partial` / `ln_cols_bwd_partial`: per block of positions, the partial sums
//   Σ dy·x̂ and Σ dy of every channel, in a fixed order, into the `part` scratch
//   [2, nb, A] (γ partials, then β partials).
// - `ln_bwd_final`: dγ[i] = Σ_b part[0, b, i], dβ[i] = Σ_b part[1, b, i], blocks in order.
// No atomics: every sum has an order fixed by the shapes, so results are deterministic.
//
// L2 normalisation: `l2_rows_bwd`, dx = (g − y·⟨g, y⟩)/‖x‖ with y = x/‖x‖ where ‖x‖ > eps,
// and g/eps otherwise (the clamp passes no gradient to the norm).

struct BParams {
    outer: u32,   // rows kernels: number of rows; cols kernels: outer count
    a: u32,       // length of the normalised axis (channels)
    inner: u32,   // stride of the normalised axis (1 for rows kernels)
    tiles: u32,   // cols dx kernel: column tiles per outer index; rows partial: channel tiles
    eps: f32,
    nb: u32,      // blocks of positions in the partial sums
    rb: u32,      // positions per block
    npos: u32,    // positions (outer·inner): statistics are stats[pos], stats[npos + pos]
}

@group(0) @binding(0) var<uniform> bp: BParams;
@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> bgamma: array<f32>;
@group(0) @binding(3) var<storage, read> bdy: array<f32>;
@group(0) @binding(4) var<storage, read_write> bdx: array<f32>;
@group(0) @binding(5) var<storage, read_write> bstats: array<f32>;

@compute @workgroup_size(256)
fn ln_rows_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rpw = WG / TPR;
    let row = linear_workgroup(wg, nwg) * rpw + lid / TPR;
    let t = lid % TPR;
    let valid = row < bp.outer;
    let c = bp.a;
    let fc = f32(c);
    let base = select(0u, row * c, valid);
    let n = select(0u, c, valid);
    let shift = select(0.0, bx[base], valid);
    var s = 0.0;
    for (var i = t; i < n; i += TPR) {
        s += bx[base + i] - shift;
    }
    let mean = shift + seg_sum(s, lid) / fc;
    var q = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    for (var i = t; i < n; i += TPR) {
        let d = bx[base + i] - mean;
        let gg = bdy[base + i] * bgamma[i];
        q += d * d;
        s1 += gg;
        s2 += gg * d;
    }
    let rstd = 1.0 / sqrt(seg_sum(q, lid) / fc + bp.eps);
    let m1 = seg_sum(s1, lid) / fc;
    // mean(dy·γ·x̂)
    let m2 = seg_sum(s2, lid) / fc * rstd;
    for (var i = t; i < n; i += TPR) {
        let xh = (bx[base + i] - mean) * rstd;
        bdx[base + i] = rstd * (bdy[base + i] * bgamma[i] - m1 - xh * m2);
    }
    if (valid && t == 0u) {
        bstats[row] = mean;
        bstats[bp.npos + row] = rstd;
    }
}

@compute @workgroup_size(256)
fn ln_cols_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let ct = WG / SPLIT;
    let w = linear_workgroup(wg, nwg);
    let o = w / bp.tiles;
    let col = (w % bp.tiles) * ct + lid % ct;
    let sidx = lid / ct;
    let valid = o < bp.outer && col < bp.inner;
    let c = bp.a;
    let fc = f32(c);
    let st = bp.inner;
    let base = select(0u, o * c * st + col, valid);
    let n = select(0u, c, valid);
    let shift = select(0.0, bx[base], valid);
    var s = 0.0;
    for (var i = sidx; i < n; i += SPLIT) {
        s += bx[base + i * st] - shift;
    }
    let mean = shift + col_sum(s, lid) / fc;
    var q = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    for (var i = sidx; i < n; i += SPLIT) {
        let k = base + i * st;
        let d = bx[k] - mean;
        let gg = bdy[k] * bgamma[i];
        q += d * d;
        s1 += gg;
        s2 += gg * d;
    }
    let rstd = 1.0 / sqrt(col_sum(q, lid) / fc + bp.eps);
    let m1 = col_sum(s1, lid) / fc;
    let m2 = col_sum(s2, lid) / fc * rstd;
    for (var i = sidx; i < n; i += SPLIT) {
        let k = base + i * st;
        let xh = (bx[k] - mean) * rstd;
        bdx[k] = rstd * (bdy[k] * bgamma[i] - m1 - xh * m2);
    }
    if (valid && sidx == 0u) {
        let pos = o * st + col;
        bstats[pos] = mean;
        bstats[bp.npos + pos] = rstd;
    }
}

@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> pstats: array<f32>;
@group(0) @binding(4) var<storage, read_write> ppart: array<f32>;

// Rows layout [rows, C]: workgroup w = block·tiles + channel tile (a 1-D grid, foldable); WG/SPLIT adjacent
// channels (coalesced reads), SPLIT row lanes each summing rows lane, lane + SPLIT, ... of
// the block, then a fixed tree over the lanes.
@compute @workgroup_size(256)
fn ln_rows_bwd_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let ct = WG / SPLIT;
    let c = bp.a;
    let w = linear_workgroup(wg, nwg);
    let blk = w / bp.tiles;
    let col = (w % bp.tiles) * ct + lid % ct;
    let lane = lid / ct;
    let r0 = blk * bp.rb;
    let r1 = min(r0 + bp.rb, bp.outer);
    var sg = 0.0;
    var sb = 0.0;
    if (col < c) {
        for (var r = r0 + lane; r < r1; r += SPLIT) {
            let k = r * c + col;
            let g = pdy[k];
            sg += g * (px[k] - pstats[r]) * pstats[bp.npos + r];
            sb += g;
        }
    }
    let tg = col_sum(sg, lid);
    let tb = col_sum(sb, lid);
    if (lane == 0u && col < c && blk < bp.nb) {
        ppart[blk * c + col] = tg;
        ppart[(bp.nb + blk) * c + col] = tb;
    }
}

// Cols layout [outer, C, inner]: workgroup w = channel·nb + position block; the 256
// invocations stride over the block's positions (adjacent pixels: coalesced), then a fixed
// tree over the workgroup (dispatched with SPLIT = 256).
@compute @workgroup_size(256)
fn ln_cols_bwd_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = bp.a;
    let st = bp.inner;
    let w = linear_workgroup(wg, nwg);
    let ch = w / bp.nb;
    let blk = w % bp.nb;
    let p0 = blk * bp.rb;
    let p1 = select(p0, min(p0 + bp.rb, bp.npos), ch < c);
    var sg = 0.0;
    var sb = 0.0;
    for (var pos = p0 + lid; pos < p1; pos += WG) {
        let o = pos / st;
        let k = (o * c + ch) * st + (pos - o * st);
        let g = pdy[k];
        sg += g * (px[k] - pstats[pos]) * pstats[bp.npos + pos];
        sb += g;
    }
    let tg = col_sum(sg, lid);
    let tb = col_sum(sb, lid);
    if (lid == 0u && ch < c) {
        ppart[blk * c + ch] = tg;
        ppart[(bp.nb + blk) * c + ch] = tb;
    }
}

@group(0) @binding(1) var<storage, read_write> fpart: array<f32>;
@group(0) @binding(2) var<storage, read_write> fdgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> fdbeta: array<f32>;

@compute @workgroup_size(256)
fn ln_bwd_final(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wg, nwg) * WG + lid;
    let c = bp.a;
    if (i >= c) {
        return;
    }
    var sg = 0.0;
    var sb = 0.0;
    for (var b = 0u; b < bp.nb; b++) {
        sg += fpart[b * c + i];
        sb += fpart[(bp.nb + b) * c + i];
    }
    fdgamma[i] = sg;
    fdbeta[i] = sb;
}

@group(0) @binding(1) var<storage, read> lx: array<f32>;
@group(0) @binding(2) var<storage, read> ldy: array<f32>;
@group(0) @binding(3) var<storage, read_write> ldx: array<f32>;

@compute @workgroup_size(256)
fn l2_rows_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rpw = WG / TPR;
    let row = linear_workgroup(wg, nwg) * rpw + lid / TPR;
    let t = lid % TPR;
    let valid = row < bp.outer;
    let c = bp.a;
    let base = select(0u, row * c, valid);
    let n = select(0u, c, valid);
    var q = 0.0;
    var d = 0.0;
    for (var i = t; i < n; i += TPR) {
        let v = lx[base + i];
        q += v * v;
        d += v * ldy[base + i];
    }
    let norm = sqrt(seg_sum(q, lid));
    let gx = seg_sum(d, lid);
    if (norm > bp.eps) {
        let inv = 1.0 / norm;
        // ⟨g, y⟩ with y = x/‖x‖
        let gy = gx * inv;
        for (var i = t; i < n; i += TPR) {
            ldx[base + i] = (ldy[base + i] - lx[base + i] * inv * gy) * inv;
        }
    } else {
        let inv = 1.0 / bp.eps;
        for (var i = t; i < n; i += TPR) {
            ldx[base + i] = ldy[base + i] * inv;
        }
    }
}
