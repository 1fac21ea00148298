"""Workload 6: analytics events and their per-customer and per-session summaries.

One 100,000-event INSERT ... SELECT for 1,000 customers and 10,000 sessions (quick scale: 20,000
for 200 and 2,000), the events out of time order, some with a tool, of mixed types and business impact;
and single-event inserts (the web beacon: one event per request) from 1 and 4 clients (pgbench
-M prepared, one script per variant in the same run).

  none     bench_plain:   behavior_events alone, no trigger
  plpgsql  bench_plpgsql: source 000's row trigger update_behavior_insights_on_event()
                          (bench/plpgsql/behavior.sql) upserting both summaries per event
  native   public:        the extension's statement-level trigger

Before anything is measured, both summary-keeping variants are checked against a recount from
their events (in a transaction that is rolled back).
"""
from bench import Bench, Metric, Workload, HERE
from workloads.chat_schema import SCHEMA

VARIANTS = ["none", "plpgsql", "native"]
TABLES = ("behavior_events", "behavior_insights", "behavior_sessions")
CUSTOMERS = 1_000
SESSIONS = 10_000
EVENT_TYPES = "ARRAY['page_view', 'tool_usage', 'click', 'search', 'export_action', 'form_submit']"
IMPACTS = "ARRAY['low', 'low', 'low', 'medium', 'medium', 'high', 'critical']"


def ensure(b: Bench) -> None:
    """Identical tables per variant (LIKE the extension's, INCLUDING ALL), all empty."""
    for s in ("bench_plain", "bench_plpgsql"):
        b.run(f"CREATE SCHEMA IF NOT EXISTS {s}")
        b.run(f"DROP TABLE IF EXISTS {', '.join(f'{s}.{t}' for t in TABLES)}")
    b.run("CREATE TABLE bench_plain.behavior_events (LIKE public.behavior_events INCLUDING ALL)")
    for t in TABLES:
        b.run(f"CREATE TABLE bench_plpgsql.{t} (LIKE public.{t} INCLUDING ALL)")
    b.run_file(HERE / "plpgsql" / "updated_at.sql")
    b.run_file(HERE / "plpgsql" / "behavior.sql")
    b.run(f"TRUNCATE {', '.join(f'public.{t}' for t in TABLES)}")


def customer_of(session: str) -> str:
    """SQL: the customer id of session number `session` (sessions belong to one customer)."""
    return f"'customer-' || (({session}) - 1) % {CUSTOMERS} + 1"


def insert_sql(variant: str, n_rows: int, prefix: str = "") -> str:
    """n_rows events; event i goes to session (i * 7919) % SESSIONS + 1 (spread evenly, not in
    order), at a time that is not the order of insertion (sessions over the last 30 days, events
    anywhere in their session's hour)."""
    s = SCHEMA[variant]
    k = f"((i * 7919) % {SESSIONS} + 1)"
    return (f"INSERT INTO {s}.behavior_events (customer_id, session_id, event_type, business_impact, tool_name, "
            f"page_url, duration_ms, event_timestamp) "
            f"SELECT '{prefix}' || {customer_of(k)}, '{prefix}session-' || {k}, "
            f"({EVENT_TYPES})[i % 6 + 1], ({IMPACTS})[i % 7 + 1], "
            f"CASE i % 6 WHEN 1 THEN 'tool_' || i % 5 WHEN 4 THEN 'exporter' END, "
            f"'/page/' || i % 50, i % 5000, "
            f"now() - interval '30 days' + make_interval(days => {k} % 29, secs => {k} * 37 % 86400 + i::bigint * 104729 % 3600) "
            f"FROM generate_series(1, {n_rows}) i")


def client_script(variant: str) -> str:
    """One event per transaction: a random session's customer, the current time."""
    s = SCHEMA[variant]
    return (f"\\set s random(1, {SESSIONS})\n"
            f"\\set t random(1, 6)\n"
            f"INSERT INTO {s}.behavior_events (customer_id, session_id, event_type, business_impact, tool_name, page_url, duration_ms) "
            f"VALUES ({customer_of('(:s)::int')}, 'session-' || (:s)::int, ({EVENT_TYPES})[(:t)::int], "
            f"CASE (:t)::int WHEN 5 THEN 'high' ELSE 'low' END, "
            f"CASE (:t)::int WHEN 2 THEN 'tool_' || (:s)::int % 5 END, '/page/' || (:t)::int, 120);\n")


