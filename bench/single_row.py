#!/usr/bin/env python3
"""Trigger and statement time of ONE-row statements, native against PL/pgSQL, in one warmed
connection (EXPLAIN ANALYZE, rolled back; 5 warm-up rounds discarded, median of 25).

Run against a database prepared by a full or quick bench run (its tables must exist):
    $PGA_CACHE/bench-venv/bin/python bench/single_row.py "host=127.0.0.1 port=5615 user=postgres dbname=pga_bench"
"""
import statistics
import sys

import psycopg

c = psycopg.connect(sys.argv[1], autocommit=True)
res = {}
for i in range(30):
    for schema, name in (("bench_plpgsql", "plpgsql"), ("public", "native")):
        for kind, sql in (
            ("completion", f"UPDATE {schema}.sessions SET is_completed = true WHERE id = '00000000-0000-4000-8000-{1500 + i:012d}'"),
            ("message insert", f"INSERT INTO {schema}.messages (session_id, role, chat_type, content) "
                               f"VALUES ('00000000-0000-4000-8000-{7 + i % 90:012d}', 'user', 'main', 'x')"),
        ):
            with c.transaction(force_rollback=True):
                plan = c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchone()[0][0]
            if i < 5:
                continue
            rules = sum(t["Time"] for t in plan.get("Triggers", []) if not t["Trigger Name"].startswith("RI_"))
            res.setdefault((kind, name), []).append((rules, plan["Execution Time"]))
for (kind, name), xs in sorted(res.items()):
    print(f"{kind:15} {name:8} rule triggers {statistics.median(x[0] for x in xs) * 1000:7.1f} µs   "
          f"statement {statistics.median(x[1] for x in xs) * 1000:7.1f} µs  (n={len(xs)})")
