#!/usr/bin/env bash
# Builds the benchmark binary and runs it in smoke mode (tiny sizes) so CI proves it works.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p vde-bench -- --smoke
