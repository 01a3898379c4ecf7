#!/usr/bin/env bash
# Throwaway PostgreSQL servers for tests and CI: install Debian's package, start a cluster in a folder, stop it.
# Usage:
#   scripts/postgres.sh install          install Debian's `postgresql` package unless initdb/pg_ctl are found
#   scripts/postgres.sh start DIR PORT   new cluster in DIR (trust auth), on 127.0.0.1:PORT with its socket in DIR,
#                                        database `fnserve`; prints the SQLAlchemy URL as the last line on stdout
#   scripts/postgres.sh stop DIR         stop the cluster in DIR (fast shutdown); does nothing if it is not running
#   scripts/postgres.sh bindir           print the folder holding initdb and pg_ctl; exit 1 when there is none
# Environment: FNSERVE_PG_TIMEOUT_S bounds each wait (default 30); FNSERVE_PG_BINDIR picks the binaries.
# As root, the server runs as the `postgres` OS user (created if missing): initdb and postgres refuse to run as root.
set -euo pipefail

timeout_s="${FNSERVE_PG_TIMEOUT_S:-30}"
os_user="postgres"   # as root, the server's owner; otherwise the server runs as whoever runs this script

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

# Debian keeps the server binaries out of PATH, one folder per major version; take the newest.
find_bindir() {
    if [ -n "${FNSERVE_PG_BINDIR:-}" ]; then
        [ -x "$FNSERVE_PG_BINDIR/initdb" ] && [ -x "$FNSERVE_PG_BINDIR/pg_ctl" ] && echo "$FNSERVE_PG_BINDIR" && return 0
        return 1
    fi
    local dir found=""
    while IFS= read -r dir; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            found="$dir"
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    if [ -z "$found" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        found="$(dirname "$(command -v initdb)")"
    fi
    [ -n "$found" ] && echo "$found"
}

require_bindir() {
    bindir="$(find_bindir)" || die "PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin \
or on PATH); run \`scripts/postgres.sh install\`"
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Run a command as the cluster's owner, from a folder it can enter (initdb warns about an unreadable cwd).
as_owner() {
    if ! is_root; then
        (cd / && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$os_user" -- "$@")
    else
        (cd / && su -s /bin/sh "$os_user" -c "$(printf '%q ' "$@")")
    fi
}

ensure_os_user() {
    is_root || return 0
    id -u "$os_user" >/dev/null 2>&1 && return 0
    echo "postgres.sh: creating the system user '$os_user' to own the cluster (initdb refuses to run as root)" >&2
    useradd --system --user-group --no-create-home --shell /bin/sh "$os_user" \
        || die "could not create the system user '$os_user'; create it, or run this script as a non-root user"
}

cmd_install() {
    if bindir="$(find_bindir)"; then
        echo "PostgreSQL is already installed: $bindir"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install PostgreSQL with your package manager (brew install postgresql, \
dnf install postgresql-server), or set FNSERVE_PG_BINDIR to the folder holding initdb and pg_ctl"
    local sudo=""
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 || die "installing PostgreSQL needs root: run this as root or install sudo"
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be stale or missing (fresh containers): update them only when the install fails.
    if ! $sudo apt-get install -y --no-install-recommends postgresql; then
        $sudo apt-get update || die "apt-get update failed; check the network and /etc/apt/sources.list"
        $sudo apt-get install -y --no-install-recommends postgresql || die "apt-get install postgresql failed"
    fi
    bindir="$(find_bindir)" || die "the postgresql package is installed but initdb/pg_ctl are still not found"
    echo "PostgreSQL installed: $bindir"
}

cmd_start() {
    [ $# -eq 2 ] || die "usage: scripts/postgres.sh start DIR PORT"
    local dir="$1" port="$2"
    if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
        die "PORT must be 1..65535, got '$port'"
    fi
    require_bindir
    ensure_os_user
    dir="$(realpath -m "$dir")"
    local data="$dir/data" log="$dir/postgres.log" socket="$dir/.s.PGSQL.$port"
    # sun_path holds 107 bytes; past that the server cannot create its socket and does not start.
    [ "${#socket}" -le 107 ] || die "socket path $socket is ${#socket} bytes, over the 107-byte limit; use a shorter DIR"
    mkdir -p "$dir"
    if is_root; then
        chown "$os_user:" "$dir"
        chmod 0755 "$dir"
        as_owner test -w "$dir" -a -x "$dir" || die "the '$os_user' user cannot write $dir: a parent folder is \
private (pytest's /tmp/pytest-of-root is 0700, so is /root); use a folder under /tmp, e.g. \$(mktemp -d)"
    fi
    if as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        die "a server is already running in $data; stop it first with \`scripts/postgres.sh stop $dir\`"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        # C locale: minimal containers often set LANG to a locale that is not generated, which initdb rejects.
        # --no-sync: a throwaway cluster does not need its files on disk before it starts.
        as_owner timeout "$timeout_s" "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
            --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
            || die "initdb failed for $data; see $dir/initdb.log:
$(tail -n 20 "$dir/initdb.log")"
    fi
    # Durability settings off: the data is thrown away, and tests go several times faster without fsync.
    local opts="-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off"
    opts="$opts -c full_page_writes=off -c logging_collector=off"
    as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -o "$opts" -w -t "$timeout_s" start >/dev/null \
        || die "pg_ctl start failed on 127.0.0.1:$port; see $log:
$(tail -n 20 "$log" 2>/dev/null)"
    local deadline=$((SECONDS + timeout_s))
    until timeout 5 "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; do
        [ "$SECONDS" -lt "$deadline" ] || die "pg_isready: no answer on 127.0.0.1:$port after ${timeout_s}s; see $log"
        sleep 0.1
    done
    local exists
    exists="$(PGCONNECT_TIMEOUT=10 timeout "$timeout_s" "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres \
        -d postgres -tAc "select 1 from pg_database where datname = 'fnserve'")" \
        || die "psql could not query 127.0.0.1:$port; see $log"
    if [ "$exists" != "1" ]; then
        PGCONNECT_TIMEOUT=10 timeout "$timeout_s" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres fnserve \
            || die "createdb fnserve failed on 127.0.0.1:$port; see $log"
    fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/fnserve"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: scripts/postgres.sh stop DIR"
    local dir="$1"
    local data="$dir/data" log="$dir/postgres.log"
    if [ ! -f "$data/postmaster.pid" ]; then
        echo "postgres.sh: no server running in $data" >&2
        return 0
    fi
    require_bindir
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t "$timeout_s" stop >/dev/null && return 0
    # Fast shutdown waits for a checkpoint; if that hangs, don't leave a server behind.
    echo "postgres.sh: fast shutdown of $data did not finish in ${timeout_s}s; trying immediate" >&2
    as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w -t "$timeout_s" stop >/dev/null \
        || die "pg_ctl stop failed for $data; see $log:
$(tail -n 20 "$log" 2>/dev/null)"
}

case "${1:-}" in
    install) shift; [ $# -eq 0 ] || die "usage: scripts/postgres.sh install"; cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    bindir) shift; find_bindir || exit 1 ;;
    *) die "usage: scripts/postgres.sh install | start DIR PORT | stop DIR | bindir" ;;
esac
