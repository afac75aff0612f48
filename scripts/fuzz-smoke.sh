#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ and runs each for a fixed short time
# (FUZZ_SECONDS, default 30) from the committed seeds (fuzz/seeds/<target>/) plus a scratch
# corpus. Any crash, panic, timeout or out-of-memory fails the run; the input that caused it
# is left in fuzz/artifacts/<target>/ and the log tail is printed.
#
# Works unattended (CI=true, no stdin): installs a minimal nightly toolchain and cargo-fuzz
# when missing. Longer runs: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${FUZZ_SECONDS:-30}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "installing the nightly toolchain (minimal profile)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
# The fuzz crate has its own workspace and target directory (fuzz/target).
unset CARGO_TARGET_DIR
cargo +nightly fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in $(cargo +nightly fuzz list); do
  case "$t" in
    mount) max_len=131072 ;;
    ops) max_len=256 ;;
    *) max_len=4096 ;;
  esac
  mkdir -p "$work/corpus-$t"
  log="$work/$t.log"
  echo "=== fuzz $t for ${SECS}s ==="
  if cargo +nightly fuzz run "$t" "$work/corpus-$t" "seeds/$t" -- \
      -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
      -dict=vde.dict -print_final_stats=1 </dev/null >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
  else
    tail -n 80 "$log" | cut -c1-300
    echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/"
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz smoke failed: ${failed[*]}"
  exit 1
fi
echo "fuzz smoke: every target ran ${SECS}s without a crash"
