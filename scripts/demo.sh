#!/usr/bin/env bash
# Set everything up, start a local PostgreSQL with pg_assistant in database pg_assistant_demo,
# and show the rules at work. Safe to run again: the demo database is recreated each time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/lib.sh

read -r major port < <(python3 scripts/pg.py demo)
pg_config=$(pga_pg_config "$major")
bin=$("$pg_config" --bindir)
data="$PGA_CACHE/run/demo-$major"

echo "==> building and installing pg_assistant into PostgreSQL $major (first time: a few minutes)" >&2
cargo pgrx install --pg-config "$pg_config" >"$PGA_CACHE/run/demo-install.log" 2>&1 \
    || { tail -30 "$PGA_CACHE/run/demo-install.log"; exit 1; }
echo "==> starting PostgreSQL $major on 127.0.0.1:$port (data: $data)" >&2
pga_server_start "$major" "$port" "$data"

psql=("$bin/psql" -X -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -q -d postgres -c "DROP DATABASE IF EXISTS pg_assistant_demo WITH (FORCE)" -c "CREATE DATABASE pg_assistant_demo" 2>/dev/null \
    || "${psql[@]}" -q -d postgres -c "DROP DATABASE IF EXISTS pg_assistant_demo" -c "CREATE DATABASE pg_assistant_demo"
"${psql[@]}" -d pg_assistant_demo -f scripts/demo.sql

cat <<MSG

The server keeps running. Connect with:
    $bin/psql -h 127.0.0.1 -p $port -U postgres pg_assistant_demo
Stop it with:
    sudo -u postgres $bin/pg_ctl -D $data stop
MSG
