#!/usr/bin/env bash
# make-local-rust-image.sh: a stand-in for the official `rust:X.Y-bookworm`
# image on a machine that reaches no container registry, so that the
# Dockerfile's own from-source stages (cargo-chef planner, cook, build) run
# unchanged in the compose smoke test.
#
# It packs, on top of a Debian image with a C compiler ($LOCAL_BUILD_IMAGE,
# made by scripts/make-local-base-image.sh):
#   - this machine's Rust toolchain (`rustc --print sysroot`, without its
#     docs) at /usr/local/rust, cargo and rustc on PATH. Its version is the
#     one scripts/check-rust-version.sh has checked against Cargo.toml, the
#     Dockerfile and the lock file, and the image is tagged with it;
#   - cargo-chef, built here, because the Dockerfile's `cargo install
#     cargo-chef` needs crates.io, which containers here cannot reach (the
#     Dockerfile skips the install when the image already has it);
#   - the crate sources, offline: a copy of this machine's cargo registry
#     (index and .crate files, as the host's build of the workspace left
#     them) with CARGO_NET_OFFLINE=true. A VPS user's build downloads them
#     from crates.io instead; nothing in the Dockerfile changes.
#
# Env: LOCAL_BUILD_IMAGE (required), LOCAL_RUST_IMAGE (default
# carfeed-local/rust:<major.minor>-bookworm), DOCKER (CLI, default docker).
# Prints the tag it made on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
: "${LOCAL_BUILD_IMAGE:?set LOCAL_BUILD_IMAGE (a Debian image with gcc, from make-local-base-image.sh)}"
log() { printf '[rust-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

version=$(rustc --version | sed -E 's/^rustc ([0-9]+\.[0-9]+).*/\1/')
TAG=${LOCAL_RUST_IMAGE:-carfeed-local/rust:$version-bookworm}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}

WORK=$(mktemp -d /tmp/carfeed-rust-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The crates of Cargo.lock for this platform, fetched into the registry here
# (a no-op after the host's build), so that the copy below holds them all.
cargo fetch --locked --target "$(rustc -vV | sed -n 's/^host: //p')" >&2

log "packing the toolchain ($(rustc --version)) without its docs"
sysroot=$(rustc --print sysroot)
mkdir -p "$WORK/rust" "$WORK/cargo/bin" "$WORK/cargo/registry"
cp -a "$sysroot/bin" "$sysroot/lib" "$WORK/rust/"
[ -d "$sysroot/libexec" ] && cp -a "$sysroot/libexec" "$WORK/rust/"
# cargo and rustc themselves, not rustup's proxies.
for tool in cargo rustc rustdoc; do
    cp -L "$(rustup which "$tool" 2>/dev/null || command -v "$tool")" "$WORK/rust/bin/$tool"
done

# Installed where cargo installs tools (kept for the next run on this machine).
if ! chef=$(command -v cargo-chef); then
    log "building cargo-chef (cargo install --locked cargo-chef ^0.1)"
    cargo install --quiet --locked cargo-chef --version '^0.1' >&2
    chef=$CARGO_HOME/bin/cargo-chef
fi
cp "$chef" "$WORK/cargo/bin/cargo-chef"

log "copying the cargo registry (index and .crate files)"
cp -a "$CARGO_HOME/registry/index" "$CARGO_HOME/registry/cache" "$WORK/cargo/registry/"

cat >"$WORK/Dockerfile" <<EOF
FROM $LOCAL_BUILD_IMAGE
COPY rust /usr/local/rust
COPY cargo /usr/local/cargo
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    CARGO_NET_OFFLINE=true
WORKDIR /
EOF
log "docker build $TAG ($(du -sh "$WORK" | cut -f1) of context)"
$DOCKER build -q -t "$TAG" "$WORK" >/dev/null
$DOCKER run --rm "$TAG" sh -c 'cargo --version && rustc --version && cargo chef --version' >&2
echo "$TAG"
