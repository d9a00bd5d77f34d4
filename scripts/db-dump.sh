#!/usr/bin/env bash
# Dumps the whole working database (DATABASE_URL) to a custom-format file
# for scripts/db-restore.sh on the VPS, and writes the per-table row counts
# beside it (<file>.counts) so the restore can be checked.
#
#   DATABASE_URL=postgres://... scripts/db-dump.sh [carfeed.dump]
set -euo pipefail
out="${1:-carfeed-$(date -u +%Y%m%dT%H%M%SZ).dump}"
: "${DATABASE_URL:?set DATABASE_URL to the working database}"

counts() {
    # Exact row counts of every user table, one "table count" line each.
    psql "$1" -XAtq -v ON_ERROR_STOP=1 <<'SQL'
SELECT format('SELECT %L || '' '' || count(*) FROM %I.%I;', schemaname || '.' || relname, schemaname, relname)
FROM pg_stat_user_tables ORDER BY schemaname, relname
\gexec
SQL
}

echo "db-dump: dumping to $out"
pg_dump --format=custom --no-owner --no-privileges --file="$out" "$DATABASE_URL"
counts "$DATABASE_URL" > "$out.counts"
echo "db-dump: $(wc -l < "$out.counts") tables counted in $out.counts"
