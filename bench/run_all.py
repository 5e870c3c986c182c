"""Run every benchmark in bench/ and write bench/REPORT.md with its plots.

    uv run python bench/run_all.py            # quick sizes (minutes)
    uv run python bench/run_all.py --full     # full sizes (an hour or more on 2 cores)
    uv run python bench/run_all.py --only store,email

Each bench runs as its own process (as you would run it by hand), against DATABASE_URL's server
or an embedded one, and hands its figures back through ``COMMHUB_BENCH_JSON`` (bench/_common.py
``Findings``). The report puts ours next to the baseline each bench measured in the same run, and
plots latency distributions and cost against size (PNG, matplotlib) into bench/report/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "REPORT.md"
PLOTS = ROOT / "bench" / "report"


@dataclass(frozen=True)
class Bench:
    name: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    about: str


BENCHES = (
    Bench("store", ("--events", "500", "--long-history", "2000", "--erase-reps", "2"), (),
          "event store: sealed msgspec store vs plain eventsourcing; erasure against history size"),
    Bench("inbox", ("--quick",), (), "inbox queries at 100k/1M messages; inbound → agent websocket under load"),
    Bench("channels", ("--quick",), (), "Twilio: outbox throughput to a fake Twilio; signed webhook latency"),
    Bench("mail", ("--outbound", "100", "--inbound", "100"), (), "email: outbound to an aiosmtpd relay; inbound webhook"),
    Bench("scheduler", (), ("--full",), "reminder scheduler: due reminders dispatched with many future appointments"),
    Bench("widget", ("--connections", "500", "--round-trips", "100"), (), "web chat widget: concurrent connections, memory per connection, round trip"),
    Bench("privacy", (), ("--full",), "erasure time against history size; replay rate"),
)


def run(bench: Bench, full: bool, logs: Path) -> dict[str, Any] | None:
    script = ROOT / "bench" / f"{bench.name}.py"
    if not script.exists():
        print(f"[{bench.name}] not present, skipped")
        return None
    out = Path(tempfile.mkstemp(prefix=f"bench-{bench.name}-", suffix=".json")[1])
    args = bench.full if full else bench.quick
    started = time.perf_counter()
    print(f"[{bench.name}] {' '.join(args) or '(default size)'} …", flush=True)
    with open(logs / f"{bench.name}.log", "w") as log:
        code = subprocess.call([sys.executable, str(script), *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "COMMHUB_BENCH_JSON": str(out), "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    if code != 0 or not out.read_text():
        print(f"[{bench.name}] failed (exit {code}) after {elapsed:.0f} s; see {logs / (bench.name + '.log')}")
        return {"bench": bench.name, "failed": code, "seconds": elapsed, "figures": [], "samples": {}, "curves": []}
    found = json.loads(out.read_text())
    out.unlink()
    found["seconds"] = elapsed
    print(f"[{bench.name}] done in {elapsed:.0f} s: {len(found['figures'])} figures")
    return found


def number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def verdict(figure: dict[str, Any]) -> str:
    ours, base = figure["ours"], figure["baseline"]
    if not base:
        return "–"
    value = ours / base
    return f"{value:.2f}"


def plot(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []
    for result in results:
        if result["samples"]:
            figure, axis = plt.subplots(figsize=(7, 4))
            for name, values in result["samples"].items():
                ordered = sorted(v * 1000 for v in values)
                if ordered:
                    axis.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
            axis.set_xscale("log")
            axis.set_xlabel("latency (ms, log scale)")
            axis.set_ylabel("fraction of requests at or under")
            axis.set_title(f"{result['bench']}: latency distribution")
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=7)
            path = PLOTS / f"{result['bench']}-latency.png"
            figure.tight_layout()
            figure.savefig(path, dpi=110)
            plt.close(figure)
            made.append((f"{result['bench']}: latency distribution", path.name))
        for index, curve in enumerate(result["curves"]):
            figure, axis = plt.subplots(figsize=(7, 4))
            axis.plot(curve["sizes"], curve["values"], marker="o")
            axis.set_xscale("log")
            axis.set_xlabel(curve["x"])
            axis.set_ylabel(curve["y"])
            axis.set_ylim(bottom=0)
            axis.set_title(f"{result['bench']}: {curve['name']}")
            axis.grid(True, which="both", alpha=0.3)
            path = PLOTS / f"{result['bench']}-cost-{index}.png"
            figure.tight_layout()
            figure.savefig(path, dpi=110)
            plt.close(figure)
            made.append((f"{result['bench']}: {curve['name']}", path.name))
    return made


def write_report(results: list[dict[str, Any]], full: bool, plots: list[tuple[str, str]]) -> None:
    load = os.getloadavg()
    lines = [
        "# Benchmark report",
        "",
        f"Written by `bench/run_all.py{' --full' if full else ''}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average at the end {load[0]:.2f}. Each bench measures our path and "
        "its baseline in the same run; the ratio is ours / baseline (for throughput higher is better, "
        "for latency and time lower is better). Other work on the machine moves every figure.",
        "",
        "| bench | measurement | ours | baseline | unit | ours/baseline | baseline is |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.get("failed") is not None:
            lines.append(f"| {result['bench']} | **failed** (exit {result['failed']}) | | | | | |")
        for figure in result["figures"]:
            better = "↑" if figure["better"] == "higher" else "↓"
            lines.append(f"| {result['bench']} | {figure['name']} | {number(figure['ours'])} | "
                         f"{number(figure['baseline'])} | {figure['unit']} {better} | {verdict(figure)} | "
                         f"{figure['baseline_name']} |")
    lines += ["", "Run times: " + ", ".join(f"{r['bench']} {r['seconds']:.0f} s" for r in results), ""]
    if plots:
        lines += ["## Plots", ""]
        for title, name in plots:
            lines += [f"### {title}", "", f"![{title}](report/{name})", ""]
    lines += ["## What each bench measures", ""]
    lines += [f"- `bench/{b.name}.py`: {b.about}" for b in BENCHES if (ROOT / "bench" / f"{b.name}.py").exists()]
    REPORT.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full sizes (much longer)")
    parser.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b.name in args.only.split(",")]
    logs = ROOT / "bench" / "report" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = [r for r in (run(b, args.full, logs) for b in chosen) if r is not None]
    plots = plot(results)
    write_report(results, args.full, plots)
    print(f"wrote {REPORT.relative_to(ROOT)} and {len(plots)} plots in {PLOTS.relative_to(ROOT)}/")
    return 1 if any(r.get("failed") is not None for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
