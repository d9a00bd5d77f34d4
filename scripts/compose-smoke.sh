#!/usr/bin/env bash
# compose-smoke.sh: the real Docker Compose stack, end to end (run by .ci/run).
#
#   1. installs Docker and Compose when missing (Debian's docker.io and
#      docker-compose) and, when no engine answers, starts its own dockerd
#      in a scratch directory under /tmp (stopped again by its pid);
#   2. checks that both compose files validate;
#   3. builds the images without any registry: a local Debian base image
#      (scripts/make-local-base-image.sh), the local Postgres image
#      (docker/postgres-local), and carfeed's image from binaries built on
#      this host (Dockerfile target `prebuilt`);
#   4. `up -d`, then through nginx with a token: offers loaded from the
#      simulator and normalised; `restart api` keeps nginx serving; `logs
#      loader` shows its lines; a normaliser killed with SIGKILL is brought
#      back by its restart policy and the pipeline carries on; the browser
#      worker (`--profile browser`, image with Debian's Chromium) renders a
#      JavaScript-only page through tinyproxy with credentials and the CSV
#      export carries the extracted fields;
#   5. `down -v` and the engine stopped, also when a step fails.
# It prints how long each phase took.
#
# Usage: scripts/compose-smoke.sh [--release]
#   By default the debug binaries (target/debug, which scripts/test.sh has
#   already built in CI) go into the image; --release builds and packages
#   release binaries instead. Needs root (installing, dockerd, debootstrap).
#   SMOKE_KEEP=1 leaves the stack and the engine running for a look.
#   SMOKE_DOCKER_ROOT=<dir>: the started engine's data root, kept between
#   runs (warm: the base images are reused); default a fresh one (cold).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PROFILE=debug
for arg in "$@"; do
    case $arg in
        --release) PROFILE=release ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compose-smoke.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

SCRATCH=$(mktemp -d /tmp/carfeed-compose-smoke.XXXXXX)
PROJECT=carfeed-smoke
# Debian's CLI drives BuildKit here (COMPOSE-HERE.md): put it first.
export PATH=/usr/bin:/usr/sbin:$PATH DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
# A docker CLI without its buildx plugin may refuse BuildKit builds
# ("buildx component is missing"): fall back to the legacy builder, which
# the Dockerfile supports for the prebuilt target (it comes before the Rust
# stages).
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

# ---- timing and logging ----------------------------------------------------
PHASES=()
PHASE_NAME=""
PHASE_START=0
SMOKE_START=$(date +%s.%N)
log() { printf '[smoke %(%H:%M:%S)T] %s\n' -1 "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase() {
    end_phase
    PHASE_NAME=$1
    PHASE_START=$(date +%s.%N)
    printf '\n[smoke %(%H:%M:%S)T] ---- %s ----\n' -1 "$PHASE_NAME"
}
end_phase() {
    if [ -n "$PHASE_NAME" ]; then
        PHASES+=("$(printf '%-44s %7ss' "$PHASE_NAME" "$(elapsed "$PHASE_START")")")
        PHASE_NAME=""
    fi
}
print_phases() {
    end_phase
    printf '\ncompose-smoke phases (%s binaries):\n' "$PROFILE"
    printf '  %s\n' "${PHASES[@]}"
    printf '  %-44s %7ss\n' "total" "$(elapsed "$SMOKE_START")"
}
fail() {
    echo "compose-smoke: FAILED: $*" >&2
    exit 1
}

