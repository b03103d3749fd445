"""Environment step rate of each env alone: random actions, resets included, in the training process.

Prints one JSON line per env: ``env``, ``num_envs`` (copies stepped in lock-step), ``steps_per_s`` (env steps summed
over the copies, median of ``--repeats``), ``make_s`` (construction time) and ``reset_s`` (mean time of one
``reset()`` of all copies; image envs render their goal image there).

    .venv/bin/python benchmarks/env_speed.py --envs fetch_reach fetch_push --episodes 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crl.envs import ENV_NAMES, make_vec_env  # noqa: E402


def measure(name: str, num_envs: int, episodes: int, repeats: int) -> dict:
    t0 = time.perf_counter()
    env = make_vec_env(name, num_envs, seed=0)
    make_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    rates, resets = [], []
    for _ in range(repeats):
        steps, t0 = 0, time.perf_counter()
        for _ in range(episodes):
            t1 = time.perf_counter()
            env.reset()
            resets.append(time.perf_counter() - t1)
            for _ in range(env.horizon):
                env.step(rng.uniform(-1, 1, (num_envs, env.act_dim)).astype(np.float32))
                steps += num_envs
        rates.append(steps / (time.perf_counter() - t0))
    if hasattr(env, "close"):
        env.close()
    return {"env": name, "num_envs": num_envs, "steps_per_s": round(statistics.median(rates), 1),
            "make_s": round(make_s, 3), "reset_s": round(float(np.mean(resets)), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(ENV_NAMES))
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--episodes", type=int, default=4, help="episodes per repeat (per copy)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    for name in args.envs:
        print(json.dumps(measure(name, args.num_envs, args.episodes, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
