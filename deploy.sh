#!/usr/bin/env bash
# deploy.sh: deploy (or redeploy) carfeed on the VPS, from the repository's
# directory there:
#
#   ./deploy.sh            # pull the code, build, migrate, up -d, wait until healthy
#   ./deploy.sh --no-pull  # deploy the checkout as it is
#
# Safe to run again: every step is idempotent (a build with nothing new is
# cached, migrations already applied are skipped, `up -d` leaves unchanged
# containers alone). Before it changes anything it records the commit and the
# image it replaces; when a step fails it prints how to go back to them.
#
# Extra compose files (a docker-compose.override.yml for the VPS) go in
# COMPOSE_FILES, e.g. COMPOSE_FILES="-f docker-compose.yml -f docker-compose.prod.yml -f vps.yml".
set -euo pipefail
cd "$(dirname "$0")"

PULL=1
for arg in "$@"; do
    case $arg in
        --no-pull) PULL=0 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "deploy.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

read -r -a FILES <<<"${COMPOSE_FILES:--f docker-compose.yml -f docker-compose.prod.yml}"
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose "${FILES[@]}")
else
    COMPOSE=(docker-compose "${FILES[@]}")
fi
IMAGE=${CARFEED_IMAGE:-carfeed:latest}
# Services that must end healthy (certbot only renews; sync and the
# workers run when their profiles are enabled).
CHECKED=(postgres loader normalizer api nginx)

log() { printf '[deploy %(%H:%M:%S)T] %s\n' -1 "$*"; }

STEP=""
PREVIOUS_COMMIT=$(git rev-parse HEAD)
PREVIOUS_IMAGE=""
on_error() {
    local status=$?
    echo
    log "FAILED during: $STEP (exit $status)"
    echo "The containers that were running before are left as they are unless 'up -d' already replaced them."
    echo "To roll back to what ran before this deploy:"
    echo "  git checkout $PREVIOUS_COMMIT"
    if [ -n "$PREVIOUS_IMAGE" ]; then
        echo "  docker tag $PREVIOUS_IMAGE $IMAGE"
        echo "  ${COMPOSE[*]} up -d --no-build"
    else
        echo "  ./deploy.sh --no-pull"
    fi
    echo "Migrations only add to the schema, so the previous version runs on the migrated database."
    echo "A database restore is needed only if data was damaged: see Backup and Restore under Operating in README.md."
    echo "Logs: ${COMPOSE[*]} logs --tail=100 <service>"
    exit "$status"
}
trap on_error ERR

STEP="checking the configuration"
[ -f .env ] || { echo "deploy.sh: no .env here: copy .env.example to .env and fill it in" >&2; exit 2; }
"${COMPOSE[@]}" config -q

if [ "$PULL" = 1 ]; then
    STEP="git pull"
    log "git pull --ff-only"
    git pull --ff-only
fi
log "deploying $(git log -1 --format='%h %s')"

STEP="keeping the current image for a roll back"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    PREVIOUS_IMAGE="carfeed:rollback-$(date +%Y%m%d%H%M%S)"
    docker tag "$IMAGE" "$PREVIOUS_IMAGE"
    log "current image kept as $PREVIOUS_IMAGE"
fi

STEP="pulling the base images"
log "pulling the third-party images"
# Only the services that use a published image (ours is built here).
third_party=()
for service in postgres nginx certbot; do
    if "${COMPOSE[@]}" config --services | grep -qx "$service"; then third_party+=("$service"); fi
done
# A failed pull keeps the image already here (up -d fails later if there is none).
if ! "${COMPOSE[@]}" pull --quiet "${third_party[@]}"; then
    log "could not pull every image: going on with the images already here"
fi

STEP="building the image"
log "building $IMAGE"
"${COMPOSE[@]}" build migrate

STEP="starting Postgres"
"${COMPOSE[@]}" up -d postgres

STEP="applying migrations"
log "applying migrations"
"${COMPOSE[@]}" run --rm migrate

STEP="starting the services"
log "up -d"
"${COMPOSE[@]}" up -d --remove-orphans

STEP="waiting until every service is healthy"
deadline=$((SECONDS + ${DEPLOY_TIMEOUT:-180}))
for service in "${CHECKED[@]}"; do
    while :; do
        id=$("${COMPOSE[@]}" ps -q "$service")
        status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
        [ "$status" = healthy ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$service is $status after ${DEPLOY_TIMEOUT:-180} s"
            false
        fi
        sleep 2
    done
    log "$service healthy"
done

trap - ERR
"${COMPOSE[@]}" ps
log "deployed $(git log -1 --format='%h %s')"
if [ -n "$PREVIOUS_IMAGE" ]; then
    log "the previous image stays tagged $PREVIOUS_IMAGE (docker image rm it when no longer needed)"
fi
