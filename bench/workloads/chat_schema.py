"""The chat tables once per variant, shaped alike.

  none     bench_plain:   the extension's tables without any trigger (foreign keys kept)
  plpgsql  bench_plpgsql: the same tables with the PL/pgSQL triggers of source 003 (bench/plpgsql/chat.sql)
  native   public:        the extension's own tables and native rules
"""
from bench import Bench, HERE

SCHEMA = {"none": "bench_plain", "plpgsql": "bench_plpgsql", "native": "public"}
_ready = False


def ensure(b: Bench) -> None:
    global _ready
    if _ready:
        return
    b.run("DROP SCHEMA IF EXISTS bench_plain CASCADE")
    b.run("CREATE SCHEMA IF NOT EXISTS bench_plpgsql")
    b.run("DROP TABLE IF EXISTS bench_plpgsql.messages, bench_plpgsql.sessions, bench_plpgsql.scenarios, bench_plpgsql.profiles CASCADE")
    b.run("CREATE SCHEMA bench_plain")
    for s in ("bench_plain", "bench_plpgsql"):
        b.run(f"""
            CREATE TABLE {s}.profiles (LIKE public.profiles INCLUDING ALL);
            CREATE TABLE {s}.scenarios (LIKE public.scenarios INCLUDING ALL);
            CREATE TABLE {s}.sessions (LIKE public.sessions INCLUDING ALL);
            CREATE TABLE {s}.messages (LIKE public.messages INCLUDING ALL);
            ALTER TABLE {s}.sessions
                ADD FOREIGN KEY (user_id) REFERENCES {s}.profiles (id) ON DELETE CASCADE ON UPDATE CASCADE,
                ADD FOREIGN KEY (scenario_id) REFERENCES {s}.scenarios (id) ON UPDATE CASCADE;
            ALTER TABLE {s}.messages
                ADD FOREIGN KEY (session_id) REFERENCES {s}.sessions (id) ON DELETE CASCADE ON UPDATE CASCADE;
        """)
    b.run_file(HERE / "plpgsql" / "updated_at.sql")
    b.run_file(HERE / "plpgsql" / "chat.sql")
    # Start every variant from empty tables.
    b.run("TRUNCATE public.profiles, public.scenarios, public.sessions, public.messages, public.logs CASCADE")
    for s in SCHEMA.values():
        b.run(f"INSERT INTO {s}.scenarios (id, title) VALUES ('bench', 'Benchmark')")
    _ready = True


def session_uuid(n: str) -> str:
    """SQL for the uuid of benchmark session number `n` (an SQL integer expression)."""
    return f"('00000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def profile_uuid(n: str) -> str:
    return f"('10000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def seed_sessions(b: Bench, variant: str, sessions: int, first: int = 1, users: int | None = None,
                  schema: str | None = None) -> None:
    """`sessions` open sessions numbered from `first`, spread over `users` profiles (in `schema`,
    by default the variant's)."""
    s = schema or SCHEMA[variant]
    users = users or sessions
    b.run(f"""INSERT INTO {s}.profiles (id, email, week_reset_date)
              SELECT {profile_uuid('i')}, 'bench' || i || '@example.com', now() + interval '7 days'
                FROM generate_series({first}, {first + users - 1}) i
              ON CONFLICT DO NOTHING""")
    b.run(f"""INSERT INTO {s}.sessions (id, user_id, scenario_id, started_at)
              SELECT {session_uuid('i')}, {profile_uuid(f'{first} + (i - {first}) % {users}')}, 'bench', now() - interval '30 minutes'
                FROM generate_series({first}, {first + sessions - 1}) i""")
    b.run(f"VACUUM ANALYZE {s}.profiles, {s}.sessions")
