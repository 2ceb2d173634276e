#!/usr/bin/env bash
# Builds the forum and the benchmark suite (release) and runs the suite over
# loopback: `scripts/bench.sh all`, `scripts/bench.sh w1 w2 r1 --json out.json`
# (options: `forum-bench --help`). Makes sure Postgres and NATS run first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release -p forum -p forum-bench
exec "${CARGO_TARGET_DIR:-target}/release/forum-bench" "$@"
