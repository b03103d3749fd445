"""OGBench evaluation speed: our lock-step evaluator vs OGBench's loop, one episode at a time.

The baseline is OGBench's ``evaluate`` loop: one ``gymnasium.make`` env (with its wrappers), a jitted policy call
on a single observation per step, episodes one after another. The lock-step evaluator runs the same episodes (same
seeds) over ``--envs`` env copies (a copy starts the next queued episode, of any task, when its episode ends),
optionally spread over worker processes; with workers, each worker runs its share with the exported policy
(``PortablePolicy``, on its running copies only unless ``--full-batch``) unless ``--pipelined`` (this process
computes every step's actions). The lock-step run is timed on its second pass over the queue (the first compiles).
``--task 0`` (the default) runs OGBench's whole protocol, all 5 tasks; ``--task K`` one task. Both use the same
jitted OGBench preset actor: untrained by default (in point mazes it mostly runs into walls until the time limit,
the slow case), or the trained actor of ``--run-dir``. The per-episode outcomes (final success, length) of the two
must agree. With ``--repeats R`` both are timed R times, alternating, and the figures are medians. Prints
one JSON line.

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
from crl.envs.ogbench_env import OGBenchEvaluator, PortablePolicy, make_ogbench_env  # noqa: E402


def one_at_a_time(env_name: str, policy, episodes) -> list[tuple[bool, int]]:
    """OGBench's evaluation loop (``impls/utils/evaluation.py``) over ``(task, seed)`` pairs; returns (final
    success, length) per episode."""
    env = make_ogbench_env(env_name)
    out = []
    for task, s in episodes:
        np.random.seed(s)
        obs, info = env.reset(seed=s, options=dict(task_id=task))
        goal, done, n = info["goal"], False, 0
        while not done:
            action = np.clip(np.asarray(policy(obs[None].astype(np.float32), goal[None].astype(np.float32)))[0], -1, 1)
            obs, _, terminated, truncated, info = env.step(action)
            done, n = terminated or truncated, n + 1
        out.append((bool(info["success"]), n))
    env.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pointmaze-medium-navigate-v0")
    p.add_argument("--episodes", type=int, default=50, help="episodes per task, run both ways")
    p.add_argument("--task", type=int, default=0, help="0: all 5 tasks (OGBench's protocol); K: task K only")
    p.add_argument("--envs", type=int, default=50, help="env copies of the lock-step evaluator (crl train's default)")
    p.add_argument("--workers", type=int, default=2, help="worker processes for the lock-step run (0 = in-process)")
    p.add_argument("--run-dir", default=None, help="use this run's trained actor (default: an untrained one)")
    p.add_argument("--pipelined", action="store_true",
                   help="compute the policy in this process and send actions to the workers every step")
    p.add_argument("--full-batch", action="store_true",
                   help="workers run the policy on all their copies every step, not only the running ones")
    p.add_argument("--repeats", type=int, default=1,
                   help="time both ways this many times, alternating; the figures are medians")
    args = p.parse_args()

    if args.run_dir:
        from crl.train.run import load_run

        run = load_run(args.run_dir)
        dataset = run.config.env
        portable = PortablePolicy(run.learner.eval_policy, run.state.actor)
    else:
        from crl.train.online import Learner
        from crl.train.presets import preset_config
        from crl.types import EnvSpec

        dataset = args.dataset
        probe = make_ogbench_env(env_id(dataset))
        obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        probe.close()
        learner = Learner(preset_config(dataset), EnvSpec(obs_dim, obs_dim, act_dim))
        portable = PortablePolicy(learner.eval_policy, learner.init(jax.random.key(0)).actor)
    # the lock-step run: workers run the exported policy themselves, or (--pipelined) this process computes
    # every step's actions and sends them to the workers
    policy = (lambda o, g: portable(o, g)) if args.pipelined else portable

    name = env_id(dataset)
    tasks = [args.task] if args.task else list(range(1, 6))
    queue = [(k, 1_000 * k + e) for k in tasks for e in range(args.episodes)]  # the evaluator's seeds, seed 0
    out = {"dataset": dataset, "trained": bool(args.run_dir), "tasks": tasks, "episodes_per_task": args.episodes,
           "envs": args.envs, "workers": args.workers, "policy_in_workers": args.workers > 0 and not args.pipelined,
           "full_batch": args.full_batch}
    one_at_a_time(name, portable, [(tasks[0], 123)])  # compile for batch 1
    lock_s, seq_s = [], []
    with OGBenchEvaluator(name, args.envs, workers=args.workers) as ev:
        if args.full_batch:
            ev.min_policy_batch = args.envs
        # warm-up, untimed: the same queue once, so every group has compiled the policy for every batch it uses
        # (what a training run's evaluations after its first one see)
        ev.run_episodes(policy, queue)
        for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits both ways
            t0 = time.perf_counter()
            lock = ev.run_episodes(policy, queue)
            lock_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            seq = one_at_a_time(name, portable, queue)
            seq_s.append(time.perf_counter() - t0)
    steps = sum(n for _, n in seq)
    out["env_steps"] = steps
    out["lockstep_seconds"] = float(np.median(lock_s))
    out["sequential_seconds"] = float(np.median(seq_s))
    out["lockstep_env_steps_per_s"] = steps / out["lockstep_seconds"]
    out["sequential_env_steps_per_s"] = steps / out["sequential_seconds"]
    out["speedups"] = [round(b / a, 3) for a, b in zip(lock_s, seq_s)]
    out["speedup"] = float(np.median(out["speedups"]))
    out["success"] = {f"task{k}": float(np.mean([f for (t, _), (f, _) in zip(queue, seq) if t == k])) for k in tasks}
    out["same_episodes"] = [(f, n) for f, _, n in lock] == seq
    print(json.dumps(out))


if __name__ == "__main__":
    main()
