#!/usr/bin/env python3
"""Prints the body of `mm_sg` in shaders/matmul_sg.wgsl: R rows per invocation (A broadcast
through the subgroup, one vec4 of columns per invocation), accumulators as plain variables
(indexed local arrays can end up in memory). Usage: tools/gen_matmul_sg.py [R] (default 64)."""
import sys

R = int(sys.argv[1]) if len(sys.argv) > 1 else 64
assert R % 8 == 0
out = []
w = out.append
for r in range(R):
    w(f"    var acc{r} = vec4<f32>(0.0);")
w("    for (var k = 0u; k < p.k; k += 4u) {")
w("        let bm = b_block(bbase, t.col, k);")
for g in range(R // 8):
    w(f"        let av{g} = a_lane(abase, t.row0 + {8 * g}u, k, lane);")
for g in range(R // 8):
    for h in range(2):
        w("        {")
        w(f"            let am = a_mat(subgroupBroadcast(av{g}, {4 * h}u), subgroupBroadcast(av{g}, {4 * h + 1}u), "
          f"subgroupBroadcast(av{g}, {4 * h + 2}u), subgroupBroadcast(av{g}, {4 * h + 3}u));")
        for j in range(4):
            w(f"            acc{8 * g + 4 * h + j} += bm * am[{j}];")
        w("        }")
w("    }")
w("    let bv = bias_of(t);")
for r in range(R):
    w(f"    store_row(t, wg.z, t.row0 + {r}u, acc{r}, bv);")
print("\n".join(out))
