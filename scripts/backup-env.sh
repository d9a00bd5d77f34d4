# backup-env.sh: sourced by backup.sh and restore-drill.sh, which run under
# POSIX sh in the Postgres image (busybox sh in the Alpine one, where the
# bash of pg-env.sh is missing). The standard PG* variables win; without
# PGHOST, DATABASE_URL (postgres://user:password@host:port/database) is split
# into them, so no password is ever on a command line (where `ps` shows it).
# Percent-escapes are not decoded here: use PGPASSWORD or a PGPASSFILE for
# passwords that need them.
if [ -z "${PGHOST:-}" ] && [ -n "${DATABASE_URL:-}" ]; then
    _rest=${DATABASE_URL#*://}
    _rest=${_rest%%\?*}
    case $_rest in
        *@*) _userinfo=${_rest%@*}; _rest=${_rest##*@} ;;
        *) _userinfo="" ;;
    esac
    if [ -n "$_userinfo" ]; then
        export PGUSER="${_userinfo%%:*}"
        case $_userinfo in *:*) export PGPASSWORD="${_userinfo#*:}" ;; esac
    fi
    _hostport=${_rest%%/*}
    case $_rest in */*) export PGDATABASE="${_rest#*/}" ;; esac
    export PGHOST="${_hostport%%:*}"
    case $_hostport in *:*) export PGPORT="${_hostport##*:}" ;; esac
    unset _rest _userinfo _hostport
fi
