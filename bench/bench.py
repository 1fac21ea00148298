#!/usr/bin/env python3
"""Native rules against their PL/pgSQL originals, side by side, in one run.

Every workload is one module in bench/workloads/ defining WORKLOAD (a `Workload`); adding one is a
new file there. For each workload the harness sets up identical tables per variant, runs one
discarded warm-up round, then `rounds` rounds in which every variant runs once (ABCABC..., the
order rotated each round), and reports median, min and max per metric with ratios to the
PL/pgSQL variant and to the best alternative.

Usage: bench.py --dsn DSN --scale quick|full --out bench/results [--major pg15]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

import psycopg

HERE = pathlib.Path(__file__).resolve().parent


# ---- what a workload declares -----------------------------------------------------------------

@dataclasses.dataclass
class Metric:
    key: str
    label: str
    unit: str
    lower_is_better: bool = True


@dataclasses.dataclass
class Workload:
    name: str
    title: str
    variants: list[str]
    metrics: list[Metric]
    setup: Callable[["Bench"], None]
    # measure(bench, variant) -> {metric key: value}; one sample of one variant
    measure: Callable[["Bench", str], dict[str, float]]
    # measure_together(bench) -> {variant: {metric key: value}}; once per round, for metrics whose
    # variants share one run (pgbench with one script per variant)
    measure_together: Callable[["Bench"], dict[str, dict[str, float]]] | None = None
    plpgsql: str | None = "plpgsql"        # the variant ratios are taken against
    alternatives: tuple[str, ...] = ()      # the best of these is "the best alternative"
    rounds: dict[str, int] = dataclasses.field(default_factory=lambda: {"quick": 5, "full": 5})
    notes: str = ""


# ---- what a workload can use --------------------------------------------------------------------

class Bench:
    def __init__(self, dsn: str, scale: str, pg_bin: pathlib.Path):
        self.dsn = dsn
        self.scale = scale
        self.pg_bin = pg_bin
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET client_min_messages = warning")

    def size(self, quick: int, full: int) -> int:
        return quick if self.scale == "quick" else full

    def run(self, sql: str, params=None) -> None:
        self.conn.execute(sql, params)

    def value(self, sql: str, params=None):
        return self.conn.execute(sql, params).fetchone()[0]

    def run_file(self, path: pathlib.Path) -> None:
        self.conn.execute(path.read_text())

    def explain(self, sql: str) -> dict:
        """EXPLAIN ANALYZE `sql` in a transaction that is rolled back, so every round starts from
        the same tables. Returns execution ms, trigger ms (sum) and trigger calls."""
        with self.conn.transaction(force_rollback=True):
            plan = self.conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchone()[0]
        top = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
        triggers = top.get("Triggers", [])
        return {
            "execution_ms": top["Execution Time"],
            "trigger_ms": sum(t["Time"] for t in triggers),
            "trigger_calls": sum(t["Calls"] for t in triggers),
            "triggers": {t["Trigger Name"]: (t["Time"], t["Calls"]) for t in triggers},
        }

    def timed(self, sql: str) -> tuple[float, object]:
        """Run `sql` in its own committed transaction; client-side ms and the first value returned."""
        t0 = time.perf_counter()
        row = self.conn.execute(sql).fetchone()
        return (time.perf_counter() - t0) * 1000.0, (row[0] if row else None)

    def pgbench(self, scripts: dict[str, str], clients: int, seconds: int) -> dict[str, dict[str, float]]:
        """One pgbench run (-M prepared) with one script per variant, picked at random per
        transaction, so the variants share the same minute. Returns per-variant latency, tps and
        transactions (the number of transactions of that script pgbench completed)."""
        workdir = HERE / "work"
        workdir.mkdir(exist_ok=True)
        args = [str(self.pg_bin / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients),
                "-T", str(seconds)]
        names = list(scripts)
        for name in names:
            path = workdir / f"{name}.sql"
            path.write_text(scripts[name])
            args += ["-f", str(path)]
        # Per-transaction log: latencies in whole microseconds, where the summary prints
        # milliseconds to three decimals (one microsecond, the size of a one-row rule's cost).
        logs = workdir / "pgbench_log"
        for old in workdir.glob("pgbench_log*"):
            old.unlink()
        args += ["-l", "--log-prefix", str(logs)]
        args.append(self.dsn)
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        result: dict[str, dict[str, float]] = {}
        current = None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("SQL script"):
                current = names[int(line.split()[2].rstrip(":")) - 1]
                result[current] = {}
            elif current and line.startswith("- latency average"):
                result[current]["latency_ms"] = float(line.split("=")[1].split()[0])
            elif current and "transactions (" in line and "tps =" in line:
                result[current]["tps"] = float(line.split("tps =")[1].rstrip(")").strip())
                result[current]["transactions"] = int(line.lstrip("- ").split()[0])
        sums = [[0, 0] for _ in names]
        for log in workdir.glob("pgbench_log*"):
            for entry in log.read_text().splitlines():
                fields = entry.split()  # client transaction latency_us script epoch epoch_us
                if len(fields) >= 4 and fields[2].isdigit():
                    sums[int(fields[3])][0] += int(fields[2])
                    sums[int(fields[3])][1] += 1
            log.unlink()
        for name, (total, count) in zip(names, sums):
            if count and name in result:
                result[name]["latency_ms"] = total / count / 1000.0
        return result


# ---- running and reporting ----------------------------------------------------------------------

def load_workloads(only: list[str]) -> list[Workload]:
    sys.path.insert(0, str(HERE))
    found = []
    for path in sorted((HERE / "workloads").glob("*.py")):
        module = importlib.import_module(f"workloads.{path.stem}")
        w = getattr(module, "WORKLOAD", None)
        if w and (not only or w.name in only):
            found.append(w)
    return sorted(found, key=lambda w: w.title)


def run_workload(bench: Bench, w: Workload) -> dict:
    print(f"== {w.name}: setup", flush=True)
    w.setup(bench)
    rounds = w.rounds[bench.scale]
    samples: dict[str, dict[str, list[float]]] = {v: {m.key: [] for m in w.metrics} for v in w.variants}
    for r in range(rounds + 1):  # round 0 is the warm-up, discarded
        order = w.variants[r % len(w.variants):] + w.variants[:r % len(w.variants)]
        measured = [(v, w.measure(bench, v)) for v in order]
        if w.measure_together:
            measured += list(w.measure_together(bench).items())
        if r > 0:
            for v, got in measured:
                for k, val in got.items():
                    if k in samples[v] and val is not None:
                        samples[v][k].append(val)
        print(f"   round {r}{' (warm-up)' if r == 0 else ''} done", flush=True)
    summary = {}
    for m in w.metrics:
        rows = {}
        for v in w.variants:
            xs = samples[v][m.key]
            if xs:
                rows[v] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}
        summary[m.key] = rows
    return {"workload": w, "rounds": rounds, "summary": summary}


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def fmt(x: float) -> str:
    return f"{x:,.3f}" if x < 10 else f"{x:,.1f}"


def report(results: list[dict], meta: dict, out: pathlib.Path, targets: list[tuple[str, bool | None, str]]) -> str:
    lines = [f"# pg_assistant benchmarks ({meta['scale']} scale)", ""]
    lines.append(f"{meta['when']} · PostgreSQL {meta['pg_version']} · {meta['machine']} · "
                 f"`synchronous_commit = off` · release build · medians of {meta['rounds_desc']} interleaved rounds after a discarded warm-up.")
    lines.append("")
    lines.append("Ratios are variant ÷ PL/pgSQL and variant ÷ best alternative (lower is better for times).")
    lines.append("")
    if targets:
        lines.append("## Targets")
        lines.append("")
        lines.append("| target | met | measured |")
        lines.append("|---|---|---|")
        for name, ok, measured in targets:
            lines.append(f"| {name} | {'yes' if ok else ('no' if ok is False else '–')} | {measured} |")
        lines.append("")
    for res in results:
        w: Workload = res["workload"]
        lines.append(f"## {w.title}")
        lines.append("")
        if w.notes:
            lines.append(w.notes)
            lines.append("")
        for m in w.metrics:
            rows = res["summary"][m.key]
            if not rows:
                continue
            base = rows.get(w.plpgsql, {}).get("median") if w.plpgsql else None
            alts = [rows[a]["median"] for a in w.alternatives if a in rows]
            best_alt = (min(alts) if m.lower_is_better else max(alts)) if alts else None
            lines.append(f"**{m.label}** ({m.unit})")
            lines.append("")
            lines.append("| variant | median | min | max | ÷ PL/pgSQL | ÷ best alternative |")
            lines.append("|---|---:|---:|---:|---:|---:|")
            for v, s in rows.items():
                lines.append(f"| {v} | {fmt(s['median'])} | {fmt(s['min'])} | {fmt(s['max'])} | "
                             f"{ratio(s['median'], base)} | {ratio(s['median'], best_alt)} |")
            lines.append("")
    text = "\n".join(lines)
    (out / "latest.md").write_text(text)
    return text


def chart(results: list[dict], out: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(res, m) for res in results for m in res["workload"].metrics if res["summary"].get(m.key)]
    import textwrap
    heights = [0.9 + 0.32 * len(res["summary"][m.key]) for res, m in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights)), gridspec_kw={"height_ratios": heights})
    if len(panels) == 1:
        axes = [axes]
    colours = {"native": "#2a9d8f", "plpgsql": "#e76f51", "none": "#8d99ae", "moddatetime": "#e9c46a",
               "first run": "#2a9d8f", "second run": "#264653", "pgvector": "#e9c46a", "pgvector_plain": "#f4a261",
               "memory_floor": "#adb5bd", "sql": "#6d597a"}
    for ax, (res, m) in zip(axes, panels):
        rows = res["summary"][m.key]
        names = list(rows)
        vals = [rows[n]["median"] for n in names]
        ax.barh(names, vals, color=[colours.get(n.split(":")[0].strip(), "#457b9d") for n in names])
        ax.invert_yaxis()
        title = f"{res['workload'].title.split(':')[0]}: {m.label} ({m.unit}, median, lower is better)"
        ax.set_title("\n".join(textwrap.wrap(title, 120)), fontsize=8.5, loc="left")
        ax.tick_params(labelsize=8)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {fmt(v)}", va="center", fontsize=7)
        ax.set_xlim(0, max(vals) * 1.25 if max(vals) > 0 else 1)
    fig.tight_layout()
    fig.savefig(out / "latest.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--scale", choices=["quick", "full"], default="quick")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--pg-bin", required=True)
    ap.add_argument("--only", nargs="*", default=[])
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    bench = Bench(args.dsn, args.scale, pathlib.Path(args.pg_bin))
    bench.run("CREATE EXTENSION IF NOT EXISTS pg_assistant CASCADE")
    workloads = load_workloads(args.only)
    results = [run_workload(bench, w) for w in workloads]

    import targets as target_checks  # bench/targets.py
    meta = {
        "scale": args.scale,
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "pg_version": bench.value("SHOW server_version"),
        "machine": f"{platform.machine()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores",
        "rounds_desc": "/".join(sorted({str(r['rounds']) for r in results})),
    }
    text = report(results, meta, out, target_checks.evaluate(results))
    chart(results, out)
    print(text)


if __name__ == "__main__":
    main()
