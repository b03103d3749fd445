"""A single-env gymnasium view of a `VecGoalEnv`, with the usual goal-env Dict observations."""

from typing import Any, Callable

import gymnasium
import numpy as np
from gymnasium import spaces

from crl.envs.base import VecGoalEnv
from crl.envs.point_maze import PointMaze


class GymGoalEnvView(gymnasium.Env):
    """Views one env of a `VecGoalEnv` (built by `vec_env_factory(num_envs=1)`) as a gymnasium env.

    Observations are dicts {'observation': [obs_dim], 'achieved_goal': [goal_dim],
    'desired_goal': [goal_dim]} (float32); reward = float(success); `terminated` is always
    False and `truncated` becomes True after `horizon` steps. The view's `np_random`
    (seeded by `reset(seed=...)`) is the wrapped env's RNG.
    """

    metadata = {"render_modes": []}

    def __init__(self, vec_env_factory: Callable[..., VecGoalEnv], render_mode: str | None = None):
        self.env = vec_env_factory(num_envs=1)
        assert self.env.num_envs == 1, "the gym view needs a VecGoalEnv with num_envs=1"
        self.render_mode = render_mode
        self.horizon = self.env.horizon
        obs_low, obs_high = self.env.observation_bounds()
        goal_low, goal_high = self.env.goal_bounds()
        obs_box = spaces.Box(obs_low, obs_high, dtype=obs_low.dtype)  # uint8 for image envs
        goal_box = spaces.Box(goal_low, goal_high, dtype=goal_low.dtype)
        self.observation_space = spaces.Dict(
            {"observation": obs_box, "achieved_goal": goal_box, "desired_goal": goal_box})
        self.action_space = spaces.Box(-1.0, 1.0, (self.env.act_dim,), dtype=np.float32)
        self._goal = None
        self._t = 0

    def _dict_obs(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"observation": obs[0].copy(),
                "achieved_goal": self.env.obs_to_goal(obs)[0].copy(),
                "desired_goal": self._goal[0].copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Returns (obs dict, info {}) for a new episode."""
        super().reset(seed=seed)
        self.env.rng = self.np_random  # one RNG drives the view and the wrapped env
        obs, self._goal = self.env.reset()
        self._t = 0
        return self._dict_obs(obs), {}

    def step(self, action: np.ndarray):
        """Returns (obs dict, reward float, terminated False, truncated bool, info dict)."""
        obs, success, info = self.env.step(np.asarray(action, np.float32).reshape(1, -1))
        self._t += 1
        info = {k: v[0].item() for k, v in info.items()} | {"is_success": bool(success[0])}
        return self._dict_obs(obs), float(success[0]), False, self._t >= self.horizon, info

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None):
        """Returns float32 rewards [...] = success(achieved_goal [..., goal_dim], desired_goal)."""
        return self.env.is_success(achieved_goal, desired_goal).astype(np.float32)


class PointMazeGymEnv(GymGoalEnvView):
    """Gymnasium view of a single `PointMaze(layout)`."""

    def __init__(self, layout: str, render_mode: str | None = None):
        super().__init__(lambda num_envs: PointMaze(layout, num_envs), render_mode)