# ---- cleanup: always ---------------------------------------------------------
OWN_DOCKERD_PID=""
STACK_UP=0
cleanup() {
    local status=$?
    set +e
    if [ "$status" != 0 ] && [ "$STACK_UP" = 1 ]; then
        echo "---- compose ps and the last log lines of each service (failure) ----"
        compose ps
        compose logs --no-color --tail=40
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then
        log "SMOKE_KEEP=1: stack left running (DOCKER_HOST=${DOCKER_HOST:-default}, project $PROJECT)"
        print_phases
        exit "$status"
    fi
    phase "down -v, engine stopped"
    if [ "$STACK_UP" = 1 ]; then
        docker rm -f "$PROJECT-ipgrab" "$PROJECT-site" "$PROJECT-proxy" >/dev/null 2>&1
        compose --profile browser down -v --remove-orphans --timeout 20 >"$SCRATCH/down.log" 2>&1 \
            || { echo "compose down failed:"; tail -20 "$SCRATCH/down.log"; }
    fi
    if [ -n "$OWN_DOCKERD_PID" ]; then
        kill -TERM "$OWN_DOCKERD_PID" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$OWN_DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$OWN_DOCKERD_PID" 2>/dev/null; then
            log "dockerd $OWN_DOCKERD_PID did not stop within 30 s; killing it"
            kill -KILL "$OWN_DOCKERD_PID" 2>/dev/null
        fi
        # Its mounts (overlay, netns) must be gone before the directory is.
        grep -o " \(${SMOKE_DOCKER_ROOT:-$SCRATCH}\|$SCRATCH\)/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    fi
    rm -rf "$SCRATCH"
    print_phases
    if [ "$status" = 0 ]; then log "compose smoke test passed"; else log "compose smoke test FAILED"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. Docker and Compose -----------------------------------------------
phase "install docker, compose"
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    need+=(docker-compose)
fi
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# curl and python3 make the HTTP checks below.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing ${need[*]}; run as root to install them"
    log "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >"$SCRATCH/apt.log" 2>&1 || { tail -20 "$SCRATCH/apt.log"; fail "apt-get install"; }
fi
if docker compose version >/dev/null 2>&1; then
    COMPOSE_CMD=(docker compose)
else
    COMPOSE_CMD=(docker-compose)
fi
log "compose: $("${COMPOSE_CMD[@]}" version 2>/dev/null | head -n 1)"

phase "start docker engine"
if docker info >/dev/null 2>&1; then
    log "using the docker engine that already runs"
else
    [ "$(id -u)" = 0 ] || fail "no docker engine answers; run as root to start one"
    export DOCKER_HOST=unix://$SCRATCH/docker.sock
    /usr/sbin/dockerd --data-root "${SMOKE_DOCKER_ROOT:-$SCRATCH/data-root}" --exec-root "$SCRATCH/exec-root" \
        --pidfile "$SCRATCH/dockerd.pid" --host "$DOCKER_HOST" >"$SCRATCH/dockerd.log" 2>&1 &
    OWN_DOCKERD_PID=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -20 "$SCRATCH/dockerd.log"; fail "dockerd did not answer within 30 s"; }
    log "dockerd started (pid $OWN_DOCKERD_PID, data root in $SCRATCH)"
fi

# ---- 2. the compose files ----------------------------------------------------
HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HTTP_BIND=127.0.0.1 HTTP_PORT
export CARFEED_IMAGE=carfeed-smoke:latest CARFEED_BUILD_TARGET=prebuilt BIN_DIR=target/$PROFILE
export CARFEED_BROWSER_IMAGE=carfeed-smoke-browser:latest CARFEED_BROWSER_BUILD_TARGET=prebuilt-browser
: >"$SCRATCH/empty.env" # a developer's .env must not leak into the test
compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" --env-file "$SCRATCH/empty.env" -f "$REPO/docker-compose.yml" "$@"; }

phase "validate compose files"
compose config -q
DB_PASSWORD=x CHE168_BASE_URL=https://upstream.invalid CHE168_API_KEY=x SECRET_KEY=0123456789abcdef0123456789abcdef \
    "${COMPOSE_CMD[@]}" --env-file "$SCRATCH/empty.env" -f docker-compose.yml -f docker-compose.prod.yml config -q
if "${COMPOSE_CMD[@]}" --env-file "$SCRATCH/empty.env" -f docker-compose.yml -f docker-compose.prod.yml config -q 2>/dev/null; then
    fail "docker-compose.prod.yml accepted an environment without SECRET_KEY"
fi

# ---- 3. images -------------------------------------------------------------
phase "base images (local, no registry)"
LOCAL_BASE_IMAGE=carfeed-local/base:bookworm
LOCAL_BROWSER_IMAGE=carfeed-local/browser:bookworm
LOCAL_BASE_IMAGE=$LOCAL_BASE_IMAGE LOCAL_BROWSER_IMAGE=$LOCAL_BROWSER_IMAGE WORK=$SCRATCH/base \
    scripts/make-local-base-image.sh
