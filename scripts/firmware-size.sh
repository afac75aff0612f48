#!/usr/bin/env bash
# Size check of the nRF52840 example firmware (examples/nrf52840: embassy-nrf 0.11 Nvmc,
# thumbv7em-none-eabihf, release, LTO, opt-level "z", panic abort, no logging).
#
# Builds its bins (bare: HAL init + Nvmc; vde: the job with vde; vde_async: the same job through
# vde's async engine; seqstore: the same job with sequential-storage's async map), reads their text, data and bss with arm-none-eabi-size, and prints
#   flash added over bare = (text + data) - bare's (text + data)   [text includes .rodata and
#                                                                    the vector table]
#   static RAM over bare  = (data + bss) - bare's (data + bss)
# for vde and sequential-storage, and vde's ratio to sequential-storage. Then compares vde's
# figures with examples/nrf52840/budget.txt (`key = bytes` lines, `#` comments) and exits 1 if
# one is over its budget (2 if the budget file lacks a key).
#
# Idempotent; run from anywhere, with CI=true and no standard input. Installs the Rust target
# and binutils-arm-none-eabi (apt, as root or via sudo -n) when missing, and falls back to
# llvm-size (rustup's llvm-tools) if apt cannot install it. Extra arguments go to cargo build.
# CARGO_TARGET_DIR is honoured.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=thumbv7em-none-eabihf
ex="$repo_root/examples/nrf52840"
budget_file="$ex/budget.txt"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        echo "firmware-size: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# 1. The Rust target.
if ! rustup target list --installed | grep -qx "$target"; then
    echo "firmware-size: installing Rust target $target" >&2
    rustup target add "$target" >&2
fi

# 2. A size tool for ARM ELF.
if ! command -v arm-none-eabi-size >/dev/null && command -v apt-get >/dev/null; then
    echo "firmware-size: installing binutils-arm-none-eabi" >&2
    export DEBIAN_FRONTEND=noninteractive
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends \
        binutils-arm-none-eabi </dev/null; } >&2 || echo "firmware-size: apt install failed" >&2
fi
if command -v arm-none-eabi-size >/dev/null; then
    size_tool=(arm-none-eabi-size)
else
    llvm_bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
    if [ ! -x "$llvm_bin/llvm-size" ]; then
        rustup component add llvm-tools >&2 || true
    fi
    if [ ! -x "$llvm_bin/llvm-size" ]; then
        echo "firmware-size: FAILED: neither arm-none-eabi-size nor llvm-size is available" >&2
        exit 1
    fi
    size_tool=("$llvm_bin/llvm-size")
fi

# 3. Build. The .cargo/config.toml in examples/nrf52840 (build target) is only read when cargo
#    runs from inside that directory; a RUSTFLAGS meant for the host must not leak into it.
cd "$ex"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
echo "firmware-size: building examples/nrf52840 (bare, vde, vde_async, seqstore; vde_minimal)" >&2
cargo build --release --bins --quiet "$@" >&2
out_dir="${CARGO_TARGET_DIR:-$ex/target}/$target/release"
# vde's minimal feature set: built without the example's (and so vde-nostd's) objects feature,
# into a directory of its own so that the build above stays as it is.
min_dir="${CARGO_TARGET_DIR:-$ex/target}/minimal"
cargo build --release --bin vde_minimal --no-default-features --target-dir "$min_dir" \
    --quiet "$@" >&2

# berkeley BIN -> "text data bss" (decimal).
berkeley() {
    "${size_tool[@]}" -B "${2:-$out_dir}/$1" | awk 'NR == 2 { print $1, $2, $3 }'
}
read -r bare_text bare_data bare_bss <<<"$(berkeley bare)"
read -r vde_text vde_data vde_bss <<<"$(berkeley vde)"
read -r ss_text ss_data ss_bss <<<"$(berkeley seqstore)"
read -r va_text va_data va_bss <<<"$(berkeley vde_async)"
read -r min_text min_data min_bss <<<"$(berkeley vde_minimal "$min_dir/$target/release")"

bare_flash=$((bare_text + bare_data))
bare_ram=$((bare_data + bare_bss))
vde_flash_added=$((vde_text + vde_data - bare_flash))
ss_flash_added=$((ss_text + ss_data - bare_flash))
vde_static_ram=$((vde_data + vde_bss - bare_ram))
ss_static_ram=$((ss_data + ss_bss - bare_ram))
vde_minimal_flash_added=$((min_text + min_data - bare_flash))
vde_async_flash_added=$((va_text + va_data - bare_flash))
vde_async_static_ram=$((va_data + va_bss - bare_ram))
vde_minimal_static_ram=$((min_data + min_bss - bare_ram))

