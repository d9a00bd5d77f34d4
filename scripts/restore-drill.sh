#!/bin/sh
# restore-drill.sh [DUMP]: proves a backup restores.
#
# Restores the newest dump in BACKUP_DIR (or DUMP) into a scratch database
# on the same server, then compares the row count of every table and the
# checksum of processed_data with the dump's manifest (written by backup.sh
# beside it, from the dump's own snapshot). Records the drill in
# operations_log (operation_type 'restore_drill'), drops the scratch
# database, and exits non-zero on any difference, a missing manifest or a
# broken file, saying which.
#
# Connection and BACKUP_DIR as for backup.sh (PG* variables or DATABASE_URL;
# the role needs CREATEDB, which the database's owner in compose has).
set -eu

BACKUP_DIR=${BACKUP_DIR:-/backups}
SCRIPTS=$(dirname "$0")
. "$SCRIPTS/backup-env.sh"
case "${1:-}" in
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac

log() { echo "[restore-drill $(date -u +%H:%M:%S)] $*"; }
DB=${PGDATABASE:-${PGUSER:-postgres}}
SCRATCH_DB="carfeed_restore_drill_$$"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$(date +%s)
work=$(mktemp -d)

record() {
    PGDATABASE=$DB psql -X -q -v ON_ERROR_STOP=1 -v status="$1" -v duration="$(($(date +%s) - t0))" \
        -v started="$started" -v details="$2" <<'SQL' >/dev/null || log "could not record the drill in operations_log"
INSERT INTO operations_log (operation_type, started_at, duration, status, details)
VALUES ('restore_drill', :'started', :'duration', :'status', :'details');
SQL
}
finish() {
    status=$?
    PGDATABASE=$DB psql -X -q -c "DROP DATABASE IF EXISTS $SCRATCH_DB" >/dev/null 2>&1 || true
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT
fail() {
    log "FAILED: $*"
    record ERROR "file=${DUMP_NAME:-?} $*"
    exit 1
}

if [ -n "${1:-}" ]; then
    DUMP=$1
else
    DUMP=$(ls -1 "$BACKUP_DIR"/carfeed-*.dump 2>/dev/null | sort | tail -n 1 || true)
    [ -n "$DUMP" ] || { DUMP_NAME=none; fail "no dump in $BACKUP_DIR"; }
fi
DUMP_NAME=$(basename "$DUMP")
[ -f "$DUMP" ] || fail "$DUMP does not exist"
[ -f "$DUMP.manifest" ] || fail "no manifest beside $DUMP ($DUMP.manifest): cannot check what it should hold"
log "restoring $DUMP ($(wc -c <"$DUMP" | tr -d ' ') bytes) into the scratch database $SCRATCH_DB"

pg_restore --list "$DUMP" >/dev/null 2>"$work/list.err" || fail "the dump is broken: $(head -c 300 "$work/list.err")"
PGDATABASE=$DB psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $SCRATCH_DB" >/dev/null 2>"$work/create.err" \
    || fail "cannot create the scratch database: $(head -c 300 "$work/create.err")"
# --no-owner --no-privileges: the drill checks data, not who may read it.
pg_restore --exit-on-error --no-owner --no-privileges -d "$SCRATCH_DB" "$DUMP" 2>"$work/restore.err" \
    || fail "pg_restore failed: $(head -c 300 "$work/restore.err")"

# The same queries backup.sh ran, now on the restored copy.
PGDATABASE=$SCRATCH_DB psql -X -q -At -v ON_ERROR_STOP=1 -f "$SCRIPTS/backup-manifest.sql" >"$work/restored" 2>"$work/count.err" \
    || fail "counting the restored rows: $(head -c 300 "$work/count.err")"

if ! diff "$DUMP.manifest" "$work/restored" >"$work/diff"; then
    log "the restored copy differs from the manifest (< manifest, > restored):"
    cat "$work/diff"
    fail "restored copy differs from its manifest: $(grep -c '^[<>]' "$work/diff") lines"
fi
tables=$(grep -vc '^checksum' "$work/restored" || true)
rows=$(grep -v '^checksum' "$work/restored" | awk -F '\t' '{ s += $2 } END { print s + 0 }')
log "OK: $tables tables, $rows rows and the processed_data checksum equal the manifest ($(($(date +%s) - t0)) s)"
record OK "file=$DUMP_NAME tables=$tables rows=$rows"
