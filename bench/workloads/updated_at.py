"""Workload 1: updated_at on a 200,000-row UPDATE.

no trigger / PL/pgSQL update_updated_at_column() (source 000) / contrib moddatetime /
pg_assistant set_updated_at(). Identical tables, one per variant.
"""
from bench import Bench, Metric, Workload, HERE

VARIANTS = ["none", "plpgsql", "moddatetime", "native"]
TRIGGER = {
    "none": None,
    "plpgsql": "bench_plpgsql.update_updated_at_column()",
    "moddatetime": "moddatetime(updated_at)",
    "native": "set_updated_at()",
}


def setup(b: Bench) -> None:
    rows = b.size(50_000, 200_000)
    b.run("CREATE EXTENSION IF NOT EXISTS moddatetime")
    b.run("CREATE SCHEMA IF NOT EXISTS bench_plpgsql")
    b.run_file(HERE / "plpgsql" / "updated_at.sql")
    for v in VARIANTS:
        b.run(f"DROP TABLE IF EXISTS bench_ua_{v}")
        b.run(f"CREATE TABLE bench_ua_{v} (id int PRIMARY KEY, v int NOT NULL, note text, updated_at timestamptz NOT NULL DEFAULT now())")
        b.run(f"INSERT INTO bench_ua_{v} (id, v, note) SELECT i, i, 'row ' || i FROM generate_series(1, {rows}) i")
        if TRIGGER[v]:
            b.run(f"CREATE TRIGGER bench_ua_{v}_updated_at BEFORE UPDATE ON bench_ua_{v} FOR EACH ROW EXECUTE FUNCTION {TRIGGER[v]}")
        b.run(f"VACUUM (ANALYZE, FREEZE) bench_ua_{v}")
    b.ua_rows = rows


def measure(b: Bench, variant: str) -> dict[str, float]:
    e = b.explain(f"UPDATE bench_ua_{variant} SET v = v + 1")
    per_call_us = e["trigger_ms"] * 1000.0 / e["trigger_calls"] if e["trigger_calls"] else None
    return {"trigger_us": per_call_us, "statement_ms": e["execution_ms"]}


WORKLOAD = Workload(
    name="updated_at",
    title="1. updated_at: UPDATE of every row (200,000 rows at full scale)",
    variants=VARIANTS,
    metrics=[
        Metric("trigger_us", "trigger time per row, from EXPLAIN (ANALYZE)", "µs"),
        Metric("statement_ms", "whole UPDATE", "ms"),
    ],
    setup=setup,
    measure=measure,
    alternatives=("moddatetime",),
    notes="Each UPDATE runs under EXPLAIN (ANALYZE) in a transaction that is rolled back, so every round updates the same frozen table.",
)
