"""Cross-check of an offline run's evaluation with OGBench's own env, none of this library's env code.

Loads a run's checkpoint (``--step``: the one an ``eval.csv`` row was evaluated with; default the newest), makes
the plain OGBench env (``import ogbench; gymnasium.make(ENV_ID)``: no lock-step evaluator, no worker processes, no
seeding patch, no point-maze step of our own) and runs OGBench's loop one episode at a time: reset with
``options=dict(task_id=k)``, the goal from ``info['goal']``, the run's deterministic policy, success =
``info['success']`` at the episode's last step. Episodes are seeded ``1000·task + i`` (not the run's evaluation
seeds, and OGBench's reset is not fully seeded, see ``crl.envs.ogbench_env``), so the result agrees with the
run's own ``eval.csv`` row within sampling error, not episode by episode. Prints one JSON line with both.

    .venv/bin/python benchmarks/ogbench_plain_eval.py RUN_DIR --step 15000 --episodes 20
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import crl  # noqa: E402
from crl.data.ogbench_data import env_id  # noqa: E402
from crl.envs.task import headless_gl  # noqa: E402


def eval_row(run_dir: str, step: int) -> dict | None:
    """The run's own ``eval.csv`` row for ``step`` (updates), if it has one."""
    path = os.path.join(run_dir, "eval.csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["updates"]) == step]
    return {k: round(float(v), 4) for k, v in rows[-1].items()} if rows else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (updates); default: the newest")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task")
    args = p.parse_args()

    run = crl.load_run(args.run_dir, step=args.step)
    name = env_id(run.config.env)
    headless_gl(False)
    import gymnasium
    import ogbench  # noqa: F401  (registers the envs)

    env = gymnasium.make(name)
    start, per_task = time.perf_counter(), {}
    for task in range(1, 6):
        wins = []
        for i in range(args.episodes):
            obs, info = env.reset(seed=1000 * task + i, options=dict(task_id=task))
            goal, done = info["goal"], False
            while not done:
                action = np.clip(run.policy(obs.astype(np.float32), goal.astype(np.float32)), -1, 1)
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            wins.append(bool(info["success"]))
        per_task[f"task{task}_success"] = float(np.mean(wins))
    env.close()
    print(json.dumps({
        "run_dir": args.run_dir, "env": name, "step": run.env_steps, "episodes_per_task": args.episodes,
        "success": float(np.mean(list(per_task.values()))), **per_task,
        "seconds": round(time.perf_counter() - start, 1), "eval_csv_row": eval_row(args.run_dir, run.env_steps),
    }))


if __name__ == "__main__":
    main()
