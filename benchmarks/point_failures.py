"""Where a point-maze run fails, and whether its critic knows better than its actor. Prints one JSON line.

    python benchmarks/point_failures.py RUN_DIR [--episodes 500] [--grid 21] [--seed 123]

For the run's newest checkpoint, on the same `--episodes` evaluation episodes (deterministic policy):

* ``actor_success``: goal reached at any step (the paper's metric), as `crl eval` reports it;
* ``stuck_fraction``: of the failed episodes, the share whose point moved less than 0.1 (L1) over the last 10 steps;
* ``final_cells``: the most common cells (row, column) where failed episodes end;
* ``by_room`` (`point_FourRooms` only): success by relation of the start and goal rooms (same / adjacent /
  diagonal quadrant);
* ``critic_greedy_success``: the same episodes acted by argmax over a `--grid` × `--grid` action grid of the critic
  f(s, a, g) at every step, i.e. what a perfect maximiser of this critic would reach;
* ``f_actor_median`` / ``f_grid_best_median``: at the last step of the failed episodes, the critic's value of the
  actor's action and of the grid's best action.
"""

from __future__ import annotations

import argparse
import collections
import json

import numpy as np

import crl
from crl.envs import make_vec_env


def four_rooms_room(xy: np.ndarray) -> np.ndarray:
    """Quadrant 0..3 of `point_FourRooms` positions: the horizontal wall is at row 5 left of column 5 and at row 6
    right of it; the vertical wall is column 5."""
    x, y = xy[:, 0], xy[:, 1]
    left = y < 5
    top = np.where(left, x < 5, x < 6)
    return np.where(top, 0, 2) + np.where(left, 0, 1)


def rollout(env_name: str, n: int, seed: int, act) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Runs ``act(obs, goal)`` on ``n`` seeded episodes; returns (reached, positions [n, T+1, 2], goals, last-step
    (obs, action, goal))."""
    env = make_vec_env(env_name, n)
    env.seed(seed)
    obs, goal = env.reset()
    path, reached, last = [obs[:, :2].copy()], np.zeros(n, bool), None
    for _ in range(env.horizon):
        action = np.asarray(act(obs, goal))
        last = (obs, action, goal)
        obs, succ, _ = env.step(action)
        reached |= succ
        path.append(obs[:, :2].copy())
    return reached, np.stack(path, 1), goal, last


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=500)
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args()

    run = crl.load_run(args.run_dir)
    env_name = run.config.env
    axis = np.linspace(-1.0, 1.0, args.grid, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)

    def grid_values(obs, goal):
        m = len(grid)
        q = run.critic(np.repeat(obs, m, 0), np.tile(grid, (len(obs), 1)), np.repeat(goal, m, 0))
        return np.asarray(q).reshape(len(obs), m)

    reached, path, goal, (obs, action, g) = rollout(env_name, args.episodes, args.seed, run.policy)
    fail = ~reached
    moved = np.abs(path[:, -1] - path[:, -11]).sum(-1)
    cells = collections.Counter(tuple(int(c) for c in np.floor(p)) for p in path[fail, -1])
    out = {
        "run_dir": args.run_dir,
        "env": env_name,
        "episodes": args.episodes,
        "actor_success": float(reached.mean()),
        "failures": int(fail.sum()),
        "stuck_fraction": float((moved[fail] < 0.1).mean()) if fail.any() else 0.0,
        "final_cells": [[list(c), k] for c, k in cells.most_common(6)],
    }
    if fail.any():
        out["f_actor_median"] = float(np.median(np.asarray(run.critic(obs, action, g))[fail]))
        out["f_grid_best_median"] = float(np.median(grid_values(obs[fail], g[fail]).max(1)))
    if env_name == "point_FourRooms":
        rs, rg = four_rooms_room(path[:, 0]), four_rooms_room(goal[:, :2])
        rel = np.where(rs == rg, "same", np.where((rs ^ rg) == 3, "diagonal", "adjacent"))
        out["by_room"] = {k: {"episodes": int((rel == k).sum()), "success": float(reached[rel == k].mean())}
                          for k in ("same", "adjacent", "diagonal")}
    greedy, _, _, _ = rollout(env_name, args.episodes, args.seed, lambda o, g_: grid[grid_values(o, g_).argmax(1)])
    out["critic_greedy_success"] = float(greedy.mean())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
