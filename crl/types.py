"""Plain data types shared by every layer (envs, data, agents, training)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax


@dataclass(frozen=True)
class EnvSpec:
    """Shapes an agent needs: observation, goal and action widths.

    ``goal_start:goal_end`` is the slice of an observation that is its goal-space image (obs_to_goal); the end
    is exclusive and ``goal_end - goal_start == goal_dim``.
    """

    obs_dim: int
    goal_dim: int
    act_dim: int
    goal_start: int = 0
    goal_end: int | None = None

    def __post_init__(self):
        end = self.obs_dim if self.goal_end is None else self.goal_end
        if end - self.goal_start != self.goal_dim:
            raise ValueError(f"goal slice [{self.goal_start}:{end}] does not have goal_dim={self.goal_dim} entries")

    def obs_to_goal(self, obs: jax.Array) -> jax.Array:
        """Returns the goal-space image of ``obs [..., obs_dim]`` as ``[..., goal_dim]``."""
        end = self.obs_dim if self.goal_end is None else self.goal_end
        return obs[..., self.goal_start : end]


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