def mismatches(b: Bench, variant: str) -> tuple[int, int]:
    """Summary rows of `variant` that differ from a recount of its events (insights, sessions)."""
    s = SCHEMA[variant]
    insights = f"""
        WITH e AS (SELECT * FROM {s}.behavior_events),
             recount AS (
               SELECT customer_id, count(*) AS total_events,
                      (SELECT jsonb_object_agg(event_type, n) FROM (
                          SELECT event_type, count(*) AS n FROM e e2 WHERE e2.customer_id = e.customer_id GROUP BY 1) t
                      ) AS events_by_type,
                      count(*) FILTER (WHERE business_impact IN ('high', 'critical')) AS high_impact_events,
                      count(DISTINCT session_id)::int AS session_count,
                      min(event_timestamp) AS first_event_at, max(event_timestamp) AS last_session_timestamp,
                      (array_agg(session_id ORDER BY event_timestamp DESC, session_id DESC))[1] AS last_session_id,
                      greatest(0, floor(extract(epoch FROM now() - max(event_timestamp)) / 86400))::int AS days
                 FROM e GROUP BY customer_id),
             kept AS (
               SELECT customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
                      last_session_timestamp, last_session_id, days_since_last_activity
                 FROM {s}.behavior_insights)
        SELECT (SELECT count(*) FROM (TABLE recount EXCEPT TABLE kept) a) + (SELECT count(*) FROM (TABLE kept EXCEPT TABLE recount) b)"""
    sessions = f"""
        WITH recount AS (
               SELECT session_id, min(customer_id) AS customer_id, min(event_timestamp) AS started_at,
                      max(event_timestamp) AS ended_at, count(*)::int AS event_count,
                      (count(*) FILTER (WHERE business_impact IN ('high', 'critical')))::int AS high_impact_count,
                      coalesce(array_agg(DISTINCT tool_name ORDER BY tool_name) FILTER (WHERE tool_name IS NOT NULL), '{{}}') AS tools_used,
                      floor(extract(epoch FROM max(event_timestamp) - min(event_timestamp)))::int AS duration_seconds
                 FROM {s}.behavior_events GROUP BY session_id),
             kept AS (
               SELECT session_id, customer_id, started_at, ended_at, event_count, high_impact_count, tools_used,
                      duration_seconds FROM {s}.behavior_sessions)
        SELECT (SELECT count(*) FROM (TABLE recount EXCEPT TABLE kept) a) + (SELECT count(*) FROM (TABLE kept EXCEPT TABLE recount) b)"""
    return b.value(insights), b.value(sessions)


def verify(b: Bench) -> None:
    """Both rules keep exact summaries: a batch, a second batch of earlier events into the same
    sessions, and single-event inserts, then a recount; all rolled back."""
    for v in ("plpgsql", "native"):
        with b.conn.transaction(force_rollback=True):
            b.run(insert_sql(v, 3_000, prefix="verify-"))
            b.run(insert_sql(v, 3_000, prefix="verify-").replace("now() - interval '30 days'", "now() - interval '31 days'")
                  .replace("i * 7919", "(i + 17) * 7919"))
            for i in range(1, 6):
                b.run(f"INSERT INTO {SCHEMA[v]}.behavior_events (customer_id, session_id, event_type, business_impact, tool_name) "
                      f"VALUES ('verify-customer-{i}', 'verify-session-{i}', 'click', 'critical', 'a_tool')")
            bad = mismatches(b, v)
        assert bad == (0, 0), f"{v}: summaries differ from a recount of the events (insights, sessions): {bad}"


def setup(b: Bench) -> None:
    # Quick scale keeps full scale's shape: 10 events per session, 10 sessions per customer.
    global CUSTOMERS, SESSIONS
    CUSTOMERS, SESSIONS = b.size(200, 1_000), b.size(2_000, 10_000)
    ensure(b)
    verify(b)
    for v in VARIANTS:
        b.run(f"VACUUM ANALYZE {', '.join(f'{SCHEMA[v]}.{t}' for t in TABLES if v != 'none' or t == 'behavior_events')}")
    b.behavior_rows = b.size(20_000, 100_000)
    b.behavior_seconds = b.size(4, 15)


def measure(b: Bench, variant: str) -> dict[str, float]:
    e = b.explain(insert_sql(variant, b.behavior_rows))
    return {
        "batch_ms": e["execution_ms"],
        "batch_trigger_us": e["trigger_ms"] * 1000.0 / b.behavior_rows if variant != "none" else None,
    }


def measure_clients(b: Bench) -> dict[str, dict[str, float]]:
    scripts = {f"behavior_{v}": client_script(v) for v in VARIANTS}
    got: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    for clients in (1, 4):
        for name, res in b.pgbench(scripts, clients=clients, seconds=b.behavior_seconds).items():
            got[name.removeprefix("behavior_")][f"c{clients}_latency_ms"] = res["latency_ms"]
    # The committed events rewrote their summary rows; with autovacuum off, clean up (untimed)
    # so the next round starts from the same state.
    for v in VARIANTS:
        b.run(f"VACUUM {', '.join(f'{SCHEMA[v]}.{t}' for t in TABLES if v != 'none' or t == 'behavior_events')}")
    return got


WORKLOAD = Workload(
    name="behavior_events",
    title="6. Behavior events: per-customer insights and per-session summaries",
    variants=VARIANTS,
    metrics=[
        Metric("batch_ms", "one INSERT ... SELECT of 100,000 events for 1,000 customers and 10,000 sessions "
                           "(20,000 events, 200 customers, 2,000 sessions at quick scale)", "ms"),
        Metric("batch_trigger_us", "trigger time per inserted event in that batch", "µs"),
        Metric("c1_latency_ms", "single-event INSERT (web beacon), 1 client, pgbench -M prepared latency", "ms"),
        Metric("c4_latency_ms", "single-event INSERT (web beacon), 4 clients, pgbench -M prepared latency", "ms"),
    ],
    setup=setup,
    measure=measure,
    measure_together=measure_clients,
    alternatives=("none",),
    rounds={"quick": 3, "full": 5},
    notes="`none` is the events table alone, without summaries: the floor, not a competitor. `plpgsql` is source "
          "000's row trigger (`update_behavior_insights_on_event()`, two upserts per event, plus "
          "`update_updated_at_column()` on both summary tables); `native` keeps the same summaries once per "
          "summary row per statement. Both were checked against a recount of their events before timing. "
          "The batch runs under EXPLAIN (ANALYZE) and is rolled back; the pgbench runs commit.",
)
