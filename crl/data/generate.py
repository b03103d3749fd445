"""Regenerate OGBench datasets locally with OGBench's own data-collection procedure.

OGBench builds its state-based datasets with two scripts that are not part of the ``ogbench`` pip package
(``data_gen_scripts/generate_locomaze.py`` and ``generate_manipspace.py``, run with the flags listed in
``data_gen_scripts/commands.sh``). This module re-implements that procedure on top of the environments and the
scripted oracles that *are* in the package (``ogbench.locomaze``, ``ogbench.manipspace.oracles``), and writes
``{name}.npz`` / ``{name}-val.npz`` in OGBench's format, readable by ``ogbench.load_dataset``.

What is reproduced, per family (``T`` = rows per episode = env steps; every row is ``(s_t, a_t)``; the last row of
an episode has ``terminals = 1`` and its action has no successor):

* ``pointmaze-{medium,large,teleport}-navigate-v0``: 1000 episodes x T=1001; ``giant``: 500 x 2001. Start in a
  uniformly drawn free cell, goal in a uniformly drawn "vertex" cell (free cells that are not straight hallway
  cells); start and goal get OGBench's +-1 position noise (done by the env's own ``reset``). The action is the unit
  vector from the agent to the oracle subgoal (the centre of the neighbouring cell with the smallest BFS distance
  to the goal cell, ``MazeEnv.get_oracle_subgoal``) plus N(0, 0.5^2) noise, clipped to [-1, 1]. Whenever the
  agent is within 1.0 of the goal after a step, a new vertex-cell goal (with noise) is drawn.
* ``pointmaze-*-stitch-v0``: 5000 episodes x T=201; the goal is a cell at BFS distance exactly 4 from the start
  cell (the start cell itself if there is none) and is never resampled.
* ``cube-*``, ``scene``, ``puzzle-*`` (``mode='data_collection'``, ``terminate_at_goal=False``), 1000 episodes
  x T=1001 for single/double cube, scene, puzzle 3x3/4x4 (3000 for cube-triple and puzzle-4x5, 5000 for
  cube-quadruple and puzzle-4x6). Whenever the current oracle reports ``done``, ``env.set_new_target(p_stack)``
  draws a new sub-task; ``p_stack`` is drawn per episode (single 0, double U(0, .25), triple U(.05, .35), quadruple
  U(.1, .5), otherwise .5).

  - ``play``: the non-Markovian plan oracles (``CubePlanOracle``, and ``Button``/``Drawer``/``WindowPlanOracle``
    for scene; ``ButtonPlanOracle(gripper_always_closed=True)`` for puzzle) with ``noise=0.1`` and
    ``noise_smoothing=0.5`` (temporally correlated plan noise), no further action noise.
  - ``noisy``: the Markov oracles (``min_norm=0.4``) plus Gaussian noise with per-episode level xi ~ U(0, 0.1)
    and per-dimension std ``[xi, xi, xi, 3 xi, 10 xi]``; with probability ``p_random_action`` (0.1 for cube and
    scene, 0.2 for puzzle) a step takes a uniform random action in [-1, 1]^5 instead. Actions are clipped.
  - scene: an episode in which the cube ever leaves the visible area (y >= 0.29, or y <= -0.3 without being at the
    drawer height 0.06..0.08) is discarded and re-collected, as OGBench does.

* Saved keys and dtypes: ``observations`` float32 ``[N, obs_dim]``, ``actions`` float32 ``[N, act_dim]``,
  ``terminals`` bool ``[N]``, ``qpos``/``qvel`` float32 (the simulator state *before* the row's action, the env's
  ``prev_qpos``/``prev_qvel``), and ``button_states`` int64 for scene and puzzle. Files are written with
  ``np.savez_compressed``. The val file holds ``episodes // 10`` further episodes (at least 1 here).

What differs from OGBench:

* Randomness. OGBench never seeds ``np.random`` (its ``--seed`` flag is unused) and draws random actions from an
  unseeded gym action space, so its files cannot be reproduced byte for byte; these are the same *distribution*.
  Here every episode draws from its own streams derived from ``(seed, dataset name, episode index)`` (the env's
  ``np_random``, the global ``np.random`` used by the env and the oracles, and a generator for the behaviour noise),
  so the output is deterministic for a fixed ``(seed, episodes)`` and does not depend on the number of workers.
* Point maze speed. Instead of ``env.step`` through gymnasium's wrappers, the generator runs ``PointEnv.step``'s
  dynamics itself on the env's own MuJoCo model and data (``qpos += 0.2 a``; ``qvel = 0``; ``mj_step`` x5), applies
  ``MazeEnv.step``'s success test (after the step) and teleport rule (observation taken before the teleport, as in
  the env), and uses the env's own ``reset``, ``set_goal`` and ``set_xy``. The oracle's BFS is precomputed once
  per maze as a (goal cell, agent cell) -> subgoal table. ``tests/test_generate.py`` checks the table against
  ``get_oracle_subgoal`` and whole episodes against a plain ``env.step`` loop. The direction is normalised with
  ``math.sqrt`` where OGBench uses ``np.linalg.norm`` (BLAS): they can differ in the last bit.
* Manipulation envs are stepped unwrapped (``env.unwrapped.step``) with the episode length counted here, which is
  what gymnasium's ``TimeLimit`` did; everything else is the package's env and oracle code.
* The val split has ``max(1, episodes // 10)`` episodes (OGBench: ``episodes // 10``, which is 0 below 10).

Not generatable here (``GenerationError``): antmaze, humanoidmaze and antsoccer (collected with trained SAC expert
policies that are not distributed), ``visual-*`` (renders every step; impractical on CPU) and powderworld.
"""

