#!/usr/bin/env bash
# Fuzzes the api against its own OpenAPI document with schemathesis, every
# check on; exits non-zero on any finding.
#
# Through scripts/api-tool.sh: builds the binaries, installs schemathesis
# into a venv (reused), reruns itself under pg-sandbox (a throwaway
# Postgres), fills the database from the simulator and starts `api serve`
# with a fresh token; then runs schemathesis. Everything started is stopped.
#   SCHEMATHESIS_EXAMPLES: examples per operation (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/api-tool.sh
venv="$target/schemathesis-venv"
api_tool_prepare "$venv" 'schemathesis>=4,<5' schemathesis "$@"

# schemathesis sends far more than a visitor: the limits are tested elsewhere.
export CARFEED__API__RATE_LIMIT__ENABLED=false
api_tool_serve 300 60 schemathesis

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
