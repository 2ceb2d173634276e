#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: services, build, tests.
# Every test makes its own database and NATS prefix, so this can run beside
# a running system and beside other test runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/web-deps.sh
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "cargo-nextest not found: using cargo test" >&2
    cargo test --workspace --no-fail-fast "$@"
fi