docker build -q -t carfeed-local/postgres:bookworm --build-arg BASE_IMAGE=$LOCAL_BASE_IMAGE docker/postgres-local >/dev/null
export POSTGRES_IMAGE=carfeed-local/postgres:bookworm NGINX_IMAGE=$LOCAL_BASE_IMAGE RUNTIME_IMAGE=$LOCAL_BASE_IMAGE \
    BROWSER_RUNTIME_IMAGE=$LOCAL_BROWSER_IMAGE

phase "cargo build ($PROFILE binaries)"
# The same command as scripts/test.sh: after it (CI), nothing to do. (Only
# some --bin targets would select other features and rebuild everything.)
if [ "$PROFILE" = release ]; then
    cargo build --release --workspace --bins --quiet
else
    cargo build --workspace --all-targets --quiet
fi

phase "docker build (prebuilt, prebuilt-browser targets)"
compose build migrate >"$SCRATCH/build.log" 2>&1 || { tail -30 "$SCRATCH/build.log"; fail "docker build"; }
compose --profile browser build worker-browser >"$SCRATCH/build-browser.log" 2>&1 \
    || { tail -30 "$SCRATCH/build-browser.log"; fail "docker build worker-browser"; }

# ---- 4. the stack ------------------------------------------------------------
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every second.
wait_for() {
    local seconds=$1 what=$2 start
    shift 2
    start=$(date +%s)
    until "$@" >/dev/null 2>&1; do
        [ $(($(date +%s) - start)) -lt "$seconds" ] || fail "$what: not within $seconds s"
        sleep 1
    done
    log "$what ($(($(date +%s) - start)) s)"
}
container() { compose ps -q "$1"; }
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$(container "$1")")" = healthy ]; }
url() { echo "http://127.0.0.1:$HTTP_PORT$1"; }
get() { curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" "$(url "$1")"; }
sql() { compose exec -T postgres psql -U carfeed -d carfeed -At -c "$1"; }

phase "up -d until nginx is healthy"
STACK_UP=1
UP_START=$(date +%s)
compose up -d >"$SCRATCH/up.log" 2>&1 || { cat "$SCRATCH/up.log"; fail "compose up"; }
wait_for 180 "api healthy" healthy api
wait_for 60 "nginx healthy" healthy nginx
for service in postgres che168-sim loader normalizer worker worker-cleanup; do
    healthy "$service" || wait_for 60 "$service healthy" healthy "$service"
done
[ "$(docker inspect -f '{{.State.ExitCode}}' "$(container migrate)")" = 0 ] || fail "migrate did not exit 0"

phase "offers through nginx with a token"
# (Into a file first: grep -q stopping early would fail the pipe under pipefail.)
compose logs --no-color api >"$SCRATCH/api.log"
grep -q "\[WARNING\] SECRET_KEY is not set: generated a random key" "$SCRATCH/api.log" \
    || fail "the api did not log the generated-key WARNING"
[ "$(compose exec -T api stat -c %a /app/secrets/secret_key | tr -d '\r')" = 600 ] \
    || fail "the generated key file is not mode 0600"
TOKEN=$(compose exec -T api api tokens issue --description "compose smoke" | tr -d '\r')
[[ $TOKEN =~ ^[A-Za-z0-9]{16}$ ]] || fail "api tokens issue printed something else than one token: $TOKEN"
offers_shown() { get "/api/v1/offers?limit=5" | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["items"] else 1)'; }
wait_for 120 "offers served through nginx" offers_shown
log "offers shown $(($(date +%s) - UP_START)) s after up"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$(url /api/v1/offers)")" = 401 ] || fail "offers without a token were not refused"
first=$(get "/api/v1/offers?limit=1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["inner_id"])')
get "/api/v1/offers/$first" | python3 -c 'import json, sys; o = json.load(sys.stdin); assert o["inner_id"] == sys.argv[1] and "mark" in o, o' "$first" \
    || fail "offer $first is not a normalised offer"
raw=$(sql "SELECT count(*) FROM raw_data")
processed=$(sql "SELECT count(*) FROM processed_data")
log "raw_data: $raw rows loaded from the simulator; processed_data: $processed normalised"
[ "$raw" -gt 0 ] && [ "$processed" -gt 0 ] || fail "no rows loaded or normalised"
[ "$(sql "SELECT count(*) FROM processed_data WHERE inner_id = '$first'")" = 1 ] || fail "offer $first is not in processed_data"

phase "restart, recreate api: nginx serves"
restart_start=$(date +%s.%N)
compose restart api >/dev/null 2>&1
health_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(url /health)")" = 200 ]; }
wait_for 30 "nginx serves /health again" health_ok
log "nginx served again $(elapsed "$restart_start") s after 'restart api' began (no nginx reload)"
get "/api/v1/offers?limit=1" >/dev/null || fail "the token stopped working after the api restarted (key not kept?)"
# A recreated api container at a new address (the old one taken meanwhile
# by another container): nginx finds it through Docker's DNS, no reload.
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
old_ip=$(ip_of "$(container api)")
compose rm -sf api >/dev/null 2>&1
docker run -d --network "${PROJECT}_default" --name "$PROJECT-ipgrab" "$LOCAL_BASE_IMAGE" sleep 600 >/dev/null
compose up -d --no-deps api >/dev/null 2>&1
new_ip=$(ip_of "$(container api)")
[ "$new_ip" != "$old_ip" ] || fail "the recreated api kept its address $old_ip"
offers_ok() { get "/api/v1/offers?limit=1" >/dev/null; }
wait_for 60 "nginx serves offers from the recreated api ($old_ip -> $new_ip)" offers_ok
docker rm -f "$PROJECT-ipgrab" >/dev/null

