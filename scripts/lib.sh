# Shared shell helpers: run a PostgreSQL server of a given major as the postgres user.
# Sourced by test.sh, demo.sh and the benchmarks.

PGA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGA_CACHE=$(python3 "$PGA_ROOT/scripts/pg.py" cache)

pga_pg_config() { python3 "$PGA_ROOT/scripts/pg.py" pg-config "$1"; }
pga_bindir() { "$(pga_pg_config "$1")" --bindir; }
as_postgres() { sudo -H -u postgres -- "$@"; }

# pga_server_start MAJOR PORT DATADIR [extra postgres -c settings...]
# Creates the cluster if needed (trust auth on loopback only) and starts it; waits until ready.
pga_server_start() {
    local major=$1 port=$2 data=$3; shift 3
    local bin; bin=$(pga_bindir "$major")
    if [[ ! -f "$data/PG_VERSION" ]]; then
        mkdir -p "$data"; chown postgres: "$data"; chmod 700 "$data"
        as_postgres "$bin/initdb" -D "$data" -A trust -E UTF8 --no-locale -U postgres >/dev/null
    fi
    pga_server_stop "$major" "$data"
    local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data"
    local s; for s in "$@"; do opts+=" -c $s"; done
    as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w -t 60 start >/dev/null
}

# pga_server_stop MAJOR DATADIR
pga_server_stop() {
    local bin; bin=$(pga_bindir "$1")
    if [[ -f "$2/postmaster.pid" ]]; then
        as_postgres "$bin/pg_ctl" -D "$2" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
