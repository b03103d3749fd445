"""OGBench evaluation: the 5 fixed tasks of an OGBench env, with episodes run in parallel.

OGBench's protocol (``impls/utils/evaluation.py``): ``obs, info = env.reset(options=dict(task_id=k))``, the goal
is ``info['goal']`` (a full observation), the deterministic action is clipped to [-1, 1], an episode ends when the
env terminates (goal reached) or hits its time limit, and the episode's success is ``info['success']`` at its last
step; a task's success rate is the mean over its episodes and the overall metric the mean over tasks.

Episode k of task t is seeded with ``seed + 1000 t + k``, so results do not depend on how many env copies run
them or in which order. Here the episodes (of all tasks at once) run in lock-step over ``num_envs`` env copies
with batched policy calls: a copy whose episode ends starts the next queued one at once, so the batch stays full
until the queue runs out. The copies can be spread over worker processes; given a :class:`PortablePolicy`, each
worker runs the policy for its copies itself.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from collections import deque
from typing import Callable

import numpy as np

NUM_TASKS = 5


def _import_ogbench(env_name: str = ""):
    from crl.envs.task import headless_gl

    # Headless; only the pixel-based (visual-*) envs render, so the others run where no GL library loads.
    headless_gl(need_render=env_name.startswith("visual-"))
    try:
        import ogbench  # noqa: F401  (registers the envs with gymnasium)
    except ImportError as e:
        raise ImportError("OGBench envs need the ogbench package: pip install 'contrastive-rl[ogbench]'") from e


def make_ogbench_env(env_name: str):
    """One OGBench env (gymnasium, with its time limit), e.g. ``make_ogbench_env('pointmaze-medium-v0')``.

    ``reset(seed=s)`` determines the episode, also in the manipulation envs (see ``_seedable_action_space``)."""
    _import_ogbench(env_name)
    import gymnasium

    try:
        with warnings.catch_warnings():
            # OGBench's manipulation envs declare float64 bounds on float32 spaces; gymnasium warns on every make.
            warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32", category=UserWarning)
            env = gymnasium.make(env_name)
            _seedable_action_space(env.unwrapped)
    except gymnasium.error.Error as e:
        raise ValueError(f"cannot make OGBench env {env_name!r}: {e}") from None
    return env


_SEEDABLE: dict[type, type] = {}


def _seedable_action_space(raw) -> None:
    """Makes ``reset(seed=s)`` seed the random actions OGBench's resets take.

    Before taking the goal observation, OGBench's task resets step the scene with ``self.action_space.sample()``
    (maze envs: 5 steps, 40 for the humanoid; manipulation envs: 2), and ``reset(seed=s)`` does not seed the action
    space. The manipulation envs (cube, scene, puzzle) even build a new, unseeded ``Box`` on every access. So the
    goal observation (the locomotion robot's joints; the arm's pose) and, in the manipulation envs, the controls
    and solver warm start an episode begins with differ from run to run whatever the seed, and a deterministic
    policy's episodes diverge within a step. Here the env's class gets a ``reset`` that seeds the action space
    with ``s`` (and a manipulation env one fixed ``Box`` with the same bounds): the random actions stay uniform, now
    drawn from ``s``. (The point mazes' goal is the position alone, set after those steps, so they were unaffected.)
    """
    import inspect

    cls = type(raw)
    if cls in _SEEDABLE.values():
        return
    fixed = isinstance(inspect.getattr_static(cls, "action_space", None), property)
    if cls not in _SEEDABLE:
        def reset(self, *, seed=None, options=None, **kwargs):
            if seed is not None:
                self.action_space.seed(int(seed))
            return cls.reset(self, seed=seed, options=options, **kwargs)

        body = {"reset": reset, "__module__": cls.__module__, "__doc__": cls.__doc__}
        if fixed:
            body["action_space"] = property(lambda self: self._crl_action_space)
        _SEEDABLE[cls] = type(cls.__name__, (cls,), body)
    if fixed:
        raw._crl_action_space = cls.action_space.fget(raw)
    raw.__class__ = _SEEDABLE[cls]


def env_dims(env_name: str) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of an OGBench env."""
    env = make_ogbench_env(env_name)
    dims = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    env.close()
    return dims


def _plain_point_maze(raw) -> bool:
    """Whether ``raw`` is an OGBench point maze whose step :meth:`EnvGroup._step_points` reproduces: state
    observations, no teleports, success tested after the action, no single-task reward, OGBench's frame skip, no
    on-screen rendering (ogbench 1.2.2, pinned)."""
    try:
        from ogbench.locomaze.point import PointEnv
    except ImportError:
        return False
    return (isinstance(raw, PointEnv) and getattr(raw, "_ob_type", None) == "states"
            and getattr(raw, "_teleport_info", True) is None and getattr(raw, "_success_timing", None) == "post"
            and getattr(raw, "_reward_task_id", True) is None and raw.frame_skip == 5 and raw.render_mode != "human"
            and raw.model.nq == 2 and raw.model.nv == 2)


def policy_rows(live: int, n: int, min_batch: int = 1) -> int:
    """The batch a worker runs its policy on when ``live`` of its ``n`` env copies are running: ``live`` rounded
    up to a power of two, at least ``min_batch``, at most ``n`` (a few shapes, so few compilations)."""
    return min(n, max(min_batch, 1 << max(live - 1, 0).bit_length()))


class EnvGroup:
    """Env copies in this process, addressed by local index.

    Steps go straight to the unwrapped OGBench env with the time limit counted here: gymnasium's TimeLimit,
    OrderEnforcing and PassiveEnvChecker wrappers change nothing after the first step but cost ~20% of a point-maze
    step; plain point mazes skip OGBench's ``step`` too (:meth:`_step_points`). Resets go through the wrappers
    (seeding, OGBench's task options).
    """

    def __init__(self, env_name: str, num_envs: int):
        self.envs = [make_ogbench_env(env_name) for _ in range(num_envs)]
        self.raw = [env.unwrapped for env in self.envs]
        self.max_steps = self.envs[0].spec.max_episode_steps if num_envs else None
        self.steps = np.zeros(num_envs, int)
        # The teleport mazes' step draws from the global np.random (which exit a teleport leads to): each such env
        # keeps its own generator state, seeded by its reset, so an episode's outcome does not depend on the other
        # envs stepped in lock-step with it (it is the episode run alone after its seeded reset).
        self.step_rng = [None] * num_envs
        self.global_rng_in_step = [getattr(raw, "_teleport_info", None) is not None for raw in self.raw]
        self.points = self.max_steps is not None and all(_plain_point_maze(raw) for raw in self.raw)
        self.goal_xy = np.zeros((num_envs, 2))
        if self.points:  # views of each copy's MjData, made once (each property access builds a new array)
            self._physics = [(raw.model, raw.data, raw.data.qpos, raw.data.qvel) for raw in self.raw]

    def reset(self, idx, seeds, task_id):
        """Resets envs ``idx`` into task ``task_id``; returns ``(obs [k, d], goal [k, d])``."""
        obs, goals = [], []
        for i, seed in zip(idx, seeds):
            seed = int(seed)
            # The maze envs draw start/goal noise from the global np.random, the manipulation envs from the env's
            # own generator: seed both.
            saved = np.random.get_state()
            np.random.seed(seed)
            o, info = self.envs[i].reset(seed=seed, options=dict(task_id=task_id))
            if self.global_rng_in_step[i]:
                self.step_rng[i] = np.random.get_state()
            np.random.set_state(saved)
            self.steps[i] = 0
            if self.points:
                self.goal_xy[i] = self.raw[i].cur_goal_xy
            obs.append(o)
            goals.append(info["goal"])
        return np.asarray(obs, np.float32), np.asarray(goals, np.float32)

    def _step_one(self, i, a):
        if not self.global_rng_in_step[i]:
            return self.raw[i].step(a)
        saved = np.random.get_state()
        np.random.set_state(self.step_rng[i])
        try:
            return self.raw[i].step(a)
        finally:
            self.step_rng[i] = np.random.get_state()
            np.random.set_state(saved)

    def _step_points(self, idx, actions):
        """``step`` for plain point mazes (``_plain_point_maze``): OGBench's ``PointEnv.step`` physics (position +=
        0.2·action, velocity 0, 5 MuJoCo steps) on each copy's own model and data, then its success test
        (‖xy − goal‖ ≤ tol) and termination at the goal for all rows at once, without the per-step Python of
        OGBench's ``step`` (copies, info dicts: ~12 µs of a ~40 µs step). Same arithmetic, so the same episodes;
        tests compare them with OGBench's own loop."""
        import mujoco

        xy = np.empty((len(idx), 2))
        for k, (i, a) in enumerate(zip(idx, actions)):
            model, data, qpos, qvel = self._physics[i]
            qpos += 0.2 * a
            qvel.fill(0.0)
            mujoco.mj_step(model, data, nstep=5)
            xy[k] = qpos
        self.steps[idx] += 1
        success = np.linalg.norm(xy - self.goal_xy[idx], axis=1) <= self.raw[0]._goal_tol
        done = (success & self.raw[0]._terminate_at_goal) | (self.steps[idx] >= self.max_steps)
        return xy.astype(np.float32), done, success

    def step(self, idx, actions):
        """Steps envs ``idx``; returns ``(obs [k, d], done [k], success [k])``; done = terminated or time limit."""
        if self.points:
            return self._step_points(np.asarray(idx, int), actions)
        obs, done, success = [], [], []
        for i, a in zip(idx, actions):
            o, _, terminated, truncated, info = self._step_one(i, a)
            self.steps[i] += 1
            obs.append(o)
            done.append(terminated or truncated or (self.max_steps is not None and self.steps[i] >= self.max_steps))
            success.append(bool(info.get("success", False)))
        return np.asarray(obs, np.float32), np.asarray(done), np.asarray(success)

    # A queue of episodes, run with automatic restarts: ``start`` then ``advance`` until no env is running.

    def run(self, policy_blob: bytes, params, episodes, min_batch: int = 1):
        """Runs ``episodes`` (as in ``start``) to the end with a policy exported by :class:`PortablePolicy`
        (``policy_blob``) and its ``params``; returns the finished episodes' tuples.

        The policy sees only the rows of envs still running, padded to a batch of ``policy_rows(live, n,
        min_batch)`` rows: when most episodes have ended, it no longer computes actions for idle copies."""
        policy = _load_exported(policy_blob)
        import jax

        params = jax.device_put(params)  # once, not on every call
        obs, goal, running, out = self.start(episodes)
        actions = np.zeros((len(self.envs),) + self.envs[0].action_space.shape, np.float32) if self.envs else None
        while running.any():
            live = np.flatnonzero(running)
            rows = np.resize(live, policy_rows(live.size, running.size, min_batch))  # padded with live rows
            batch = np.asarray(policy(params, obs[rows], goal[rows]), np.float32)
            actions[live] = np.clip(batch[:live.size], -1.0, 1.0)
            obs, goal, running, finished = self.advance(actions)
            out += finished
        return out

    def start(self, episodes):
        """Queues ``episodes`` (``(tag, task_id, seed)`` each) and starts the first ones, one per env; returns
        ``advance``'s tuple (with no finished episodes)."""
        n = len(self.envs)
        self.queue = deque(episodes)
        shape = (n,) + self.envs[0].observation_space.shape if n else (0,)
        self.obs, self.goal = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.running = np.zeros(n, bool)
        self.tag = np.full(n, -1)
        self.any_success = np.zeros(n, bool)
        for i in range(min(n, len(self.queue))):
            self._begin(i)
        return self.obs.copy(), self.goal.copy(), self.running.copy(), []

    def _begin(self, i):
        tag, task_id, seed = self.queue.popleft()
        (self.obs[i],), (self.goal[i],) = self.reset([i], [seed], task_id)
        self.tag[i], self.any_success[i], self.running[i] = tag, False, True

    def advance(self, actions):
        """Steps every running env with its row of ``actions`` ``[n, act]``; an env whose episode ends starts the
        next queued episode. Returns ``(obs [n, d], goal [n, d], running [n], finished)``, where ``finished`` lists
        ``(tag, success at the last step, success at any step, length)`` of the episodes that ended."""
        live = np.flatnonzero(self.running)
        obs, done, success = self.step(live, actions[live])
        self.obs[live] = obs
        self.any_success[live] |= success
        finished = []
        for i, d, s in zip(live, done, success):
            if not d:
                continue
            finished.append((int(self.tag[i]), bool(s), bool(self.any_success[i]), int(self.steps[i])))
            if self.queue:
                self._begin(i)
            else:
                self.running[i] = False
        return self.obs.copy(), self.goal.copy(), self.running.copy(), finished

    def close(self):
        for env in self.envs:
            env.close()


_EXPORTED: dict = {}


def _load_exported(blob: bytes):
    """The jitted call of a serialized ``jax.export`` function, cached by content (so a training run's evaluations
    compile it once).

    The first call pins this worker process to one CPU (worker k to the k-th CPU of its mask, round robin) before
    JAX starts, so XLA runs one thread, on that CPU: each worker steps its envs and runs its policy on its own core.
    (Pinning only while JAX starts is not enough: XLA's pool threads keep the mask they were created with, and two
    workers' policies then share one core.)"""
    import hashlib

    digest = hashlib.sha256(blob).hexdigest()
    if digest not in _EXPORTED:
        if "jax" not in sys.modules and hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[int(os.environ.get("CRL_EVAL_WORKER", "0")) % len(cpus)]})
        import jax

        _EXPORTED.clear()  # one policy per evaluator at a time
        _EXPORTED[digest] = jax.jit(jax.export.deserialize(bytearray(blob)).call)
    return _EXPORTED[digest]


