// Subgroup variant of mm_vec; src/shaders.rs appends this file to matmul.wgsl (it uses that
// file's params, bindings, b_block and store_row), so it is its own module: only adapters with
// subgroups ever compile it.
//
// Each invocation owns TM_SG = 64 rows × one vec4 of columns. In mm_vec every invocation loads
// every A value of its rows itself; here lanes 0..7 of each subgroup load the A block
// together (lane l: row l, or for TRANS_A the vec4 of rows at k + l % 4; higher lanes repeat
// them) and every lane takes the values from lanes 0..7 with subgroupBroadcast. On lavapipe, where each divergent storage load costs a
// per-lane loop, this cuts the A loads 8×; on GPUs it is a register broadcast instead of a
// cache hit. Needs subgroups of at least 8 lanes (the host checks) and mm_vec's alignment.

const TM_SG: u32 = 64u;

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
    var acc16 = vec4<f32>(0.0);
    var acc17 = vec4<f32>(0.0);
    var acc18 = vec4<f32>(0.0);
    var acc19 = vec4<f32>(0.0);
    var acc20 = vec4<f32>(0.0);
    var acc21 = vec4<f32>(0.0);
    var acc22 = vec4<f32>(0.0);
    var acc23 = vec4<f32>(0.0);
    var acc24 = vec4<f32>(0.0);
    var acc25 = vec4<f32>(0.0);
    var acc26 = vec4<f32>(0.0);
    var acc27 = vec4<f32>(0.0);
    var acc28 = vec4<f32>(0.0);
    var acc29 = vec4<f32>(0.0);
    var acc30 = vec4<f32>(0.0);
    var acc31 = vec4<f32>(0.0);
    var acc32 = vec4<f32>(0.0);
    var acc33 = vec4<f32>(0.0);
    var acc34 = vec4<f32>(0.0);
    var acc35 = vec4<f32>(0.0);
    var acc36 = vec4<f32>(0.0);
    var acc37 = vec4<f32>(0.0);
    var acc38 = vec4<f32>(0.0);
    var acc39 = vec4<f32>(0.0);
    var acc40 = vec4<f32>(0.0);
    var acc41 = vec4<f32>(0.0);
    var acc42 = vec4<f32>(0.0);
    var acc43 = vec4<f32>(0.0);
    var acc44 = vec4<f32>(0.0);
    var acc45 = vec4<f32>(0.0);
    var acc46 = vec4<f32>(0.0);
    var acc47 = vec4<f32>(0.0);
    var acc48 = vec4<f32>(0.0);
    var acc49 = vec4<f32>(0.0);
    var acc50 = vec4<f32>(0.0);
    var acc51 = vec4<f32>(0.0);
    var acc52 = vec4<f32>(0.0);
    var acc53 = vec4<f32>(0.0);
    var acc54 = vec4<f32>(0.0);
    var acc55 = vec4<f32>(0.0);
    var acc56 = vec4<f32>(0.0);
    var acc57 = vec4<f32>(0.0);
    var acc58 = vec4<f32>(0.0);
    var acc59 = vec4<f32>(0.0);
    var acc60 = vec4<f32>(0.0);
    var acc61 = vec4<f32>(0.0);
    var acc62 = vec4<f32>(0.0);
    var acc63 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k += 4u) {
        let bm = b_block(bbase, t.col, k);
        let av0 = a_lane(abase, t.row0 + 0u, k, lane);
        let av1 = a_lane(abase, t.row0 + 8u, k, lane);
        let av2 = a_lane(abase, t.row0 + 16u, k, lane);
        let av3 = a_lane(abase, t.row0 + 24u, k, lane);
        let av4 = a_lane(abase, t.row0 + 32u, k, lane);
        let av5 = a_lane(abase, t.row0 + 40u, k, lane);
        let av6 = a_lane(abase, t.row0 + 48u, k, lane);
        let av7 = a_lane(abase, t.row0 + 56u, k, lane);
        {
            let am = a_mat(subgroupBroadcast(av0, 0u), subgroupBroadcast(av0, 1u), subgroupBroadcast(av0, 2u), subgroupBroadcast(av0, 3u));
            acc0 += bm * am[0];
            acc1 += bm * am[1];
            acc2 += bm * am[2];
            acc3 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av0, 4u), subgroupBroadcast(av0, 5u), subgroupBroadcast(av0, 6u), subgroupBroadcast(av0, 7u));
            acc4 += bm * am[0];
            acc5 += bm * am[1];
            acc6 += bm * am[2];
            acc7 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av1, 0u), subgroupBroadcast(av1, 1u), subgroupBroadcast(av1, 2u), subgroupBroadcast(av1, 3u));
            acc8 += bm * am[0];
            acc9 += bm * am[1];
            acc10 += bm * am[2];
            acc11 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av1, 4u), subgroupBroadcast(av1, 5u), subgroupBroadcast(av1, 6u), subgroupBroadcast(av1, 7u));
            acc12 += bm * am[0];
            acc13 += bm * am[1];
            acc14 += bm * am[2];
            acc15 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av2, 0u), subgroupBroadcast(av2, 1u), subgroupBroadcast(av2, 2u), subgroupBroadcast(av2, 3u));
            acc16 += bm * am[0];
            acc17 += bm * am[1];
            acc18 += bm * am[2];
            acc19 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av2, 4u), subgroupBroadcast(av2, 5u), subgroupBroadcast(av2, 6u), subgroupBroadcast(av2, 7u));
            acc20 += bm * am[0];
            acc21 += bm * am[1];
            acc22 += bm * am[2];
            acc23 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av3, 0u), subgroupBroadcast(av3, 1u), subgroupBroadcast(av3, 2u), subgroupBroadcast(av3, 3u));
            acc24 += bm * am[0];
            acc25 += bm * am[1];
            acc26 += bm * am[2];
            acc27 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av3, 4u), subgroupBroadcast(av3, 5u), subgroupBroadcast(av3, 6u), subgroupBroadcast(av3, 7u));
            acc28 += bm * am[0];
            acc29 += bm * am[1];
            acc30 += bm * am[2];
            acc31 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av4, 0u), subgroupBroadcast(av4, 1u), subgroupBroadcast(av4, 2u), subgroupBroadcast(av4, 3u));
            acc32 += bm * am[0];
            acc33 += bm * am[1];
            acc34 += bm * am[2];
            acc35 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av4, 4u), subgroupBroadcast(av4, 5u), subgroupBroadcast(av4, 6u), subgroupBroadcast(av4, 7u));
            acc36 += bm * am[0];
            acc37 += bm * am[1];
            acc38 += bm * am[2];
            acc39 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av5, 0u), subgroupBroadcast(av5, 1u), subgroupBroadcast(av5, 2u), subgroupBroadcast(av5, 3u));
            acc40 += bm * am[0];
            acc41 += bm * am[1];
            acc42 += bm * am[2];
            acc43 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av5, 4u), subgroupBroadcast(av5, 5u), subgroupBroadcast(av5, 6u), subgroupBroadcast(av5, 7u));
            acc44 += bm * am[0];
            acc45 += bm * am[1];
            acc46 += bm * am[2];
            acc47 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av6, 0u), subgroupBroadcast(av6, 1u), subgroupBroadcast(av6, 2u), subgroupBroadcast(av6, 3u));
            acc48 += bm * am[0];
            acc49 += bm * am[1];
            acc50 += bm * am[2];
            acc51 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av6, 4u), subgroupBroadcast(av6, 5u), subgroupBroadcast(av6, 6u), subgroupBroadcast(av6, 7u));
            acc52 += bm * am[0];
            acc53 += bm * am[1];
            acc54 += bm * am[2];
            acc55 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av7, 0u), subgroupBroadcast(av7, 1u), subgroupBroadcast(av7, 2u), subgroupBroadcast(av7, 3u));
            acc56 += bm * am[0];
            acc57 += bm * am[1];
            acc58 += bm * am[2];
            acc59 += bm * am[3];
        }
        {
            let am = a_mat(subgroupBroadcast(av7, 4u), subgroupBroadcast(av7, 5u), subgroupBroadcast(av7, 6u), subgroupBroadcast(av7, 7u));
            acc60 += bm * am[0];
            acc61 += bm * am[1];
            acc62 += bm * am[2];
            acc63 += bm * am[3];
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
    store_row(t, wg.z, t.row0 + 16u, acc16, bv);
    store_row(t, wg.z, t.row0 + 17u, acc17, bv);
    store_row(t, wg.z, t.row0 + 18u, acc18, bv);
    store_row(t, wg.z, t.row0 + 19u, acc19, bv);
    store_row(t, wg.z, t.row0 + 20u, acc20, bv);
    store_row(t, wg.z, t.row0 + 21u, acc21, bv);
    store_row(t, wg.z, t.row0 + 22u, acc22, bv);
    store_row(t, wg.z, t.row0 + 23u, acc23, bv);
    store_row(t, wg.z, t.row0 + 24u, acc24, bv);
    store_row(t, wg.z, t.row0 + 25u, acc25, bv);
    store_row(t, wg.z, t.row0 + 26u, acc26, bv);
    store_row(t, wg.z, t.row0 + 27u, acc27, bv);
    store_row(t, wg.z, t.row0 + 28u, acc28, bv);
    store_row(t, wg.z, t.row0 + 29u, acc29, bv);
    store_row(t, wg.z, t.row0 + 30u, acc30, bv);
    store_row(t, wg.z, t.row0 + 31u, acc31, bv);
    store_row(t, wg.z, t.row0 + 32u, acc32, bv);
    store_row(t, wg.z, t.row0 + 33u, acc33, bv);
    store_row(t, wg.z, t.row0 + 34u, acc34, bv);
    store_row(t, wg.z, t.row0 + 35u, acc35, bv);
    store_row(t, wg.z, t.row0 + 36u, acc36, bv);
    store_row(t, wg.z, t.row0 + 37u, acc37, bv);
    store_row(t, wg.z, t.row0 + 38u, acc38, bv);
    store_row(t, wg.z, t.row0 + 39u, acc39, bv);
    store_row(t, wg.z, t.row0 + 40u, acc40, bv);
    store_row(t, wg.z, t.row0 + 41u, acc41, bv);
    store_row(t, wg.z, t.row0 + 42u, acc42, bv);
    store_row(t, wg.z, t.row0 + 43u, acc43, bv);
    store_row(t, wg.z, t.row0 + 44u, acc44, bv);
    store_row(t, wg.z, t.row0 + 45u, acc45, bv);
    store_row(t, wg.z, t.row0 + 46u, acc46, bv);
    store_row(t, wg.z, t.row0 + 47u, acc47, bv);
    store_row(t, wg.z, t.row0 + 48u, acc48, bv);
    store_row(t, wg.z, t.row0 + 49u, acc49, bv);
    store_row(t, wg.z, t.row0 + 50u, acc50, bv);
    store_row(t, wg.z, t.row0 + 51u, acc51, bv);
    store_row(t, wg.z, t.row0 + 52u, acc52, bv);
    store_row(t, wg.z, t.row0 + 53u, acc53, bv);
    store_row(t, wg.z, t.row0 + 54u, acc54, bv);
    store_row(t, wg.z, t.row0 + 55u, acc55, bv);
    store_row(t, wg.z, t.row0 + 56u, acc56, bv);
    store_row(t, wg.z, t.row0 + 57u, acc57, bv);
    store_row(t, wg.z, t.row0 + 58u, acc58, bv);
    store_row(t, wg.z, t.row0 + 59u, acc59, bv);
    store_row(t, wg.z, t.row0 + 60u, acc60, bv);
    store_row(t, wg.z, t.row0 + 61u, acc61, bv);
    store_row(t, wg.z, t.row0 + 62u, acc62, bv);
    store_row(t, wg.z, t.row0 + 63u, acc63, bv);
}
