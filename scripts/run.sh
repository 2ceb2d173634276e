#!/usr/bin/env bash
# Runs the whole system on 127.0.0.1:8080 (every role in one process), on a
# fresh machine too: services, release build, migrations, stream, then `up`.
# Settings come from the FORUM_* environment variables (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --bin forum
export FORUM_LISTEN=${FORUM_LISTEN:-127.0.0.1:8080}
exec target/release/forum up "$@"
