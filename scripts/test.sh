#!/usr/bin/env bash
# carfeed's test command: every test of the workspace against a real Postgres.
#
# With DATABASE_URL set, tests use that server (each test creates and drops
# its own database there). Without it, pg-sandbox starts a throwaway server
# (local PostgreSQL binaries, else a testcontainers container) and stops it
# afterwards. Extra arguments go to cargo nextest, e.g. `scripts/test.sh -p db`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi

# Build first so compile time is not spent with a server running idle.
cargo build --workspace --all-targets --quiet
if [ "$#" -eq 0 ]; then
    set -- --workspace
fi
exec cargo run --quiet -p pg-sandbox -- cargo nextest run --no-fail-fast "$@"
