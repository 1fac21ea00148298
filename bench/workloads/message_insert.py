"""Workload 2: inserting messages into open sessions (guard, user_id fill, counters).

One 100,000-row INSERT ... SELECT into 100 sessions, and single-row inserts from 1 and 4
clients (pgbench -M prepared, one script per variant in the same run).
"""
from bench import Bench, Metric, Workload
from workloads.chat_schema import SCHEMA, ensure, seed_sessions, session_uuid, profile_uuid

VARIANTS = ["none", "plpgsql", "native"]
SESSIONS = 100


def setup(b: Bench) -> None:
    ensure(b)
    for v in VARIANTS:
        seed_sessions(b, v, SESSIONS, first=1)
    b.batch_rows = b.size(20_000, 100_000)
    b.client_seconds = b.size(4, 15)


def insert_sql(variant: str, n_rows: int) -> str:
    s = SCHEMA[variant]
    # The plain table has no trigger to fill user_id, so the statement supplies it, as an
    # application without the rule would.
    user = f"{profile_uuid('i % 100 + 1')}, " if variant == "none" else ""
    cols = "session_id, user_id, role, chat_type, content" if variant == "none" else "session_id, role, chat_type, content"
    return (f"INSERT INTO {s}.messages ({cols}) "
            f"SELECT {session_uuid('i % 100 + 1')}, {user}'user', "
            f"CASE WHEN i % 4 = 0 THEN 'helper' ELSE 'main' END::public.chat_type, 'message ' || i "
            f"FROM generate_series(1, {n_rows}) i")


def client_script(variant: str) -> str:
    s = SCHEMA[variant]
    user = f"{profile_uuid(':s')}, " if variant == "none" else ""
    cols = "session_id, user_id, role, chat_type, content" if variant == "none" else "session_id, role, chat_type, content"
    return (f"\\set s random(1, {SESSIONS})\n"
            f"INSERT INTO {s}.messages ({cols}) VALUES ({session_uuid(':s')}, {user}'user', 'main', 'hello');\n")


def measure(b: Bench, variant: str) -> dict[str, float]:
    e = b.explain(insert_sql(variant, b.batch_rows))
    return {
        "batch_ms": e["execution_ms"],
        "batch_trigger_us": e["trigger_ms"] * 1000.0 / b.batch_rows if variant != "none" else None,
    }


def measure_clients(b: Bench) -> dict[str, dict[str, float]]:
    scripts = {v: client_script(v) for v in VARIANTS}
    got: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    for clients in (1, 4):
        for v, res in b.pgbench(scripts, clients=clients, seconds=b.client_seconds).items():
            got[v][f"c{clients}_latency_ms"] = res["latency_ms"]
    # The committed inserts rewrote the session rows thousands of times; with autovacuum off,
    # clean up (untimed) so the next round starts from the same state.
    for s in SCHEMA.values():
        b.run(f"VACUUM {s}.sessions, {s}.messages")
    return got


WORKLOAD = Workload(
    name="message_insert",
    title="2. Message insert into an open session (guard, user_id, counters)",
    variants=VARIANTS,
    metrics=[
        Metric("batch_ms", "one INSERT ... SELECT of 100,000 messages into 100 sessions (20,000 at quick scale)", "ms"),
        Metric("batch_trigger_us", "trigger time per inserted row in that batch (row + statement triggers)", "µs"),
        Metric("c1_latency_ms", "single-row INSERT, 1 client, pgbench -M prepared latency", "ms"),
        Metric("c4_latency_ms", "single-row INSERT, 4 clients, pgbench -M prepared latency", "ms"),
    ],
    setup=setup,
    measure=measure,
    measure_together=measure_clients,
    alternatives=("none",),
    notes="`none` has no rule at all (the application supplies user_id); it is the floor, not a competitor. "
          "The batch runs under EXPLAIN (ANALYZE) and is rolled back; the pgbench runs commit.",
)
