"""The conversation tables (source 001) once per variant, shaped alike.

  none     bench_plain:   the extension's conversations, conversation_messages and usage_metrics
                          without any trigger (foreign keys kept)
  plpgsql  bench_plpgsql: the same tables with source 001's PL/pgSQL rules (bench/plpgsql/conversations.sql);
                          its usage_metrics keeps total_tokens as a plain column, as 001's does, and
                          usage_metrics_sql is the same table for the plain SQL-function upsert
  native   public:        the extension's own tables and native rules

Every variant's conversations belong to the same tenants and profiles (the extension's, created
the way an application creates them: INSERT INTO tenants, create_profile(), then the profile's
tenant_id): 10 tenants, 100 users, user k in tenant (k - 1) % 10 + 1, conversation k owned by user k.
"""
from bench import Bench, HERE

SCHEMA = {"none": "bench_plain", "plpgsql": "bench_plpgsql", "native": "public"}
TENANTS = 10
USERS = 100
CONVERSATIONS = 100
_ready = False


def tenant_uuid(n: str) -> str:
    """SQL for the uuid of benchmark tenant number `n` (an SQL integer expression)."""
    return f"('50000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def user_uuid(n: str) -> str:
    return f"('60000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def conversation_uuid(n: str) -> str:
    return f"('70000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def tenant_of_user(k: str) -> str:
    """SQL: the tenant number of user number `k` (and of conversation number `k`)."""
    return f"(({k}) - 1) % {TENANTS} + 1"


def ensure(b: Bench) -> None:
    global _ready
    if _ready:
        return
    for s in ("bench_plain", "bench_plpgsql"):
        b.run(f"CREATE SCHEMA IF NOT EXISTS {s}")
        b.run(f"DROP TABLE IF EXISTS {s}.conversation_messages, {s}.conversations, {s}.usage_metrics, "
              f"{s}.usage_metrics_sql CASCADE")
    b.run("TRUNCATE public.conversations, public.conversation_messages, public.feedback, public.usage_metrics")
    # Tenants and profiles: the extension's, shared by every variant.
    b.run(f"DELETE FROM public.profiles WHERE id IN (SELECT {user_uuid('u')} FROM generate_series(1, {USERS}) u)")
    b.run(f"DELETE FROM public.tenants WHERE id IN (SELECT {tenant_uuid('t')} FROM generate_series(1, {TENANTS}) t)")
    b.run(f"""INSERT INTO public.tenants (id, name, slug)
              SELECT {tenant_uuid('t')}, 'Bench tenant ' || t, 'bench-tenant-' || t FROM generate_series(1, {TENANTS}) t""")
    b.run(f"SELECT count(public.create_profile({user_uuid('u')}, 'conversations' || u || '@example.com')) "
          f"FROM generate_series(1, {USERS}) u")
    b.run(f"""UPDATE public.profiles p SET tenant_id = {tenant_uuid(tenant_of_user('u'))}
                FROM generate_series(1, {USERS}) u WHERE p.id = {user_uuid('u')}""")
    # The copies: LIKE the extension's tables (defaults, checks, indexes), foreign keys as theirs.
    for s in ("bench_plain", "bench_plpgsql"):
        b.run(f"""
            CREATE TABLE {s}.conversations (LIKE public.conversations INCLUDING ALL);
            CREATE TABLE {s}.conversation_messages (LIKE public.conversation_messages INCLUDING ALL);
            ALTER TABLE {s}.conversations
                ADD FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE,
                ADD FOREIGN KEY (user_id) REFERENCES public.profiles (id) ON DELETE CASCADE;
            ALTER TABLE {s}.conversation_messages
                ADD FOREIGN KEY (conversation_id) REFERENCES {s}.conversations (id) ON DELETE CASCADE;
        """)
    b.run("CREATE TABLE bench_plain.usage_metrics (LIKE public.usage_metrics INCLUDING ALL)")
    for t in ("usage_metrics", "usage_metrics_sql"):
        # 001's total_tokens is a plain column its function adds to.
        b.run(f"CREATE TABLE bench_plpgsql.{t} (LIKE public.usage_metrics INCLUDING ALL EXCLUDING GENERATED)")
    for t in ("bench_plain.usage_metrics", "bench_plpgsql.usage_metrics", "bench_plpgsql.usage_metrics_sql"):
        b.run(f"ALTER TABLE {t} ADD FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE CASCADE")
    b.run_file(HERE / "plpgsql" / "updated_at.sql")
    b.run_file(HERE / "plpgsql" / "conversations.sql")
    for s in SCHEMA.values():
        b.run(f"""INSERT INTO {s}.conversations (id, tenant_id, user_id, title, created_at, updated_at)
                  SELECT {conversation_uuid('k')}, {tenant_uuid(tenant_of_user('k'))}, {user_uuid('k')},
                         'Bench conversation ' || k, now() - interval '1 hour', now() - interval '1 hour'
                    FROM generate_series(1, {CONVERSATIONS}) k""")
        b.run(f"VACUUM ANALYZE {s}.conversations, {s}.conversation_messages")
    b.run("VACUUM ANALYZE public.tenants, public.profiles")
    _ready = True
