// Subgroup variant of mm_vec; src/shaders.rs appends this file to matmul.wgsl (it uses that
// file's params, bindings, b_block and store_row), so it is its own module: only adapters with
// subgroups ever compile it.
//
// Each invocation owns TM_SG = 16 rows × one vec4 of columns. In mm_vec every invocation loads
// every A value of its rows itself; here lanes 0..7 of each subgroup load the A block
// together (lane l: row l, or for TRANS_A the vec4 of rows at k + l % 4; higher lanes repeat
// them) and every lane takes the values from lanes 0..7 with subgroupBroadcast. On lavapipe, where each divergent storage load costs a
// per-lane loop, this cuts the A loads 8×; on GPUs it is a register broadcast instead of a
// cache hit. Needs subgroups of at least 8 lanes (the host checks) and mm_vec's alignment.

const TM_SG: u32 = 16u;

// Columns i = 0..3: A(row + i, k..k+4) from four lanes' vec4s (see a_lane).
fn a_mat(l0: vec4<f32>, l1: vec4<f32>, l2: vec4<f32>, l3: vec4<f32>) -> mat4x4<f32> {
    // TRANS_A: lane j holds A(row..row+4, k + j).
    if (TRANS_A) {
        return transpose(mat4x4<f32>(l0, l1, l2, l3));
    }
    return mat4x4<f32>(l0, l1, l2, l3);
}

// The vec4 this lane loads for rows row0..row0+8 at k..k+4 (lane = subgroup lane % 8):
// A(row0 + lane, k..k+4), or with TRANS_A A(row0 + 4·(lane / 4) .. +4, k + lane % 4).
fn a_lane(base: u32, row0: u32, k: u32, lane: u32) -> vec4<f32> {
    if (TRANS_A) {
        var r = row0 + 4u * (lane / 4u);
        if (CHECK) {
            r = min(r, p.m - 4u);
        }
        return a4[(base + (k + lane % 4u) * p.lda + r) / 4u];
    }
    var r = row0 + lane;
    if (CHECK) {
        r = min(r, p.m - 1u);
    }
    return a4[(base + r * p.lda + k) / 4u];
}

@compute @workgroup_size(WGX)
fn mm_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
    let t = tile_of(wg, nwg, lid.x, TM_SG);
    let abase = p.a_off + wg.z * p.sa;
    let bbase = p.b_off + wg.z * p.sb;
    let lane = sl % 8u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k += 4u) {
        let bm = b_block(bbase, t.col, k);
        let av0 = a_lane(abase, t.row0 + 0u, k, lane);
        let av1 = a_lane(abase, t.row0 + 8u, k, lane);
        {
            let am = a_mat(
                subgroupBroadcast(av0, 0u),
                subgroupBroadcast(av0, 1u),
                subgroupBroadcast(av0, 2u),
                subgroupBroadcast(av0, 3u),
            );
            acc0 += bm * am[0];
            acc1 += bm * am[1];
            acc2 += bm * am[2];
            acc3 += bm * am[3];
        }
        {
            let am = a_mat(
                subgroupBroadcast(av0, 4u),
                subgroupBroadcast(av0, 5u),
                subgroupBroadcast(av0, 6u),
                subgroupBroadcast(av0, 7u),
            );
            acc4 += bm * am[0];
            acc5 += bm * am[1];
            acc6 += bm * am[2];
            acc7 += bm * am[3];
        }
        {
            let am = a_mat(
                subgroupBroadcast(av1, 0u),
                subgroupBroadcast(av1, 1u),
                subgroupBroadcast(av1, 2u),
                subgroupBroadcast(av1, 3u),
            );
            acc8 += bm * am[0];
            acc9 += bm * am[1];
            acc10 += bm * am[2];
            acc11 += bm * am[3];
        }
        {
            let am = a_mat(
                subgroupBroadcast(av1, 4u),
                subgroupBroadcast(av1, 5u),
                subgroupBroadcast(av1, 6u),
                subgroupBroadcast(av1, 7u),
            );
            acc12 += bm * am[0];
            acc13 += bm * am[1];
            acc14 += bm * am[2];
            acc15 += bm * am[3];
        }
    }
    let bv = bias_of(t);
    store_row(t, wg.z, t.row0 + 0u, acc0, bv);
    store_row(t, wg.z, t.row0 + 1u, acc1, bv);
    store_row(t, wg.z, t.row0 + 2u, acc2, bv);
    store_row(t, wg.z, t.row0 + 3u, acc3, bv);
    store_row(t, wg.z, t.row0 + 4u, acc4, bv);
    store_row(t, wg.z, t.row0 + 5u, acc5, bv);
    store_row(t, wg.z, t.row0 + 6u, acc6, bv);
    store_row(t, wg.z, t.row0 + 7u, acc7, bv);
    store_row(t, wg.z, t.row0 + 8u, acc8, bv);
    store_row(t, wg.z, t.row0 + 9u, acc9, bv);
    store_row(t, wg.z, t.row0 + 10u, acc10, bv);
    store_row(t, wg.z, t.row0 + 11u, acc11, bv);
    store_row(t, wg.z, t.row0 + 12u, acc12, bv);
    store_row(t, wg.z, t.row0 + 13u, acc13, bv);
    store_row(t, wg.z, t.row0 + 14u, acc14, bv);
    store_row(t, wg.z, t.row0 + 15u, acc15, bv);
}