from __future__ import annotations

# This module must not import anything from ``crl``: worker processes load this file by path (see _run_parallel).
import importlib
import json
import math
import os
import queue as queue_module
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_OUT_DIR = Path("~/.ogbench/data")


class GenerationError(ValueError):
    """A dataset cannot be generated (unsupported name, outputs exist, bad arguments)."""


@dataclass(frozen=True)
class _Recipe:
    name: str
    env_id: str  # the OGBench env the data is collected in
    family: str  # pointmaze | cube | scene | puzzle
    kind: str  # navigate | stitch | play | noisy
    episodes: int  # OGBench's number of training episodes
    steps: int  # OGBench's max_episode_steps: rows per episode
    noise: float  # pointmaze: action noise std; manipulation: plan noise (play) or the max of xi (noisy)
    p_random_action: float = 0.0


def _recipes() -> dict[str, _Recipe]:
    r: list[_Recipe] = []
    for maze in ("medium", "large", "giant", "teleport"):
        env_id = f"pointmaze-{maze}-v0"
        nav = (500, 2001) if maze == "giant" else (1000, 1001)
        r.append(_Recipe(f"pointmaze-{maze}-navigate-v0", env_id, "pointmaze", "navigate", *nav, noise=0.5))
        r.append(_Recipe(f"pointmaze-{maze}-stitch-v0", env_id, "pointmaze", "stitch", 5000, 201, noise=0.5))
    manip = [(f"cube-{k}", n) for k, n in (("single", 1000), ("double", 1000), ("triple", 3000), ("quadruple", 5000))]
    manip += [("scene", 1000)]
    manip += [(f"puzzle-{k}", n) for k, n in (("3x3", 1000), ("4x4", 1000), ("4x5", 3000), ("4x6", 5000))]
    for env, n in manip:
        family = env.split("-")[0]
        r.append(_Recipe(f"{env}-play-v0", f"{env}-v0", family, "play", n, 1001, noise=0.1))
        p = 0.2 if family == "puzzle" else 0.1
        r.append(_Recipe(f"{env}-noisy-v0", f"{env}-v0", family, "noisy", n, 1001, noise=0.1, p_random_action=p))
    return {x.name: x for x in r}


_RECIPES = _recipes()
SUPPORTED: tuple[str, ...] = tuple(_RECIPES)

_PLAN_NOISE_SMOOTHING = 0.5  # OGBench --noise_smoothing (PlanOracle)
_MARKOV_MIN_NORM = 0.4  # OGBench --min_norm (MarkovOracle)
_MARKOV_NOISE_SCALE = (1.0, 1.0, 1.0, 3.0, 10.0)  # per-dimension multiples of xi
_STITCH_CELLS = 4  # stitch goals lie this many BFS steps from the start cell

_OGBENCH_NAME = re.compile(
    r"^(visual-)?(pointmaze|antmaze|humanoidmaze|antsoccer|cube|scene|puzzle|powderworld)-"
    r"(?:[a-z0-9]+-)?(navigate|stitch|explore|play|noisy)-v0$"
)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")


