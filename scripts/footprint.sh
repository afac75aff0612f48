#!/usr/bin/env bash
# Flash/RAM footprint of vde-firmware (thumbv7m-none-eabi, release, LTO) at opt-level "s" and "z".
#
# Prints one line per opt level: the sizes in bytes of .text, .rodata, .data and .bss, the flash
# image (.vector_table + .text + .rodata + .data), and how much of .text is in symbols whose
# demangled name contains vde_nostd / vde_embedded. That last figure is a lower bound: LTO inlines
# much of the library into its callers, where it is counted as firmware code.
#
# Idempotent; run from anywhere. Installs binutils-arm-none-eabi (Debian) when missing, and falls
# back to llvm-tools (rustup) or the host's readelf/nm; FOOTPRINT_TOOL=arm|llvm|host forces one.
# Each opt level builds in its own target dir ($CARGO_TARGET_DIR or vde-firmware/target, then
# footprint-opt-s / footprint-opt-z), so reruns are incremental. Extra arguments go to both
# cargo builds, e.g. `scripts/footprint.sh --features some-feature`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=thumbv7m-none-eabi
fw="$repo_root/vde-firmware"
base_target_dir="${CARGO_TARGET_DIR:-$fw/target}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        return 1
    fi
}

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

# Tools: size and nm for ARM ELF.
if ! command -v arm-none-eabi-size >/dev/null && command -v apt-get >/dev/null; then
    echo "footprint: installing binutils-arm-none-eabi" >&2
    export DEBIAN_FRONTEND=noninteractive
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends \
        binutils-arm-none-eabi </dev/null; } >&2 || echo "footprint: apt install failed, using fallbacks" >&2
fi
llvm_bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
tool="${FOOTPRINT_TOOL:-}" # arm | llvm | host; empty = the first that is there
if [ -z "$tool" ]; then
    if command -v arm-none-eabi-size >/dev/null; then tool=arm
    elif [ -x "$llvm_bin/llvm-size" ]; then tool=llvm
    else tool=host; fi
fi
case "$tool" in
    arm) size_tool=(arm-none-eabi-size -A -d) nm_tool=(arm-none-eabi-nm) ;;
    llvm) size_tool=("$llvm_bin/llvm-size" -A -d) nm_tool=("$llvm_bin/llvm-nm") ;;
    host) size_tool=() nm_tool=(nm) ;; # readelf for sections; the host's nm reads ARM ELF symbols
    *) echo "footprint: FOOTPRINT_TOOL must be arm, llvm or host" >&2; exit 2 ;;
esac
echo "footprint: measuring with the $tool tools" >&2

# section_sizes ELF -> "name size" lines (decimal).
section_sizes() {
    if [ "${#size_tool[@]}" -gt 0 ]; then
        "${size_tool[@]}" "$1" | awk 'NF >= 2 && $1 ~ /^\./ { print $1, $2 }'
    else
        # readelf -S -W: "[Nr] Name Type Addr Off Size ..." ("[ 1]" may split into two fields).
        local name hex
        readelf -S -W "$1" | sed -n 's/^ *\[ *[0-9]*\] *//p' | awk '$1 ~ /^\./ { print $1, $5 }' |
            while read -r name hex; do echo "$name $((16#$hex))"; done
    fi
}

# lib_text ELF CRATE -> bytes of function symbols whose demangled name mentions CRATE.
lib_text() {
    "${nm_tool[@]}" --demangle --print-size --defined-only -t d "$1" |
        awk -v crate="$2" 'NF >= 4 && ($3 == "t" || $3 == "T") && index($0, crate) { s += $2 }
            END { print s + 0 }'
}

cd "$fw"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
results=()
for level in s z; do
    dir="$base_target_dir/footprint-opt-$level"
    echo "footprint: building opt-level=$level" >&2
    CARGO_PROFILE_RELEASE_OPT_LEVEL="$level" CARGO_TARGET_DIR="$dir" \
        cargo build --release --quiet "$@" >&2
    elf="$dir/$target/release/vde-firmware"
    sizes="$(section_sizes "$elf")"
    get() { awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }' <<<"$sizes"; }
    vt=$(get .vector_table) text=$(get .text) ro=$(get .rodata) data=$(get .data) bss=$(get .bss)
    flash=$((vt + text + ro + data))
    results+=("$(printf '%-9s %8d %8d %8d %8d %8d %10d %13d' "$level" "$text" "$ro" "$data" "$bss" \
        "$flash" "$(lib_text "$elf" vde_nostd)" "$(lib_text "$elf" vde_embedded)")")
done

printf '%-9s %8s %8s %8s %8s %8s %10s %13s\n' opt-level .text .rodata .data .bss flash \
    vde_nostd vde_embedded
printf '%s\n' "${results[@]}"
echo "(bytes; flash = .vector_table + .text + .rodata + .data; vde_* = .text in symbols of that crate)"
