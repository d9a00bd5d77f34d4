#!/usr/bin/env bash
# Vendors @scalar/api-reference's standalone bundle (the api's docs page
# renderer) into services/api/assets/, gzipped: scripts/vendor-scalar.sh 1.76.4
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: $0 VERSION}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@scalar/api-reference@$version" >/dev/null && tar xzf ./*.tgz)
out="services/api/assets/scalar-api-reference-$version.standalone.js.gz"
gzip -9 -n -c "$work/package/dist/browser/standalone.js" >"$out"
sha256sum "$work"/*.tgz "$work/package/dist/browser/standalone.js"
echo "wrote $out; update services/api/assets/README.md and routes/docs.rs"
