#!/usr/bin/env bash
# check-rust-version.sh: one Rust version, true everywhere (run by .ci/run).
#
# Checks that these name the same Rust version (major.minor):
#   - `rust-version` in Cargo.toml ([workspace.package]);
#   - the default RUST_IMAGE tag in the Dockerfile, in both compose files'
#     build args and in .env.example;
#   - the toolchain that builds here (`rustc --version`), which is also the
#     toolchain scripts/make-local-rust-image.sh packs for the Docker test;
# and that this version is at least the highest `rust_version` that any
# package in Cargo.lock declares (from `cargo metadata`), so that
# `cargo build --locked` in the Dockerfile's Rust image cannot stop with
# "requires rustc X or newer". Every drift is named; exit 1 if any.
#
# RUST_IMAGE=<image:tag> checks that tag instead of the files' defaults (the
# test of this check runs it with an older one and expects a failure).
set -euo pipefail
cd "$(dirname "$0")/.."

metadata=$(mktemp)
trap 'rm -f "$metadata"' EXIT
# Only the packages built for this platform (the image builds for it too).
cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n "s/^host: //p")" >"$metadata"

python3 - "$metadata" "$(rustc --version)" "${RUST_IMAGE:-}" <<'PY'
import json, re, sys

metadata_path, rustc_line, image_override = sys.argv[1:4]


def minor(version):
    """'1.89.0' or '1.89' -> (1, 89)."""
    parts = version.split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def shown(v):
    return f"{v[0]}.{v[1]}"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


problems = []
sources = {}  # where -> (major, minor)

m = re.search(r'^\[workspace\.package\][^\[]*?^rust-version\s*=\s*"([0-9.]+)"', read("Cargo.toml"), re.M | re.S)
if not m:
    sys.exit("check-rust-version: no rust-version under [workspace.package] in Cargo.toml")
declared = minor(m.group(1))
sources["Cargo.toml rust-version"] = declared

tag = re.compile(r"rust:([0-9]+\.[0-9]+)(?:\.[0-9]+)?(?:-[a-z]+)?")
if image_override:
    found = tag.fullmatch(image_override.split("/")[-1])
    if not found:
        sys.exit(f"check-rust-version: RUST_IMAGE={image_override} has no rust:<major>.<minor> tag")
    sources[f"RUST_IMAGE={image_override}"] = minor(found.group(1))
else:
    for path, pattern in [
        ("Dockerfile", r"^ARG RUST_IMAGE=(\S+)"),
        ("docker-compose.yml", r"RUST_IMAGE:-([^}]+)\}"),
        (".env.example", r"^#?\s*RUST_IMAGE=(\S+)"),
    ]:
        hits = re.findall(pattern, read(path), re.M)
        if not hits:
            problems.append(f"{path}: no default RUST_IMAGE found")
        for image in hits:
            found = tag.fullmatch(image.split("/")[-1])
            if not found:
                problems.append(f"{path}: RUST_IMAGE default {image} has no rust:<major>.<minor> tag")
            else:
                sources[f"{path} RUST_IMAGE default {image}"] = minor(found.group(1))

m = re.match(r"rustc ([0-9]+\.[0-9]+)", rustc_line)
sources[f"the toolchain here ({rustc_line.split(' (')[0]})"] = minor(m.group(1))

for where, version in sources.items():
    if version != declared:
        problems.append(f"{where} is {shown(version)}, but Cargo.toml says rust-version = {shown(declared)}")

with open(metadata_path, encoding="utf-8") as f:
    packages = json.load(f)["packages"]
needs = sorted(
    ((minor(p["rust_version"]), p["name"], p["version"]) for p in packages if p.get("rust_version")),
    reverse=True,
)
highest = needs[0][0] if needs else (1, 0)
for where, version in sources.items():
    too_new = [(v, n, pv) for v, n, pv in needs if v > version]
    if too_new:
        listed = ", ".join(f"{n} {pv} needs {shown(v)}" for v, n, pv in too_new[:8])
        more = f" and {len(too_new) - 8} more" if len(too_new) > 8 else ""
        problems.append(f"{where} ({shown(version)}) is older than Cargo.lock needs: {listed}{more}")

if problems:
    print("check-rust-version: FAILED", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    print(f"  (the highest rust_version in Cargo.lock is {shown(highest)}, from {needs[0][1]} {needs[0][2]})", file=sys.stderr)
    sys.exit(1)
print(
    f"check-rust-version: Rust {shown(declared)} everywhere ({len(sources)} places agree); "
    f"Cargo.lock needs at most {shown(highest)} ({needs[0][1]} {needs[0][2]})"
)
PY
