# A tool run against a live api: sourced by scripts/schemathesis.sh and
# scripts/openapi-client.sh (not run on its own). The caller has cd'ed to
# the repository.
#
# api_tool_prepare VENV PIP_SPEC EXECUTABLE "$@": outside pg-sandbox, builds
#   the binaries, installs PIP_SPEC into the venv VENV (reused while
#   EXECUTABLE is there), then reruns the calling script with "$@" under
#   pg-sandbox (a throwaway Postgres in DATABASE_URL). Inside, returns.
# api_tool_serve LISTINGS CHANGES_PER_DAY TOKEN_NAME: fills the database from
#   the simulator (che168-sim -> loader -> normalizer), issues a token
#   ($token), starts `api serve` on $API_BIND and waits until it answers.
#   Export any CARFEED__API__* setting first. What it starts is stopped,
#   and $work removed, when the script exits.

target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
bin="$target/debug"
script="$(basename "$0")"

api_tool_prepare() {
    local venv="$1" spec="$2" executable="$3"
    shift 3
    if [ -n "${API_TOOL_INSIDE:-}" ]; then
        : "${DATABASE_URL:?run through pg-sandbox}"
        return 0
    fi
    cargo build --quiet -p api -p loader -p normalizer -p che168-sim -p pg-sandbox
    if [ ! -x "$venv/bin/$executable" ]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt-get install -y python3-venv
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "$spec"
    fi
    API_TOOL_INSIDE=1 exec "$bin/pg-sandbox" -- "$0" "$@"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL: up to 60 s
    for _ in $(seq 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "$script: $1 never answered" >&2
    return 1
}

api_tool_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

api_tool_serve() {
    local listings="$1" changes="$2" token_name="$3"
    local sim_bind
    pids=()
    work="$(mktemp -d)"
    trap api_tool_cleanup EXIT
    sim_bind="127.0.0.1:$(free_port)"
    "$bin/che168-sim" serve --bind "$sim_bind" --listings "$listings" --days 2 \
        --changes-per-day "$changes" >"$work/sim.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do grep -q Simulating "$work/sim.log" && break; sleep 0.1; done

    export CHE168_BASE_URL="http://$sim_bind/api/v2/che168"
    export CARFEED__UPSTREAM__MAX_REQUESTS_PER_SECOND=500
    export CARFEED__UPSTREAM__RETRY__INTERVAL=100ms
    "$bin/api" migrate
    "$bin/loader" initial >/dev/null
    "$bin/loader" daily >/dev/null
    "$bin/normalizer" run >/dev/null

    export SECRET_KEY="$token_name-secret-key-of-at-least-32-chars"
    export API_BIND="127.0.0.1:$(free_port)"
    export CARFEED__API__INITIAL_TOKENS=0
    token="$("$bin/api" tokens issue --description "$token_name" | tail -n1)"
    "$bin/api" serve >"$work/api.log" 2>&1 &
    pids+=($!)
    wait_for "http://$API_BIND/api/v1/openapi.json"
}
