"""Workload 5: one-row statements, the bulk of an application's traffic.

For every rule with a one-row path: a message insert and delete, a session insert and
completion, a profile update (updated_at). Each rule's three variants share one pgbench run
(-M prepared, one script per variant), at 1 and 4 clients. Reported: latency, and the rules'
cost above the no-rule floor (variant latency minus `none` latency of the same run).

`none` is the same statement on tables without triggers, doing by hand what the rule would
(supplying user_id, stamping completed_at, setting updated_at): the floor, not a competitor.
`sql` is the best an application can do without triggers: one statement that also makes the
rule's writes (a data-modifying CTE bumping the parent's counters and updated_at), on its own
copy of the tables. Its cost above `none` is what the counter writes themselves cost (the
parent's new version, the pruning of the old one, the WAL), whoever makes them.
Statements that would change the fixture (deletes, completions) run in BEGIN ... ROLLBACK.
"""
from bench import Bench, Metric, Workload
from workloads import chat_schema
from workloads.chat_schema import ensure, profile_uuid, seed_sessions, session_uuid

VARIANTS = ["none", "sql", "moddatetime", "plpgsql", "native"]
SCHEMA = {**chat_schema.SCHEMA, "sql": "bench_sql", "moddatetime": "bench_moddatetime"}
FIRST = 20001           # session and profile numbers of this workload (others use 1..11000)
SESSIONS = 200          # one per profile
MESSAGES_PER_SESSION = 20
CLIENTS = (1, 4)


def message_uuid(n: str) -> str:
    return f"('20000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def setup(b: Bench) -> None:
    ensure(b)
    b.run(f"""
        DROP SCHEMA IF EXISTS bench_sql CASCADE;
        CREATE SCHEMA bench_sql;
        CREATE TABLE bench_sql.profiles (LIKE public.profiles INCLUDING ALL);
        CREATE TABLE bench_sql.scenarios (LIKE public.scenarios INCLUDING ALL);
        CREATE TABLE bench_sql.sessions (LIKE public.sessions INCLUDING ALL);
        CREATE TABLE bench_sql.messages (LIKE public.messages INCLUDING ALL);
        ALTER TABLE bench_sql.sessions
            ADD FOREIGN KEY (user_id) REFERENCES bench_sql.profiles (id) ON DELETE CASCADE ON UPDATE CASCADE,
            ADD FOREIGN KEY (scenario_id) REFERENCES bench_sql.scenarios (id) ON UPDATE CASCADE;
        ALTER TABLE bench_sql.messages
            ADD FOREIGN KEY (session_id) REFERENCES bench_sql.sessions (id) ON DELETE CASCADE ON UPDATE CASCADE;
        INSERT INTO bench_sql.scenarios (id, title) VALUES ('bench', 'Benchmark');
        CREATE EXTENSION IF NOT EXISTS moddatetime;
        DROP SCHEMA IF EXISTS bench_moddatetime CASCADE;
        CREATE SCHEMA bench_moddatetime;
        CREATE TABLE bench_moddatetime.profiles (LIKE public.profiles INCLUDING ALL);
        CREATE TRIGGER profiles_updated_at BEFORE UPDATE ON bench_moddatetime.profiles
            FOR EACH ROW EXECUTE FUNCTION moddatetime(updated_at);
        INSERT INTO bench_moddatetime.profiles (id, email, week_reset_date)
             SELECT {profile_uuid('i')}, 'bench' || i || '@example.com', now() + interval '7 days'
               FROM generate_series({FIRST}, {FIRST + SESSIONS - 1}) i;""")
    b.run("VACUUM ANALYZE bench_moddatetime.profiles")
    for v in VARIANTS:
        if v == "moddatetime":
            continue
        s = SCHEMA[v]
        seed_sessions(b, v, SESSIONS, first=FIRST, schema=s)
        by_hand = v in ("none", "sql")
        user = f"{profile_uuid(f'{FIRST} + (m - 1) / {MESSAGES_PER_SESSION}')}, " if by_hand else ""
        cols = "id, session_id, user_id, role, chat_type, content" if by_hand else "id, session_id, role, chat_type, content"
        b.run(f"""INSERT INTO {s}.messages ({cols})
                  SELECT {message_uuid('m')}, {session_uuid(f'{FIRST} + (m - 1) / {MESSAGES_PER_SESSION}')}, {user}
                         'user', 'main', 'seeded ' || m
                    FROM generate_series(1, {SESSIONS * MESSAGES_PER_SESSION}) m""")
        if v == "sql":  # the counts the rule would have kept
            b.run(f"""UPDATE {s}.sessions x SET message_count_main = c.n
                        FROM (SELECT session_id, count(*)::int AS n FROM {s}.messages GROUP BY session_id) c
                       WHERE x.id = c.session_id""")
        b.run(f"VACUUM ANALYZE {s}.profiles, {s}.sessions, {s}.messages")
    b.single_row_seconds = b.size(3, 10)


