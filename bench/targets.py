"""The targets of the benchmark issue, evaluated on a run's medians."""


def _median(results, workload, metric, variant):
    for r in results:
        if r["workload"].name == workload:
            return r["summary"].get(metric, {}).get(variant, {}).get("median")
    return None


def evaluate(results):
    out = []

    def check(name, ok, measured):
        out.append((name, ok, measured))

    for workload, metric, label in [
        ("updated_at", "trigger_us", "updated_at"),
        ("message_insert", "batch_trigger_us", "message insert (batch)"),
        ("session_completion", "trigger_us", "session completion"),
    ]:
        n, p = _median(results, workload, metric, "native"), _median(results, workload, metric, "plpgsql")
        if n is not None and p:
            check(f"{label}: native per-row trigger time ≤ ½ PL/pgSQL", n <= 0.5 * p,
                  f"{n:.3f} µs vs {p:.3f} µs ({n / p:.2f}×)")
    n, m = _median(results, "updated_at", "trigger_us", "native"), _median(results, "updated_at", "trigger_us", "moddatetime")
    if n is not None and m:
        check("set_updated_at() ≤ moddatetime per row", n <= m, f"{n:.3f} µs vs {m:.3f} µs ({n / m:.2f}×)")
    n = _median(results, "message_insert", "batch_ms", "native")
    p = _median(results, "message_insert", "batch_ms", "plpgsql")
    z = _median(results, "message_insert", "batch_ms", "none")
    if n and p:
        check("message batch: native ≥ 10× faster than PL/pgSQL", p / n >= 10, f"{p / n:.1f}× faster ({n:.0f} ms vs {p:.0f} ms)")
    if n and z:
        check("message batch: native within 3× of no triggers", n / z <= 3, f"{n / z:.2f}× ({n:.0f} ms vs {z:.0f} ms)")
    for rule, label in [("msg_insert", "message insert"), ("msg_delete", "message delete"),
                        ("session_insert", "session insert"), ("session_completion", "session completion"),
                        ("profile_update", "profile update")]:
        for clients in (1, 4):
            n = _median(results, "single_row", f"{rule}_c{clients}_cost_us", "native")
            p = _median(results, "single_row", f"{rule}_c{clients}_cost_us", "plpgsql")
            if n is not None and p:
                check(f"one-row {label}, {clients} client{'s' if clients > 1 else ''}: native rule cost ≤ ¼ of PL/pgSQL's",
                      n <= 0.25 * p, f"{n:.1f} µs vs {p:.1f} µs ({n / p:.2f}×)")
    n = _median(results, "single_row", "msg_insert_c1_ms", "native")
    z = _median(results, "single_row", "msg_insert_c1_ms", "none")
    if n and z:
        check("one-row message insert, 1 client: native within 1.3× of no rules", n / z <= 1.3,
              f"{n / z:.2f}× ({n:.3f} ms vs {z:.3f} ms)")
    f, s = _median(results, "weekly_reset", "first_ms", "native"), _median(results, "weekly_reset", "second_ms", "native")
    if f and s is not None:
        check("second weekly reset < 5% of the first", s < 0.05 * f, f"{s:.2f} ms vs {f:.0f} ms ({100 * s / f:.2f}%)")
    n = _median(results, "behavior_events", "batch_ms", "native")
    p = _median(results, "behavior_events", "batch_ms", "plpgsql")
    z = _median(results, "behavior_events", "batch_ms", "none")
    if n and p:
        check("behavior event batch: native ≥ 5× faster than PL/pgSQL", p / n >= 5, f"{p / n:.1f}× as fast ({n:.0f} ms vs {p:.0f} ms)")
    if n and z:
        check("behavior event batch: native within 1.5× of no trigger", n / z <= 1.5, f"{n / z:.2f}× ({n:.0f} ms vs {z:.0f} ms)")
    for clients in (1, 4):
        n = _median(results, "behavior_events", f"c{clients}_latency_ms", "native")
        p = _median(results, "behavior_events", f"c{clients}_latency_ms", "plpgsql")
        if n and p:
            check(f"single behavior event, {clients} client{'s' if clients > 1 else ''}: native latency ≤ PL/pgSQL",
                  n <= p, f"{n:.3f} ms vs {p:.3f} ms ({n / p:.2f}×)")
    if any(r["workload"].name == "similarity" for r in results):
        for metric, label in (("all_ms", "all patterns"), ("user_ms", "one user's patterns")):
            n = _median(results, "similarity", metric, "native")
            for alt, how in (("pgvector", "TOASTed, as source 004 declares it"), ("pgvector_plain", "in the row, STORAGE PLAIN")):
                a = _median(results, "similarity", metric, alt)
                name = f"similarity search, {label}: native ≥ 3× faster than pgvector's exact scan ({how})"
                if n and a:
                    check(name, a / n >= 3, f"{a / n:.2f}× as fast ({n:.2f} ms vs {a:.2f} ms)")
                elif n:
                    check(name, None, "pgvector not installed")
        n = _median(results, "similarity", "all_us", "native")
        f = _median(results, "similarity", "all_us", "memory_floor")
        if n:
            check("similarity search, all patterns: native time per pattern against the memory-bandwidth floor "
                  "(one core reading a 6 KiB vector from RAM: typically 0.25–0.3 µs)", None,
                  f"{n:.3f} µs: {n / 0.3:.1f}–{n / 0.25:.1f}× the typical floor"
                  + (f", {n / f:.1f}× this machine's ({f:.3f} µs)" if f else ""))
    n = _median(results, "conversation_messages", "batch_ms", "native")
    p = _median(results, "conversation_messages", "batch_ms", "plpgsql")
    z = _median(results, "conversation_messages", "batch_ms", "none")
    if n and p:
        check("conversation message import: native ≥ 10× faster than the PL/pgSQL row trigger", p / n >= 10,
              f"{p / n:.1f}× as fast ({n:.0f} ms vs {p:.0f} ms)")
    if n and z:
        check("conversation message import: native within 1.5× of no trigger", n / z <= 1.5,
              f"{n / z:.2f}× ({n:.0f} ms vs {z:.0f} ms)")
    for clients in (1, 4):
        n = _median(results, "conversation_messages", f"c{clients}_latency_ms", "native")
        p = _median(results, "conversation_messages", f"c{clients}_latency_ms", "plpgsql")
        if n and p:
            check(f"single conversation message, {clients} client{'s' if clients > 1 else ''}: native latency ≤ PL/pgSQL",
                  n <= p, f"{n:.3f} ms vs {p:.3f} ms ({n / p:.2f}×)")
    n = _median(results, "usage_metrics", "c8_latency_ms", "native")
    p = _median(results, "usage_metrics", "c8_latency_ms", "plpgsql")
    if n and p:
        check("increment_usage_metrics, 8 clients: native latency ≤ PL/pgSQL", n <= p,
              f"{n:.3f} ms vs {p:.3f} ms ({n / p:.2f}×)")
    return out
