#!/bin/sh
# backup.sh: carfeed's database backups (the `backup` compose service runs it).
#
#   scripts/backup.sh          every day at BACKUP_SCHEDULE (UTC), forever
#   scripts/backup.sh --once   one backup now, then exit (0 when it worked)
#
# Each backup is `pg_dump -Fc` of the database into BACKUP_DIR as
# carfeed-<UTC time>.dump, written under a temporary name and renamed when
# complete, with a manifest beside it (<dump>.manifest: the row count of
# every table and a checksum of processed_data, taken in the dump's own
# snapshot, so they describe exactly what the dump holds). The restore drill
# (scripts/restore-drill.sh) checks a dump against its manifest. Each run is
# recorded in operations_log (operation_type 'backup', with the size).
# Then old dumps are removed: the newest of each of the last KEEP_DAILY days
# and of each of the last KEEP_WEEKLY ISO weeks stay (BACKUP_KEEP).
#
# Connection: the standard PG* variables (PGHOST, PGPORT, PGUSER,
# PGPASSWORD, PGDATABASE), else DATABASE_URL (postgres://user:pass@host:port/db,
# without percent-escapes). Never on the command line, so `ps` shows no
# password.
# Env: BACKUP_DIR (/backups), BACKUP_SCHEDULE (HH:MM, UTC; 03:30),
# BACKUP_KEEP (<daily>d,<weekly>w; 7d,4w). POSIX sh: runs in the Postgres
# image (Debian or Alpine), so pg_dump matches the server.
set -eu

BACKUP_DIR=${BACKUP_DIR:-/backups}
BACKUP_SCHEDULE=${BACKUP_SCHEDULE:-03:30}
BACKUP_KEEP=${BACKUP_KEEP:-7d,4w}
SCRIPTS=$(dirname "$0")
. "$SCRIPTS/backup-env.sh"

log() { echo "[backup $(date -u +%H:%M:%S)] $*"; }

# record STATUS STARTED DURATION DETAILS: one operations_log row.
record() {
    psql -X -q -v ON_ERROR_STOP=1 -v status="$1" -v started="$2" -v duration="$3" -v details="$4" <<'SQL' >/dev/null || log "could not record the run in operations_log"
INSERT INTO operations_log (operation_type, started_at, duration, status, details)
VALUES ('backup', :'started', :'duration', :'status', :'details');
SQL
}

backup_once() {
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    t0=$(date +%s)
    mkdir -p "$BACKUP_DIR"
    name="carfeed-$(date -u +%Y%m%dT%H%M%SZ).dump"
    tmp="$BACKUP_DIR/.$name.partial"
    work=$(mktemp -d)
    # One session holds a repeatable-read snapshot open while pg_dump uses
    # it (--snapshot) and the manifest is counted in it.
    mkfifo "$work/in"
    psql -X -q -At -v ON_ERROR_STOP=1 <"$work/in" >"$work/out" 2>"$work/err" &
    session=$!
    exec 3>"$work/in"
    echo "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT pg_export_snapshot();" >&3
    snapshot=""
    for _ in $(seq 100); do
        snapshot=$(head -n 1 "$work/out")
        [ -n "$snapshot" ] && break
        kill -0 "$session" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$snapshot" ]; then
        exec 3>&-
        log "FAILED: no snapshot from the database: $(cat "$work/err")"
        record ERROR "$started" "$(($(date +%s) - t0))" "no snapshot: $(head -c 300 "$work/err")"
        rm -rf "$work"
        return 1
    fi
    if ! pg_dump -Fc --snapshot="$snapshot" -f "$tmp" 2>"$work/dump.err"; then
        exec 3>&-
        wait "$session" || true
        rm -f "$tmp"
        log "FAILED: pg_dump: $(cat "$work/dump.err")"
        record ERROR "$started" "$(($(date +%s) - t0))" "pg_dump: $(head -c 300 "$work/dump.err")"
        rm -rf "$work"
        return 1
    fi
    cat "$SCRIPTS/backup-manifest.sql" >&3
    echo "COMMIT;" >&3
    exec 3>&-
    if ! wait "$session"; then
        rm -f "$tmp"
        log "FAILED: the manifest's counts: $(cat "$work/err")"
        record ERROR "$started" "$(($(date +%s) - t0))" "manifest: $(head -c 300 "$work/err")"
        rm -rf "$work"
        return 1
    fi
    tail -n +2 "$work/out" >"$BACKUP_DIR/.$name.manifest.partial"
    mv "$BACKUP_DIR/.$name.manifest.partial" "$BACKUP_DIR/$name.manifest"
    mv "$tmp" "$BACKUP_DIR/$name"
    rm -rf "$work"
    size=$(wc -c <"$BACKUP_DIR/$name" | tr -d ' ')
    duration=$(($(date +%s) - t0))
    tables=$(grep -vc '^checksum' "$BACKUP_DIR/$name.manifest" || true)
    log "backed up to $BACKUP_DIR/$name: $size bytes, $tables tables, in $duration s"
    record OK "$started" "$duration" "file=$name size_bytes=$size tables=$tables"
    prune
}

