#!/usr/bin/env bash
# deploy.sh: deploy (or redeploy) carfeed on the VPS, from the repository's
# directory there:
#
#   ./deploy.sh                  # pull the code, build both images, migrate,
#                                # up -d, wait until every service is healthy
#   ./deploy.sh --no-pull        # deploy the checkout as it is
#   ./deploy.sh --image carfeed:1.4 [--browser-image carfeed-browser:1.4]
#                                # no build here: images built elsewhere and
#                                # brought with `docker save | ssh vps docker
#                                # load`, or pulled from your registry
#   ./deploy.sh --env-file FILE  # another environment file than ./.env
#
# Safe to run again: every step is idempotent (a build with nothing new is
# cached, migrations already applied are skipped, `up -d` leaves unchanged
# containers alone). Before it changes anything it records the commit and the
# images it replaces; when a step fails it prints how to go back to them.
#
# Extra compose files (a docker-compose.override.yml for the VPS) go in
# COMPOSE_FILES, e.g. COMPOSE_FILES="-f docker-compose.yml -f docker-compose.prod.yml -f vps.yml";
# profiles in COMPOSE_PROFILES (e.g. backup,browser,sync; `backup` when
# neither the environment nor the env file sets it), the project's name in
# COMPOSE_PROJECT_NAME, as compose itself reads them. DEPLOY_TIMEOUT (180 s)
# bounds the wait for health.
set -euo pipefail
cd "$(dirname "$0")"

PULL=1
ENV_FILE=.env
IMAGE_GIVEN=""
BROWSER_IMAGE_GIVEN=""
while [ "$#" -gt 0 ]; do
    case $1 in
        --no-pull) PULL=0 ;;
        --env-file) ENV_FILE=${2:?--env-file needs a file}; shift ;;
        --image) IMAGE_GIVEN=${2:?--image needs an image}; shift ;;
        --browser-image) BROWSER_IMAGE_GIVEN=${2:?--browser-image needs an image}; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "deploy.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

[ -f "$ENV_FILE" ] || { echo "deploy.sh: no $ENV_FILE here: copy .env.example to .env and fill it in" >&2; exit 2; }
# The images' names as compose will see them (the environment, else the
# env file, else compose's defaults); --image and --browser-image win.
from_env_file() { sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1; }
IMAGE=${IMAGE_GIVEN:-${CARFEED_IMAGE:-$(from_env_file CARFEED_IMAGE)}}
IMAGE=${IMAGE:-carfeed:latest}
BROWSER_IMAGE=${BROWSER_IMAGE_GIVEN:-${CARFEED_BROWSER_IMAGE:-$(from_env_file CARFEED_BROWSER_IMAGE)}}
BROWSER_IMAGE=${BROWSER_IMAGE:-carfeed-browser:latest}
export CARFEED_IMAGE=$IMAGE CARFEED_BROWSER_IMAGE=$BROWSER_IMAGE

# Backups run on a VPS unless the profiles are chosen elsewhere.
if [ -z "${COMPOSE_PROFILES+x}" ] && ! grep -q '^COMPOSE_PROFILES=' "$ENV_FILE"; then
    export COMPOSE_PROFILES=backup
fi

read -r -a FILES <<<"${COMPOSE_FILES:--f docker-compose.yml -f docker-compose.prod.yml}"
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose --env-file "$ENV_FILE" "${FILES[@]}")
else
    COMPOSE=(docker-compose --env-file "$ENV_FILE" "${FILES[@]}")
fi

log() { printf '[deploy %(%H:%M:%S)T] %s\n' -1 "$*"; }

STEP=""
PREVIOUS_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo "")
ROLLBACK_TAGS=()
on_error() {
    local status=$?
    echo
    log "FAILED during: $STEP (exit $status)"
    echo "The containers that were running before are left as they are unless 'up -d' already replaced them."
    echo "To roll back to what ran before this deploy:"
    [ -n "$PREVIOUS_COMMIT" ] && echo "  git checkout $PREVIOUS_COMMIT"
    if [ "${#ROLLBACK_TAGS[@]}" -gt 0 ]; then
        local pair
        for pair in "${ROLLBACK_TAGS[@]}"; do echo "  docker tag ${pair% *} ${pair#* }"; done
        echo "  ${COMPOSE[*]} up -d --no-build"
    else
        echo "  ./deploy.sh --no-pull"
    fi
    echo "Migrations only add to the schema, so the previous version runs on the migrated database."
    echo "A database restore is needed only if data was damaged: see Backup and Restore in docs/operating.md."
    echo "Logs: ${COMPOSE[*]} logs --tail=100 <service>"
    exit "$status"
}
trap on_error ERR

