#!/usr/bin/env bash
# What the browser tests (tests/web.rs) need besides Node.js: Debian's
# chromium at /usr/bin/chromium (playwright-core drives it; no browser is
# downloaded) and tests/web/node_modules from the committed lock file.
# Installs only what is missing; safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'web-deps: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    say "installing $*"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! [ -x /usr/bin/chromium ]; then
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
if ! [ -d tests/web/node_modules/playwright-core ]; then
    say "npm ci in tests/web"
    (cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
fi