def _official_files_hint(name: str) -> str:
    return (
        f"To use OGBench's official files instead, place them as DIR/{name}.npz and DIR/{name}-val.npz "
        f"(default DIR ~/.ogbench/data) and run `crl train --env {name} --data-dir DIR`."
    )


def _recipe(name: str) -> _Recipe:
    """The recipe of a supported dataset; GenerationError saying why for any other name."""
    if name in _RECIPES:
        return _RECIPES[name]
    m = _OGBENCH_NAME.match(name)
    if m is None:
        raise GenerationError(f"unknown dataset {name!r}; the generatable datasets are: {', '.join(SUPPORTED)}")
    visual, family = m.group(1), m.group(2)
    if visual:
        why = (f"{name} cannot be generated locally: visual datasets render a camera image at each of about a "
               f"million steps, which is impractical on CPU.")
    elif family in ("antmaze", "humanoidmaze", "antsoccer"):
        why = (f"{name} cannot be generated locally: OGBench collects it with trained SAC expert policies "
               f"(ant, humanoid, ant-ball), which are not in the ogbench package: OGBench distributes them from its dataset "
               f"server (experts.tar.gz), the same server as the official datasets.")
    elif family == "powderworld":
        why = f"{name} is not supported yet: powderworld (discrete actions, pixel observations) has no generator here."
    else:
        raise GenerationError(f"unknown dataset {name!r}; the generatable datasets are: {', '.join(SUPPORTED)}")
    raise GenerationError(f"{why} {_official_files_hint(name)}")


# ----------------------------------------------------------------------------- seeding


@dataclass
class _EpisodeStreams:
    env: np.random.Generator  # assigned to env.np_random (the env's own resets and target sampling)
    legacy_seed: int  # seeds the global np.random (OGBench's env noise, teleports, oracle plans)
    policy: np.random.Generator  # behaviour noise, random actions, episode-level draws


def _episode_streams(name: str, seed: int, index: int) -> _EpisodeStreams:
    ss = np.random.SeedSequence([seed, zlib.crc32(name.encode()), index])
    env_ss, legacy_ss, policy_ss = ss.spawn(3)
    return _EpisodeStreams(
        env=np.random.Generator(np.random.PCG64(env_ss)),
        legacy_seed=int(legacy_ss.generate_state(1)[0]),
        policy=np.random.Generator(np.random.PCG64(policy_ss)),
    )


# ----------------------------------------------------------------------------- point maze


@contextmanager
def _quiet():
    """Silences the import/creation warnings of the envs (GLFW without a display, gym Box precision)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _make_env(recipe: _Recipe, steps: int):
    """The OGBench env as OGBench's script makes it; returns the unwrapped env (wrappers are not stepped)."""
    with _quiet():
        import gymnasium

        importlib.import_module("ogbench")  # registers the OGBench envs with gymnasium

        kwargs = dict(terminate_at_goal=False, max_episode_steps=steps)
        if recipe.family != "pointmaze":
            kwargs["mode"] = "data_collection"
        env = gymnasium.make(recipe.env_id, **kwargs)
    u = env.unwrapped
    if recipe.family == "pointmaze":
        u.action_space.seed(0)  # the env's reset takes a few throw-away random steps; keep them reproducible
    return u


