#!/usr/bin/env bash
# Generates a Python client from the api's OpenAPI document with
# openapi-python-client and calls every operation with it, `getStatus`
# (/status.json on the operator listener) included, each answer parsed into
# its typed model. Any operation not called, not 200 or not parsed fails.
#
# Through scripts/api-tool.sh: builds the binaries, installs
# openapi-python-client into a venv (reused), reruns itself under pg-sandbox
# (a throwaway Postgres), fills the database from the simulator and starts
# `api serve` with a token; then generates the client and calls.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/api-tool.sh
venv="$target/openapi-client-venv"
api_tool_prepare "$venv" 'openapi-python-client>=0.21,<0.30' openapi-python-client "$@"

export CARFEED__API__ADMIN_BIND="127.0.0.1:$(free_port)"
api_tool_serve 100 20 openapi-client
wait_for "http://$CARFEED__API__ADMIN_BIND/status.json"

curl -fsS -o "$work/openapi.json" "http://$API_BIND/api/v1/openapi.json"
(cd "$work" && "$venv/bin/openapi-python-client" generate --path openapi.json \
    --output-path client --meta none --overwrite >/dev/null)

status=0
PYTHONPATH="$work" "$venv/bin/python" - "$work/openapi.json" "http://$API_BIND" \
    "http://$CARFEED__API__ADMIN_BIND" "$token" <<'PY' || status=$?
import importlib, json, pkgutil, sys

spec_path, public, admin, token = sys.argv[1:]
spec = json.load(open(spec_path))
client_pkg = importlib.import_module("client")
from client import AuthenticatedClient

ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
clients = {
    "public": AuthenticatedClient(base_url=public, token=token),
    # /status.json lives on the operator listener (tag "operator").
    "operator": AuthenticatedClient(base_url=admin, token=token),
}

def snake(name):
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")

modules = {}
for tag in pkgutil.iter_modules(importlib.import_module("client.api").__path__):
    package = importlib.import_module(f"client.api.{tag.name}")
    for mod in pkgutil.iter_modules(package.__path__):
        modules[mod.name] = (tag.name, importlib.import_module(f"client.api.{tag.name}.{mod.name}"))

failures, called = [], set()
offer_id = None
# listOffers first: getOffer needs an id from it.
for op_id in sorted(ids, key=lambda i: (i != "listOffers", i)):
    name = snake(op_id)
    if name not in modules:
        failures.append(f"{op_id}: no generated function {name} (modules: {sorted(modules)})")
        continue
    tag, module = modules[name]
    client = clients["operator" if tag == "operator" else "public"]
    kwargs = {"inner_id": offer_id} if op_id == "getOffer" else {}
    answer = module.sync_detailed(client=client, **kwargs)
    parsed = answer.parsed
    ok = answer.status_code == 200 and parsed is not None and not isinstance(parsed, (str, bytes))
    if op_id == "listOffers" and ok:
        first = parsed.items[0]  # an offer is a free-form object: its keys
        offer_id = getattr(first, "inner_id", None) or first["inner_id"]
    if op_id == "getStatus" and ok:
        ok = parsed.api.state.value == "ok" and parsed.initial_load.finished
    print(f"{op_id:14} {tag}.{name}: {answer.status_code} -> {type(parsed).__name__}")
    called.add(op_id)
    if not ok:
        failures.append(f"{op_id}: {answer.status_code} {answer.content[:300]!r}")

missing = ids - called
if missing:
    failures.append(f"not called: {sorted(missing)}")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"{len(called)} passed, 0 failed")
PY
if [ "$status" -ne 0 ]; then
    echo "openapi-client.sh: failures (api log tail below)" >&2
    tail -n 40 "$work/api.log" >&2
fi
exit "$status"
