"""Any gymnasium goal env as a `GoalTask`: ``crl train --env gym:ENV_ID``.

The env must have a Dict observation space with ``observation``, ``achieved_goal`` and ``desired_goal`` (the
gymnasium-robotics ``GoalEnv`` convention) and a time limit (``max_episode_steps`` in its spec). ``ENV_ID`` may be
``module:EnvId`` to import the module that registers it (gymnasium's own syntax); the gymnasium-robotics envs are
found without it.

Layout: the state is ``[observation, achieved_goal]`` so that goal space (``achieved_goal``) is a slice of the
state, which hindsight relabelling needs; the commanded goal is ``desired_goal``. Success at a step is the env's
``info['is_success']`` (or ``info['success']``); without either, ``||achieved - desired|| < threshold`` with the
env's ``distance_threshold`` attribute. An episode that terminates early holds its final observation (and its
success) until the time limit, since `crl` stores fixed-length episodes.
"""

from __future__ import annotations

import warnings

import numpy as np

from crl.envs.task import GoalTask, MissingPackageError, distance, require

PREFIX = "gym:"
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


class GymEnvError(ValueError):
    """A gymnasium env that cannot be used as a goal env (the message says why)."""


def _make(env_id: str):
    import gymnasium

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ":" not in env_id and env_id not in gymnasium.registry:
            for module in ("gymnasium_robotics", "ogbench"):  # packages that register goal envs on import
                try:
                    gymnasium.register_envs(require(module, "robotics"))
                except MissingPackageError:
                    pass
        try:
            return gymnasium.make(env_id)
        except gymnasium.error.Error as e:
            raise GymEnvError(f"gymnasium cannot make {env_id!r}: {e}") from None
        except ModuleNotFoundError as e:
            raise GymEnvError(f"gymnasium cannot make {env_id!r}: {e}") from None


class GymGoalTask(GoalTask):
    """One gymnasium goal env with the layout described in the module docstring."""

    def __init__(self, env_id: str):
        from gymnasium import spaces

        self.env = _make(env_id)
        space = self.env.observation_space
        if not isinstance(space, spaces.Dict) or any(k not in space.spaces for k in GOAL_KEYS):
            self.env.close()
            raise GymEnvError(
                f"{env_id}: a goal env needs a Dict observation space with keys {', '.join(GOAL_KEYS)}; "
                f"got {space}")
        for key in GOAL_KEYS:
            if not isinstance(space[key], spaces.Box) or len(space[key].shape) != 1:
                raise GymEnvError(f"{env_id}: observation[{key!r}] must be a 1-d Box, got {space[key]}")
        act = self.env.action_space
        if not isinstance(act, spaces.Box) or len(act.shape) != 1:
            raise GymEnvError(f"{env_id}: needs a 1-d Box action space, got {act}")
        if self.env.spec is None or not self.env.spec.max_episode_steps:
            raise GymEnvError(f"{env_id}: needs a time limit (max_episode_steps in its registration)")
        self.horizon = int(self.env.spec.max_episode_steps)
        self.act_low, self.act_high = act.low.astype(np.float64), act.high.astype(np.float64)
        if not (np.all(np.isfinite(self.act_low)) and np.all(np.isfinite(self.act_high))):
            raise GymEnvError(f"{env_id}: the action space must be bounded, got {act}")
        state_dim = space["observation"].shape[0]
        self.goal_dim = space["achieved_goal"].shape[0]
        if space["desired_goal"].shape[0] != self.goal_dim:
            raise GymEnvError(f"{env_id}: achieved_goal and desired_goal have different sizes")
        self.obs_dim = state_dim + self.goal_dim
        self.goal_start, self.goal_end = state_dim, self.obs_dim
        self.act_dim = act.shape[0]
        self.success_threshold = float(getattr(self.env.unwrapped, "distance_threshold", 0.0) or 0.0)
        self.env_id = env_id
        self._done = False
        self._last = None

    def _state(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs["observation"], obs["achieved_goal"]]).astype(np.float32)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        obs, _ = self.env.reset(seed=seed)
        self._goal = np.asarray(obs["desired_goal"], np.float32).copy()
        self._done = False
        self._last = (self._state(obs), False, distance(obs["achieved_goal"], self._goal))
        return self._last[0], self._goal

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        if self._done:
            return self._last
        # Actions arrive in [-1, 1]; map them affinely onto the env's box.
        a = self.act_low + (np.asarray(action, np.float64) + 1.0) * 0.5 * (self.act_high - self.act_low)
        obs, _, terminated, _, info = self.env.step(a.astype(self.env.action_space.dtype))
        dist = distance(obs["achieved_goal"], self._goal)
        if "is_success" in info:
            success = bool(info["is_success"])
        elif "success" in info:
            success = bool(info["success"])
        elif self.success_threshold > 0:
            success = dist < self.success_threshold
        else:
            raise GymEnvError(
                f"{self.env_id}: cannot tell success: its step info has no 'is_success'/'success' and the env has "
                f"no distance_threshold")
        self._done = bool(terminated)
        self._last = (self._state(obs), success, dist)
        return self._last

    def close(self) -> None:
        self.env.close()
