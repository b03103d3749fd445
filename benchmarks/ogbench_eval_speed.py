"""OGBench evaluation speed: episodes in lock-step over N env copies vs one episode at a time.

Both use the same jitted OGBench-preset actor (3x512 GELU; untrained, so episodes mostly run to the time limit,
the slow case) and the same episode seeds. Prints one JSON line.

    .venv/bin/python benchmarks/ogbench_eval_speed.py --dataset pointmaze-medium-navigate-v0 --episodes 20
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402

from crl.data.ogbench_data import env_id  # noqa: E402
from crl.envs.ogbench_env import OGBenchEvaluator  # noqa: E402
from crl.train.online import Learner  # noqa: E402
from crl.train.presets import preset_config  # noqa: E402
from crl.types import EnvSpec  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pointmaze-medium-navigate-v0")
    p.add_argument("--episodes", type=int, default=20, help="episodes of task 1, run both ways")
    p.add_argument("--task", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="worker processes for the lock-step run (0 = in-process)")
    args = p.parse_args()

    cfg = preset_config(args.dataset)
    par = OGBenchEvaluator(env_id(args.dataset), args.episodes, workers=args.workers)
    seq = OGBenchEvaluator(env_id(args.dataset), 1)
    spec = EnvSpec(par.obs_dim, par.obs_dim, par.act_dim)
    learner = Learner(cfg, spec)
    actor = learner.init(jax.random.key(0)).actor
    key = jax.random.key(1)

    def policy(o, g):
        return learner.policy(actor, o, g, key, deterministic=True)

    out = {"dataset": args.dataset, "episodes": args.episodes, "workers": args.workers}
    for name, ev in (("lockstep", par), ("sequential", seq)):
        ev.run_task(policy, args.task, 1, seed=123)  # compile the policy for this batch shape
        t0 = time.perf_counter()
        res = ev.run_task(policy, args.task, args.episodes, seed=0)
        dt = time.perf_counter() - t0
        out[f"{name}_seconds"] = dt
        out[f"{name}_env_steps_per_s"] = res["episode_length"] * args.episodes / dt
        out[f"{name}_success"] = res["success"]
    out["speedup"] = out["sequential_seconds"] / out["lockstep_seconds"]
    par.close()
    seq.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
