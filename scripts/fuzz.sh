#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS (default 60) each.
# Needs cargo-fuzz (installed here when missing). libFuzzer's flags need the
# nightly compiler's -Z options; RUSTC_BOOTSTRAP lets the stable toolchain
# accept them, since no other toolchain can be fetched on these machines.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
status=0
for target in $(cargo fuzz list); do
    echo "== $target: ${seconds} s"
    if ! cargo fuzz run -O "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048; then
        status=1
        echo "== $target FOUND A CRASH (see fuzz/artifacts/$target)"
    fi
done
exit "$status"
