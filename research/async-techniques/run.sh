#!/usr/bin/env bash
# Rebuild everything and print the results table. Needs: stable + thumbv7em-none-eabihf target,
# arm-none-eabi-{size,objdump}, python3; optional nightly + llvm-readobj for the stack cross-check.
set -euo pipefail
cd "$(dirname "$0")"
T=thumbv7em-none-eabihf
BINS="fw_base fw_a_blocking fw_ab_async fw_b_blocking fw_c_blocking fw_c_async"
for b in $BINS; do
  cargo build -q --offline --release --features fw --target $T --bin $b
done
# Thumb future sizes: the probe is meant to FAIL to compile; rustc's E0512 note carries the size.
{ cargo build --offline --release --features probe --target $T --bin probe_future_size 2>&1 || true; } \
  | grep -oE 'async fn body of [^}]*put\(\)\}` \([0-9]+ bits\)' | sed -E 's/async fn body of (.*)::put.*\(([0-9]+) bits\)/thumb-future \1 \2/' \
  | awk '{printf "%s %s %d\n", $1, $2, $3/8}' | tee target/probe.txt
cargo build -q --offline --profile bench-host --bin bench
./target/bench-host/bench | tee target/bench.txt
echo
for b in $BINS; do arm-none-eabi-size -A target/$T/release/$b | awk -v b=$b '$1==".text"{t=$2} $1==".vector_table"{v=$2} $1==".rodata"{r=$2} $1==".data"{d=$2} END{print "size", b, t+v+r+d, t, r, d}'; done | tee target/size.txt
for b in $BINS; do [ $b = fw_base ] || python3 stack.py target/$T/release/$b ::fw_put ::fw_get ::fw_recover; done | tee target/stack.txt
if [ "${STACK_CHECK:-1}" = 1 ] && command -v llvm-readobj >/dev/null && rustup run nightly rustc -V >/dev/null 2>&1; then
  echo; echo "cross-check: own frame of fw_put from nightly -Z emit-stack-sizes (.stack_sizes) vs objdump parse of that same ELF"
  for b in $BINS; do
    [ $b = fw_base ] && continue
    RUSTFLAGS="-Z emit-stack-sizes" CARGO_TARGET_DIR=target/stack-sizes cargo +nightly build -q --offline --release --features fw --target $T --bin $b
    e=target/stack-sizes/$T/release/$b
    ss=$(( $(llvm-readobj --stack-sizes $e | grep -A1 "fw_put\]" | awk '/Size:/{print $2}') ))
    pp=$(python3 stack.py $e ::fw_put | sed -E 's/.*fw_put\(([0-9]+)\).*/\1/')
    echo "  $b: .stack_sizes=$ss objdump=$pp  (full path, nightly build: $(python3 stack.py $e ::fw_put | awk '{print $2}') B)"
  done
fi
python3 - <<'PY'
import re
size = {l.split()[1]: int(l.split()[2]) for l in open("target/size.txt")}
stack = {}
for l in open("target/stack.txt"):
    m = re.match(r"fw_(\w+)::fw_(put|get|recover): (\d+) B", l)
    if m: stack[(m.group(1), m.group(2))] = int(m.group(3))
bench = open("target/bench.txt").read()
speed = {m.group(1): m.group(2) for m in re.finditer(r"speed (\S+)\s+(\d+) ns/op", bench)}
fut = {m.group(1): m.group(2) for m in re.finditer(r"future (\S+) put\s+(\d+) B", bench)}
tf = {}
for l in open("target/probe.txt"):
    _, ty, n = l.split()
    tf["C-async" if "AsyncVolume" in ty else "asynch(A/B)"] = n
base = size["fw_base"]
def fl(b): return f"{size[b]} (+{size[b]-base})"
rows = [
  ("A async-first + BlockingAsync + block_on", "fw_a_blocking", "fw_ab_async", "a_blocking", "ab_async", "A-blocking", "A/B-async", "asynch(A/B)"),
  ("B strip-async codegen (bisync)",           "fw_b_blocking", "fw_ab_async", "b_blocking", "ab_async", "B-blocking", "A/B-async", "asynch(A/B)"),
  ("C sans-IO state machine",                  "fw_c_blocking", "fw_c_async",  "c_blocking", "c_async",  "C-blocking", "C-async",   "C-async"),
]
print()
print(f"baseline firmware (fake flash only): {base} B flash (.vector_table+.text+.rodata+.data)")
print("| candidate | blocking flash B | async flash B | blocking put stack B | async put: future B (thumb; x86_64) / thumb stack incl. future B | blocking ns/op | async ns/op |")
print("|---|---|---|---|---|---|---|")
for name, bb, ab, bs, as_, sb, sa, fk in rows:
    print(f"| {name} | {fl(bb)} | {fl(ab)} | {stack[(bs,'put')]} | {tf[fk]}; {fut[fk]} / {stack[(as_,'put')]} | {speed[sb]} | {speed[sa]} |")
PY
