#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432, user postgres without password) and
# NATS with JetStream (127.0.0.1:4222) are reachable: installs the Debian
# packages when the binaries are missing, starts the servers when they are
# not running, and waits until both answer. Safe to run any number of times.
set -euo pipefail

say() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, command...
    local name=$1; shift
    for _ in $(seq 1 150); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    say "$name did not come up"; return 1
}

missing=()
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! [ -x /usr/sbin/nats-server ] && ! command -v nats-server >/dev/null 2>&1; then
    missing+=(nats-server)
fi
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Postgres
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting postgresql $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
wait_for postgres pg_isready -h 127.0.0.1 -p 5432 -q
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks for a password on TCP: trust loopback, as
    # the development and test set-up expects.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n 1)
    say "trusting loopback connections in $hba"
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main reload
    wait_for "postgres (trust)" psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1'
fi

# NATS with JetStream
if ! port_open 4222; then
    say "starting nats-server with JetStream"
    as_root mkdir -p /var/lib/nats-server
    bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
wait_for nats port_open 4222
say "postgres and nats are up"