# prune: keep the newest dump of each of the last KEEP_DAILY days and of each
# of the last KEEP_WEEKLY ISO weeks; remove the other dumps and manifests.
prune() {
    keep_daily=$(echo "$BACKUP_KEEP" | tr ',' '\n' | sed -n 's/^ *\([0-9][0-9]*\)d *$/\1/p')
    keep_weekly=$(echo "$BACKUP_KEEP" | tr ',' '\n' | sed -n 's/^ *\([0-9][0-9]*\)w *$/\1/p')
    keep_daily=${keep_daily:-7}
    keep_weekly=${keep_weekly:-4}
    keep=$(mktemp)
    # Newest first; the day is the name's date, the week its ISO week.
    ls -1 "$BACKUP_DIR" | grep '^carfeed-[0-9]\{8\}T[0-9]\{6\}Z\.dump$' | sort -r >"$keep.all" || true
    days=0
    weeks=0
    last_day=""
    last_week=""
    while read -r f; do
        stamp=${f#carfeed-}
        day=${stamp%%T*}
        week=$(date -u -d "$(echo "$day" | sed 's/\(....\)\(..\)\(..\)/\1-\2-\3/')" +%G-%V 2>/dev/null || echo "$day")
        if [ "$day" != "$last_day" ]; then
            last_day=$day
            days=$((days + 1))
            [ "$days" -le "$keep_daily" ] && echo "$f" >>"$keep"
        fi
        if [ "$week" != "$last_week" ]; then
            last_week=$week
            weeks=$((weeks + 1))
            [ "$weeks" -le "$keep_weekly" ] && echo "$f" >>"$keep"
        fi
    done <"$keep.all"
    while read -r f; do
        if ! grep -qx "$f" "$keep"; then
            rm -f "$BACKUP_DIR/$f" "$BACKUP_DIR/$f.manifest"
            log "removed $f (older than $keep_daily daily and $keep_weekly weekly backups)"
        fi
    done <"$keep.all"
    rm -f "$keep" "$keep.all"
}

# seconds_until HH:MM: seconds from now to the next HH:MM UTC.
seconds_until() {
    hh=${1%%:*}
    mm=${1#*:}
    now=$(date -u +%H:%M:%S)
    now_s=$(( $(echo "$now" | cut -d: -f1 | sed 's/^0//') * 3600 + $(echo "$now" | cut -d: -f2 | sed 's/^0//') * 60 + $(echo "$now" | cut -d: -f3 | sed 's/^0//') ))
    at_s=$(( $(echo "$hh" | sed 's/^0//') * 3600 + $(echo "$mm" | sed 's/^0//') * 60 ))
    wait_s=$((at_s - now_s))
    [ "$wait_s" -gt 0 ] || wait_s=$((wait_s + 86400))
    echo "$wait_s"
}

case "${1:-}" in
    --once) backup_once ;;
    "")
        echo "$BACKUP_SCHEDULE" | grep -q '^[0-2][0-9]:[0-5][0-9]$' \
            || { echo "backup.sh: BACKUP_SCHEDULE must be HH:MM (UTC), not '$BACKUP_SCHEDULE'" >&2; exit 2; }
        log "backups every day at $BACKUP_SCHEDULE UTC into $BACKUP_DIR (keep $BACKUP_KEEP)"
        trap 'log "stopping"; exit 0' TERM INT
        while :; do
            s=$(seconds_until "$BACKUP_SCHEDULE")
            log "next backup in $s s"
            sleep "$s" &
            wait $! || true
            backup_once || log "this backup failed; the next one is tomorrow at $BACKUP_SCHEDULE"
        done
        ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) echo "backup.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac
