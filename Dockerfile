# carfeed: one image holding every binary (loader, normalizer, api, sync,
# worker, che168-sim); each compose service picks its binary by command.
#
# Two ways to get the binaries, chosen with --target (compose:
# CARFEED_BUILD_TARGET):
#   runtime  (default) compiled here, in a Rust image, with the dependencies
#            cached in their own layer (cargo-chef): a source change rebuilds
#            only the workspace's crates.
#   prebuilt packages binaries already built on the host (BIN_DIR, default
#            target/release), for machines that reach no registry and cannot
#            build Rust inside an image (scripts/compose-smoke.sh). The host
#            must have the runtime image's glibc or an older one (bookworm).
# Every base image can be swapped: RUNTIME_IMAGE, RUST_IMAGE.
# Browser workers (render_url, issue 15) use the same binaries on the runtime
# base plus Debian's Chromium: targets runtime-browser and prebuilt-browser.
# `prebuilt` comes before the Rust stages, so that even the legacy builder
# (which builds every stage up to the target) never needs the Rust image for it.

ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.85-bookworm

# ---- what every variant runs on --------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# curl answers the HTTP healthchecks; ca-certificates for the real upstream's
# HTTPS is not needed (the binaries carry their own roots), but is the usual
# kit. Installed only when the base image lacks curl.
RUN if ! command -v curl >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home carfeed \
    && mkdir -p /app/secrets /app/logs \
    && chown carfeed:carfeed /app/secrets /app/logs \
    && chmod 0700 /app/secrets
WORKDIR /app
# The defaults; compose mounts the repo's config.yaml over it.
COPY config.yaml /app/config.yaml
ENV CONFIG_FILE=/app/config.yaml
USER carfeed
CMD ["api", "--help"]

# ---- binaries built on the host --------------------------------------------
FROM runtime-base AS prebuilt
ARG BIN_DIR=target/release
COPY ${BIN_DIR}/loader ${BIN_DIR}/normalizer ${BIN_DIR}/api ${BIN_DIR}/sync ${BIN_DIR}/worker ${BIN_DIR}/che168-sim /usr/local/bin/

# ---- the browser workers' base: Debian's Chromium --------------------------
# Only `worker` runs here; the small image above stays without a browser.
# Installed only when the base image lacks it (the smoke test's local
# browser base carries it already: no apt inside a container there).
FROM runtime-base AS browser-base
USER root
RUN if ! command -v chromium >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-liberation \
        && rm -rf /var/lib/apt/lists/*; \
    fi
USER carfeed
ENV CARFEED__WORKER__BROWSER__ENABLED=true
CMD ["worker", "run"]

FROM browser-base AS prebuilt-browser
ARG BIN_DIR=target/release
COPY ${BIN_DIR}/worker /usr/local/bin/

# ---- binaries built here ---------------------------------------------------
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

# The sources a build reads (never the context's target/ binaries, which
# only the prebuilt target packages).
FROM chef AS sources
COPY Cargo.toml Cargo.lock config.yaml ./
COPY migrations migrations
COPY fixtures fixtures
COPY crates crates
COPY services services
COPY bench bench

# The dependency list alone (recipe.json changes only with Cargo.toml/lock).
FROM sources AS planner
RUN cargo chef prepare --recipe-path recipe.json

# The same binaries in both steps, so the dependencies are built once with
# the same features.
FROM chef AS builder
ARG BINS="--bin loader --bin normalizer --bin api --bin sync --bin worker --bin che168-sim"
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json ${BINS}
COPY --from=sources /src/ /src/
RUN cargo build --release --locked ${BINS} \
    && mkdir /out \
    && cp target/release/loader target/release/normalizer target/release/api \
          target/release/sync target/release/worker target/release/che168-sim /out/

FROM browser-base AS runtime-browser
COPY --from=builder /out/worker /usr/local/bin/

# The default target stays last.
FROM runtime-base AS runtime
COPY --from=builder /out/ /usr/local/bin/
