"""Offline learner speed on a real OGBench dataset with its preset (what `crl train --env NAME` runs).

Times ``Learner.train_call`` (K updates per jitted call, OGBench-style sampling from the dataset inside the jit),
compilation excluded; the median of ``--repeats`` timed repeats. Prints one JSON line per agent.

    .venv/bin/python benchmarks/offline_learner_speed.py --dataset pointmaze-medium-navigate-v0 --data-dir /work/data
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402

from crl.data.ogbench_data import env_id, load_ogbench  # noqa: E402
from crl.envs.ogbench_env import env_dims  # noqa: E402
from crl.train.online import Learner  # noqa: E402
from crl.train.presets import preset_config  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pointmaze-medium-navigate-v0")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--agents", nargs="+", default=["crl", "gcbc"])
    p.add_argument("--updates", type=int, default=8, help="updates per jitted call")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    obs_dim, act_dim = env_dims(env_id(args.dataset))
    data, _ = load_ogbench(args.dataset, None, args.data_dir, obs_dim, act_dim)
    for agent in args.agents:
        cfg = preset_config(args.dataset, agent=agent, updates_per_call=args.updates)
        learner = Learner(cfg, data.spec)
        key = jax.random.key(0)
        state = learner.init(key)
        compiled = learner.compile_train_call(state, data.traj, key)
        state, m = compiled(state, data.traj, key)  # warm-up
        jax.block_until_ready(state)
        rates = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            state, m = compiled(state, data.traj, jax.random.fold_in(key, r))
            jax.block_until_ready((state, m))
            rates.append(args.updates / (time.perf_counter() - t0))
        print(json.dumps({
            "dataset": args.dataset, "agent": agent, "batch_size": getattr(cfg, agent).batch_size,
            "updates_per_call": args.updates, "updates_per_s": round(statistics.median(rates), 3),
            "updates_per_s_all": [round(x, 3) for x in rates], "loadavg_1m": os.getloadavg()[0],
            "cpu_count": os.cpu_count(), "jax_version": jax.__version__,
        }))


if __name__ == "__main__":
    main()
