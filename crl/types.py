"""Plain data types shared by every layer (envs, data, agents, training)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class EnvSpec:
    """Shapes an agent needs: observation, goal and action widths.

    ``goal_start:goal_end`` is the slice of an observation that is its goal-space image (obs_to_goal); the end
    is exclusive and ``goal_end - goal_start == goal_dim``.

    Success (used by agents that compute sparse rewards, e.g. TD3+HER): a goal ``g`` is reached from goal-space
    point ``z`` when ``||z[s0:s1] - g[s0:s1]|| < success_threshold`` with ``s0:s1 = success_start:success_end``
    (end None = goal_dim). ``success_threshold`` 0 means the env has no distance-threshold success test.

    ``image_shape`` (H, W, C): observations (and goals) are flattened uint8 images of this shape.
    """

    obs_dim: int
    goal_dim: int
    act_dim: int
    goal_start: int = 0
    goal_end: int | None = None
    success_threshold: float = 0.0
    success_start: int = 0
    success_end: int | None = None
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self):
        end = self.obs_dim if self.goal_end is None else self.goal_end
        if end - self.goal_start != self.goal_dim:
            raise ValueError(f"goal slice [{self.goal_start}:{end}] does not have goal_dim={self.goal_dim} entries")

    def obs_to_goal(self, obs: jax.Array) -> jax.Array:
        """Returns the goal-space image of ``obs [..., obs_dim]`` as ``[..., goal_dim]``."""
        end = self.obs_dim if self.goal_end is None else self.goal_end
        return obs[..., self.goal_start : end]

    def goal_distance(self, achieved: jax.Array, desired: jax.Array) -> jax.Array:
        """The success distance between goal-space points ``[..., goal_dim]``: returns ``[...]``."""
        end = self.goal_dim if self.success_end is None else self.success_end
        diff = achieved[..., self.success_start : end] - desired[..., self.success_start : end]
        return jnp.sqrt(jnp.sum(jnp.square(diff.astype(jnp.float32)), axis=-1))

    def is_success(self, achieved: jax.Array, desired: jax.Array) -> jax.Array:
        """``[...]`` bool: the goal ``desired`` is reached at ``achieved`` (needs ``success_threshold > 0``)."""
        return self.goal_distance(achieved, desired) < self.success_threshold


class Batch(NamedTuple):
    """One minibatch of relabelled transitions; every field has leading dimension B.

    ``goal`` is the critic's goal (a future state of the same trajectory at a geometric offset >= 1, in goal
    space); ``actor_goal`` the actor's goal (equal to ``goal`` unless the sampler is told otherwise).
    """

    obs: jax.Array  # [B, obs_dim]
    action: jax.Array  # [B, act_dim]
    next_obs: jax.Array  # [B, obs_dim]
    goal: jax.Array  # [B, goal_dim]
    actor_goal: jax.Array  # [B, goal_dim]