phase "worker fleet registered"
worker_alive() {
    compose exec -T worker worker status --json \
        | python3 -c 'import json, sys; t = sys.stdin.read(); sys.exit(0 if any(w["status"] == "alive" for w in json.loads(t[t.index("{"):])["workers"]) else 1)'
}
wait_for 60 "a worker registered and alive (worker status --json)" worker_alive
log "worker status: $(compose exec -T worker worker status | tr -d '\r' | head -3 | tr '\n' ' ')"

phase "browser worker: render_url through tinyproxy"
# A static site whose listings appear only after their page's script
# fetched them (the tests' page, fixtures/listing-site/car.html, at
# /car/<n>/, its data at /api/car/<n>), and tinyproxy asking for
# credentials, beside the stack on its network.
NETWORK=${PROJECT}_default
for n in 1 2; do
    mkdir -p "$SCRATCH/site/car/$n" "$SCRATCH/site/api/car"
    cp fixtures/listing-site/car.html "$SCRATCH/site/car/$n/index.html"
    printf '{"title": "BMW 320i #%s", "price": %s, "mileage_km": %s, "dealer": "d%s", "photos": ["/img/%s-1.jpg"]}\n' \
        "$n" $((100000 + 1250 * n)) $((1000 * n + 7)) "$n" "$n" >"$SCRATCH/site/api/car/$n"
done
chmod -R a+rX "$SCRATCH/site"
docker run -d --network "$NETWORK" --name "$PROJECT-site" \
    -v "$SCRATCH/site:/var/www/html:ro" "$LOCAL_BASE_IMAGE" nginx -g 'daemon off;' >/dev/null
docker run -d --network "$NETWORK" --name "$PROJECT-proxy" \
    -v "$REPO/fixtures/compose-smoke/tinyproxy.conf:/etc/tinyproxy/smoke.conf:ro" "$LOCAL_BASE_IMAGE" \
    tinyproxy -d -c /etc/tinyproxy/smoke.conf >/dev/null
compose --profile browser up -d --no-deps worker-browser >"$SCRATCH/up-browser.log" 2>&1 \
    || { cat "$SCRATCH/up-browser.log"; fail "compose up worker-browser"; }