def scripts(rule: str) -> dict[str, str]:
    last = FIRST + SESSIONS - 1
    out = {}
    for v in VARIANTS:
        # The best alternative: for a counter rule, its writes made by the statement itself; for
        # updated_at, contrib's C trigger.
        if (v == "moddatetime") != (rule == "profile_update") and v in ("sql", "moddatetime"):
            continue
        s, none = SCHEMA[v], v == "none"
        pick = f"\\set p random({FIRST}, {last})\n"
        if v == "moddatetime":
            sql = f"UPDATE {s}.profiles SET display_name = 'user ' || :p WHERE id = {profile_uuid(':p')};\n"
        elif v == "sql":
            sql = by_hand(rule, s)
            if rule == "msg_delete":
                pick = f"\\set m random(1, {SESSIONS * MESSAGES_PER_SESSION})\n"
        elif rule == "msg_insert":
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


def by_hand(rule: str, s: str) -> str:
    """The rule's writes made by the statement itself, on tables without triggers."""
    if rule == "msg_insert":
        return (f"WITH s AS (UPDATE {s}.sessions SET message_count_main = message_count_main + 1, updated_at = now() "
                f"WHERE id = {session_uuid(':p')} AND NOT is_completed RETURNING id, user_id) "
                f"INSERT INTO {s}.messages (session_id, user_id, role, chat_type, content) "
                f"SELECT id, user_id, 'user', 'main', 'hello' FROM s;\n")
    if rule == "msg_delete":
        return (f"BEGIN;\nWITH d AS (DELETE FROM {s}.messages WHERE id = {message_uuid(':m')} RETURNING session_id, chat_type) "
                f"UPDATE {s}.sessions x SET message_count_main = message_count_main - (d.chat_type = 'main')::int, "
                f"message_count_helper = message_count_helper - (d.chat_type = 'helper')::int, updated_at = now() "
                f"FROM d WHERE x.id = d.session_id;\nROLLBACK;\n")
    if rule == "session_insert":
        return (f"WITH p AS (UPDATE {s}.profiles SET weekly_started_sessions = weekly_started_sessions + 1, updated_at = now() "
                f"WHERE id = {profile_uuid(':p')} AND (weekly_session_limit IS NULL OR weekly_started_sessions < weekly_session_limit) "
                f"RETURNING id) INSERT INTO {s}.sessions (user_id, scenario_id) SELECT id, 'bench' FROM p;\n")
    if rule == "session_completion":
        return (f"BEGIN;\nWITH c AS (UPDATE {s}.sessions SET is_completed = true, completed_at = now(), "
                f"duration_seconds = extract(epoch FROM now() - started_at)::int, updated_at = now() "
                f"WHERE id = {session_uuid(':p')} AND NOT is_completed RETURNING user_id) "
                f"UPDATE {s}.profiles x SET total_completed_sessions = total_completed_sessions + 1, "
                f"weekly_completed_sessions = weekly_completed_sessions + 1, updated_at = now() "
                f"FROM c WHERE x.id = c.user_id;\nROLLBACK;\n")
    raise ValueError(rule)


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
            for v in res:
                got[v][f"{rule}_c{clients}_ms"] = res[v]["latency_ms"]
                got[v][f"{rule}_c{clients}_cost_us"] = None if v == "none" else (res[v]["latency_ms"] - floor) * 1000.0
        # Committed inserts and updates leave dead rows behind; with autovacuum off, clean up.
        for v, s in SCHEMA.items():
            b.run(f"VACUUM {s}.profiles" if v == "moddatetime" else f"VACUUM {s}.profiles, {s}.sessions, {s}.messages")
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
    alternatives=("sql", "moddatetime"),
    notes="pgbench -M prepared, the four variants of a rule in one run. `none` does by hand what the rule "
          "would (user_id, completion stamps, updated_at) on tables without triggers, but no counter; `sql` adds "
          "the rule's writes to the same statement (a data-modifying CTE bumping the parent's counters), the "
          "best an application can do without triggers (for the profile update, the best alternative is contrib's C "
          "trigger `moddatetime`); the cost rows are each variant's latency minus "
          "`none`'s in the same run. The PL/pgSQL reference includes the weekly limit "
          "and the delete decrement, written in the source documents' style (they have neither).",
)
