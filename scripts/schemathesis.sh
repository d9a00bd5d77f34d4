#!/usr/bin/env bash
# Fuzzes the api against its own OpenAPI document with schemathesis, every
# check on; exits non-zero on any finding.
#
# Outside: builds the binaries, installs schemathesis into a venv (reused),
# then reruns itself under pg-sandbox (a throwaway Postgres in DATABASE_URL).
# Inside: fills the database from the simulator (che168-sim -> loader ->
# normalizer), starts `api serve` with a fresh token, runs schemathesis and
# stops everything it started.
#   SCHEMATHESIS_EXAMPLES: examples per operation (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
bin="$target/debug"
venv="$target/schemathesis-venv"

if [ -z "${SCHEMATHESIS_INSIDE:-}" ]; then
    cargo build --quiet -p api -p loader -p normalizer -p che168-sim -p pg-sandbox
    if [ ! -x "$venv/bin/schemathesis" ]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt-get install -y python3-venv
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
    fi
    SCHEMATHESIS_INSIDE=1 exec "$bin/pg-sandbox" -- "$0" "$@"
fi

: "${DATABASE_URL:?run through pg-sandbox}"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
work="$(mktemp -d)"
trap 'cleanup; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL: up to 60 s
    for _ in $(seq 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "schemathesis.sh: $1 never answered" >&2
    return 1
}

sim_bind="127.0.0.1:$(free_port)"
"$bin/che168-sim" serve --bind "$sim_bind" --listings 300 --days 2 --changes-per-day 60 \
    >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q Simulating "$work/sim.log" && break; sleep 0.1; done

export CHE168_BASE_URL="http://$sim_bind/api/v2/che168"
export CARFEED__UPSTREAM__MAX_REQUESTS_PER_SECOND=500
export CARFEED__UPSTREAM__RETRY__INTERVAL=100ms
"$bin/api" migrate
"$bin/loader" initial >/dev/null
"$bin/loader" daily >/dev/null
"$bin/normalizer" run >/dev/null

export SECRET_KEY=schemathesis-secret-key-of-at-least-32-chars
export API_BIND="127.0.0.1:$(free_port)"
export CARFEED__API__INITIAL_TOKENS=0
# schemathesis sends far more than a visitor: the limits are tested elsewhere.
export CARFEED__API__RATE_LIMIT__ENABLED=false
token="$("$bin/api" tokens issue --description schemathesis | tail -n1)"
"$bin/api" serve >"$work/api.log" 2>&1 &
pids+=($!)
wait_for "http://$API_BIND/api/v1/openapi.json"

status=0
# /status.json (tag operator) is on the operator listener, which is not
# under this base URL; scripts/openapi-client.sh calls it there.
# From $work: hypothesis keeps its example database in the current directory.
(cd "$work" && "$venv/bin/schemathesis" --config-file "$OLDPWD/scripts/schemathesis/schemathesis.toml" run "http://$API_BIND/api/v1/openapi.json" \
    --checks all \
    --exclude-path /status.json \
    --header "Authorization: Bearer $token" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    "$@") || status=$?
if [ "$status" -ne 0 ]; then
    echo "schemathesis.sh: findings (api log tail below)" >&2
    tail -n 40 "$work/api.log" >&2
fi
exit "$status"
