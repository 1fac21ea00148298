"""Workload 5: one-row statements, the bulk of an application's traffic.

For every rule with a one-row path: a message insert and delete, a session insert and
completion, a profile update (updated_at). Each rule's three variants share one pgbench run
(-M prepared, one script per variant), at 1 and 4 clients. Reported: latency, and the rules'
cost above the no-rule floor (variant latency minus `none` latency of the same run).

`none` is the same statement on tables without triggers, doing by hand what the rule would
(supplying user_id, stamping completed_at, setting updated_at): the floor, not a competitor.
Statements that would change the fixture (deletes, completions) run in BEGIN ... ROLLBACK.
"""
from bench import Bench, Metric, Workload
from workloads.chat_schema import SCHEMA, ensure, profile_uuid, seed_sessions, session_uuid

VARIANTS = ["none", "plpgsql", "native"]
FIRST = 20001           # session and profile numbers of this workload (others use 1..11000)
SESSIONS = 200          # one per profile
MESSAGES_PER_SESSION = 20
CLIENTS = (1, 4)


def message_uuid(n: str) -> str:
    return f"('20000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def setup(b: Bench) -> None:
    ensure(b)
    for v in VARIANTS:
        s = SCHEMA[v]
        seed_sessions(b, v, SESSIONS, first=FIRST)
        user = f"{profile_uuid(f'{FIRST} + (m - 1) / {MESSAGES_PER_SESSION}')}, " if v == "none" else ""
        cols = "id, session_id, user_id, role, chat_type, content" if v == "none" else "id, session_id, role, chat_type, content"
        b.run(f"""INSERT INTO {s}.messages ({cols})
                  SELECT {message_uuid('m')}, {session_uuid(f'{FIRST} + (m - 1) / {MESSAGES_PER_SESSION}')}, {user}
                         'user', 'main', 'seeded ' || m
                    FROM generate_series(1, {SESSIONS * MESSAGES_PER_SESSION}) m""")
        b.run(f"VACUUM ANALYZE {s}.profiles, {s}.sessions, {s}.messages")
    b.single_row_seconds = b.size(3, 10)


def scripts(rule: str) -> dict[str, str]:
    last = FIRST + SESSIONS - 1
    out = {}
    for v in VARIANTS:
        s, none = SCHEMA[v], v == "none"
        pick = f"\\set p random({FIRST}, {last})\n"
        if rule == "msg_insert":
            cols, user = ("session_id, user_id", f", {profile_uuid(':p')}") if none else ("session_id", "")
            sql = (f"INSERT INTO {s}.messages ({cols}, role, chat_type, content) "
                   f"VALUES ({session_uuid(':p')}{user}, 'user', 'main', 'hello');\n")
        elif rule == "msg_delete":
            pick = f"\\set m random(1, {SESSIONS * MESSAGES_PER_SESSION})\n"
            sql = f"BEGIN;\nDELETE FROM {s}.messages WHERE id = {message_uuid(':m')};\nROLLBACK;\n"
        elif rule == "session_insert":
            sql = f"INSERT INTO {s}.sessions (user_id, scenario_id) VALUES ({profile_uuid(':p')}, 'bench');\n"
        elif rule == "session_completion":
            stamps = (", completed_at = now(), duration_seconds = extract(epoch FROM now() - started_at)::int"
                      if none else "")
            sql = f"BEGIN;\nUPDATE {s}.sessions SET is_completed = true{stamps} WHERE id = {session_uuid(':p')};\nROLLBACK;\n"
        else:  # profile_update
            stamp = ", updated_at = now()" if none else ""
            sql = f"UPDATE {s}.profiles SET display_name = 'user ' || :p{stamp} WHERE id = {profile_uuid(':p')};\n"
        out[v] = pick + sql
    return out


RULES = {
    "msg_insert": "message insert",
    "msg_delete": "message delete",
    "session_insert": "session insert",
    "session_completion": "session completion",
    "profile_update": "profile update (updated_at)",
}


def measure(b: Bench, variant: str) -> dict[str, float]:
    return {}


def measure_clients(b: Bench) -> dict[str, dict[str, float]]:
    got: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    for rule in RULES:
        for clients in CLIENTS:
            res = b.pgbench(scripts(rule), clients=clients, seconds=b.single_row_seconds)
            floor = res["none"]["latency_ms"]
            for v in VARIANTS:
                got[v][f"{rule}_c{clients}_ms"] = res[v]["latency_ms"]
                got[v][f"{rule}_c{clients}_cost_us"] = None if v == "none" else (res[v]["latency_ms"] - floor) * 1000.0
        # Committed inserts and updates leave dead rows behind; with autovacuum off, clean up.
        for s in SCHEMA.values():
            b.run(f"VACUUM {s}.profiles, {s}.sessions, {s}.messages")
    return got


METRICS = []
for rule, label in RULES.items():
    for clients in CLIENTS:
        METRICS.append(Metric(f"{rule}_c{clients}_ms", f"{label}, {clients} client{'s' if clients > 1 else ''}: latency", "ms"))
        METRICS.append(Metric(f"{rule}_c{clients}_cost_us",
                              f"{label}, {clients} client{'s' if clients > 1 else ''}: rule cost above the no-rule floor", "µs"))

WORKLOAD = Workload(
    name="single_row",
    title="5. One-row statements: each rule against no rules and PL/pgSQL",
    variants=VARIANTS,
    metrics=METRICS,
    setup=setup,
    measure=measure,
    measure_together=measure_clients,
    alternatives=("none",),
    notes="pgbench -M prepared, the three variants of a rule in one run. `none` does by hand what the rule "
          "would (user_id, completion stamps, updated_at) on tables without triggers; the cost rows are each "
          "variant's latency minus `none`'s in the same run. The PL/pgSQL reference includes the weekly limit "
          "and the delete decrement, written in the source documents' style (they have neither).",
)