wait_for 90 "worker-browser healthy (Chromium found at start)" healthy worker-browser
browser() { compose exec -T worker-browser "$@"; }
printf 'http://smoke:s3cret@%s-proxy:8888\n' "$PROJECT" | browser worker proxies upload /dev/stdin >/dev/null \
    || fail "worker proxies upload"
printf '%s\n' "http://$PROJECT-site/car/1/" \
    "{\"url\": \"http://$PROJECT-site/car/2/\", \"wait_for\": \".listing .price\"}" \
    | browser worker tasks upload --kind render_url --extract listing /dev/stdin >/dev/null \
    || fail "worker tasks upload --kind render_url"
rendered() {
    browser worker status --json | python3 -c 'import json, sys; t = sys.stdin.read()
counts = {c["status"]: c["count"] for c in json.loads(t[t.index("{"):])["tasks"]}
sys.exit(0 if counts.get("completed", 0) == 2 else 1)'
}
wait_for 120 "2 render_url tasks completed" rendered
browser worker results export --format csv >"$SCRATCH/cars.csv" || fail "worker results export"
python3 - "$SCRATCH/cars.csv" "$PROJECT-site" <<'PY' || fail "the CSV export lacks the rendered listings"
import csv, sys
rows = {r["target"]: r for r in csv.DictReader(open(sys.argv[1]))}
for n in (1, 2):
    r = rows[f"http://{sys.argv[2]}/car/{n}/"]
    assert r["title"] == f"BMW 320i #{n}", r
    assert r["price"] == str(100000 + 1250 * n), r
    assert r["mileage_km"] == str(1000 * n + 7), r
    assert r["missing_fields"] == "", r
first = rows[f"http://{sys.argv[2]}/car/1/"]
print(f"cars.csv: {len(rows)} rows, e.g. {first['title']}, price {first['price']}")
PY
# Only the browser worker claimed them, and both went through the proxy.
host=$(docker inspect -f '{{.Config.Hostname}}' "$(container worker-browser)")
[ "$(sql "SELECT count(*) FROM results r JOIN workers w ON w.id = r.worker_id WHERE w.name LIKE '$host-%'")" = 2 ] \
    || fail "the render_url results are not the browser worker's ($host)"
docker logs "$PROJECT-proxy" >"$SCRATCH/proxy.log" 2>&1
grep -q "/api/car/1" "$SCRATCH/proxy.log" || { tail -20 "$SCRATCH/proxy.log"; fail "tinyproxy saw no request for the listing's data"; }
log "worker-browser rendered both pages through tinyproxy ($(grep -c 'Request' "$SCRATCH/proxy.log") proxied requests)"

phase "logs loader"
compose logs --no-color loader >"$SCRATCH/loader.log"
grep -q "\[INFO\] .*initial load" "$SCRATCH/loader.log" || { tail -20 "$SCRATCH/loader.log"; fail "logs loader shows no initial-load lines"; }
log "logs loader: $(wc -l <"$SCRATCH/loader.log") lines, e.g. $(grep -m1 '\[INFO\]' "$SCRATCH/loader.log" | sed 's/^[^|]*| //')"

phase "kill -9 normalizer: restarted, pipeline on"
NORMALIZER=$(container normalizer)
before=$(docker inspect -f '{{.RestartCount}}' "$NORMALIZER")
processed_before=$(sql "SELECT count(*) FROM processed_data")
# SIGKILL to the container's main process from the host, as a crash would
# be: `docker kill` and `compose kill` count as a manual stop, which the
# restart policy unless-stopped obeys by leaving the container down.
kill -KILL "$(docker inspect -f '{{.State.Pid}}' "$NORMALIZER")"
restarted() { [ "$(docker inspect -f '{{.RestartCount}} {{.State.Running}}' "$NORMALIZER")" = "$((before + 1)) true" ]; }
wait_for 30 "normalizer restarted by its restart policy" restarted
# New rows keep arriving (the initial load continues) and are normalised.
grown() { [ "$(sql "SELECT count(*) FROM processed_data")" -gt "$processed_before" ]; }
wait_for 90 "processed_data grows after the restart ($processed_before before)" grown
wait_for 60 "normalizer healthy again" healthy normalizer

end_phase
log "all checks passed"
