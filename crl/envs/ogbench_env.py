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
import pickle
import subprocess
import sys
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


def env_dims(env_name: str) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of an OGBench env."""
    env = make_ogbench_env(env_name)
    dims = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    env.close()
    return dims


class EnvGroup:
    """Env copies in this process, addressed by local index."""

    def __init__(self, env_name: str, num_envs: int):
        self.envs = [make_ogbench_env(env_name) for _ in range(num_envs)]

    def reset(self, idx, seeds, task_id):
        """Resets envs ``idx`` into task ``task_id``; returns ``(obs [k, d], goal [k, d])``."""
        obs, goals = [], []
        for i, seed in zip(idx, seeds):
            seed = int(seed)
            # OGBench's maze envs draw start/goal noise from the global np.random, the manipulation envs from the
            # env's own generator: seed both.
            np.random.seed(seed)
            o, info = self.envs[i].reset(seed=seed, options=dict(task_id=task_id))
            obs.append(o)
            goals.append(info["goal"])
        return np.asarray(obs, np.float32), np.asarray(goals, np.float32)

    def step(self, idx, actions):
        """Steps envs ``idx``; returns ``(obs [k, d], done [k], success [k])``."""
        obs, done, success = [], [], []
        for i, a in zip(idx, actions):
            o, _, terminated, truncated, info = self.envs[i].step(a)
            obs.append(o)
            done.append(terminated or truncated)
            success.append(bool(info.get("success", False)))
        return np.asarray(obs, np.float32), np.asarray(done), np.asarray(success)

    def close(self):
        for env in self.envs:
            env.close()


_WORKER_BOOT = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('_crl_ogbench_env', sys.argv[1]); "
    "m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
    "m._serve(sys.argv[2], int(sys.argv[3]))"
)


def _serve(env_name: str, num_envs: int) -> None:
    """Worker process: owns an EnvGroup and answers pickled ``(method, args)`` requests on stdin until 'close' or
    end of input. Replies go to the original stdout; anything else printed (Python or C) is sent to stderr."""
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)

    def reply(status, value):
        pickle.dump((status, value), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        group = EnvGroup(env_name, num_envs)
    except Exception as e:  # reported to the parent, which raises it
        reply("error", f"{type(e).__name__}: {e}")
        return
    reply("ok", None)
    while True:
        try:
            method, args = pickle.load(inp)
        except EOFError:  # the parent went away
            break
        if method == "close":
            break
        try:
            reply("ok", getattr(group, method)(*args))
        except Exception as e:
            reply("error", f"{type(e).__name__}: {e}")
    group.close()


class _RemoteGroup:
    """An EnvGroup in a worker process; ``send`` then ``result`` so several groups work at once.

    The worker is a fresh interpreter that loads only this file (not crl, not JAX) by path, so it neither re-runs
    the caller's ``__main__`` (as multiprocessing's spawn would) nor inherits a forked JAX runtime.
    """

    def __init__(self, env_name: str, num_envs: int):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT, os.path.abspath(__file__), env_name, str(num_envs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )

    def send(self, method: str, *args):
        try:
            pickle.dump((method, args), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died; result() reports it

    def result(self):
        try:
            status, value = pickle.load(self.proc.stdout)
        except EOFError:
            code = self.proc.wait(timeout=10)
            raise RuntimeError(f"evaluation worker exited unexpectedly (exit code {code}); see its stderr above")
        if status != "ok":
            raise RuntimeError(f"evaluation worker failed: {value}")
        return value

    def close(self):
        self.send("close")
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class _LocalGroup:
    def __init__(self, env_name: str, num_envs: int):
        self.group = EnvGroup(env_name, num_envs)
        self._pending = None

    def send(self, method: str, *args):
        self._pending = getattr(self.group, method)(*args)

    def result(self):
        return self._pending

    def close(self):
        self.group.close()


class OGBenchEvaluator:
    """Runs OGBench evaluation tasks with ``num_envs`` env copies stepped in lock-step.

    ``policy_fn(obs [n, obs_dim], goal [n, obs_dim]) -> actions [n, act_dim]`` is always called with
    ``n = num_envs`` (finished envs get their last observation), so a jitted policy compiles once. With
    ``workers > 0`` the copies are split over that many processes, which step their envs concurrently.
    """

    def __init__(self, env_name: str, num_envs: int, workers: int = 0):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be > 0, got {num_envs}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.env_name = env_name
        self.num_envs = num_envs
        probe = make_ogbench_env(env_name)
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        self.act_dim = int(np.prod(probe.action_space.shape))
        self.max_episode_steps = probe.spec.max_episode_steps
        probe.close()
        n_groups = max(1, min(workers, num_envs))
        bounds = np.linspace(0, num_envs, n_groups + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        if workers == 0:
            self.groups = [_LocalGroup(env_name, num_envs)]
        else:
            self.groups = [_RemoteGroup(env_name, s.stop - s.start) for s in self.slices]
            try:
                for g in self.groups:
                    g.result()
            except Exception:
                self.close()
                raise

    def _call(self, method: str, idx: np.ndarray, per_env_args: list[np.ndarray], *shared):
        """Runs ``method`` on the envs ``idx`` (global indices) across groups; concatenates results in idx order."""
        calls = []
        for g, s in zip(self.groups, self.slices):
            sel = np.flatnonzero((idx >= s.start) & (idx < s.stop))
            if len(sel):
                g.send(method, list(idx[sel] - s.start), *[a[sel] for a in per_env_args], *shared)
                calls.append((g, sel))
        out = None
        for g, sel in calls:
            res = g.result()
            if out is None:
                out = [np.empty((len(idx),) + r.shape[1:], r.dtype) for r in res]
            for o, r in zip(out, res):
                o[sel] = r
        return out

    def run_task(self, policy_fn: Callable, task_id: int, episodes: int, seed: int) -> dict[str, float]:
        """Runs ``episodes`` episodes of task ``task_id`` (1..5). Returns ``success`` (at the last step, OGBench's
        metric), ``success_any`` (at any step) and ``episode_length``, each a mean over the episodes."""
        saved = np.random.get_state()  # EnvGroup.reset seeds the global generator; restore the caller's
        try:
            return self._run_task(policy_fn, task_id, episodes, seed)
        finally:
            np.random.set_state(saved)

    def _run_task(self, policy_fn, task_id, episodes, seed):
        final, any_, lengths = [], [], []
        n = self.num_envs
        for wave_start in range(0, episodes, n):
            k = min(n, episodes - wave_start)
            idx = np.arange(k)
            seeds = (seed + 1_000 * task_id + wave_start + idx) % 2**32
            obs = np.zeros((n, self.obs_dim), np.float32)
            goal = np.zeros((n, self.obs_dim), np.float32)
            obs[:k], goal[:k] = self._call("reset", idx, [seeds], task_id)
            running = np.zeros(n, bool)
            running[:k] = True
            succ_final = np.zeros(n, bool)
            succ_any = np.zeros(n, bool)
            length = np.zeros(n, int)
            while running.any():
                actions = np.clip(np.asarray(policy_fn(obs, goal), np.float32), -1.0, 1.0)
                live = np.flatnonzero(running)
                o, done, success = self._call("step", live, [actions[live]])
                obs[live] = o
                length[live] += 1
                succ_any[live] |= success
                ended = live[done]
                succ_final[ended] = success[done]
                running[ended] = False
            final.extend(succ_final[:k])
            any_.extend(succ_any[:k])
            lengths.extend(length[:k])
        return {
            "success": float(np.mean(final)),
            "success_any": float(np.mean(any_)),
            "episode_length": float(np.mean(lengths)),
        }

    def evaluate(self, policy_fn: Callable, episodes: int, seed: int, tasks=tuple(range(1, NUM_TASKS + 1))) -> dict:
        """All tasks: ``success`` (mean over tasks of the per-task final success), ``success_any``,
        ``episode_length``, and per task ``task{k}_success``."""
        per_task = {k: self.run_task(policy_fn, k, episodes, seed) for k in tasks}
        out = {
            "success": float(np.mean([r["success"] for r in per_task.values()])),
            "success_any": float(np.mean([r["success_any"] for r in per_task.values()])),
            "episode_length": float(np.mean([r["episode_length"] for r in per_task.values()])),
        }
        out.update({f"task{k}_success": r["success"] for k, r in per_task.items()})
        return out

    def close(self) -> None:
        """Closes the envs and stops the worker processes."""
        for g in getattr(self, "groups", []):
            g.close()
        self.groups = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
