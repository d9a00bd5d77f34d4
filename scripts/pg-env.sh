# Sourced by db-dump.sh and db-restore.sh: turns a postgres:// URL into
# libpq's environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE, PGSSLMODE, ...), so no URL and no password ever appears on a
# command line (`ps` shows command lines to every user of the machine;
# another user cannot read a process's environment).
#
#   pg_env_from_url "$DATABASE_URL"   # then: psql -X, pg_dump, ... without a URL
#   pg_env_require db-dump DATABASE_URL "the working database"
#   pg_table_counts > counts           # "schema.table rows", one line a table
#
# Without a URL the PG* variables already set (or ~/.pgpass, PGPASSFILE)
# are used as they are.

# Decodes %XX escapes.
pg_env_decode() {
    local s="${1//+/ }"
    printf '%b' "${s//%/\\x}"
}

pg_env_from_url() {
    local url="$1" rest auth hostport path query user password host port
    case "$url" in
        postgres://*|postgresql://*) ;;
        *) echo "pg-env: not a postgres:// URL" >&2; return 2 ;;
    esac
    rest="${url#*://}"
    query=""
    if [[ "$rest" == *\?* ]]; then
        query="${rest#*\?}"
        rest="${rest%%\?*}"
    fi
    path=""
    if [[ "$rest" == */* ]]; then
        path="${rest#*/}"
        rest="${rest%%/*}"
    fi
    auth=""
    hostport="$rest"
    if [[ "$rest" == *@* ]]; then
        auth="${rest%@*}"
        hostport="${rest##*@}"
    fi
    if [ -n "$auth" ]; then
        user="${auth%%:*}"
        export PGUSER="$(pg_env_decode "$user")"
        if [[ "$auth" == *:* ]]; then
            password="${auth#*:}"
            export PGPASSWORD="$(pg_env_decode "$password")"
        fi
    fi
    if [[ "$hostport" == \[*\]* ]]; then
        host="${hostport%%]*}"; host="${host#[}"
        port="${hostport##*]}"; port="${port#:}"
    else
        host="${hostport%%:*}"
        port=""
        [[ "$hostport" == *:* ]] && port="${hostport##*:}"
    fi
    [ -n "$host" ] && export PGHOST="$(pg_env_decode "$host")"
    [ -n "$port" ] && export PGPORT="$port"
    [ -n "$path" ] && export PGDATABASE="$(pg_env_decode "$path")"
    local pair key value
    IFS='&' read -r -a pairs <<< "$query"
    for pair in "${pairs[@]}"; do
        [ -z "$pair" ] && continue
        key="${pair%%=*}"
        value="$(pg_env_decode "${pair#*=}")"
        case "$key" in
            sslmode) export PGSSLMODE="$value" ;;
            sslrootcert) export PGSSLROOTCERT="$value" ;;
            sslcert) export PGSSLCERT="$value" ;;
            sslkey) export PGSSLKEY="$value" ;;
            connect_timeout) export PGCONNECT_TIMEOUT="$value" ;;
            application_name) export PGAPPNAME="$value" ;;
            options) export PGOPTIONS="$value" ;;
            host) export PGHOST="$value" ;;
            port) export PGPORT="$value" ;;
            user) export PGUSER="$value" ;;
            password) export PGPASSWORD="$value" ;;
            dbname) export PGDATABASE="$value" ;;
            *) echo "pg-env: ignoring URL parameter $key" >&2 ;;
        esac
    done
}

# The database from the URL in the variable named VAR (then unset), else
# from the PG* variables already set; neither: says so, naming SCRIPT and
# WHAT the database is for, and exits 2.
pg_env_require() {
    local script="$1" var="$2" what="$3"
    if [ -n "${!var:-}" ]; then
        pg_env_from_url "${!var}"
        unset "$var"
    elif [ -z "${PGDATABASE:-}" ]; then
        echo "$script: set $var (or PGHOST, PGUSER, PGDATABASE) to $what" >&2
        exit 2
    fi
}

# Exact row counts of every user table, one "schema.table count" line each.
pg_table_counts() {
    psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
SELECT format('SELECT %L || '' '' || count(*) FROM %I.%I;', schemaname || '.' || relname, schemaname, relname)
FROM pg_stat_user_tables ORDER BY schemaname, relname
\gexec
SQL
}