STEP="checking the configuration"
"${COMPOSE[@]}" config -q

if [ "$PULL" = 1 ]; then
    STEP="git pull"
    log "git pull --ff-only"
    git pull --ff-only
fi
[ -n "$PREVIOUS_COMMIT" ] && log "deploying $(git log -1 --format='%h %s')"

STEP="keeping the current images for a roll back"
# The images the project's containers run now (none on a first deploy),
# tagged so that a failed deploy can go back to them.
stamp=$(date +%Y%m%d%H%M%S)
declare -A kept=()
while read -r id; do
    [ -n "$id" ] || continue
    name=$(docker inspect -f '{{.Config.Image}}' "$id")
    image_id=$(docker inspect -f '{{.Image}}' "$id")
    [ -n "${kept[$name]:-}" ] && continue
    repo=$name
    [[ ${name##*:} == */* || $name != *:* ]] || repo=${name%:*}
    keep="$repo:rollback-$stamp"
    docker tag "$image_id" "$keep"
    kept[$name]=$keep
    ROLLBACK_TAGS+=("$keep $name")
    log "the running $name kept as $keep"
done < <("${COMPOSE[@]}" ps -q 2>/dev/null)

STEP="pulling the base images"
log "pulling the third-party images"
# Only the services that use a published image (ours are built here).
third_party=()
for service in postgres nginx certbot; do
    if "${COMPOSE[@]}" config --services | grep -qx "$service"; then third_party+=("$service"); fi
done
# A failed pull keeps the image already here (up -d fails later if there is none).
if ! "${COMPOSE[@]}" pull --quiet "${third_party[@]}" >/dev/null 2>&1; then
    log "could not pull every base image: going on with the images already here"
fi

if [ -n "$IMAGE_GIVEN" ] || [ -n "$BROWSER_IMAGE_GIVEN" ]; then
    STEP="finding the given images"
    for image in $IMAGE_GIVEN $BROWSER_IMAGE_GIVEN; do
        if ! docker image inspect "$image" >/dev/null 2>&1; then
            log "$image is not here: docker pull $image"
            docker pull "$image"
        fi
        log "using $image ($(docker image inspect --format '{{.Id}}' "$image" | cut -c1-19)), no build"
    done
    BUILD_FLAG=--no-build
else
    STEP="building the images from source"
    log "building $IMAGE (every service) and $BROWSER_IMAGE (browser workers)"
    build_start=$SECONDS
    "${COMPOSE[@]}" build migrate
    "${COMPOSE[@]}" --profile browser build worker-browser
    log "images built in $((SECONDS - build_start)) s"
    BUILD_FLAG=--no-build
fi

STEP="starting Postgres"
"${COMPOSE[@]}" up -d $BUILD_FLAG postgres

STEP="applying migrations"
log "applying migrations"
"${COMPOSE[@]}" run --rm migrate

STEP="starting the services"
log "up -d"
"${COMPOSE[@]}" up -d $BUILD_FLAG --remove-orphans

STEP="waiting until every service is healthy"
# Every service with a container, as started: healthy when it has a
# healthcheck, running when it has none, exit 0 for the one-shot migrate.
deadline=$((SECONDS + ${DEPLOY_TIMEOUT:-180}))
mapfile -t containers < <("${COMPOSE[@]}" ps -q)
for id in "${containers[@]}"; do
    name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
    while :; do
        # state:exit code:health (empty without a healthcheck)
        status=$(docker inspect -f '{{.State.Status}}:{{.State.ExitCode}}:{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
        case $name:$status in
            *:running:*:healthy | *:running:0: | migrate:exited:0:*) break ;;
        esac
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name is $status after ${DEPLOY_TIMEOUT:-180} s"
            false
        fi
        sleep 2
    done
    case $status in
        *:healthy) log "$name healthy" ;;
        running:*) log "$name running" ;;
        *) code=${status#*:}; log "$name exited ${code%%:*}" ;;
    esac
done

trap - ERR
"${COMPOSE[@]}" ps
[ -n "$PREVIOUS_COMMIT" ] && log "deployed $(git log -1 --format='%h %s')"
for pair in "${ROLLBACK_TAGS[@]}"; do
    log "the previous ${pair#* } stays tagged ${pair% *} (docker image rm it when no longer needed)"
done
