#!/usr/bin/env bash
# Checks monitoring/prometheus.yml and monitoring/alerts.yml with promtool.
# promtool comes from Debian's prometheus package: when it is not on PATH,
# the package is downloaded and only promtool is unpacked (into
# target/tools/), so no Prometheus server gets installed or started here.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool="$(command -v promtool || true)"
if [ -z "$promtool" ]; then
    tools="$(realpath -m "${CARGO_TARGET_DIR:-target}")/tools"
    promtool="$tools/promtool"
    if [ ! -x "$promtool" ]; then
        work="$(mktemp -d)"
        chmod 755 "$work"  # apt downloads as _apt
        trap 'rm -rf "$work"' EXIT
        apt-get update -qq
        (cd "$work" && apt-get download -qq prometheus)
        dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
        mkdir -p "$tools"
        cp "$work/root/usr/bin/promtool" "$promtool"
    fi
fi
"$promtool" --version | head -n1
"$promtool" check config monitoring/prometheus.yml
"$promtool" check rules monitoring/alerts.yml
