#!/usr/bin/env bash
# Installs Debian's Chromium (and a font, so pages render text) when no
# Chromium is on PATH: the browser of `render_url` tasks and of the worker's
# browser tests. Idempotent; CI calls it before the tests.
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "install-chromium: $(command -v "$name") is installed"
        exit 0
    fi
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-liberation
chromium --version
