#!/usr/bin/env bash
# Builds the no_std crates for a bare-metal Cortex-M3 (thumbv7m-none-eabi, release) with and
# without the `defmt` feature: vde-nostd and vde-embedded, four builds in all. A library build
# needs no linker script, so defmt's link-time symbols are not required here; this proves the
# crates are no_std, allocation-free and that every `defmt::Format` impl compiles.
#
# Idempotent: installs the Rust target only when missing. Works from any directory, with CI=true
# and no standard input. Extra arguments go to every cargo build (e.g. --verbose).
# Environment: CARGO_TARGET_DIR is honoured.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=thumbv7m-none-eabi

if ! rustup target list --installed | grep -qx "$target"; then
    echo "build-embedded: installing Rust target $target"
    rustup target add "$target"
fi

cd "$repo_root"
# A RUSTFLAGS meant for the host build must not leak into the bare-metal build.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
for crate in vde-nostd vde-embedded; do
    for features in "" defmt; do
        echo "build-embedded: $crate for $target${features:+ with --features $features}"
        cargo build -p "$crate" --target "$target" --release ${features:+--features "$features"} "$@"
    done
done
echo "build-embedded: ok"
