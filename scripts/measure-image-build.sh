#!/bin/bash
# Builds both images cold (no build cache) the way `docker compose up` does,
# and prints the time, the machine's peak memory in use and Docker's disk.
#
#   scripts/measure-image-build.sh            # release, rust:1.95-bookworm
#   PROFILE=image-test scripts/measure-image-build.sh
#
# RUST_IMAGE, RUNTIME_IMAGE and BROWSER_RUNTIME_IMAGE override the bases (the
# compose smoke test's local images, where no registry is reachable). Uses
# the Docker engine DOCKER_HOST points at; it does not prune your cache, it
# builds with --no-cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_BUILDKIT=1
PROFILE=${PROFILE:-release}
RUST_IMAGE=${RUST_IMAGE:-rust:1.95-bookworm}
RUNTIME_IMAGE=${RUNTIME_IMAGE:-debian:bookworm-slim}
BROWSER_RUNTIME_IMAGE=${BROWSER_RUNTIME_IMAGE:-$RUNTIME_IMAGE}
log=$(mktemp)
used_mb() { free -m | awk '/^Mem:/ { print $3 }'; }

peak_file=$(mktemp)
( peak=0; while :; do u=$(used_mb); [ "$u" -gt "$peak" ] && peak=$u && echo "$peak" >"$peak_file"; sleep 1; done ) &
sampler=$!
trap 'kill $sampler 2>/dev/null; rm -f "$peak_file"' EXIT
before=$(used_mb)
start=$(date +%s)
docker build --no-cache --progress=plain -t carfeed:measure --target runtime \
    --build-arg PROFILE="$PROFILE" --build-arg RUST_IMAGE="$RUST_IMAGE" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" . >"$log" 2>&1 ||
    { tail -30 "$log"; echo "measure-image-build: the runtime build failed (log $log)" >&2; exit 1; }
mid=$(date +%s)
docker build --progress=plain -t carfeed-browser:measure --target runtime-browser \
    --build-arg PROFILE="$PROFILE" --build-arg RUST_IMAGE="$RUST_IMAGE" --build-arg RUNTIME_IMAGE="$BROWSER_RUNTIME_IMAGE" . >>"$log" 2>&1 ||
    { tail -30 "$log"; echo "measure-image-build: the runtime-browser build failed (log $log)" >&2; exit 1; }
end=$(date +%s)
echo "profile $PROFILE on $(nproc) cores (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "runtime (cold): $((mid - start)) s; runtime-browser after it: $((end - mid)) s"
{ grep -E 'Finished `' "$log" || true; } | sed 's/^#[0-9]* *[0-9.]* */  cargo: /'
echo "peak memory in use on the machine: $(cat "$peak_file") MB (before the build: $before MB)"
for image in carfeed:measure carfeed-browser:measure; do
    docker image inspect --format '{{.Size}}' "$image" | awk -v i="$image" '{ printf "image %s: %.0f MB\n", i, $1/1e6 }'
done
docker system df
rm -f "$log"
