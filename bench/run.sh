#!/usr/bin/env bash
# Benchmarks: native rules against their PL/pgSQL originals and the best alternative.
#   bash bench/run.sh [--scale quick|full] [--out DIR] [--only WORKLOAD...] [pgNN ...]
# Default: quick scale, PostgreSQL 15. Results (latest.md, latest.png): full scale in
# bench/results (other majors: bench/results/<major>), quick scale in target/bench/quick[/<major>],
# so a quick run never overwrites the committed full results.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=quick majors=() only=() out_base=""
while (($#)); do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        --out) out_base=$2; shift 2 ;;
        --only) shift; while (($#)) && [[ $1 != pg* && $1 != --* ]]; do only+=("$1"); shift; done ;;
        pg*) majors+=("$1"); shift ;;
        *) echo "usage: bench/run.sh [--scale quick|full] [--only WORKLOAD...] [pgNN ...]" >&2; exit 2 ;;
    esac
done
((${#majors[@]})) || majors=(pg15)

bash scripts/setup.sh
source scripts/lib.sh

venv="$PGA_CACHE/bench-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import psycopg, matplotlib' 2>/dev/null; then
    echo "==> python packages for the benchmark (psycopg, matplotlib) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "psycopg[binary]>=3.1" "matplotlib>=3.7"
fi

for major in "${majors[@]}"; do
    num=${major#pg}
    pg_config=$(pga_pg_config "$major")
    base=${out_base:-$([[ $scale == full ]] && echo bench/results || echo target/bench/quick)}
    out="$base"; [[ $major == pg15 ]] || out="$base/$major"
    echo "==> $major: release build of pg_assistant" >&2
    cargo pgrx install --release --pg-config "$pg_config" >"$PGA_CACHE/run/bench-install-$major.log" 2>&1 \
        || { tail -30 "$PGA_CACHE/run/bench-install-$major.log"; exit 1; }
    # pgvector, the similarity benchmark's alternative (never a dependency of the extension).
    bash bench/pgvector.sh "$pg_config" \
        || echo "==> $major: no pgvector; the similarity benchmark reports its variants missing" >&2
    data="$PGA_CACHE/run/bench-$major"; port=$((5600 + num))
    pga_server_start "$major" "$port" "$data" synchronous_commit=off shared_buffers=2GB max_wal_size=8GB \
        checkpoint_timeout=30min autovacuum=off
    as_postgres "$("$pg_config" --bindir)/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "DROP DATABASE IF EXISTS pga_bench" -c "CREATE DATABASE pga_bench" >/dev/null
    "$venv/bin/python" bench/bench.py --dsn "host=127.0.0.1 port=$port user=postgres dbname=pga_bench" \
        --scale "$scale" --out "$out" --pg-bin "$("$pg_config" --bindir)" ${only:+--only "${only[@]}"}
    pga_server_stop "$major" "$data"
    echo "==> $major: results in $out/latest.md and $out/latest.png" >&2
done
