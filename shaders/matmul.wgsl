// Matmul / linear: C[z] = alpha · op(A[z]) · op(B[z]) (+ bias), f32 accumulation.
//
// Layout (element indices, all in the uniform block so backward passes can reuse the kernels
// on sub-matrices):
//   A(m, k) = a[a_off + z·sa + m·lda + k]      (TRANS_A: a[a_off + z·sa + k·lda + m])
//   B(k, n) = b[b_off + z·sb + k·ldb + n]      (TRANS_B: b[b_off + z·sb + n·ldb + k])
//   C(m, n) = c[c_off + z·sc + m·ldc + n],  bias(n) = bias[bias_off + n]
// sb = 0 shares one B (a weight) across the batch; c_off/bias_off/ldc let a weight that is
// split into row chunks write its own column range of C.
//
// Work split: a 1-D logical grid of tiles (x, possibly folded into y by the executor) times the
// batch (z). A workgroup of WGX invocations owns TM rows × 4·WGX columns; each invocation owns
// TM rows × one vec4 of columns in registers (f32 accumulators as plain variables: indexed
// local arrays can end up in memory). All invocations of a workgroup share the same rows, so
// A reads are broadcasts (same address in every lane); B is read as vec4s, 4 k at a time. No
// workgroup memory and no barriers (each barrier splits the shader on lavapipe).
//
// On lavapipe (Mesa 22.3) every storage load whose offset is not a compile-time or
// push-constant uniform runs a per-lane loop with a bounds check per component, so loads, not
// FMAs, bound the speed: throughput follows the storage elements loaded per FMA. matmul_sg.wgsl
// (appended to this file) cuts the A loads 8× with subgroup broadcasts.
//
// Entry points:
//   mm_vec    — vec4 loads; needs K % 4 == 0, N % 4 == 0 unless TRANS_B, M % 4 == 0 if TRANS_A,
//               and every offset / leading dimension a multiple of 4 (the host checks).
//               CHECK = false is the tile-fit variant (M % TM == 0, N % (4·WGX) == 0): no
//               clamps at all. CHECK = true clamps indices at the M and N edges.
//   mm_scalar — any shape and stride: scalar loads, one k at a time, clamped indices.
// Out-of-range rows/columns are never skipped with a branch before the k loop (that would put
// the loads under divergent control flow); their loads are clamped and their stores masked.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override CHECK: bool = true;
override WGX: u32 = 64u;

// Rows per invocation (a multiple of 4).
const TM: u32 = 8u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    tiles: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    sa: u32,
    sb: u32,
    sc: u32,
    alpha: f32,
    // 1: add bias[bias_off + n] (a uniform flag, not an override: it is read once per
    // invocation, and fewer pipelines compile faster).
    has_bias: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Bound to A when there is no bias (has_bias = 0 never reads it).
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// The same bindings as scalars, for mm_scalar.
@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(2) var<storage, read> b1: array<f32>;

struct Tile {
    valid: bool,
    row0: u32,
    col: u32,
}

// The tile of this workgroup (tm rows) and this invocation's first column. Workgroups past
// the end of a folded grid get valid = false and clamp to the last tile, so every load stays
// in range and nothing is stored.
fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, lx: u32, tm: u32) -> Tile {
    let t0 = linear_workgroup(wg, nwg);
    let t = min(t0, p.tiles - 1u);
    return Tile(t0 < p.tiles, (t / p.tiles_n) * tm, (t % p.tiles_n) * 4u * WGX + lx * 4u);
}

// Columns i = 0..3: A(row + i, k..k+4).
fn a_block(base: u32, row: u32, k: u32) -> mat4x4<f32> {
    if (TRANS_A) {
        var r = row;
        if (CHECK) {
            r = min(row, p.m - 4u);
        }
        let i = (base + k * p.lda + r) / 4u;
        let s = p.lda / 4u;
        return transpose(mat4x4<f32>(a4[i], a4[i + s], a4[i + 2u * s], a4[i + 3u * s]));
    }
    var r0 = row;
    var r1 = row + 1u;
    var r2 = row + 2u;
    var r3 = row + 3u;
    if (CHECK) {
        let last = p.m - 1u;
        r0 = min(r0, last);
        r1 = min(r1, last);
        r2 = min(r2, last);
        r3 = min(r3, last);
    }
    return mat4x4<f32>(
        a4[(base + r0 * p.lda + k) / 4u],
        a4[(base + r1 * p.lda + k) / 4u],
        a4[(base + r2 * p.lda + k) / 4u],
        a4[(base + r3 * p.lda + k) / 4u],
    );
}

