#!/usr/bin/env bash
# Where a kernel's time goes inside the machine code a CPU Vulkan driver (lavapipe / llvmpipe)
# compiled for it: samples one `unitok bench` kernel with perf, dumps the driver's JIT code
# from the running process with gdb, and prints the hottest loop (bytes, instructions, share
# of the samples) and its instruction mix weighted by samples, e.g. how many of a matmul's
# instructions per K step are multiplies and adds, texel-address work or spill traffic.
#
#   tools/profile-jit.sh KERNEL [SECONDS]    # e.g. tools/profile-jit.sh matmul 5
#
# KERNEL is a `unitok bench --filter` text; the report and the annotated disassembly
# (samples per instruction) go to out/profile-KERNEL/. Needs perf, gdb, objdump and python3,
# and permission to attach to one's own processes (kernel.yama.ptrace_scope = 0, or root).
# A developer tool: the JIT code has no symbols, so it is read as raw x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
kernel="${1:?usage: tools/profile-jit.sh KERNEL [SECONDS]}"
seconds="${2:-5}"
for tool in perf gdb objdump python3; do
    command -v "$tool" >/dev/null || { echo "profile-jit: $tool not found (Debian: apt-get install linux-perf gdb binutils python3)" >&2; exit 1; }
done
out="out/profile-$kernel"
rm -rf "$out"
mkdir -p "$out"
cargo build --release --locked -q
# Enough repetitions to outlast the sampling; the process is stopped afterwards.
./target/release/unitok bench --unpaired --filter "$kernel" --reps 100000 >"$out/bench.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
# After the adapter lines: the opening ceiling probes (~3 s), then the kernel's compile and
# warm-up run.
for _ in $(seq 600); do
    grep -q '^shader bounds checks' "$out/bench.out" && break
    kill -0 $pid 2>/dev/null || { cat "$out/bench.out" >&2; exit 1; }
    sleep 0.2
done
sleep 8
perf record -q -e cpu-clock -F 2000 -p $pid -o "$out/perf.data" -- sleep "$seconds" >/dev/null 2>&1
# Executable anonymous mappings: the driver's JIT code.
awk '$2 ~ /x/ && $6 == "" {print $1}' "/proc/$pid/maps" >"$out/regions"
while read -r range; do
    gdb -p $pid -batch -ex "dump binary memory $out/jit_${range%-*}.bin 0x${range%-*} 0x${range#*-}" >/dev/null 2>&1
done <"$out/regions"
kill $pid
perf script -i "$out/perf.data" -F ip 2>/dev/null | sort | uniq -c >"$out/hits"
python3 - "$out" <<'EOF'
import collections, glob, os, re, subprocess, sys

out = sys.argv[1]
hits = {}
for line in open(os.path.join(out, "hits")):
    count, ip = line.split()
    hits[int(ip, 16)] = int(count)
total = sum(hits.values())
rows = []  # (address, samples, instruction text)
for path in glob.glob(os.path.join(out, "jit_*.bin")):
    base = int(os.path.basename(path)[4:-4], 16)
    dis = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64",
                          f"--adjust-vma={base:#x}", path], capture_output=True, text=True).stdout
    for line in dis.splitlines():
        parts = line.split("\t")
        m = re.match(r"\s*([0-9a-f]+):$", parts[0])
        if m and len(parts) >= 3 and parts[2].strip():
            a = int(m.group(1), 16)
            rows.append((a, hits.get(a, 0), parts[2].strip()))
rows.sort()
with open(os.path.join(out, "annotated.s"), "w") as f:
    for a, h, ins in rows:
        f.write(f"{h:6d} {a:x}: {ins}\n")
jit = sum(h for _, h, _ in rows)
print(f"samples: {total}, in JIT code: {jit} ({100 * jit / max(total, 1):.1f} %)")
# Loops: backward jumps. The hottest is the innermost (smallest) one holding at least half of
# the samples; an outer loop holds every sample of the loops inside it.
index = {a: i for i, (a, _, _) in enumerate(rows)}
loops = []
for i, (a, _, ins) in enumerate(rows):
    m = re.match(r"j\w+\s+0x([0-9a-f]+)", ins)
    if m and int(m.group(1), 16) < a and int(m.group(1), 16) in index:
        lo = index[int(m.group(1), 16)]
        loops.append((sum(h for _, h, _ in rows[lo:i + 1]), lo, i))
if not loops:
    sys.exit("no loop found in the JIT code")
hot = [l for l in loops if 2 * l[0] >= jit] or [max(loops)]
s, lo, hi = min(hot, key=lambda l: l[2] - l[1])
body = rows[lo:hi + 1]
print(f"hottest loop: {rows[lo][0]:x}..{rows[hi][0]:x}, {rows[hi][0] - rows[lo][0]} bytes, "
      f"{len(body)} instructions, {100 * s / max(jit, 1):.1f} % of the JIT samples")
kinds = collections.Counter()
weight = collections.Counter()
for _, h, ins in body:
    op = ins.split()[0]
    args = ins.split(None, 1)[1] if " " in ins else ""
    if "(%rsp)" in args:  # spill traffic: stack slots
        op += " [stack store]" if args.rstrip().endswith("(%rsp)") else " [stack load]"
    elif "(" in args:
        op += " [memory]"
    kinds[op] += 1
    weight[op] += h
print(f"{'instruction':28} {'count':>6} {'samples %':>9}")
for op, n in kinds.most_common(25):
    print(f"{op:28} {n:6d} {100 * weight[op] / max(s, 1):9.1f}")
EOF
echo "annotated disassembly: $out/annotated.s"