class _MazeTables:
    """Per-maze lookup tables: start/goal cells and the BFS oracle's subgoal for every (goal cell, agent cell)."""

    def __init__(self, u):
        grid = np.asarray(u.maze_map)
        self.unit = float(u._maze_unit)
        self.offset_x, self.offset_y = float(u._offset_x), float(u._offset_y)
        self.goal_tol = float(u._goal_tol)
        h, w = grid.shape
        free = [(i, j) for i in range(h) for j in range(w) if grid[i, j] == 0]
        self.all_cells = free
        self.vertex_cells = [c for c in free if not self._is_hallway(grid, *c)]
        self.stitch_goals = {c: self._cells_at_distance(grid, c, _STITCH_CELLS) for c in free}
        # subgoal[gi][gj][i][j] = (x, y) of the subgoal cell centre for an agent in cell (i, j), goal in (gi, gj).
        self.subgoal = [[self._subgoal_table(grid, (gi, gj)) for gj in range(w)] for gi in range(h)]
        info = u._teleport_info
        if info is None:
            self.teleport_in, self.teleport_out, self.teleport_dist = [], [], 0.0
        else:
            self.teleport_in = [(float(x), float(y)) for x, y in info["teleport_in_xys"]]
            self.teleport_out = [(float(x), float(y)) for x, y in info["teleport_out_xys"]]
            self.teleport_dist = float(info["teleport_radius"]) * 1.5

    def cell_xy(self, ij: tuple[int, int]) -> tuple[float, float]:
        return ij[1] * self.unit - self.offset_x, ij[0] * self.unit - self.offset_y

    @staticmethod
    def _is_hallway(grid: np.ndarray, i: int, j: int) -> bool:
        vertical = grid[i - 1, j] == 0 and grid[i + 1, j] == 0 and grid[i, j - 1] == 1 and grid[i, j + 1] == 1
        horizontal = grid[i, j - 1] == 0 and grid[i, j + 1] == 0 and grid[i - 1, j] == 1 and grid[i + 1, j] == 1
        return bool(vertical or horizontal)

    @staticmethod
    def _bfs(grid: np.ndarray, source: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """BFS distances over free cells from ``source`` (-1: unreached, walls) and the visiting order."""
        h, w = grid.shape
        dist = np.full((h, w), -1, dtype=np.int64)
        dist[source] = 0
        order, frontier = [], [source]
        while frontier:
            nxt = []
            for i, j in frontier:
                for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
                    ni, nj = i + di, j + dj
                    if 0 <= ni < h and 0 <= nj < w and grid[ni, nj] == 0 and dist[ni, nj] == -1:
                        dist[ni, nj] = dist[i, j] + 1
                        nxt.append((ni, nj))
                        order.append((ni, nj))
            frontier = nxt
        return dist, order

    def _cells_at_distance(self, grid: np.ndarray, start: tuple[int, int], k: int) -> list[tuple[int, int]]:
        dist, order = self._bfs(grid, start)
        return [c for c in order if dist[c] == k]

    def _subgoal_table(self, grid: np.ndarray, goal: tuple[int, int]) -> list[list[tuple[float, float]]]:
        h, w = grid.shape
        dist, _ = self._bfs(grid, goal)
        table = []
        for i in range(h):
            row = []
            for j in range(w):
                best = (i, j)
                for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
                    ni, nj = i + di, j + dj
                    if 0 <= ni < h and 0 <= nj < w and grid[ni, nj] == 0 and dist[ni, nj] < dist[best]:
                        best = (ni, nj)
                row.append(self.cell_xy(best))
            table.append(row)
        return table

    def goal_cell(self, gx: float, gy: float) -> tuple[int, int]:
        """``MazeEnv.xy_to_ij`` with the same arithmetic."""
        return (int((gy + self.offset_y + 0.5 * self.unit) / self.unit),
                int((gx + self.offset_x + 0.5 * self.unit) / self.unit))


def _pointmaze_episode(u, maze: _MazeTables, kind: str, steps: int, sigma: float, rng: np.random.Generator,
                       stats: dict | None = None) -> np.ndarray:
    """One episode of OGBench's point-maze collection; returns rows ``[steps, 8]`` (float64):
    observation (2), action (2), qpos (2), qvel (2).

    Random draws, in order: start cell, goal cell and the ``[steps, 2]`` action noise from ``rng``; the env's reset
    (``env.np_random`` and the global ``np.random``); then per goal reached a new goal cell from ``rng`` and its
    position noise from ``np.random``, and per teleport the exit from ``np.random``. The caller seeds the streams.
    """
    import mujoco

    cells, vertex = maze.all_cells, maze.vertex_cells
    init_ij = cells[int(rng.integers(len(cells)))]
    if kind == "navigate":
        goal_ij = vertex[int(rng.integers(len(vertex)))]
    else:
        cands = maze.stitch_goals[init_ij]
        goal_ij = cands[int(rng.integers(len(cands)))] if cands else init_ij
    noise = rng.normal(0.0, sigma, size=(steps, 2)).tolist()
    u.reset(options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))

    model, data = u.model, u.data
    qpos, qvel = data.qpos, data.qvel
    mj_step, frame_skip = mujoco.mj_step, int(u.frame_skip)
    navigate = kind == "navigate"
    unit, half, off_x, off_y = maze.unit, 0.5 * maze.unit, maze.offset_x, maze.offset_y
    tol, tele_in, tele_out, tele_dist = maze.goal_tol, maze.teleport_in, maze.teleport_out, maze.teleport_dist
    sqrt, n_vertex = math.sqrt, len(vertex)

    x, y = qpos.tolist()
    vx, vy = qvel.tolist()
    ox, oy = x, y  # the observation (the env's get_ob() = qpos)
    gx, gy = (float(v) for v in u.cur_goal_xy)
    gi, gj = maze.goal_cell(gx, gy)
    table = maze.subgoal[gi][gj]
    goals_reached = teleports = 0
    buf: list[float] = []
    extend = buf.extend
    for t in range(steps):
        # Oracle: unit vector towards the BFS subgoal, plus Gaussian noise, clipped.
        sx, sy = table[int((y + off_y + half) / unit)][int((x + off_x + half) / unit)]
        dx, dy = sx - x, sy - y
        norm = sqrt(dx * dx + dy * dy) + 1e-6
        nx, ny = noise[t]
        ax, ay = dx / norm + nx, dy / norm + ny
        ax = -1.0 if ax < -1.0 else (1.0 if ax > 1.0 else ax)
        ay = -1.0 if ay < -1.0 else (1.0 if ay > 1.0 else ay)
        extend((ox, oy, ax, ay, x, y, vx, vy))
        # PointEnv.step: teleport the point by 0.2 * action, zero its velocity, simulate frame_skip steps.
        qpos[0] = x + 0.2 * ax
        qpos[1] = y + 0.2 * ay
        qvel[0] = 0.0
        qvel[1] = 0.0
        mj_step(model, data, nstep=frame_skip)
        x, y = qpos.tolist()
        vx, vy = qvel.tolist()
        ox, oy = x, y
        # MazeEnv.step: success after the step, then teleports (the returned observation predates the teleport).
        if navigate:
            ex, ey = x - gx, y - gy
            if sqrt(ex * ex + ey * ey) <= tol:
                goals_reached += 1
                u.set_goal(goal_ij=vertex[int(rng.integers(n_vertex))])
                gx, gy = (float(v) for v in u.cur_goal_xy)
                gi, gj = maze.goal_cell(gx, gy)
                table = maze.subgoal[gi][gj]
        for tx, ty in tele_in:
            ex, ey = x - tx, y - ty
            if sqrt(ex * ex + ey * ey) <= tele_dist:
                u.set_xy(np.array(tele_out[np.random.randint(len(tele_out))]))
                x, y = qpos.tolist()
                vx, vy = qvel.tolist()
                teleports += 1
                break
    if stats is not None:
        stats["goals_reached"] = stats.get("goals_reached", 0) + goals_reached
        stats["teleports"] = stats.get("teleports", 0) + teleports
    return np.asarray(buf, dtype=np.float64).reshape(steps, 8)