class PortablePolicy:
    """A deterministic policy ``fn(params, obs [n, d], goal [n, d]) -> actions [n, a]`` (a JAX function) with its
    ``params``, that evaluation workers can run themselves.

    Called as ``policy(obs, goal)`` it is the jitted ``fn`` here. ``OGBenchEvaluator(workers > 0)`` sends each
    worker process the function exported for CPU (``jax.export``) and the parameters once per evaluation, and
    the worker runs its share of the episodes alone (env steps and policy on one core, no round trip per step),
    calling the policy only on its copies that are still running. The exported function computes what the jitted
    one does here (on our CPU host: bit-identical actions).
    """

    def __init__(self, fn: Callable, params):
        import jax

        self.fn = fn if hasattr(fn, "lower") else jax.jit(fn)
        self.params = params
        self._blobs: dict = {}

    def __call__(self, obs, goal):
        return self.fn(self.params, obs, goal)

    def export(self, obs_dim: int, goal_dim: int) -> bytes:
        """``fn`` for any number of rows (a symbolic batch dimension), serialized (``jax.export``, CPU); cached per
        shape."""
        import jax

        key = (obs_dim, goal_dim)
        if key not in self._blobs:
            rows, = jax.export.symbolic_shape("rows")
            spec = lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype)  # noqa: E731
            args = (jax.tree.map(spec, self.params), jax.ShapeDtypeStruct((rows, obs_dim), np.float32),
                    jax.ShapeDtypeStruct((rows, goal_dim), np.float32))
            self._blobs[key] = bytes(jax.export.export(self.fn, platforms=["cpu"])(*args).serialize())
        return self._blobs[key]

    def host_params(self):
        """The parameters as NumPy arrays (what is sent to the workers)."""
        import jax

        return jax.device_get(self.params)


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

    def __init__(self, env_name: str, num_envs: int, index: int = 0):
        env = dict(os.environ)
        env["CRL_EVAL_WORKER"] = str(index)  # which CPU the worker takes if it runs a PortablePolicy
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        env["JAX_PLATFORMS"] = "cpu"  # a PortablePolicy runs on the worker's CPU, also when training uses a GPU
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


