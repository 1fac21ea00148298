"""Workload 8: conversation messages (tenant_id from the conversation, conversation counters).

One 100,000-row INSERT ... SELECT into 100 conversations (20,000 at quick scale), and
single-row inserts from 1 and 4 clients (pgbench -M prepared, one script per variant in the
same run).

  none     bench_plain:   no triggers; the statement supplies tenant_id
  plpgsql  bench_plpgsql: source 001's update_conversation_timestamp() AFTER INSERT FOR EACH ROW
                          (bench/plpgsql/conversations.sql) and the tenant fill as a BEFORE INSERT
                          row trigger, plus 001's update_updated_at_column() on conversations
  native   public:        the extension's row-level tenant fill and per-statement counters
"""
from bench import Bench, Metric, Workload
from workloads.conversation_schema import (CONVERSATIONS, SCHEMA, conversation_uuid, ensure, tenant_of_user,
                                           tenant_uuid, user_uuid)

VARIANTS = ["none", "plpgsql", "native"]


def setup(b: Bench) -> None:
    ensure(b)
    b.conversation_rows = b.size(20_000, 100_000)
    b.conversation_seconds = b.size(4, 15)


def insert_sql(variant: str, n_rows: int) -> str:
    """n_rows messages, conversation i % 100 + 1, users' and assistants' turns alternating."""
    s = SCHEMA[variant]
    k = f"(i % {CONVERSATIONS} + 1)"
    # The plain table has no trigger to fill tenant_id, so the statement supplies it, as an
    # application without the rule would.
    tenant = f"{tenant_uuid(tenant_of_user(k))}, " if variant == "none" else ""
    cols = "conversation_id, tenant_id" if variant == "none" else "conversation_id"
    return (f"INSERT INTO {s}.conversation_messages ({cols}, user_id, role, content, model, input_tokens, output_tokens) "
            f"SELECT {conversation_uuid(k)}, {tenant}"
            f"CASE WHEN i % 2 = 0 THEN {user_uuid(k)} END, CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, "
            f"'message ' || i, CASE WHEN i % 2 = 1 THEN 'gpt-4o' END, "
            f"CASE WHEN i % 2 = 1 THEN 200 + i % 1000 ELSE 0 END, CASE WHEN i % 2 = 1 THEN 50 + i % 500 ELSE 0 END "
            f"FROM generate_series(1, {n_rows}) i")


def client_script(variant: str) -> str:
    """One user message per transaction into a random conversation."""
    s = SCHEMA[variant]
    tenant = f"{tenant_uuid(tenant_of_user(':c'))}, " if variant == "none" else ""
    cols = "conversation_id, tenant_id" if variant == "none" else "conversation_id"
    return (f"\\set c random(1, {CONVERSATIONS})\n"
            f"INSERT INTO {s}.conversation_messages ({cols}, user_id, role, content) "
            f"VALUES ({conversation_uuid(':c')}, {tenant}{user_uuid(':c')}, 'user', 'hello');\n")


def measure(b: Bench, variant: str) -> dict[str, float]:
    e = b.explain(insert_sql(variant, b.conversation_rows))
    return {
        "batch_ms": e["execution_ms"],
        "batch_trigger_us": e["trigger_ms"] * 1000.0 / b.conversation_rows if variant != "none" else None,
    }


def measure_clients(b: Bench) -> dict[str, dict[str, float]]:
    scripts = {f"conversation_{v}": client_script(v) for v in VARIANTS}
    got: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    for clients in (1, 4):
        for name, res in b.pgbench(scripts, clients=clients, seconds=b.conversation_seconds).items():
            got[name.removeprefix("conversation_")][f"c{clients}_latency_ms"] = res["latency_ms"]
    # The committed inserts rewrote the conversation rows thousands of times; with autovacuum off,
    # clean up (untimed) so the next round starts from the same state.
    for s in SCHEMA.values():
        b.run(f"VACUUM {s}.conversations, {s}.conversation_messages")
    # Both rules keep every conversation's count equal to its messages.
    for v in ("plpgsql", "native"):
        s = SCHEMA[v]
        bad = b.value(f"""SELECT count(*) FROM {s}.conversations c
                           WHERE c.message_count <> (SELECT count(*) FROM {s}.conversation_messages m
                                                      WHERE m.conversation_id = c.id)""")
        assert bad == 0, f"{v}: {bad} conversations whose message_count differs from a recount"
    return got


WORKLOAD = Workload(
    name="conversation_messages",
    title="8. Conversation messages (tenant_id from the conversation, conversation counters)",
    variants=VARIANTS,
    metrics=[
        Metric("batch_ms", "one INSERT ... SELECT of 100,000 messages into 100 conversations (20,000 at quick scale)", "ms"),
        Metric("batch_trigger_us", "trigger time per inserted row in that batch (row + statement triggers)", "µs"),
        Metric("c1_latency_ms", "single-row INSERT, 1 client, pgbench -M prepared latency", "ms"),
        Metric("c4_latency_ms", "single-row INSERT, 4 clients, pgbench -M prepared latency", "ms"),
    ],
    setup=setup,
    measure=measure,
    measure_together=measure_clients,
    alternatives=("none",),
    rounds={"quick": 3, "full": 5},
    notes="`none` has no rule at all (the application supplies tenant_id); it is the floor, not a competitor. "
          "`plpgsql` is source 001's `update_conversation_timestamp()` row trigger (one UPDATE of the "
          "conversation per message) with the tenant fill as a BEFORE INSERT row trigger and 001's "
          "`update_updated_at_column()` on conversations; `native` fills the tenant per row from a per-statement "
          "cache and bumps each conversation once per statement. The batch runs under EXPLAIN (ANALYZE) and is "
          "rolled back; the pgbench runs commit.",
)
