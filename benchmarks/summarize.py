"""Markdown table of success vs env steps from run directories: python benchmarks/summarize.py RUN_DIR ..."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main(run_dirs: list[str]) -> None:
    rows = []
    for d in map(Path, run_dirs):
        with open(d / "eval.csv", newline="") as f:
            evals = list(csv.DictReader(f))
        cfg = json.loads((d / "config.json").read_text())
        rows.append((d, cfg, evals))
    steps = sorted({int(r["env_steps"]) for _, _, ev in rows for r in ev if int(r["env_steps"]) % 20000 == 0})
    print("| run | env | " + " | ".join(f"{s // 1000}k" for s in steps) + " | best | wall (min) |")
    print("|---|---|" + "---|" * len(steps) + "---|---|")
    for d, cfg, ev in rows:
        by = {int(r["env_steps"]): float(r["success"]) for r in ev}
        cells = [f"{by[s]:.2f}" if s in by else "" for s in steps]
        best = max(by.values())
        wall = float(ev[-1]["wall_seconds"]) / 60
        print(f"| {d.name} | {cfg['env']} | " + " | ".join(cells) + f" | {best:.2f} | {wall:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
