"""Workload 7: similarity search over behavior patterns (1,536-dimension embeddings).

100,000 random patterns (10,000 at quick scale) of 100 users (10), 1,000 each; one query, a
pattern's embedding plus noise. Measured, as a service caller (superuser):

  - top 5 over every pattern (p_user_id NULL, threshold -1 so that every pattern qualifies),
    and the same in µs per pattern scanned;
  - top 5 among one user's 1,000 patterns (p_user_id given);
  - cosine similarity of two embeddings, in a max() over every pattern.

  plpgsql         source 004's find_similar_patterns() (PL/pgSQL, pgvector; bench/plpgsql/patterns.sql)
                  on its table, where the vector(1536) column is TOASTed (default storage)
  pgvector        pgvector's exact scan, `ORDER BY embedding <=> q LIMIT 5`, on that table
  pgvector_plain  the same scan on a copy whose embeddings are kept in the row (STORAGE PLAIN)
  native          the extension's find_similar_patterns() and cosine_similarity()
  memory_floor    not a search: one core of this machine reading 1 GiB of float32 from memory
                  (numpy, single-threaded), per 6 KiB, the floor of any exact scan of data in RAM

The same vectors everywhere: generated once server-side into the extension's table, copied into
the pgvector tables with a cast. No ANN index (exact results), no parallel workers; every table
is read into shared buffers before it is timed. pgvector is installed by bench/run.sh
(bench/pgvector.sh); without it, its variants are reported missing.
"""
import statistics
import time

from bench import Bench, Metric, Workload, HERE

SEARCHES = ["plpgsql", "pgvector", "pgvector_plain", "native"]
VARIANTS = SEARCHES + ["memory_floor"]
DIM = 1536
PER_USER = 1_000
QUERY_PATTERN = 42          # the query is this pattern's embedding plus noise
FLOOR_US = (0.25, 0.3)      # memory-bandwidth floor usually quoted: one 6 KiB vector, one core
TABLE = {
    "plpgsql": "bench_pgvector.behavior_patterns",
    "pgvector": "bench_pgvector.behavior_patterns",
    "pgvector_plain": "bench_pgvector.behavior_patterns_plain",
    "native": "public.behavior_patterns",
}
NOTES = ("Exact search everywhere (no ANN index), `max_parallel_workers_per_gather = 0`, tables read into shared "
         "buffers (pg_prewarm) before each variant is timed; each sample is the median of several repetitions. "
         "`plpgsql` is source 004's function (it computes the distance twice per row: in WHERE and in ORDER BY); "
         "`pgvector` its table with pgvector's exact scan, the vector TOASTed (pgvector's default storage); "
         "`pgvector_plain` the same rows with the vector kept in the row (STORAGE PLAIN). "
         "A 1,536-dimension embedding is 6 KiB: streaming it from memory costs one core "
         f"{FLOOR_US[0]}–{FLOOR_US[1]} µs on a typical server, the floor of any exact scan of data in RAM "
         "(shared buffers are RAM, and at full scale each table, about 800 MB, is far larger than the CPU caches); "
         "`memory_floor` is that floor measured on this machine in the same rounds: one core reading 1 GiB of "
         "float32 (numpy, single-threaded), per 6 KiB.")


def user_uuid(n: str) -> str:
    return f"('30000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def pattern_uuid(n: str) -> str:
    return f"('40000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"


