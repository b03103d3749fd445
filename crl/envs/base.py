"""The vectorised goal-conditioned environment interface shared by all `crl` envs.

A `VecGoalEnv` runs `num_envs` copies of one task in lock-step, in NumPy:

* `reset()` starts a new episode in every copy and samples a commanded goal for each.
* `step(action)` advances every copy by one step. Episodes never terminate early and
  there is no auto-reset: the trainer calls `reset()` again after `horizon` steps.
* Actions are always in [-1, 1]^act_dim.
* Goals live in a goal space of size `goal_dim`; `obs_to_goal` maps observations into
  it, which is what hindsight relabelling uses.
"""

import abc

import numpy as np


class GoalLayout:
    """The sizes, goal slice and success test every goal env declares (see `VecGoalEnv` for their meaning)."""

    obs_dim: int
    goal_dim: int
    act_dim: int
    horizon: int
    goal_start: int = 0
    goal_end: int | None = None
    success_threshold: float = 0.0
    success_start: int = 0
    success_end: int | None = None
    image_shape: tuple[int, int, int] | None = None

    LAYOUT_FIELDS = ("obs_dim", "goal_dim", "act_dim", "horizon", "goal_start", "goal_end", "success_threshold",
                     "success_start", "success_end", "image_shape")


class VecGoalEnv(GoalLayout, abc.ABC):
    """Abstract base class of a batch of `num_envs` goal-conditioned environments.

    Attributes:
        num_envs: number of environments N stepped together.
        obs_dim: size of one observation.
        goal_dim: size of one goal.
        act_dim: size of one action; actions are in [-1, 1].
        horizon: fixed episode length in steps (episodes never terminate early).
        name: registry name of the env, e.g. "point_FourRooms".
        rng: the `np.random.Generator` behind all of the env's randomness
            (resets and dynamics noise); replaced by `seed()`.
        goal_start, goal_end: `obs_to_goal(obs) == obs[..., goal_start:goal_end]`
            (end None = obs_dim); agents learn this slice, not the method.
        success_threshold, success_start, success_end: the env's success test in goal space,
            ``||g1[s0:s1] - g2[s0:s1]|| < success_threshold`` (0 = the env has no such test); agents that
            relabel rewards (TD3+HER) compute it in the update.
        image_shape: (H, W, C) when observations are flattened uint8 images, else None.
    """

    num_envs: int
    name: str
    rng: np.random.Generator

    @abc.abstractmethod
    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """Start a new episode in every env.

        Returns:
            obs: [N, obs_dim] float32, the initial observations.
            goal: [N, goal_dim] float32, the commanded goals for this episode.
        """

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """Advance every env by one step.

        Args:
            action: [N, act_dim] actions in [-1, 1].

        Returns:
            obs: [N, obs_dim] float32, the next observations.
            success: [N] bool, whether the commanded goal is reached at this step.
            info: dict with at least 'distance': [N] float32, the goal-space distance
                between the reached state and the commanded goal.
        """

    @abc.abstractmethod
    def obs_to_goal(self, obs: np.ndarray) -> np.ndarray:
        """Map observations [..., obs_dim] to the goals they achieve, [..., goal_dim]."""

    def seed(self, seed: int) -> None:
        """Reseed the env: replaces `self.rng` with `np.random.default_rng(seed)`."""
        self.rng = np.random.default_rng(seed)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        """Success test in goal space, broadcast over leading dims.

        Args:
            achieved_goal, desired_goal: [..., goal_dim].

        Returns:
            [...] bool, the same test that `step` reports as `success`. Optional: needed
            by `GymGoalEnvView.compute_reward`.
        """
        raise NotImplementedError

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of observations, each [obs_dim] float32; unbounded by default."""
        return (np.full(self.obs_dim, -np.inf, np.float32),
                np.full(self.obs_dim, np.inf, np.float32))

    def goal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of goals, each [goal_dim] float32; unbounded by default."""
        return (np.full(self.goal_dim, -np.inf, np.float32),
                np.full(self.goal_dim, np.inf, np.float32))
