"""OGBench evaluation speed: our lock-step evaluator vs OGBench's loop, one episode at a time.

The baseline is OGBench's ``evaluate`` loop: one ``gymnasium.make`` env (with its wrappers), a jitted policy call
on a single observation per step, episodes one after another. The lock-step evaluator runs the same episodes (same
seeds) over ``--episodes`` env copies, optionally spread over worker processes. Both use the same jitted OGBench
preset actor: untrained by default (in point mazes it mostly runs into walls until the time limit, the slow case),
or the trained actor of ``--run-dir``. The per-episode successes of the two must agree. Prints one JSON line.

    .venv/bin/python benchmarks/ogbench_eval_speed.py --dataset pointmaze-medium-navigate-v0 --episodes 50
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from crl.data.ogbench_data import env_id  # noqa: E402
from crl.envs.ogbench_env import OGBenchEvaluator, make_ogbench_env  # noqa: E402


def one_at_a_time(env_name: str, policy, task: int, episodes: int, seed: int) -> dict[str, float]:
    """OGBench's evaluation loop (``impls/utils/evaluation.py``), with the evaluator's episode seeds."""
    env = make_ogbench_env(env_name)
    final, lengths = [], []
    for k in range(episodes):
        s = (seed + 1_000 * task + k) % 2**32
        np.random.seed(s)
        obs, info = env.reset(seed=s, options=dict(task_id=task))
        goal, done, n = info["goal"], False, 0
        while not done:
            action = np.clip(np.asarray(policy(obs[None].astype(np.float32), goal[None].astype(np.float32)))[0], -1, 1)
            obs, _, terminated, truncated, info = env.step(action)
            done, n = terminated or truncated, n + 1
        final.append(bool(info["success"]))
        lengths.append(n)
    env.close()
    return {"success": float(np.mean(final)), "episode_length": float(np.mean(lengths))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pointmaze-medium-navigate-v0")
    p.add_argument("--episodes", type=int, default=50, help="episodes of the task, run both ways")
    p.add_argument("--task", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="worker processes for the lock-step run (0 = in-process)")
    p.add_argument("--run-dir", default=None, help="use this run's trained actor (default: an untrained one)")
    args = p.parse_args()

    if args.run_dir:
        from crl.train.run import load_run

        run = load_run(args.run_dir)
        dataset = run.config.env

        def policy(o, g):
            return run.policy(o, g)
    else:
        from crl.train.online import Learner
        from crl.train.presets import preset_config
        from crl.types import EnvSpec

        dataset = args.dataset
        probe = make_ogbench_env(env_id(dataset))
        obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        probe.close()
        learner = Learner(preset_config(dataset), EnvSpec(obs_dim, obs_dim, act_dim))
        actor = learner.init(jax.random.key(0)).actor
        key = jax.random.key(1)

        def policy(o, g):
            return learner.policy(actor, o, g, key, deterministic=True)

    name = env_id(dataset)
    out = {"dataset": dataset, "trained": bool(args.run_dir), "episodes": args.episodes, "workers": args.workers}
    with OGBenchEvaluator(name, args.episodes, workers=args.workers) as ev:
        ev.run_task(policy, args.task, 1, seed=123)  # compile the policy for the evaluator's batch shapes
        t0 = time.perf_counter()
        lock = ev.run_task(policy, args.task, args.episodes, seed=0)
        out["lockstep_seconds"] = time.perf_counter() - t0
    one_at_a_time(name, policy, args.task, 1, seed=123)  # compile for batch 1
    t0 = time.perf_counter()
    seq = one_at_a_time(name, policy, args.task, args.episodes, seed=0)
    out["sequential_seconds"] = time.perf_counter() - t0
    steps = seq["episode_length"] * args.episodes
    out["env_steps"] = steps
    out["lockstep_env_steps_per_s"] = steps / out["lockstep_seconds"]
    out["sequential_env_steps_per_s"] = steps / out["sequential_seconds"]
    out["speedup"] = out["sequential_seconds"] / out["lockstep_seconds"]
    out["success"] = {"lockstep": lock["success"], "sequential": seq["success"]}
    out["same_episodes"] = lock["episode_length"] == seq["episode_length"] and lock["success"] == seq["success"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