class _GroupRun:
    """One group's share of the queued episodes; the policy is always called on the group's full batch (envs with
    no episode left keep their last observation), so a jitted policy compiles once per group size."""

    def __init__(self, group, episodes):
        self.group = group
        self.active = bool(episodes)
        self.awaiting = False  # a request was sent and its result not read yet
        if self.active:
            group.send("start", episodes)
            self.awaiting = True

    def drain(self):
        """Reads an outstanding result (after an error elsewhere), so the group's next request gets its own."""
        if self.awaiting:
            self.awaiting = False
            try:
                self.group.result()
            except Exception:  # the group failed; it reports that again on its next use
                pass

    def finish(self):
        """Reads the group's last result; returns the episodes that ended."""
        self.awaiting = False
        self.obs, self.goal, self.running, finished = self.group.result()
        return finished

    def act(self, policy_fn):
        """Computes the actions of the group's envs and sends them (the group steps them meanwhile)."""
        actions = np.clip(np.asarray(policy_fn(self.obs, self.goal), np.float32), -1.0, 1.0)
        self.group.send("advance", actions)
        self.awaiting = True


class OGBenchEvaluator:
    """Runs OGBench evaluation tasks with ``num_envs`` env copies stepped in lock-step; a copy whose episode ends
    starts the next queued episode (of any task) at once.

    With ``workers = 0`` all copies live in this process and ``policy_fn(obs [n, obs_dim], goal [n, obs_dim]) ->
    actions [n, act_dim]`` is always called with ``n = num_envs`` (copies with no episode left get their last
    observation), so a jitted policy compiles once. With ``workers > 0`` the copies are split into that many groups,
    each in its own process. A :class:`PortablePolicy` is then sent to the workers, and each runs its share of the
    episodes alone (env steps and policy on its own CPU), calling the policy on the rows of its copies still running
    (padded to a power of two, at least ``min_policy_batch`` rows). Any other callable is called here per group
    (``n`` = the group's size), pipelined: it computes one group's actions while the other groups' processes step
    their envs.
    """

    # The smallest batch the workers run a PortablePolicy on. On our CPU host XLA computes a row of the actor
    # bit-identically in every batch of 33 rows or more (smaller batches differ in the last bits), so with this
    # floor the in-worker results equal the pipelined ones, which run the policy on whole groups.
    min_policy_batch = 33

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
        self.remote = workers > 0
        if workers == 0:
            self.groups = [_LocalGroup(env_name, num_envs)]
        else:
            self.groups = [_RemoteGroup(env_name, s.stop - s.start, k) for k, s in enumerate(self.slices)]
            try:
                for g in self.groups:
                    g.result()
            except Exception:
                self.close()
                raise

    def run_episodes(self, policy_fn: Callable, episodes) -> list[tuple[bool, bool, int]]:
        """Runs ``episodes`` (a list of ``(task_id, seed)``) over the env copies, a copy starting the next queued
        episode as soon as its current one ends. Returns ``(success at the last step, success at any step,
        length)`` per episode, in the order given; each depends only on its task, its seed and the policy."""
        sizes = [s.stop - s.start for s in self.slices]
        deal = [g for r in range(max(sizes)) for g, n in enumerate(sizes) if r < n]  # weighted round robin
        shares = [[] for _ in self.groups]
        for j, (task_id, seed) in enumerate(episodes):
            shares[deal[j % len(deal)]].append((j, int(task_id), int(seed) % 2**32))
        results = [None] * len(episodes)
        if isinstance(policy_fn, PortablePolicy) and self.remote:
            self._run_in_workers(policy_fn, shares, results)
            return results
        runs = [r for r in (_GroupRun(g, share) for g, share in zip(self.groups, shares)) if r.active]
        try:
            # Pipelined: while one group's worker steps its envs, the policy runs for the next group's.
            pending = list(runs)
            while pending:
                for r in list(pending):
                    for tag, final, any_, length in r.finish():
                        results[tag] = (final, any_, length)
                    if r.running.any():
                        r.act(policy_fn)
                    else:
                        pending.remove(r)
        except BaseException:  # e.g. the policy raised: leave no unread results behind
            for r in runs:
                r.drain()
            raise
        return results

    def _run_in_workers(self, policy: PortablePolicy, shares, results) -> None:
        """Each worker runs its share with the exported policy; the results come back once, at the end."""
        params = policy.host_params()
        busy = []
        for g, share in zip(self.groups, shares):
            if share:
                g.send("run", policy.export(self.obs_dim, self.obs_dim), params, share, self.min_policy_batch)
                busy.append(g)
        error = None
        for g in busy:  # read every reply, so that no worker is left with an unread one
            try:
                for tag, final, any_, length in g.result():
                    results[tag] = (final, any_, length)
            except Exception as e:
                error = error or e
        if error is not None:
            raise error

    @staticmethod
    def _summary(results) -> dict[str, float]:
        final, any_, length = (np.asarray(x, float) for x in zip(*results))
        return {"success": float(final.mean()), "success_any": float(any_.mean()),
                "episode_length": float(length.mean())}

    def run_task(self, policy_fn: Callable, task_id: int, episodes: int, seed: int) -> dict[str, float]:
        """Runs ``episodes`` episodes of task ``task_id`` (1..5). Returns ``success`` (at the last step, OGBench's
        metric), ``success_any`` (at any step) and ``episode_length``, each a mean over the episodes."""
        return self._summary(self.run_episodes(policy_fn, [(task_id, seed + 1_000 * task_id + k)
                                                           for k in range(episodes)]))

    def evaluate(self, policy_fn: Callable, episodes: int, seed: int, tasks=tuple(range(1, NUM_TASKS + 1))) -> dict:
        """All tasks (their episodes queued together): ``success`` (mean over tasks of the per-task final success),
        ``success_any``, ``episode_length``, and per task ``task{k}_success``."""
        tasks = tuple(tasks)
        queue = [(k, seed + 1_000 * k + e) for k in tasks for e in range(episodes)]
        results = self.run_episodes(policy_fn, queue)
        per_task = {k: self._summary(results[i * episodes:(i + 1) * episodes]) for i, k in enumerate(tasks)}
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