def _pointmaze_share(recipe: _Recipe, first: int, count: int, seed: int, steps: int, report, stats=None):
    u = _make_env(recipe, steps)
    maze = _MazeTables(u)
    rows = []
    for e in range(first, first + count):
        s = _episode_streams(recipe.name, seed, e)
        u.np_random = s.env
        np.random.seed(s.legacy_seed)
        rows.append(_pointmaze_episode(u, maze, recipe.kind, steps, recipe.noise, s.policy, stats))
        report(steps)
    r = np.concatenate(rows) if rows else np.zeros((0, 8))
    terminals = np.zeros(len(r), dtype=bool)
    terminals[steps - 1 :: steps] = True
    return {
        "observations": r[:, 0:2].astype(np.float32),
        "actions": r[:, 2:4].astype(np.float32),
        "terminals": terminals,
        "qpos": r[:, 4:6].astype(np.float32),
        "qvel": r[:, 6:8].astype(np.float32),
    }


# ----------------------------------------------------------------------------- manipulation


def _make_oracles(recipe: _Recipe, u) -> dict:
    with _quiet():
        from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
        from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
        from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    plan = dict(env=u, noise=recipe.noise, noise_smoothing=_PLAN_NOISE_SMOOTHING)
    markov = dict(env=u, min_norm=_MARKOV_MIN_NORM)
    if recipe.family == "cube":
        return {"cube": CubePlanOracle(**plan) if recipe.kind == "play" else CubeMarkovOracle(**markov)}
    if recipe.family == "scene":
        if recipe.kind == "play":
            return {"cube": CubePlanOracle(**plan), "button": ButtonPlanOracle(**plan),
                    "drawer": DrawerPlanOracle(**plan), "window": WindowPlanOracle(**plan)}
        return {"cube": CubeMarkovOracle(max_step=100, **markov), "button": ButtonMarkovOracle(**markov),
                "drawer": DrawerMarkovOracle(**markov), "window": WindowMarkovOracle(**markov)}
    if recipe.family == "puzzle":
        if recipe.kind == "play":
            return {"button": ButtonPlanOracle(gripper_always_closed=True, **plan)}
        return {"button": ButtonMarkovOracle(gripper_always_closed=True, **markov)}
    raise AssertionError(recipe.family)


