#!/usr/bin/env bash
# Builds vde-firmware for thumbv7m-none-eabi and runs it on QEMU's mps2-an385 (Cortex-M3) with
# semihosting. Exits 0 only if the firmware reported every check passed.
#
# Idempotent: installs the Rust target and qemu-system-arm only when missing. Works from any
# directory, with CI=true and no standard input. Extra arguments go to cargo, e.g.
#   scripts/qemu-firmware.sh --verbose
# Environment: QEMU_TIMEOUT (seconds for the QEMU run, default 120); CARGO_TARGET_DIR is honoured.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=thumbv7m-none-eabi
timeout_s="${QEMU_TIMEOUT:-120}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        echo "qemu-firmware: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# 1. The Rust target.
if ! rustup target list --installed | grep -qx "$target"; then
    echo "qemu-firmware: installing Rust target $target"
    rustup target add "$target"
fi

# 2. QEMU.
if ! command -v qemu-system-arm >/dev/null; then
    echo "qemu-firmware: installing qemu-system-arm"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends qemu-system-arm </dev/null
fi
qemu-system-arm --version | sed -n 1p

# 3. Build, then run under QEMU. The .cargo/config.toml in vde-firmware (build target and QEMU
#    runner) is only read when cargo runs from inside that directory.
cd "$repo_root/vde-firmware"
# A RUSTFLAGS meant for the host build must not leak into the firmware build.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
cargo build --release "$@"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
timeout "$timeout_s" cargo run --release "$@" </dev/null 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e

if [ "$status" -eq 124 ]; then
    echo "qemu-firmware: FAILED: QEMU still running after ${timeout_s}s (firmware hung?)" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "qemu-firmware: FAILED: firmware exited with status $status" >&2
    exit 1
fi
# Belt and braces: exit status 0 must come with the summary line and no failed check.
if grep -q '^check FAILED' "$log" || ! grep -Eq '^firmware: [0-9]+ checks passed$' "$log"; then
    echo "qemu-firmware: FAILED: status 0 but the output lacks a clean summary" >&2
    exit 1
fi
echo "qemu-firmware: ok"
