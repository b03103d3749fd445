"""The paper's Fetch tasks on gymnasium-robotics' maintained MuJoCo Fetch (``FetchReach-v4``, ``FetchPush-v4``).

Layout as in the paper's ``fetch_envs.py``: the state is Fetch's own observation vector (reach: 10 = gripper
position 3, finger state 2, gripper velocity 3, finger velocity 2; push: 25 = gripper 3, object 3, object relative
to gripper 3, fingers 2, object rotation 3, object velocity 3 + 3, gripper velocity 3, finger velocity 2), goals
have the state's layout (goal space = the full state), and the commanded goal is zeros with the target in the
position slots (reach: [0:3]; push: [0:3] and [3:6], i.e. gripper and object at the target). Success: the
gripper (reach) or the object (push) within 0.05 of the target, Fetch's own threshold. Episodes last 50 steps.

Differences from the paper's gym 0.19 ``FetchReach-v1``/``FetchPush-v1`` (mujoco-py): the v4 envs run on the
``mujoco`` bindings; the task definitions (initial gripper pose, goal and object sampling ranges, 20 substeps of
0.002 s) are the same in gymnasium-robotics, but contact dynamics follow the newer MuJoCo solver.
"""

from __future__ import annotations

import warnings

import numpy as np

from crl.envs.task import GoalTask, distance, require

FETCH_HORIZON = 50


def make_fetch(kind: str, render_mode: str | None = None, width: int = 64, height: int = 64):
    """Returns an unwrapped gymnasium-robotics ``Fetch{Reach,Push}-v4`` env (``kind`` 'reach' or 'push')."""
    gymnasium = require("gymnasium", "robotics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        robotics = require("gymnasium_robotics", "robotics")
        gymnasium.register_envs(robotics)
        kwargs = {"render_mode": render_mode, "width": width, "height": height} if render_mode else {}
        return gymnasium.make(f"Fetch{kind.capitalize()}-v4", **kwargs).unwrapped


class FetchTask(GoalTask):
    """``fetch_reach`` / ``fetch_push`` with the paper's state/goal layout (see the module docstring)."""

    act_dim = 4
    horizon = FETCH_HORIZON

    def __init__(self, kind: str):
        if kind not in ("reach", "push"):
            raise ValueError(f"unknown Fetch task {kind!r}; expected 'reach' or 'push'")
        self.kind = kind
        self.env = make_fetch(kind)
        self.obs_dim = self.goal_dim = 10 if kind == "reach" else 25
        self.success_threshold = float(self.env.distance_threshold)  # 0.05
        # Success compares the gripper (reach) or the object (push) position with the target.
        self.success_start, self.success_end = (0, 3) if kind == "reach" else (3, 6)
        self._target = None

    def _goal(self, target: np.ndarray) -> np.ndarray:
        goal = np.zeros(self.goal_dim, np.float32)
        goal[0:3] = target
        if self.kind == "push":
            goal[3:6] = target
        return goal

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        obs, _ = self.env.reset(seed=seed)
        self._target = obs["desired_goal"].copy()
        return obs["observation"].astype(np.float32), self._goal(self._target)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        obs, _, _, _, _ = self.env.step(np.asarray(action, np.float32))
        dist = distance(obs["achieved_goal"], self._target)
        return obs["observation"].astype(np.float32), dist < self.success_threshold, dist

    def close(self) -> None:
        self.env.close()
