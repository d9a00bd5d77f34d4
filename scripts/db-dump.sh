#!/usr/bin/env bash
# Dumps the whole working database (DATABASE_URL) to a custom-format file
# for scripts/db-restore.sh on the VPS, and writes the per-table row counts
# beside it (<file>.counts) so the restore can be checked.
#
#   DATABASE_URL=postgres://... scripts/db-dump.sh [carfeed.dump]
#   PGHOST=... PGUSER=... PGDATABASE=... PGPASSFILE=~/.pgpass scripts/db-dump.sh
#
# The URL (or libpq's PG* variables, ~/.pgpass, PGPASSFILE) is read from the
# environment and handed to pg_dump and psql as PG* variables: no URL and
# no password ever appears on a command line, where `ps` shows it.
set -euo pipefail
out="${1:-carfeed-$(date -u +%Y%m%dT%H%M%SZ).dump}"
. "$(dirname "$0")/pg-env.sh"
pg_env_require db-dump DATABASE_URL "the working database"

echo "db-dump: dumping to $out"
pg_dump --format=custom --no-owner --no-privileges --file="$out"
pg_table_counts > "$out.counts"
echo "db-dump: $(wc -l < "$out.counts") tables counted in $out.counts"
