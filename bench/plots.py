#!/usr/bin/env python3
"""The pictures at the top of bench/results.md, drawn from the committed JSON (`make bench-plots`):

- time for new Apps to get their children: the API server's ceiling, appkeeper, the kopf peer and
  kube-controller-manager, at 100 and 1,000 Apps (median of 3 runs, min-max as the error bar);
- repair latency with 1,000 Apps present: the CDF of every repair, and p50, p99 and max per run,
  appkeeper beside the ceiling;
- the operator's memory (RSS after the burst) against the number of Apps, appkeeper and the peer;
- requests lost during each kind of change, drain 5 s against none (bench/traffic.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "plots"
COLORS = {"ceiling": "#7f7f7f", "appkeeper": "#1f77b4", "peer": "#ff7f0e", "kcm": "#2ca02c"}
NAMES = {"ceiling": "API server ceiling", "appkeeper": "appkeeper", "peer": "kopf peer",
         "kcm": "kube-controller-manager"}


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((BENCH / name).read_text()))


def time_to_children() -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.2
    for col, name in enumerate(("compare-100.json", "compare.json")):
        summary = load(name)["summary"]
        for i, party in enumerate(p for p in NAMES if p in summary):
            s = summary[party]["seconds"]
            ax.bar(col + (i - 1.5) * width, s["median"], width, color=COLORS[party],
                   yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]], capsize=3,
                   label=NAMES[party] if col == 0 else None)
    ax.set_xticks([0, 1], ["100 Apps", "1,000 Apps"])
    ax.set_ylabel("seconds until every App has its children")
    ax.set_title("New Apps to children (median of 3, min-max bars; lower is better)")
    ax.legend()
    save(fig, "time-to-children.png")


def repair_latency() -> None:
    """The CDF of every repair (each run's samples, pooled per party) beside each run's p50/p99/max."""
    rows = [r for r in load("compare-repair-cdf.json")["rows"] if "repair_ms_p50" in r]
    fig, (cdf, spread) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for offset, party in ((-0.2, "ceiling"), (0.2, "appkeeper")):
        mine = [r for r in rows if r["party"] == party]
        samples = sorted(t for r in mine for t in r["repair_ms"])
        cdf.step(samples, [(i + 1) / len(samples) for i in range(len(samples))], where="post",
                 color=COLORS[party], label=f"{NAMES[party]} ({len(samples)} repairs, {len(mine)} runs)")
        for j, key in enumerate(("repair_ms_p50", "repair_ms_p99", "repair_ms_max")):
            spread.scatter([j + offset] * len(mine), [r[key] for r in mine], color=COLORS[party], s=30,
                           label=NAMES[party] if j == 0 else None)
    cdf.set_xscale("log")
    cdf.set_xlabel("ms from the deletion to the new Deployment seen (log)")
    cdf.set_ylabel("fraction of repairs")
    cdf.set_title("Repair latency CDF, 1,000 Apps present")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(loc="lower right")
    spread.set_xticks([0, 1, 2], ["p50", "p99", "max"])
    spread.set_ylabel("ms")
    spread.set_title("Each run of 100: p50, p99, max")
    spread.legend()
    save(fig, "repair-latency.png")


def memory() -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for party in ("appkeeper", "peer"):
        points = []
        for name in ("compare-100.json", "compare.json", "compare-10000.json"):
            summary = load(name)["summary"]
            rows = load(name)["rows"]
            if party in summary and "rss_mib_after" in summary[party]:
                points.append((rows[0]["apps"], summary[party]["rss_mib_after"]["median"]))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", color=COLORS[party], label=NAMES[party])
    ax.set_xscale("log")
    ax.set_xlabel("Apps")
    ax.set_ylabel("RSS after the burst, MiB")
    ax.set_title("Operator memory against the number of Apps")
    ax.legend()
    save(fig, "memory.png")


def traffic() -> None:
    by_drain = load("traffic.json")["by_drain"]
    changes = list(by_drain["5"]["min_median_max"])
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, drain, color in ((-0.2, "5", COLORS["appkeeper"]), (0.2, "0", COLORS["peer"])):
        medians = [by_drain[drain]["min_median_max"][c]["failed"][1] for c in changes]
        ax.bar([i + offset for i in range(len(changes))], medians, 0.4, color=color,
               label=f"drain {drain} s" if drain != "0" else "no drain")
    ax.set_xticks(range(len(changes)), changes, rotation=15)
    ax.set_ylabel("failed requests (median of 3 runs)")
    ax.set_title("Requests lost while an App changes, real node (drain 5 s: none)")
    ax.legend()
    save(fig, "traffic.png")


def save(fig: Any, name: str) -> None:
    OUT.mkdir(exist_ok=True)
    fig.tight_layout()
    # No timestamp or software note in the file: the same JSON draws the same bytes.
    fig.savefig(OUT / name, dpi=80, metadata={"Software": None})
    plt.close(fig)
    print(f"wrote bench/plots/{name}")


def main() -> int:
    for draw in (time_to_children, repair_latency, memory, traffic):
        draw()
    return 0


if __name__ == "__main__":
    sys.exit(main())
