# carfeed: one image holding every binary (loader, normalizer, api, sync,
# worker, che168-sim); each compose service picks its binary by command.
#
# The binaries are compiled here, in RUST_IMAGE, with the dependencies cached
# in their own layer (cargo-chef): a source change rebuilds only the
# workspace's crates. Targets (compose: CARFEED_BUILD_TARGET and
# CARFEED_BROWSER_BUILD_TARGET):
#   runtime          (default) every binary on a small Debian;
#   runtime-browser  the worker alone, plus Debian's Chromium (render_url).
# Build arguments:
#   RUST_IMAGE     the compiler; its Rust version is Cargo.toml's
#                  rust-version (scripts/check-rust-version.sh checks it);
#   RUNTIME_IMAGE  what the binaries run on;
#   PROFILE        cargo profile, `release` by default (the smoke test builds
#                  `dev` to keep CI short).
# Needs BuildKit (Docker 23+ uses it by default): the browser stages are
# skipped when building `runtime`.

ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-bookworm
ARG PROFILE=release

# ---- what every variant runs on --------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# curl answers the HTTP healthchecks; ca-certificates for the real upstream's
# HTTPS is not needed (the binaries carry their own roots), but is the usual
# kit. Installed only when the base image lacks curl.
# /app/db-roles/<role>: where `migrate` keeps each service role's generated
# password, on that role's volume (a new volume takes the directory's owner).
RUN if ! command -v curl >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home carfeed \
    && mkdir -p /app/secrets /app/logs /app/db-role \
        /app/db-roles/carfeed_loader /app/db-roles/carfeed_normalizer /app/db-roles/carfeed_api \
        /app/db-roles/carfeed_worker /app/db-roles/carfeed_sync \
    && chown -R carfeed:carfeed /app/secrets /app/logs /app/db-role /app/db-roles \
    && chmod 0700 /app/secrets /app/db-role /app/db-roles/*
WORKDIR /app
# The defaults; compose mounts the repo's config.yaml over it.
COPY config.yaml /app/config.yaml
ENV CONFIG_FILE=/app/config.yaml
USER carfeed
CMD ["api", "--help"]

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

# ---- binaries built here ---------------------------------------------------
FROM ${RUST_IMAGE} AS chef
# An image that carries cargo-chef already (the smoke test's local one, which
# reaches no registry) keeps it.
RUN command -v cargo-chef >/dev/null 2>&1 || cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

# The sources a build reads (.dockerignore keeps target/ and .git out of the
# context).
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
ARG PROFILE
ARG BINS="--bin loader --bin normalizer --bin api --bin sync --bin worker --bin che168-sim"
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --profile "${PROFILE}" --locked --recipe-path recipe.json ${BINS}
COPY --from=sources /src/ /src/
# (cargo puts the `dev` profile's output in target/debug)
RUN cargo build --profile "${PROFILE}" --locked ${BINS} \
    && out=target/$([ "${PROFILE}" = dev ] && echo debug || echo "${PROFILE}") \
    && mkdir /out \
    && cp $out/loader $out/normalizer $out/api $out/sync $out/worker $out/che168-sim /out/

FROM browser-base AS runtime-browser
COPY --from=builder /out/worker /usr/local/bin/

# The default target stays last.
FROM runtime-base AS runtime
COPY --from=builder /out/ /usr/local/bin/