# group N -> N with thousands separators (independent of the locale).
group() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

echo
echo "Firmware size: nRF52840 example (embassy-nrf 0.11 Nvmc, $target, release, LTO, opt-level z)"
echo
printf '| %-10s | %8s | %6s | %6s |\n' bin text data bss
printf '|%s|%s|%s|%s|\n' ------------ ---------: -------: -------:
printf '| %-10s | %8d | %6d | %6d |\n' bare "$bare_text" "$bare_data" "$bare_bss"
printf '| %-10s | %8d | %6d | %6d |\n' vde "$vde_text" "$vde_data" "$vde_bss"
printf '| %-10s | %8d | %6d | %6d |\n' vde_async "$va_text" "$va_data" "$va_bss"
printf '| %-10s | %8d | %6d | %6d |\n' seqstore "$ss_text" "$ss_data" "$ss_bss"
printf '| %-10s | %8d | %6d | %6d |\n' vde_minimal "$min_text" "$min_data" "$min_bss"
echo
printf '| %-36s | %-20s | %-20s | %-9s |\n' "" vde sequential-storage "vde / ss"
printf '|%s|%s|%s|%s|\n' -------------------------------------- ---------------------: \
    ---------------------: ----------:
printf '| %-36s | %20s | %20s | %9s |\n' "flash added over bare (text+data)" \
    "$(group "$vde_flash_added") B ($(kb "$vde_flash_added"))" \
    "$(group "$ss_flash_added") B ($(kb "$ss_flash_added"))" \
    "$(ratio "$vde_flash_added" "$ss_flash_added")"
printf '| %-36s | %20s | %20s | %9s |\n' "static RAM over bare (data+bss)" \
    "$(group "$vde_static_ram") B" "$(group "$ss_static_ram") B" \
    "$(ratio "$vde_static_ram" "$ss_static_ram")"
printf '| %-36s | %20s | %20s | %9s |\n' "async engine: flash added over bare" \
    "$(group "$vde_async_flash_added") B ($(kb "$vde_async_flash_added"))" \
    "$(group "$ss_flash_added") B ($(kb "$ss_flash_added"))" \
    "$(ratio "$vde_async_flash_added" "$ss_flash_added")"
printf '| %-36s | %20s | %20s | %9s |\n' "async engine: static RAM over bare" \
    "$(group "$vde_async_static_ram") B" "$(group "$ss_static_ram") B" \
    "$(ratio "$vde_async_static_ram" "$ss_static_ram")"
echo
echo "(sequential-storage's map is async only: its column is the same async build in both rows.)"
echo
echo "vde's minimal feature set (vde_minimal: one block transaction, no objects): flash added" \
    "$(group "$vde_minimal_flash_added") B ($(kb "$vde_minimal_flash_added")), static RAM" \
    "$(group "$vde_minimal_static_ram") B"
echo

# 4. The budget: vde's figures must not exceed it.
if [ ! -f "$budget_file" ]; then
    echo "firmware-size: FAILED: no budget file $budget_file" >&2
    exit 2
fi
budget() {
    awk -F= -v k="$1" '{ sub(/#.*/, "") } NF == 2 { gsub(/[ \t]/, "", $1); gsub(/[ \t_,]/, "", $2) }
        $1 == k && $2 ~ /^[0-9]+$/ { v = $2 } END { print v }' "$budget_file"
}
status=0
for key in vde_flash_added vde_static_ram vde_minimal_flash_added vde_async_flash_added; do
    limit="$(budget "$key")"
    value="${!key}"
    if [ -z "$limit" ]; then
        echo "firmware-size: FAILED: $budget_file has no '$key = bytes' line" >&2
        status=2
    elif [ "$value" -gt "$limit" ]; then
        echo "budget: $key = $value bytes, OVER the budget of $limit by $((value - limit))"
        [ "$status" -ne 0 ] || status=1
    else
        echo "budget: $key = $value bytes, within $limit ($((limit - value)) to spare)"
    fi
done
if [ "$status" -ne 0 ]; then
    echo "firmware-size: FAILED (budget in examples/nrf52840/budget.txt)" >&2
    exit "$status"
fi
echo "firmware-size: ok"