def _p_stack(env_id: str, rng: np.random.Generator) -> float:
    """OGBench's per-episode probability of stacking the target cube."""
    for word, (lo, hi) in (("single", (0.0, 0.0)), ("double", (0.0, 0.25)), ("triple", (0.05, 0.35)),
                           ("quadruple", (0.1, 0.5)), ("octuple", (0.0, 0.35))):
        if word in env_id:
            return 0.0 if hi == 0.0 else float(rng.uniform(lo, hi))
    return 0.5


def _scene_healthy(qpos_rows: np.ndarray) -> bool:
    """OGBench's scene check: the cube stays visible (not too far right, nor far left unless in the drawer)."""
    xyz = np.asarray(qpos_rows)[:, 14:17]
    if (xyz[:, 1] >= 0.29).any():
        return False
    return not ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()


def _manip_episode(u, agents: dict, recipe: _Recipe, steps: int, rng: np.random.Generator, stats=None) -> dict:
    """One accepted episode of OGBench's manipulation collection (scene: retried until healthy)."""
    has_buttons = hasattr(u, "_cur_button_states")
    markov = recipe.kind == "noisy"
    noise_scale = np.asarray(_MARKOV_NOISE_SCALE)
    p_random = recipe.p_random_action
    while True:
        ob, info = u.reset()
        p_stack = _p_stack(recipe.env_id, rng)
        xi = float(rng.uniform(0.0, recipe.noise)) if markov else 0.0
        agent = agents[info["privileged/target_task"]]
        agent.reset(ob, info)
        obs, acts, qpos, qvel, buttons = [], [], [], [], []
        for _ in range(steps):
            if p_random > 0 and rng.random() < p_random:
                action = rng.uniform(-1.0, 1.0, size=5).astype(np.float32)  # as gym's Box(-1, 1).sample()
            else:
                action = np.array(agent.select_action(ob, info))
                if markov:
                    action = action + rng.normal(0.0, xi * noise_scale)
            action = np.clip(action, -1, 1)
            next_ob, _, _, _, info = u.step(action)
            if agent.done:
                agent_ob, agent_info = u.set_new_target(p_stack=p_stack)
                agent = agents[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            obs.append(ob)
            acts.append(action)
            qpos.append(info["prev_qpos"])
            qvel.append(info["prev_qvel"])
            if has_buttons:
                buttons.append(info["prev_button_states"])
            ob = next_ob
        if recipe.family == "scene" and not _scene_healthy(np.asarray(qpos)):
            if stats is not None:
                stats["retries"] = stats.get("retries", 0) + 1
            continue
        out = {
            "observations": np.asarray(obs, dtype=np.float32),
            "actions": np.asarray(acts, dtype=np.float32),
            "qpos": np.asarray(qpos, dtype=np.float32),
            "qvel": np.asarray(qvel, dtype=np.float32),
        }
        if has_buttons:
            out["button_states"] = np.asarray(buttons, dtype=np.int64)
        return out


def _manip_share(recipe: _Recipe, first: int, count: int, seed: int, steps: int, report, stats=None):
    u = _make_env(recipe, steps)
    agents = _make_oracles(recipe, u)
    episodes = []
    for e in range(first, first + count):
        s = _episode_streams(recipe.name, seed, e)
        u.np_random = s.env
        np.random.seed(s.legacy_seed)
        episodes.append(_manip_episode(u, agents, recipe, steps, s.policy, stats))
        report(steps)
    terminals = np.zeros(count * steps, dtype=bool)
    terminals[steps - 1 :: steps] = True
    keys = ("observations", "actions", "terminals", "qpos", "qvel", "button_states")  # OGBench's key order
    return {k: terminals if k == "terminals" else np.concatenate([ep[k] for ep in episodes])
            for k in keys if k == "terminals" or (episodes and k in episodes[0])}


# ----------------------------------------------------------------------------- shares and workers


def _run_share(recipe: _Recipe, first: int, count: int, seed: int, steps: int, report, stats=None):
    """Episodes ``first .. first + count - 1`` of the dataset, as arrays (rows in episode order)."""
    share = _pointmaze_share if recipe.family == "pointmaze" else _manip_share
    return share(recipe, first, count, seed, steps, report, stats)


class _Throttle:
    """Batches progress reports from a worker to a few messages a second."""

    def __init__(self, send, interval: float = 0.25):
        self.send, self.interval, self.pending, self.last = send, interval, 0, time.monotonic()

    def __call__(self, rows: int) -> None:
        self.pending += rows
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if self.pending:
            self.send(self.pending)
            self.pending = 0


_WORKER_BOOT = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('_crl_data_generate', sys.argv[1]); "
    "m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
    "sys.exit(m._worker_entry(sys.argv[2]))"
)


