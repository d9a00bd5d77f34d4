#!/usr/bin/env bash
# compose-smoke.sh: the real Docker Compose stack, end to end (run by .ci/run).
#
#   1. installs Docker and Compose when missing (Debian's docker.io and
#      docker-compose) and, when no engine answers, starts its own dockerd
#      in a scratch directory under /tmp (stopped again by its pid);
#   2. checks that both compose files validate;
#   3. builds the images without any registry, with the Dockerfile's own
#      from-source stages (cargo-chef planner, cook, build: targets
#      `runtime` and `runtime-browser`): a local Debian base image
#      (scripts/make-local-base-image.sh), the local Postgres image
#      (docker/postgres-local), and a local stand-in for the official Rust
#      image made from this machine's toolchain and cargo registry
#      (scripts/make-local-rust-image.sh), passed as RUST_IMAGE;
#   4. the development stack: `up -d`, then through nginx with a token:
#      offers loaded from the simulator and normalised; `restart api` keeps
#      nginx serving; `logs loader` shows its lines; a normaliser killed with
#      SIGKILL is brought back by its restart policy and the pipeline
#      carries on; the browser worker (`--profile browser`) renders a
#      JavaScript-only page through tinyproxy with credentials and the CSV
#      export carries the extracted fields; then `down -v`;
#   5. the VPS stack (docker-compose.prod.yml) through deploy.sh, as a VPS
#      user runs it: a self-signed certificate where certbot keeps its own,
#      offers over HTTPS, plain HTTP redirected, HSTS, only 80 and 443
#      published, certbot running; then the images carried by `docker save`
#      / `docker load` and redeployed with `deploy.sh --image` (no build),
#      and a deploy of a missing image failing with the rollback commands;
#   6. `down -v` and the engine stopped, also when a step fails.
# It prints how long each phase took.
#
# Usage: scripts/compose-smoke.sh [--release]
#   By default the images are built with the `image-test` cargo profile (dev
#   without debug info: a fraction of the release build's time, to keep CI
#   short); --release builds them as a VPS user gets them. Needs root
#   (installing, dockerd, debootstrap).
#   SMOKE_KEEP=1 leaves the stack and the engine running for a look.
#   SMOKE_DOCKER_ROOT=<dir>: the started engine's data root, kept between
#   runs (warm: the base images and the build cache are reused); default a
#   fresh one (cold).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PROFILE=image-test
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
# The Dockerfile needs BuildKit (the legacy builder would build the browser
# stages for `runtime` too); Debian's docker CLI (20.10) has it built in.

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
    printf '\ncompose-smoke phases (images built with the %s profile):\n' "$PROFILE"
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
PROD_UP=0
PROD_PROJECT=carfeed-smoke-prod
prod_compose() {
    COMPOSE_PROJECT_NAME=$PROD_PROJECT COMPOSE_PROFILES=simulator,backup \
        "${COMPOSE_CMD[@]}" --env-file "$SCRATCH/prod.env" -f "$REPO/docker-compose.yml" -f "$REPO/docker-compose.prod.yml" "$@"
}
cleanup() {
    local status=$?
    set +e
    if [ "$status" != 0 ] && [ "$STACK_UP" = 1 ]; then
        echo "---- compose ps and the last log lines of each service (failure) ----"
        compose ps
        compose logs --no-color --tail=40
    fi
    if [ "$status" != 0 ] && [ "$PROD_UP" = 1 ]; then
        echo "---- the VPS stack: compose ps and the last log lines of each service (failure) ----"
        prod_compose ps
        prod_compose logs --no-color --tail=40
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
    if [ "$PROD_UP" = 1 ]; then
        prod_compose down -v --remove-orphans --timeout 20 >"$SCRATCH/down-prod.log" 2>&1 \
            || { echo "compose down (VPS stack) failed:"; tail -20 "$SCRATCH/down-prod.log"; }
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
# A check that fails outside `fail` (set -e) still says where.
trap 'echo "compose-smoke: a command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

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
ADMIN_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HTTP_BIND=127.0.0.1 HTTP_PORT ADMIN_PORT
export CARFEED_IMAGE=carfeed-smoke:latest CARFEED_BUILD_TARGET=runtime CARFEED_BUILD_PROFILE=$PROFILE
export CARFEED_BROWSER_IMAGE=carfeed-smoke-browser:latest CARFEED_BROWSER_BUILD_TARGET=runtime-browser
# The browser worker's test site is on the compose network: a private address.
export WORKER_ALLOW_PRIVATE_TARGETS=true
: >"$SCRATCH/empty.env" # a developer's .env must not leak into the test
compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" --env-file "$SCRATCH/empty.env" -f "$REPO/docker-compose.yml" "$@"; }

phase "validate compose files"
compose config -q
PROD_REQUIRED=(DB_PASSWORD=x CHE168_BASE_URL=https://upstream.invalid CHE168_API_KEY=x SECRET_KEY=0123456789abcdef0123456789abcdef
    DB_LOADER_PASSWORD=x DB_NORMALIZER_PASSWORD=x DB_API_PASSWORD=x DB_WORKER_PASSWORD=x DB_SYNC_PASSWORD=x)
env "${PROD_REQUIRED[@]}" "${COMPOSE_CMD[@]}" --env-file "$SCRATCH/empty.env" -f docker-compose.yml -f docker-compose.prod.yml config -q
# Each required secret, missing alone, stops compose naming it.
for missing in "${PROD_REQUIRED[@]}"; do
    name=${missing%%=*}
    rest=()
    for kv in "${PROD_REQUIRED[@]}"; do [ "$kv" = "$missing" ] || rest+=("$kv"); done
    if env "${rest[@]}" "${COMPOSE_CMD[@]}" --env-file "$SCRATCH/empty.env" -f docker-compose.yml -f docker-compose.prod.yml \
        config -q >"$SCRATCH/refused.log" 2>&1; then
        fail "docker-compose.prod.yml accepted an environment without $name"
    fi
    grep -q "$name" "$SCRATCH/refused.log" || { cat "$SCRATCH/refused.log"; fail "compose refused a prod stack without $name but did not name it"; }
done
log "the VPS stack refuses to start without each of: ${PROD_REQUIRED[*]%%=*}"

# ---- 3. images -------------------------------------------------------------
phase "base images (local, no registry)"
LOCAL_BASE_IMAGE=carfeed-local/base:bookworm
LOCAL_BUILD_IMAGE=carfeed-local/build:bookworm
LOCAL_BROWSER_IMAGE=carfeed-local/browser:bookworm
LOCAL_BASE_IMAGE=$LOCAL_BASE_IMAGE LOCAL_BUILD_IMAGE=$LOCAL_BUILD_IMAGE LOCAL_BROWSER_IMAGE=$LOCAL_BROWSER_IMAGE \
    WORK=$SCRATCH/base scripts/make-local-base-image.sh
docker build -q -t carfeed-local/postgres:bookworm --build-arg BASE_IMAGE=$LOCAL_BASE_IMAGE docker/postgres-local >/dev/null
export POSTGRES_IMAGE=carfeed-local/postgres:bookworm NGINX_IMAGE=$LOCAL_BASE_IMAGE RUNTIME_IMAGE=$LOCAL_BASE_IMAGE \
    BROWSER_RUNTIME_IMAGE=$LOCAL_BROWSER_IMAGE CERTBOT_IMAGE=$LOCAL_BASE_IMAGE

phase "local Rust image (this machine's toolchain)"
# The version scripts/check-rust-version.sh agreed on, so the build below is
# the one `rust:X.Y-bookworm` would make.
scripts/check-rust-version.sh
RUST_IMAGE=$(LOCAL_BUILD_IMAGE=$LOCAL_BUILD_IMAGE scripts/make-local-rust-image.sh)
export RUST_IMAGE
log "RUST_IMAGE=$RUST_IMAGE"

phase "docker build from source (runtime, runtime-browser; $PROFILE)"
# Peak memory of the whole machine while it builds, sampled every second.
( peak=0; while :; do used=$(free -m | awk '/^Mem:/ { print $3 }'); [ "$used" -gt "$peak" ] && peak=$used && echo "$peak" >"$SCRATCH/build-mem-peak"; sleep 1; done ) &
MEM_SAMPLER=$!
mem_before=$(free -m | awk '/^Mem:/ { print $3 }')
build_start=$(date +%s)
compose build migrate >"$SCRATCH/build.log" 2>&1 || { tail -40 "$SCRATCH/build.log"; kill "$MEM_SAMPLER"; fail "docker build (target runtime)"; }
build_runtime=$(($(date +%s) - build_start))
compose --profile browser build worker-browser >"$SCRATCH/build-browser.log" 2>&1 \
    || { tail -40 "$SCRATCH/build-browser.log"; kill "$MEM_SAMPLER"; fail "docker build worker-browser (target runtime-browser)"; }
kill "$MEM_SAMPLER" 2>/dev/null || true
wait "$MEM_SAMPLER" 2>/dev/null || true
size() { docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
log "built $CARFEED_IMAGE ($(size "$CARFEED_IMAGE")) in $build_runtime s, then $CARFEED_BROWSER_IMAGE ($(size "$CARFEED_BROWSER_IMAGE")) in $(($(date +%s) - build_start - build_runtime)) s"
log "memory in use while building: peak $(cat "$SCRATCH/build-mem-peak" 2>/dev/null || echo '?') MB (before: $mem_before MB)"
log "docker's disk after the build: $(docker system df --format '{{.Type}} {{.Size}}' | tr '\n' ';' | sed 's/;$//')"
docker run --rm "$CARFEED_IMAGE" api --version >/dev/null 2>&1 || docker run --rm "$CARFEED_IMAGE" api --help >/dev/null \
    || fail "the built image does not run its api binary"

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
compose logs --no-color nginx >"$SCRATCH/nginx.log"
grep -q 'GET /api/v1/offers?limit=5 .* 200 .*request_id=[0-9a-f]\{32\}' "$SCRATCH/nginx.log" \
    || { tail -5 "$SCRATCH/nginx.log"; fail "nginx's access log lacks the request id"; }
first=$(get "/api/v1/offers?limit=1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["inner_id"])')
get "/api/v1/offers/$first" | python3 -c 'import json, sys; o = json.load(sys.stdin); assert o["inner_id"] == sys.argv[1] and "mark" in o, o' "$first" \
    || fail "offer $first is not a normalised offer"
raw=$(sql "SELECT count(*) FROM raw_data")
processed=$(sql "SELECT count(*) FROM processed_data")
log "raw_data: $raw rows loaded from the simulator; processed_data: $processed normalised"
[ "$raw" -gt 0 ] && [ "$processed" -gt 0 ] || fail "no rows loaded or normalised"
[ "$(sql "SELECT count(*) FROM processed_data WHERE inner_id = '$first'")" = 1 ] || fail "offer $first is not in processed_data"

phase "a database role per service"
[ "$(sql "SELECT count(*) FROM pg_roles WHERE rolname IN ('carfeed_loader', 'carfeed_normalizer', 'carfeed_api', 'carfeed_worker', 'carfeed_sync')")" = 5 ] \
    || fail "the five service roles are not all there"
compose logs --no-color migrate >"$SCRATCH/migrate.log"
[ "$(grep -c "Role carfeed_[a-z]*: generated a password" "$SCRATCH/migrate.log")" = 5 ] \
    || { cat "$SCRATCH/migrate.log"; fail "migrate did not generate the five role passwords"; }
logins=$(sql "SELECT string_agg(DISTINCT usename, ',' ORDER BY usename) FROM pg_stat_activity WHERE application_name IN ('loader', 'normalizer', 'api', 'worker')")
log "the services are logged in as: $logins"
[[ $logins == *carfeed_api* && $logins == *carfeed_loader* && $logins == *carfeed_normalizer* && $logins == *carfeed_worker* ]] \
    || fail "not every service logged in as its own role: $logins"
[[ ,$logins, != *,carfeed,* ]] || fail "a service logged in as the owner: $logins"
denied() { sql "SET ROLE $1; $2" >"$SCRATCH/denied.log" 2>&1 && return 1; grep -q "permission denied" "$SCRATCH/denied.log"; }
denied carfeed_api "SELECT 1 FROM raw_data LIMIT 1" || fail "carfeed_api may read raw_data"
denied carfeed_api "UPDATE processed_data SET mark = mark WHERE false" || fail "carfeed_api may write processed_data"
denied carfeed_worker "SELECT 1 FROM api_tokens LIMIT 1" || fail "carfeed_worker may read api_tokens"
denied carfeed_worker "SELECT 1 FROM processed_data LIMIT 1" || fail "carfeed_worker may read processed_data"
get /api/v1/stats >/dev/null || fail "/api/v1/stats under the api's role"
[ "$(compose exec -T api stat -c %a /app/db-role/password | tr -d '\r')" = 600 ] || fail "the api's role password file is not mode 0600"
log "roles: 5 present, each service on its own, the api kept from raw_data and processed_data writes, the worker from tokens and offers"

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

# ---- the stack comes back on its own after Postgres goes away -------------------
# every_service_healthy: each running service's container is healthy (or has
# no healthcheck and runs), none restarting; migrate exited 0.
every_service_healthy() {
    local id name state
    for id in $(compose ps -q); do
        name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
        # state exit-code health (empty without a healthcheck)
        state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
        case $name:$state in
            migrate:"exited 0 "*) ;;
            *:"running "*" healthy" | *:"running 0 ") ;;
            *) return 1 ;;
        esac
    done
}
unhealthy_list() {
    local id
    for id in $(compose ps -q); do
        docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}={{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}} restarts={{.RestartCount}}' "$id"
    done | tr '\n' ' '
}
restart_counts() {
    local id
    for id in $(compose ps -q); do docker inspect -f '{{.Name}} {{.RestartCount}}' "$id"; done | sort
}
# recovered WHAT START: every service healthy, offers through nginx, within 120 s.
recovered() {
    local what=$1 start=$2
    local deadline=$(($(date +%s) + 120))
    # Offers are asked for only once every service is healthy again: a
    # request sent while Postgres is away is a real 5xx on the status page.
    until every_service_healthy && offers_ok; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what: the stack did not come back within 120 s: $(unhealthy_list)"
        sleep 1
    done
    api_state=$(curl -fsS --max-time 10 "http://127.0.0.1:$ADMIN_PORT/status.json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["api"]["state"])') \
        || fail "$what: /status.json on the operator listener"
    [ "$api_state" = ok ] || fail "$what: /status.json says $api_state for api"
    log "$what: every service healthy, offers served through nginx and /status.json ok for api $(elapsed "$start") s later"
}

phase "restart postgres: the stack comes back"
restarts_before=$(restart_counts)
start=$(date +%s.%N)
compose restart postgres >/dev/null 2>&1
recovered "docker compose restart postgres" "$start"

phase "SIGKILL to Postgres' main process: the stack comes back"
start=$(date +%s.%N)
kill -KILL "$(docker inspect -f '{{.State.Pid}}' "$(container postgres)")"
recovered "SIGKILL of Postgres' main process" "$start"
# No container stayed down or looped: each restart count grew by at most 2.
restarts_after=$(restart_counts)
join -j 1 <(echo "$restarts_before") <(echo "$restarts_after") | while read -r name before after; do
    [ $((after - before)) -le 2 ] || fail "$name restarted $((after - before)) times while Postgres was away"
done
log "restart counts after both: $(echo "$restarts_after" | awk '$2 > 0 { printf "%s=%s ", substr($1, 2), $2 }')"

phase "down -v (development stack)"
docker rm -f "$PROJECT-site" "$PROJECT-proxy" >/dev/null 2>&1 || true
compose --profile browser down -v --remove-orphans --timeout 20 >"$SCRATCH/down.log" 2>&1 \
    || { tail -20 "$SCRATCH/down.log"; fail "compose down (development stack)"; }
STACK_UP=0

# ---- 5. the VPS stack, as deploy.sh brings it up -----------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# HTTP_PORT is exported for the development stack (the environment wins over
# an env file): the VPS stack publishes plain HTTP there too.
PROD_HTTP_PORT=$HTTP_PORT
PROD_HTTPS_PORT=$(free_port)
# What a VPS user writes into .env (docker-compose.prod.yml requires each
# secret); the simulator stands in for the real upstream, and the ports are
# published on loopback, as tests here must.
{
    echo "DB_PASSWORD=$(openssl rand -hex 16)"
    echo "SECRET_KEY=$(openssl rand -hex 32)"
    echo "CHE168_BASE_URL=http://che168-sim:8090/api/v2/che168"
    echo "CHE168_API_KEY=sim-key"
    for role in LOADER NORMALIZER API WORKER SYNC; do echo "DB_${role}_PASSWORD=$(openssl rand -hex 16)"; done
    echo "HTTP_BIND=127.0.0.1"
    echo "HTTP_PORT=$PROD_HTTP_PORT"
    echo "HTTPS_BIND=127.0.0.1"
    echo "HTTPS_PORT=$PROD_HTTPS_PORT"
} >"$SCRATCH/prod.env"
prod_url() { echo "https://127.0.0.1:$PROD_HTTPS_PORT$1"; }
prod_get() { curl -fsS -k --max-time 10 -H "Authorization: Bearer $PROD_TOKEN" "$(prod_url "$1")"; }
deploy() {
    COMPOSE_PROJECT_NAME=$PROD_PROJECT COMPOSE_PROFILES=simulator,backup DEPLOY_TIMEOUT=240 \
        ./deploy.sh --no-pull --env-file "$SCRATCH/prod.env" "$@"
}

phase "VPS stack: certificate where certbot keeps it"
# A self-signed certificate under the name certbot gives its own
# (certonly --cert-name carfeed), on the volume compose will mount.
docker volume create --label com.docker.compose.project=$PROD_PROJECT --label com.docker.compose.volume=letsencrypt \
    "${PROD_PROJECT}_letsencrypt" >/dev/null
docker run --rm -v "${PROD_PROJECT}_letsencrypt:/etc/letsencrypt" "$LOCAL_BASE_IMAGE" sh -c \
    'mkdir -p /etc/letsencrypt/live/carfeed && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout /etc/letsencrypt/live/carfeed/privkey.pem -out /etc/letsencrypt/live/carfeed/fullchain.pem 2>/dev/null' \
    || fail "could not place the self-signed certificate"

phase "VPS stack: deploy.sh (both images from source, migrate, health)"
PROD_UP=1
deploy >"$SCRATCH/deploy.log" 2>&1 || { tail -40 "$SCRATCH/deploy.log"; fail "deploy.sh"; }
grep -E "images built|healthy$|running$|exited [0-9]" "$SCRATCH/deploy.log" | sed 's/^/  /'
for service in postgres loader normalizer api nginx certbot backup che168-sim worker worker-cleanup; do
    grep -q "\] $service \(healthy\|running\)$" "$SCRATCH/deploy.log" || fail "deploy.sh did not wait for $service"
done
grep -q "\] migrate exited 0" "$SCRATCH/deploy.log" || fail "deploy.sh did not see migrate exit 0"

phase "VPS stack: offers over HTTPS, redirect, HSTS, ports"
PROD_TOKEN=$(prod_compose exec -T api api tokens issue --description "compose smoke (VPS)" | tr -d '\r')
[[ $PROD_TOKEN =~ ^[A-Za-z0-9]{16}$ ]] || fail "api tokens issue (VPS) printed something else than one token: $PROD_TOKEN"
prod_offers() { prod_get "/api/v1/offers?limit=5" | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["items"] else 1)'; }
wait_for 180 "offers served over HTTPS through nginx" prod_offers
redirect=$(curl -s --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$PROD_HTTP_PORT/api/v1/offers?limit=1" || true)
[[ $redirect == "301 https://"* ]] || fail "plain HTTP did not redirect to HTTPS: $redirect"
curl -sk --max-time 10 -D "$SCRATCH/https-headers" -o /dev/null -H "Authorization: Bearer $PROD_TOKEN" \
    "$(prod_url "/api/v1/offers?limit=1")" || fail "GET over HTTPS for its headers"
hsts=$(grep -i '^strict-transport-security:' "$SCRATCH/https-headers" | tr -d '\r' || true)
[ -n "$hsts" ] || { cat "$SCRATCH/https-headers"; fail "no Strict-Transport-Security header over HTTPS"; }
log "HTTP -> $redirect; $hsts"
# Published ports: nginx's 80 and 443 to the world, the api's operator
# listener on the host's loopback only, nothing else.
published=$(docker ps --filter "label=com.docker.compose.project=$PROD_PROJECT" --format '{{.Names}} {{.Ports}}' | grep -- '->' || true)
echo "$published" | sed 's/^/  published: /'
nginx_ports=$(echo "$published" | grep nginx | grep -o -- '->[0-9]*/[a-z]*' | sort -u | tr '\n' ' ')
[ "$nginx_ports" = "->443/tcp ->80/tcp " ] || fail "nginx publishes other ports than 80 and 443: $nginx_ports"
admin=$(echo "$published" | grep -v nginx || true)
[[ $admin == *"_api_"*"127.0.0.1:$ADMIN_PORT->9090/tcp" && $(echo "$admin" | grep -c .) = 1 ]] \
    || fail "a service other than nginx publishes a port, or the api's operator listener is not on loopback: $admin"
prod_status=$(curl -fsS --max-time 10 "http://127.0.0.1:$ADMIN_PORT/status.json") || fail "/status.json (VPS stack)"
log "operator listener on 127.0.0.1:$ADMIN_PORT only: $(echo "$prod_status" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(", ".join(k + " " + v["state"] for k, v in d.items() if isinstance(v, dict) and "state" in v))')"
[ "$(docker inspect -f '{{.State.Running}}' "$(prod_compose ps -q certbot)")" = true ] || fail "certbot is not running"
prod_compose exec -T certbot certbot certificates >"$SCRATCH/certbot.log" 2>&1 || { cat "$SCRATCH/certbot.log"; fail "certbot certificates"; }
log "certbot running and answering ($(grep -m1 -i 'certificate' "$SCRATCH/certbot.log" | sed 's/^ *//'))"

phase "VPS stack: one backup, then the restore drill"
prod_compose exec -T backup /carfeed/scripts/backup.sh --once >"$SCRATCH/backup.log" 2>&1 \
    || { cat "$SCRATCH/backup.log"; fail "backup.sh --once"; }
sed 's/^/  /' "$SCRATCH/backup.log"
prod_compose exec -T backup /carfeed/scripts/restore-drill.sh >"$SCRATCH/drill.log" 2>&1 \
    || { cat "$SCRATCH/drill.log"; fail "restore-drill.sh"; }
sed 's/^/  /' "$SCRATCH/drill.log"
prod_sql() { prod_compose exec -T postgres psql -U carfeed -d carfeed -At -c "$1"; }
[ "$(prod_sql "SELECT count(*) FROM operations_log WHERE operation_type = 'backup' AND status = 'OK'")" -ge 1 ] \
    || fail "no backup row in operations_log"
[ "$(prod_sql "SELECT count(*) FROM operations_log WHERE operation_type = 'restore_drill' AND status = 'OK'")" -ge 1 ] \
    || fail "no restore_drill row in operations_log"
# A truncated dump (its manifest beside it): the drill refuses it and says why.
prod_compose exec -T backup sh -c 'd=$(ls /backups/carfeed-*.dump | tail -n 1); head -c 4096 "$d" >/backups/carfeed-29990101T000000Z.dump;
    cp "$d.manifest" /backups/carfeed-29990101T000000Z.dump.manifest'
if prod_compose exec -T backup /carfeed/scripts/restore-drill.sh >"$SCRATCH/drill-bad.log" 2>&1; then
    cat "$SCRATCH/drill-bad.log"; fail "the restore drill passed a truncated dump"
fi
grep -q "FAILED" "$SCRATCH/drill-bad.log" || { cat "$SCRATCH/drill-bad.log"; fail "the drill did not say why it failed"; }
log "a truncated dump: $(grep -m1 FAILED "$SCRATCH/drill-bad.log" | sed 's/^[^]]*] //')"
prod_compose exec -T backup sh -c 'rm -f /backups/carfeed-29990101T000000Z.dump*'

phase "VPS stack: images carried by docker save/load, deploy.sh --image"
docker save -o "$SCRATCH/images.tar" "$CARFEED_IMAGE" "$CARFEED_BROWSER_IMAGE"
log "docker save: $(du -h "$SCRATCH/images.tar" | cut -f1) for both images"
docker rmi -f "$CARFEED_IMAGE" "$CARFEED_BROWSER_IMAGE" >/dev/null
docker load -i "$SCRATCH/images.tar" >/dev/null
rm -f "$SCRATCH/images.tar"
deploy --image "$CARFEED_IMAGE" --browser-image "$CARFEED_BROWSER_IMAGE" >"$SCRATCH/deploy-image.log" 2>&1 \
    || { tail -40 "$SCRATCH/deploy-image.log"; fail "deploy.sh --image"; }
grep -q "no build" "$SCRATCH/deploy-image.log" || fail "deploy.sh --image did not use the given images"
if grep -q "images built" "$SCRATCH/deploy-image.log"; then fail "deploy.sh --image built the images"; fi
wait_for 60 "offers served over HTTPS after deploy.sh --image" prod_offers

phase "VPS stack: a failed deploy prints its rollback"
if deploy --image 127.0.0.1:9/carfeed:missing >"$SCRATCH/deploy-fail.log" 2>&1; then
    fail "deploy.sh succeeded with an image that does not exist"
fi
grep -q "To roll back" "$SCRATCH/deploy-fail.log" && grep -q "docker tag .*:rollback-" "$SCRATCH/deploy-fail.log" \
    || { cat "$SCRATCH/deploy-fail.log"; fail "the failed deploy printed no rollback commands"; }
sed -n '/FAILED during/,/up -d --no-build/p' "$SCRATCH/deploy-fail.log" | sed 's/^/  /'
prod_offers || fail "the failed deploy stopped the running stack"

end_phase
log "all checks passed"