// Columns kk = 0..3: B(k + kk, col..col+4).
fn b_block(base: u32, col: u32, k: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        var n0 = col;
        var n1 = col + 1u;
        var n2 = col + 2u;
        var n3 = col + 3u;
        if (CHECK) {
            let last = p.n - 1u;
            n0 = min(n0, last);
            n1 = min(n1, last);
            n2 = min(n2, last);
            n3 = min(n3, last);
        }
        return transpose(mat4x4<f32>(
            b4[(base + n0 * p.ldb + k) / 4u],
            b4[(base + n1 * p.ldb + k) / 4u],
            b4[(base + n2 * p.ldb + k) / 4u],
            b4[(base + n3 * p.ldb + k) / 4u],
        ));
    }
    var n = col;
    if (CHECK) {
        n = min(col, p.n - 4u);
    }
    let i = (base + k * p.ldb + n) / 4u;
    let s = p.ldb / 4u;
    return mat4x4<f32>(b4[i], b4[i + s], b4[i + 2u * s], b4[i + 3u * s]);
}

// The bias of this invocation's four columns (zero without bias).
fn bias_of(t: Tile) -> vec4<f32> {
    var bv = vec4<f32>(0.0);
    if (p.has_bias != 0u) {
        for (var j = 0u; j < 4u; j++) {
            if (t.col + j < p.n) {
                bv[j] = bias[p.bias_off + t.col + j];
            }
        }
    }
    return bv;
}

// C(row, col..col+4) = alpha · acc + bias, for the columns inside N.
fn store_row(t: Tile, z: u32, row: u32, acc: vec4<f32>, bv: vec4<f32>) {
    if (!t.valid || row >= p.m) {
        return;
    }
    let v = acc * p.alpha + bv;
    let o = p.c_off + z * p.sc + row * p.ldc + t.col;
    for (var j = 0u; j < 4u; j++) {
        if (t.col + j < p.n) {
            c[o + j] = v[j];
        }
    }
}

fn store_tile(t: Tile, z: u32, acc: array<vec4<f32>, TM>) {
    let bv = bias_of(t);
    for (var i = 0u; i < TM; i++) {
        store_row(t, z, t.row0 + i, acc[i], bv);
    }
}

@compute @workgroup_size(WGX)
fn mm_vec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wg, nwg, lid.x, TM);
    let abase = p.a_off + wg.z * p.sa;
    let bbase = p.b_off + wg.z * p.sb;
    // Accumulators as plain variables: an indexed local array may end up in memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k += 4u) {
        let bm = b_block(bbase, t.col, k);
        let am = a_block(abase, t.row0, k);
        acc0 += bm * am[0];
        acc1 += bm * am[1];
        acc2 += bm * am[2];
        acc3 += bm * am[3];
        let an = a_block(abase, t.row0 + 4u, k);
        acc4 += bm * an[0];
        acc5 += bm * an[1];
        acc6 += bm * an[2];
        acc7 += bm * an[3];
    }
    store_tile(t, wg.z, array<vec4<f32>, TM>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7));
}


// A(row, k) for the scalar kernel; row is already clamped.
fn a_at(base: u32, row: u32, k: u32) -> f32 {
    if (TRANS_A) {
        return a1[base + k * p.lda + row];
    }
    return a1[base + row * p.lda + k];
}

// B(k, n) for the scalar kernel; n is already clamped.
fn b_at(base: u32, k: u32, n: u32) -> f32 {
    if (TRANS_B) {
        return b1[base + n * p.ldb + k];
    }
    return b1[base + k * p.ldb + n];
}

@compute @workgroup_size(WGX)
fn mm_scalar(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wg, nwg, lid.x, TM);
    let abase = p.a_off + wg.z * p.sa;
    let bbase = p.b_off + wg.z * p.sb;
    // Clamped rows and columns: out-of-range ones load valid data that is never stored.
    let lr = p.m - 1u;
    let r0 = min(t.row0, lr);
    let r1 = min(t.row0 + 1u, lr);
    let r2 = min(t.row0 + 2u, lr);
    let r3 = min(t.row0 + 3u, lr);
    let r4 = min(t.row0 + 4u, lr);
    let r5 = min(t.row0 + 5u, lr);
    let r6 = min(t.row0 + 6u, lr);
    let r7 = min(t.row0 + 7u, lr);
    let lc = p.n - 1u;
    let n0 = min(t.col, lc);
    let n1 = min(t.col + 1u, lc);
    let n2 = min(t.col + 2u, lc);
    let n3 = min(t.col + 3u, lc);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k++) {
        let bv = vec4<f32>(b_at(bbase, k, n0), b_at(bbase, k, n1), b_at(bbase, k, n2), b_at(bbase, k, n3));
        acc0 += bv * a_at(abase, r0, k);
        acc1 += bv * a_at(abase, r1, k);
        acc2 += bv * a_at(abase, r2, k);
        acc3 += bv * a_at(abase, r3, k);
        acc4 += bv * a_at(abase, r4, k);
        acc5 += bv * a_at(abase, r5, k);
        acc6 += bv * a_at(abase, r6, k);
        acc7 += bv * a_at(abase, r7, k);
    }
    store_tile(t, wg.z, array<vec4<f32>, TM>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7));
}
