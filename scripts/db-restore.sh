#!/usr/bin/env bash
# Restores a dump from scripts/db-dump.sh into TARGET_DATABASE_URL (an
# empty database) with parallel jobs, then compares every table's row count
# with the counts taken at dump time. Exits 1 on any difference.
#
#   TARGET_DATABASE_URL=postgres://... scripts/db-restore.sh carfeed.dump [jobs]
#   PGHOST=... PGUSER=... PGDATABASE=... PGPASSFILE=~/.pgpass scripts/db-restore.sh carfeed.dump
#
# As db-dump.sh: the URL goes to pg_restore and psql as PG* variables,
# never on a command line.
set -euo pipefail
dump="${1:?usage: db-restore.sh <file.dump> [jobs]}"
jobs="${2:-4}"
. "$(dirname "$0")/pg-env.sh"
pg_env_require db-restore TARGET_DATABASE_URL "the (empty) target database"
[ -f "$dump.counts" ] || { echo "db-restore: $dump.counts is missing (made by db-dump.sh)" >&2; exit 2; }

echo "db-restore: restoring $dump with $jobs jobs"
pg_restore --jobs="$jobs" --no-owner --no-privileges --exit-on-error \
    --dbname="$PGDATABASE" "$dump"

restored="$(mktemp)"
trap 'rm -f "$restored"' EXIT
pg_table_counts > "$restored"
if diff <(sort "$dump.counts") <(sort "$restored"); then
    echo "db-restore: every table has the row count it had at dump time"
else
    echo "db-restore: row counts differ (< dump, > restored)" >&2
    exit 1
fi
