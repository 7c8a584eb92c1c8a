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
// TM rows × one vec4 of columns in registers. All invocations of a workgroup share the same
// rows, so A addresses depend only on the workgroup and the k loop: they are uniform, which
// software rasterisers (lavapipe) turn into one scalar load plus a broadcast, and real GPUs
// serve from cache as broadcasts. No workgroup memory and no barriers (each barrier splits the
// shader on lavapipe). B is read as vec4s, 4 k at a time.
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
override BIAS: bool = false;
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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Bound to A when there is no bias (BIAS = false never reads it).
@group(0) @binding(4) var<storage, read> bias: array<f32>;

struct Tile {
    valid: bool,
    row0: u32,
    col: u32,
}

fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, lx: u32) -> Tile {
    let t0 = linear_workgroup(wg, nwg);
    let t = min(t0, p.tiles - 1u);
    return Tile(t0 < p.tiles, (t / p.tiles_n) * TM, (t % p.tiles_n) * 4u * WGX + lx * 4u);
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

fn store_tile(t: Tile, z: u32, acc: array<vec4<f32>, TM>) {
    if (!t.valid) {
        return;
    }
    var bv = vec4<f32>(0.0);
    if (BIAS) {
        for (var j = 0u; j < 4u; j++) {
            if (t.col + j < p.n) {
                bv[j] = bias[p.bias_off + t.col + j];
            }
        }
    }
    let base = p.c_off + z * p.sc;
    for (var i = 0u; i < TM; i++) {
        let r = t.row0 + i;
        if (r < p.m) {
            let v = acc[i] * p.alpha + bv;
            let o = base + r * p.ldc + t.col;
            for (var j = 0u; j < 4u; j++) {
                if (t.col + j < p.n) {
                    c[o + j] = v[j];
                }
            }
        }
    }
}

@compute @workgroup_size(WGX)
fn mm_vec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wg, nwg, lid.x);
    let abase = p.a_off + wg.z * p.sa;
    let bbase = p.b_off + wg.z * p.sb;
    var acc: array<vec4<f32>, TM>;
    for (var k = 0u; k < p.k; k += 4u) {
        let bm = b_block(bbase, t.col, k);
        for (var g = 0u; g < TM; g += 4u) {
            let am = a_block(abase, t.row0 + g, k);
            acc[g] += bm * am[0];
            acc[g + 1u] += bm * am[1];
            acc[g + 2u] += bm * am[2];
            acc[g + 3u] += bm * am[3];
        }
    }
    store_tile(t, wg.z, acc);
}

@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(2) var<storage, read> b1: array<f32>;

@compute @workgroup_size(WGX)
fn mm_scalar(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wg, nwg, lid.x);
    let abase = p.a_off + wg.z * p.sa;
    let bbase = p.b_off + wg.z * p.sb;
    // Clamped row and column indices: out-of-range ones load valid data that is never stored.
    var rows: array<u32, TM>;
    for (var i = 0u; i < TM; i++) {
        rows[i] = min(t.row0 + i, p.m - 1u);
    }
    var cols: vec4<u32>;
    for (var j = 0u; j < 4u; j++) {
        cols[j] = min(t.col + j, p.n - 1u);
    }
    var acc: array<vec4<f32>, TM>;
    for (var k = 0u; k < p.k; k++) {
        var bv: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            if (TRANS_B) {
                bv[j] = b1[bbase + cols[j] * p.ldb + k];
            } else {
                bv[j] = b1[bbase + k * p.ldb + cols[j]];
            }
        }
        for (var i = 0u; i < TM; i++) {
            var av: f32;
            if (TRANS_A) {
                av = a1[abase + k * p.lda + rows[i]];
            } else {
                av = a1[abase + rows[i] * p.lda + k];
            }
            acc[i] += bv * av;
        }
    }
    store_tile(t, wg.z, acc);
}
