"""OGBench evaluation: the 5 fixed tasks of an OGBench env, with episodes run in parallel.

OGBench's protocol (``impls/utils/evaluation.py``): ``obs, info = env.reset(options=dict(task_id=k))``, the goal
is ``info['goal']`` (a full observation), the deterministic action is clipped to [-1, 1], an episode ends when the
env terminates (goal reached) or hits its time limit, and the episode's success is ``info['success']`` at its last
step; a task's success rate is the mean over its episodes and the overall metric the mean over tasks.

Episode k of task t is seeded with ``seed + 1000 t + k``, so results do not depend on how many env copies run
them. Here the episodes of a task run in lock-step over ``num_envs`` env copies (one batched policy call per step), in
waves when there are more episodes than copies.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

NUM_TASKS = 5


def _import_ogbench():
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless; OGBench's manipulation envs build a renderer
    try:
        import ogbench  # noqa: F401  (registers the envs with gymnasium)
    except ImportError as e:
        raise ImportError("OGBench envs need the ogbench package: pip install 'contrastive-rl[ogbench]'") from e


def make_ogbench_env(env_name: str):
    """One OGBench env (gymnasium, with its time limit), e.g. ``make_ogbench_env('pointmaze-medium-v0')``."""
    _import_ogbench()
    import gymnasium

    try:
        return gymnasium.make(env_name)
    except gymnasium.error.Error as e:
        raise ValueError(f"cannot make OGBench env {env_name!r}: {e}") from None


class OGBenchEvaluator:
    """Runs OGBench evaluation tasks with ``num_envs`` env copies stepped in lock-step.

    ``policy_fn(obs [n, obs_dim], goal [n, obs_dim]) -> actions [n, act_dim]`` is always called with
    ``n = num_envs`` (finished envs get their last observation), so a jitted policy compiles once.
    """

    def __init__(self, env_name: str, num_envs: int):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be > 0, got {num_envs}")
        self.env_name = env_name
        self.envs = [make_ogbench_env(env_name) for _ in range(num_envs)]
        env = self.envs[0]
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        self.max_episode_steps = env.spec.max_episode_steps

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def run_task(self, policy_fn: Callable, task_id: int, episodes: int, seed: int) -> dict[str, float]:
        """Runs ``episodes`` episodes of task ``task_id`` (1..5). Returns ``success`` (at the last step, OGBench's
        metric), ``success_any`` (at any step) and ``episode_length``, each a mean over the episodes."""
        saved = np.random.get_state()
        try:
            return self._run_task(policy_fn, task_id, episodes, seed)
        finally:
            np.random.set_state(saved)

    def _run_task(self, policy_fn, task_id, episodes, seed):
        final, any_, lengths = [], [], []
        n = self.num_envs
        for wave_start in range(0, episodes, n):
            k = min(n, episodes - wave_start)
            obs = np.zeros((n, self.obs_dim), np.float32)
            goal = np.zeros((n, self.obs_dim), np.float32)
            for i in range(k):
                ep_seed = (seed + 1_000 * task_id + wave_start + i) % 2**32
                # OGBench's maze envs draw start/goal noise from the global np.random, the manipulation envs from
                # the env's own generator: seed both (the caller's global state is restored afterwards).
                np.random.seed(ep_seed)
                o, info = self.envs[i].reset(seed=ep_seed, options=dict(task_id=task_id))
                obs[i], goal[i] = o, info["goal"]
            running = np.zeros(n, bool)
            running[:k] = True
            succ_final = np.zeros(n, bool)
            succ_any = np.zeros(n, bool)
            length = np.zeros(n, int)
            while running.any():
                actions = np.clip(np.asarray(policy_fn(obs, goal)), -1.0, 1.0)
                for i in np.flatnonzero(running):
                    o, _, terminated, truncated, info = self.envs[i].step(actions[i])
                    obs[i] = o
                    length[i] += 1
                    s = bool(info.get("success", False))
                    succ_any[i] |= s
                    if terminated or truncated:
                        running[i] = False
                        succ_final[i] = s
            final.extend(succ_final[:k])
            any_.extend(succ_any[:k])
            lengths.extend(length[:k])
        return {
            "success": float(np.mean(final)),
            "success_any": float(np.mean(any_)),
            "episode_length": float(np.mean(lengths)),
        }

    def evaluate(self, policy_fn: Callable, episodes: int, seed: int, tasks=tuple(range(1, NUM_TASKS + 1))) -> dict:
        """All tasks: ``success`` (mean over tasks of the per-task final success), ``success_any``, and per task
        ``task{k}_success``."""
        out: dict[str, float] = {}
        per_task = []
        for k in tasks:
            r = self.run_task(policy_fn, k, episodes, seed)
            out[f"task{k}_success"] = r["success"]
            per_task.append(r)
        out["success"] = float(np.mean([r["success"] for r in per_task]))
        out["success_any"] = float(np.mean([r["success_any"] for r in per_task]))
        out["episode_length"] = float(np.mean([r["episode_length"] for r in per_task]))
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()