def relations(b: Bench, table: str) -> list[str]:
    """The table, its TOAST table, and the indexes of both (what a scan of it may read)."""
    rels = [table]
    toast = b.value("SELECT nullif(reltoastrelid, 0)::regclass::text FROM pg_class WHERE oid = %s::regclass", (table,))
    if toast:
        rels.append(toast)
    for rel in list(rels):
        rels += [r[0] for r in b.conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", (rel,)).fetchall()]
    return rels


def prewarm(b: Bench, table: str) -> None:
    for rel in relations(b, table):
        b.run("SELECT pg_prewarm(%s::regclass)", (rel,))


def loaded(b: Bench, n: int, vector: bool) -> bool:
    """The data of a previous run with the same scale is still there (the same vectors)."""
    if b.value("SELECT count(*) FROM public.behavior_patterns WHERE trigger LIKE 'bench pattern %'") != n:
        return False
    if b.value("SELECT to_regclass('bench_pgvector.query') IS NULL"):
        return False
    if vector:
        for t in ("bench_pgvector.query_vector", "bench_pgvector.behavior_patterns", "bench_pgvector.behavior_patterns_plain"):
            if b.value("SELECT to_regclass(%s) IS NULL", (t,)):
                return False
            if b.value(f"SELECT count(*) FROM {t}") != n:
                return False
    return True


def load(b: Bench, n: int, users: int, vector: bool) -> None:
    b.run("TRUNCATE public.behavior_patterns")
    b.run(f"DELETE FROM public.profiles WHERE id IN (SELECT {user_uuid('u')} FROM generate_series(1, 1000) u)")
    b.run(f"SELECT count(public.create_profile({user_uuid('u')}, 'similarity' || u || '@example.com')) "
          f"FROM generate_series(1, {users}) u")
    b.run("SELECT setseed(0.25)")
    # The inner generate_series refers to i, so it runs once per row (not once for the statement).
    b.run(f"""INSERT INTO public.behavior_patterns (id, user_id, trigger, trigger_embedding, context, actions, final_outcome, confidence)
              SELECT {pattern_uuid('i')}, {user_uuid(f'(i - 1) % {users} + 1')}, 'bench pattern ' || i,
                     ARRAY(SELECT (random() - 0.5)::real FROM generate_series(1, {DIM}) WHERE i > 0),
                     jsonb_build_object('directory', '/work/project' || i % 10, 'project_type', 'typescript-api'),
                     '[{{"tool": "Read", "outcome": "success"}}, {{"tool": "Edit", "outcome": "success"}}]',
                     'success', 0.5 + (i % 50) / 100.0
                FROM generate_series(1, {n}) i""")
    b.run("CREATE SCHEMA IF NOT EXISTS bench_pgvector")
    # The query is kept in the row (STORAGE PLAIN): as a TOAST pointer it would be fetched from
    # the TOAST table again by every call that reads it, as a query sent by a client never is.
    b.run("DROP TABLE IF EXISTS bench_pgvector.query, bench_pgvector.query_vector")
    b.run("CREATE TABLE bench_pgvector.query (q real[] NOT NULL)")
    b.run("ALTER TABLE bench_pgvector.query ALTER COLUMN q SET STORAGE PLAIN")
    b.run(f"""INSERT INTO bench_pgvector.query
              SELECT ARRAY(SELECT e + (random() - 0.5)::real * 0.5 FROM unnest(trigger_embedding) e)::real[]
                FROM public.behavior_patterns WHERE id = {pattern_uuid(str(QUERY_PATTERN))}""")
    if vector:
        b.run("CREATE TABLE bench_pgvector.query_vector (qv vector(1536) NOT NULL)")
        b.run("ALTER TABLE bench_pgvector.query_vector ALTER COLUMN qv SET STORAGE PLAIN")
        b.run("INSERT INTO bench_pgvector.query_vector SELECT q::vector FROM bench_pgvector.query")
        for t in ("bench_pgvector.behavior_patterns", "bench_pgvector.behavior_patterns_plain"):
            b.run(f"TRUNCATE {t}")
            b.run(f"""INSERT INTO {t} (id, user_id, trigger, trigger_embedding, context, actions, final_outcome, confidence, use_count)
                      SELECT id, user_id, trigger, trigger_embedding::vector, context, actions, final_outcome, confidence, use_count
                        FROM public.behavior_patterns ORDER BY id""")


def top5(b: Bench, variant: str, user: bool) -> str:
    """SQL of one search, top 5 with every column of find_similar_patterns' result."""
    who = user_uuid("1") if user else "NULL"
    if variant == "native":
        return f"SELECT * FROM public.find_similar_patterns((SELECT q FROM bench_pgvector.query), -1, 5, {who})"
    if variant == "plpgsql":
        return f"SELECT * FROM bench_pgvector.find_similar_patterns((SELECT qv FROM bench_pgvector.query_vector), -1, 5, {who})"
    where = f"WHERE user_id = {who}" if user else ""
    # The distance is computed once per row (ORDER BY its output column) and turned into the
    # similarity for the 5 rows returned.
    return (f"SELECT id, trigger, context, actions, final_outcome, confidence, use_count, 1 - distance AS similarity "
            f"FROM (SELECT id, trigger, context, actions, final_outcome, confidence, use_count, "
            f"trigger_embedding <=> (SELECT qv FROM bench_pgvector.query_vector) AS distance "
            f"FROM {TABLE[variant]} {where} ORDER BY distance LIMIT 5) best ORDER BY distance")


def cosine_sql(variant: str) -> str:
    if variant == "native":
        return ("SELECT max(public.cosine_similarity(trigger_embedding, (SELECT q FROM bench_pgvector.query))) "
                "FROM public.behavior_patterns")
    return (f"SELECT max(1 - (trigger_embedding <=> (SELECT qv FROM bench_pgvector.query_vector))) FROM {TABLE[variant]}")


def setup(b: Bench) -> None:
    n = b.size(10_000, 100_000)
    users = n // PER_USER
    b.sim_patterns = n
    b.run("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    b.sim_vector = bool(b.value("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"))
    if b.sim_vector:
        b.run("CREATE EXTENSION IF NOT EXISTS vector")
        b.run("CREATE SCHEMA IF NOT EXISTS bench_pgvector")
        b.run_file(HERE / "plpgsql" / "patterns.sql")
        WORKLOAD.notes = NOTES
    else:
        WORKLOAD.notes = ("**pgvector is not installed on this server: its variants (`plpgsql`, `pgvector`, "
                          "`pgvector_plain`) are missing.** " + NOTES)
    if not loaded(b, n, b.sim_vector):
        t0 = time.perf_counter()
        load(b, n, users, b.sim_vector)
        print(f"   loaded {n:,} patterns of {DIM} dimensions in {time.perf_counter() - t0:.0f} s", flush=True)
    tables = ["public.behavior_patterns", "bench_pgvector.query"]
    if b.sim_vector:
        tables += ["bench_pgvector.query_vector", "bench_pgvector.behavior_patterns", "bench_pgvector.behavior_patterns_plain"]
    # Frozen, with hint bits and visibility map set, so no timed scan writes anything.
    b.run(f"VACUUM (FREEZE, ANALYZE) {', '.join(tables)}")
    b.sim_reps = {"all": 3, "user": 15, "cosine": 3}
    # Every variant must return the same patterns (pgvector computes in float4, the extension
    # in float8 from a float4 dot product: the similarities agree to about 1e-6).
    b.run("SET max_parallel_workers_per_gather = 0")
    try:
        for user in (False, True):
            results = {v: b.conn.execute(top5(b, v, user)).fetchall()
                       for v in SEARCHES if v == "native" or b.sim_vector}
            ids = {v: [str(r[0]) for r in rows] for v, rows in results.items()}
            assert len(ids["native"]) == 5, f"native returned {len(ids['native'])} rows"
            for v, got in ids.items():
                assert got == ids["native"], f"{v} found other patterns than native ({'one user' if user else 'all'}): {got} vs {ids['native']}"
                for a, c in zip(results[v], results["native"]):
                    assert abs(a[7] - c[7]) < 1e-5, f"{v}: similarity {a[7]} vs native {c[7]}"
            if not user:
                assert ids["native"][0] == b.value(f"SELECT {pattern_uuid(str(QUERY_PATTERN))}::text"), "query pattern not found first"
    finally:
        b.run("RESET max_parallel_workers_per_gather")


def timed_median(b: Bench, sql: str, reps: int) -> float:
    return statistics.median(b.timed(sql)[0] for _ in range(reps))


def memory_floor() -> dict[str, float]:
    """µs for one core to read 6 KiB from RAM: a 1 GiB array, far larger than the CPU caches."""
    try:
        import numpy as np  # comes with matplotlib, in the benchmark's venv
    except ImportError:
        return {}
    a = np.ones(1 << 28, dtype=np.float32)
    a.max()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        a.max()
        samples.append(time.perf_counter() - t0)
    return {"all_us": min(samples) * 1e6 / (a.nbytes / (DIM * 4))}


def measure(b: Bench, variant: str) -> dict[str, float]:
    if variant == "memory_floor":
        return memory_floor()
    if variant != "native" and not b.sim_vector:
        return {}
    prewarm(b, TABLE[variant])
    b.run("SET max_parallel_workers_per_gather = 0")
    try:
        all_ms = timed_median(b, top5(b, variant, user=False), b.sim_reps["all"])
        user_ms = timed_median(b, top5(b, variant, user=True), b.sim_reps["user"])
        cosine_ms = timed_median(b, cosine_sql(variant), b.sim_reps["cosine"]) if variant != "plpgsql" else None
    finally:
        b.run("RESET max_parallel_workers_per_gather")
    n = b.sim_patterns
    return {
        "all_ms": all_ms,
        "all_us": all_ms * 1000.0 / n,
        "user_ms": user_ms,
        "cosine_us": cosine_ms * 1000.0 / n if cosine_ms is not None else None,
    }


WORKLOAD = Workload(
    name="similarity",
    title="7. Similarity search: find_similar_patterns over 1,536-dimension embeddings",
    variants=VARIANTS,
    metrics=[
        Metric("all_ms", "top 5 over all 100,000 patterns (10,000 at quick scale), service caller, threshold -1", "ms"),
        Metric("all_us", "the same, per pattern scanned; memory_floor: one core reading 6 KiB from RAM "
                         f"(typically {FLOOR_US[0]}–{FLOOR_US[1]} µs)", "µs"),
        Metric("user_ms", "top 5 among one user's 1,000 patterns (p_user_id given), among all 100,000 (10,000)", "ms"),
        Metric("cosine_us", "cosine_similarity(a, b) vs 1 - (a <=> b): per pair, in a max() over every pattern", "µs"),
    ],
    setup=setup,
    measure=measure,
    alternatives=("pgvector", "pgvector_plain"),
    rounds={"quick": 3, "full": 5},
    notes=NOTES,
)
