"""Draws the open loop's latency over time (p50, p99, max per second) from latency.csv."""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    per_second = defaultdict(list)
    with open(source, newline="") as f:
        for row in csv.DictReader(f):
            per_second[int(float(row["seconds"]))].append(float(row["latency_ms"]))
    seconds = sorted(per_second)
    series = {"p50": 0.50, "p99": 0.99, "max": 1.0}
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, q in series.items():
        values = []
        for s in seconds:
            v = sorted(per_second[s])
            values.append(v[min(len(v) - 1, round((len(v) - 1) * q))])
        ax.plot(seconds, values, label=label, marker=".")
    ax.set_xlabel("seconds into the open-loop phase")
    ax.set_ylabel("create task latency (ms)")
    ax.set_yscale("log")
    ax.set_title("tasktrail: command latency percentiles over time (open loop, 50% of max)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
