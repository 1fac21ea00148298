"""Workload 3: completing sessions (completed_at, duration, profile counters).

One UPDATE completing every open session (10,000 sessions of 2,000 profiles at full scale), and
single-row completions from 1 client (pgbench -M prepared, one script per variant).
"""
from bench import Bench, Metric, Workload
from workloads.chat_schema import SCHEMA, ensure, seed_sessions, session_uuid

VARIANTS = ["plpgsql", "native"]
FIRST = 1001  # session numbers of this workload start here (message_insert uses 1..100)


def setup(b: Bench) -> None:
    ensure(b)
    b.completion_sessions = b.size(2_000, 10_000)
    for v in VARIANTS:
        seed_sessions(b, v, b.completion_sessions, first=FIRST, users=b.completion_sessions // 5)
    b.completion_seconds = b.size(4, 15)


def measure(b: Bench, variant: str) -> dict[str, float]:
    s = SCHEMA[variant]
    e = b.explain(f"UPDATE {s}.sessions SET is_completed = true WHERE NOT is_completed AND started_at < now()")
    n = b.completion_sessions
    return {"batch_ms": e["execution_ms"], "trigger_us": e["trigger_ms"] * 1000.0 / n}


def measure_clients(b: Bench) -> dict[str, dict[str, float]]:
    # Each transaction completes one random session and rolls it back, so sessions stay open.
    n = b.completion_sessions
    scripts = {
        v: (f"\\set s random({FIRST}, {FIRST + n - 1})\n"
            "BEGIN;\n"
            f"UPDATE {SCHEMA[v]}.sessions SET is_completed = true WHERE id = {session_uuid(':s')};\n"
            "ROLLBACK;\n")
        for v in VARIANTS
    }
    res = b.pgbench(scripts, clients=1, seconds=b.completion_seconds)
    return {v: {"c1_latency_ms": r["latency_ms"]} for v, r in res.items()}


WORKLOAD = Workload(
    name="session_completion",
    title="3. Session completion (completed_at, duration, profile counters)",
    variants=VARIANTS,
    metrics=[
        Metric("batch_ms", "one UPDATE completing 10,000 sessions of 2,000 profiles (2,000 of 400 at quick scale)", "ms"),
        Metric("trigger_us", "trigger time per completed session in that UPDATE", "µs"),
        Metric("c1_latency_ms", "single-session completion, 1 client, pgbench -M prepared (BEGIN; UPDATE; ROLLBACK)", "ms"),
    ],
    setup=setup,
    measure=measure,
    measure_together=measure_clients,
    alternatives=(),
    notes="Both variants keep updated_at as well (PL/pgSQL update_updated_at_column vs native set_updated_at).",
)