def _worker_entry(args_json: str) -> int:
    """Worker process: generates its share, saves each array as ``share{index}.{key}.npy`` in ``tmp_dir``.

    Talks to the parent over its stdout: ``rows N`` (progress) lines and one final ``done {json paths}`` line.
    Anything else written to stdout (Python or C) is redirected to stderr, which the parent keeps in a log.
    """
    a = json.loads(args_json)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    report = _Throttle(lambda n: proto.write(f"rows {n}\n"))
    arrays = _run_share(_RECIPES[a["name"]], a["first"], a["count"], a["seed"], a["steps"], report)
    report.flush()
    paths = {}
    for key, arr in arrays.items():
        path = os.path.join(a["tmp_dir"], f"share{a['index']:03d}.{key}.npy")
        np.save(path, arr)
        paths[key] = path
    proto.write("done " + json.dumps(paths) + "\n")
    proto.close()
    return 0


def _pump(k: int, stream, q: queue_module.Queue) -> None:
    for line in stream:
        q.put((k, line.rstrip("\n")))
    q.put((k, None))


def _run_parallel(recipe: _Recipe, shares: list[tuple[int, int]], seed: int, steps: int, tmp_dir: str, bar):
    """Runs the shares in worker processes and concatenates their arrays in share order.

    Workers are fresh interpreters (``python -c``) that load this file by path: unlike multiprocessing's spawn
    they neither re-run the caller's ``__main__`` nor import the ``crl`` package (and JAX); unlike fork they are
    safe when the caller has imported JAX.
    """
    env = dict(os.environ)
    env.update({k: "1" for k in _THREAD_VARS})  # one BLAS/OpenMP thread each: parallelism is across processes
    q: queue_module.Queue = queue_module.Queue()
    procs, logs, threads = [], [], []
    try:
        for k, (first, count) in enumerate(shares):
            args = dict(name=recipe.name, first=first, count=count, seed=int(seed), steps=steps, index=k,
                        tmp_dir=tmp_dir)
            log = open(os.path.join(tmp_dir, f"share{k:03d}.log"), "w+b")
            logs.append(log)
            p = subprocess.Popen([sys.executable, "-c", _WORKER_BOOT, os.path.abspath(__file__), json.dumps(args)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
            procs.append(p)
            t = threading.Thread(target=_pump, args=(k, p.stdout, q), daemon=True)
            t.start()
            threads.append(t)
        done: dict[int, dict[str, str]] = {}
        open_streams = len(procs)
        while open_streams:
            try:
                k, line = q.get(timeout=0.5)
            except queue_module.Empty:
                continue
            if line is None:
                open_streams -= 1
                if procs[k].wait() != 0 or k not in done:
                    logs[k].seek(0)
                    tail = logs[k].read().decode(errors="replace")[-4000:]
                    raise RuntimeError(f"generation worker {k} failed (exit code {procs[k].returncode}):\n{tail}")
            elif line.startswith("rows "):
                bar.update(int(line[5:]))
            elif line.startswith("done "):
                done[k] = json.loads(line[5:])
        out = {}
        for key in done[0]:
            out[key] = np.concatenate([np.load(done[k][key], mmap_mode="r") for k in range(len(procs))])
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for t in threads:
            t.join(timeout=5)
        for log in logs:
            log.close()


@contextmanager
def _sigterm_raises():
    """While generating, SIGTERM raises SystemExit (in the main thread) so that the clean-up code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_inline(recipe: _Recipe, first: int, count: int, seed: int, steps: int, bar, stats=None):
    state = np.random.get_state()  # the generator seeds the global np.random; leave the caller's stream alone
    try:
        return _run_share(recipe, first, count, seed, steps, bar.update, stats)
    finally:
        np.random.set_state(state)


def generate_dataset(
    name: str,
    out_dir: str | Path = DEFAULT_OUT_DIR,
    episodes: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    *,
    _episode_steps: int | None = None,
    _stats: dict | None = None,
) -> tuple[Path, Path]:
    """Writes ``out_dir/{name}.npz`` and ``out_dir/{name}-val.npz``; returns their paths.

    Args:
        name: an OGBench dataset name from ``SUPPORTED``.
        out_dir: output directory (created if missing).
        episodes: number of training episodes (default: OGBench's); the val file gets ``max(1, episodes // 10)``.
        workers: processes (default ``os.cpu_count()``); each generates a contiguous share of the episodes.
            ``1`` runs in this process.
        seed: base seed; each episode's randomness derives from ``(seed, name, episode index)``, so the files are
            deterministic for fixed ``(seed, episodes)`` whatever the number of workers.
        force: overwrite existing outputs (otherwise GenerationError before any work).
        progress: show a tqdm bar (rows) on stderr.
        _episode_steps: test-only override of the episode length (rows per episode).
        _stats: test-only; with ``workers=1`` receives counters (goals reached, teleports, scene retries).

    Outputs are written to a temporary directory inside ``out_dir`` and moved into place with ``os.replace`` at the
    end; on any error or interrupt nothing is left behind.
    """
    recipe = _recipe(name)
    if episodes is None:
        episodes = recipe.episodes
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise GenerationError(f"episodes must be a positive integer, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GenerationError(f"seed must be a non-negative integer, got {seed!r}")
    steps = recipe.steps if _episode_steps is None else int(_episode_steps)
    if steps < 2:
        raise GenerationError(f"episodes need at least 2 rows, got {steps}")
    n_train, n_val = int(episodes), max(1, int(episodes) // 10)
    total = n_train + n_val
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise GenerationError(f"workers must be a positive integer, got {workers!r}")
    workers = min(int(workers), total)

    out_dir = Path(out_dir).expanduser()
    train_path, val_path = out_dir / f"{name}.npz", out_dir / f"{name}-val.npz"
    existing = [str(p) for p in (train_path, val_path) if p.exists()]
    if existing and not force:
        raise GenerationError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                              f"pass force=True (--force) to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    with _sigterm_raises():
        return _generate(recipe, name, out_dir, train_path, val_path, n_train, total, workers, seed, steps,
                         progress, _stats)


def _generate(recipe, name, out_dir, train_path, val_path, n_train, total, workers, seed, steps, progress, stats):
    from tqdm import tqdm

    tmp_dir = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
    replaced: list[Path] = []
    try:
        with tqdm(total=total * steps, desc=name, unit="row", unit_scale=True, disable=not progress,
                  file=sys.stderr, smoothing=0.05, mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
            if workers == 1:
                arrays = _run_inline(recipe, 0, total, seed, steps, bar, stats)
            else:
                bounds = [total * k // workers for k in range(workers + 1)]
                shares = [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(workers)]
                arrays = _run_parallel(recipe, shares, seed, steps, tmp_dir, bar)
        cut = n_train * steps
        tmp_train, tmp_val = Path(tmp_dir) / "train.npz", Path(tmp_dir) / "val.npz"
        np.savez_compressed(tmp_train, **{k: v[:cut] for k, v in arrays.items()})
        np.savez_compressed(tmp_val, **{k: v[cut:] for k, v in arrays.items()})
        del arrays
        for tmp, final in ((tmp_val, val_path), (tmp_train, train_path)):
            os.replace(tmp, final)
            replaced.append(final)
    except BaseException:
        if len(replaced) == 1:  # the pair must not be left half-updated
            replaced[0].unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return train_path, val_path
