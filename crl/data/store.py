"""One trajectory container and one goal sampler, for online and offline training alike.

Trajectories are stored as rows (one row = one observation and the action taken from it) grouped into episodes;
episode e occupies rows ``ep_start[e] .. ep_start[e] + ep_len[e]`` (``ep_len`` transitions, ``ep_len + 1``
observations; the last row's action is unused). The arrays live on the device so that sampling runs inside the
jitted update. Observations keep their dtype on the device: image observations stay uint8 (4x smaller than
float32; a 1M-transition buffer of 64x64x3 images is 12 GB as uint8, 49 GB as float32), and the agent converts them
to float inside its networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from crl.types import Batch, EnvSpec


class Trajectories(NamedTuple):
    """Device-resident trajectory arrays (a pytree). Empty episode slots have ``ep_len == 0``."""

    obs: jax.Array  # [R, obs_dim] float32, or uint8 for image observations
    actions: jax.Array  # [R, act_dim]
    ep_start: jax.Array  # [E] int32
    ep_len: jax.Array  # [E] int32, transitions per episode

    @property
    def num_transitions(self) -> int:
        return int(jnp.sum(self.ep_len))


def from_episode_ends(obs: np.ndarray, actions: np.ndarray, last_row: np.ndarray, obs_dtype=jnp.float32
                      ) -> Trajectories:
    """Builds a container from flat rows; ``last_row[r]`` is true on the final observation of each episode.

    Returns a ``Trajectories`` whose episodes are the maximal runs of rows ending at a ``last_row`` flag, with
    observations stored as ``obs_dtype`` (uint8 for images).
    """
    ends = np.flatnonzero(np.asarray(last_row, bool))
    if len(ends) == 0 or ends[-1] != len(obs) - 1:
        raise ValueError("the last row must end an episode")
    starts = np.concatenate([[0], ends[:-1] + 1])
    return Trajectories(
        jnp.asarray(obs, obs_dtype),
        jnp.asarray(actions, jnp.float32),
        jnp.asarray(starts, jnp.int32),
        jnp.asarray(ends - starts, jnp.int32),
    )


def truncated_geometric(key: jax.Array, gamma: float, max_offset: jax.Array) -> jax.Array:
    """Samples offsets k in {1..K} with P(k) proportional to gamma^(k-1) (a geometric law truncated at K and
    renormalised), by inverting its CDF F(k) = (1 - gamma^k) / (1 - gamma^K). ``max_offset`` is ``[B]`` int >= 1;
    returns ``[B]`` int32."""
    u = jax.random.uniform(key, max_offset.shape)
    total = 1.0 - jnp.power(gamma, max_offset.astype(jnp.float32))
    k = jnp.ceil(jnp.log1p(-u * total) / jnp.log(gamma))
    return jnp.clip(k, 1, max_offset).astype(jnp.int32)


def sample_episodes(key: jax.Array, ep_len: jax.Array, n: int) -> jax.Array:
    """Picks ``n`` episode indices with probability proportional to their length (uniform over transitions).

    Episodes are distinct (Gumbel top-k, so in-batch negatives come from other trajectories) whenever at least
    ``n`` episodes are stored; otherwise they are drawn with replacement. Returns ``[n]`` int32.
    """
    k1, k2 = jax.random.split(key)
    enough = jnp.sum(ep_len > 0) >= n
    if ep_len.shape[0] < n:
        return _with_replacement(k2, ep_len, n)

    def distinct(_):
        logits = jnp.where(ep_len > 0, jnp.log(jnp.maximum(ep_len, 1).astype(jnp.float32)), -jnp.inf)
        return jax.lax.top_k(logits + jax.random.gumbel(k1, logits.shape), n)[1].astype(jnp.int32)

    return jax.lax.cond(enough, distinct, lambda _: _with_replacement(k2, ep_len, n), None)


def _with_replacement(key: jax.Array, ep_len: jax.Array, n: int) -> jax.Array:
    # Inverse CDF over cumulative lengths: O(n log E); jax.random.categorical would draw n*E Gumbels.
    cum = jnp.cumsum(ep_len)
    u = jax.random.uniform(key, (n,)) * cum[-1]
    return jnp.minimum(jnp.searchsorted(cum, u, side="right"), ep_len.shape[0] - 1).astype(jnp.int32)


def capped_geometric(key: jax.Array, gamma: float, shape) -> jax.Array:
    """Samples offsets k >= 1 with P(k) = (1 - gamma) gamma^(k-1) (untruncated; callers cap them). Returns int32."""
    u = jax.random.uniform(key, shape, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    return jnp.maximum(jnp.ceil(jnp.log(u) / jnp.log(gamma)), 1).astype(jnp.int32)


GOAL_STYLES = ("paper", "ogbench")
ACTOR_GOALS = ("same", "uniform")


@dataclass(frozen=True)
class GoalSampler:
    """Relabelled-transition sampler, in one of two styles.

    ``style='paper'`` (the CRL paper's online replay): rows come from distinct trajectories whenever the store
    holds at least B episodes; the critic goal is ``obs_to_goal(s_j)`` with j - i ~ geometric(1 - discount)
    truncated to the episode and renormalised (offset >= 1, never across an episode boundary); the episode's
    final observation may be a goal.

    ``style='ogbench'`` (OGBench's ``GCDataset`` on a compact dataset): rows are uniform over all transitions,
    with replacement; the critic goal index is ``min(i + geometric(1 - discount), last)`` where ``last`` is the
    episode's last state that has a successor, so the final observation is never a state or a goal.

    Actor goals: 'same' as the critic's, or 'uniform' over the future states of the same episode (OGBench's
    ``round(min(i+1, last) * u + last * (1 - u))`` in the ogbench style, uniform over i+1..end in the paper
    style); then, with probability ``actor_random_goals``, replaced by the goal of a uniformly random row of the
    whole store (OGBench's ``actor_p_randomgoal``).
    """

    discount: float
    actor_goals: Literal["same", "uniform"] = "same"
    style: Literal["paper", "ogbench"] = "paper"
    actor_random_goals: float = 0.0

    def __post_init__(self):
        if self.style not in GOAL_STYLES:
            raise ValueError(f"goal sampling style must be one of {GOAL_STYLES}, got {self.style!r}")
        if self.actor_goals not in ACTOR_GOALS:
            raise ValueError(f"actor_goals must be one of {ACTOR_GOALS}, got {self.actor_goals!r}")
        if not 0.0 <= self.actor_random_goals <= 1.0:
            raise ValueError(f"actor_random_goals must be in [0, 1], got {self.actor_random_goals}")

    def sample(self, key: jax.Array, traj: Trajectories, spec: EnvSpec, batch_size: int) -> Batch:
        """Returns one ``Batch`` of ``batch_size`` rows (pure; call inside jit)."""
        k_ep, k_t, k_goal, k_actor, k_rand, k_mix = jax.random.split(key, 6)
        ogbench = self.style == "ogbench"
        if ogbench:
            ep = _with_replacement(k_ep, traj.ep_len, batch_size)
        else:
            ep = sample_episodes(k_ep, traj.ep_len, batch_size)
        length = traj.ep_len[ep]
        t = jnp.minimum((jax.random.uniform(k_t, (batch_size,)) * length).astype(jnp.int32), length - 1)
        row = traj.ep_start[ep] + t
        if ogbench:
            last = traj.ep_start[ep] + length - 1  # the last row with a successor
            goal_row = jnp.minimum(row + capped_geometric(k_goal, self.discount, (batch_size,)), last)
        else:
            remaining = length - t  # the future states are rows row+1 .. row+remaining
            goal_row = row + truncated_geometric(k_goal, self.discount, remaining)
        goal = spec.obs_to_goal(traj.obs[goal_row])
        if self.actor_goals == "same" and self.actor_random_goals == 0.0:
            return Batch(traj.obs[row], traj.actions[row], traj.obs[row + 1], goal, goal)
        if self.actor_goals == "same":
            actor_row = goal_row
        elif ogbench:
            u = jax.random.uniform(k_actor, (batch_size,))
            actor_row = jnp.round(jnp.minimum(row + 1, last) * u + last * (1.0 - u)).astype(jnp.int32)
        else:
            actor_row = row + 1 + jnp.minimum(
                (jax.random.uniform(k_actor, (batch_size,)) * remaining).astype(jnp.int32), remaining - 1
            )
        if self.actor_random_goals > 0.0:
            r_ep = _with_replacement(k_rand, traj.ep_len, batch_size)
            r_len = traj.ep_len[r_ep]
            r_t = jnp.minimum((jax.random.uniform(jax.random.fold_in(k_rand, 1), (batch_size,)) * r_len).astype(
                jnp.int32), r_len - 1)
            use_random = jax.random.uniform(k_mix, (batch_size,)) < self.actor_random_goals
            actor_row = jnp.where(use_random, traj.ep_start[r_ep] + r_t, actor_row)
        actor_goal = spec.obs_to_goal(traj.obs[actor_row])
        return Batch(traj.obs[row], traj.actions[row], traj.obs[row + 1], goal, actor_goal)


@partial(jax.jit, donate_argnums=0)
def _insert(traj: Trajectories, slots: jax.Array, obs: jax.Array, actions: jax.Array) -> Trajectories:
    rows_per_ep = obs.shape[1]
    rows = (traj.ep_start[slots][:, None] + jnp.arange(rows_per_ep)[None]).reshape(-1)
    padded = jnp.concatenate([actions, jnp.zeros_like(actions[:, :1])], axis=1)
    return Trajectories(
        traj.obs.at[rows].set(obs.reshape(-1, obs.shape[-1])),
        traj.actions.at[rows].set(padded.reshape(-1, padded.shape[-1])),
        traj.ep_start,
        traj.ep_len.at[slots].set(rows_per_ep - 1),
    )


class EpisodeRing:
    """FIFO store of fixed-length episodes for online training (capacity counted in transitions).

    Observations are stored as ``obs_dtype``: float32, or uint8 for image observations (pixels in 0..255).
    """

    def __init__(self, capacity: int, horizon: int, obs_dim: int, act_dim: int, obs_dtype=jnp.float32):
        self.horizon = horizon
        self.num_slots = max(1, capacity // horizon)
        rows = self.num_slots * (horizon + 1)
        self.traj = Trajectories(
            jnp.zeros((rows, obs_dim), obs_dtype),
            jnp.zeros((rows, act_dim), jnp.float32),
            jnp.arange(self.num_slots, dtype=jnp.int32) * (horizon + 1),
            jnp.zeros((self.num_slots,), jnp.int32),
        )
        self.episodes_added = 0

    @property
    def obs_dtype(self) -> np.dtype:
        """The dtype observations are stored in (float32, or uint8 for images)."""
        return np.dtype(self.traj.obs.dtype)

    @property
    def num_transitions(self) -> int:
        """Transitions currently stored."""
        return min(self.episodes_added, self.num_slots) * self.horizon

    def add(self, obs: np.ndarray, actions: np.ndarray) -> None:
        """Inserts N whole episodes: ``obs [N, T+1, obs_dim]``, ``actions [N, T, act_dim]``; overwrites the oldest."""
        n = obs.shape[0]
        if obs.shape[1] != self.horizon + 1 or actions.shape[1] != self.horizon:
            raise ValueError(f"episodes must have {self.horizon} steps, got obs {obs.shape} actions {actions.shape}")
        if n > self.num_slots:
            raise ValueError(f"cannot insert {n} episodes into a store of {self.num_slots}")
        slots = (self.episodes_added + np.arange(n)) % self.num_slots
        obs = jnp.asarray(obs, self.traj.obs.dtype)  # uint8 images stay uint8 on their way to the device
        self.traj = _insert(self.traj, jnp.asarray(slots, jnp.int32), obs, jnp.asarray(actions))
        self.episodes_added += n

    def state_dict(self) -> dict:
        """Host copy of the store, for checkpoints."""
        return {
            "obs": np.asarray(self.traj.obs),
            "actions": np.asarray(self.traj.actions),
            "ep_len": np.asarray(self.traj.ep_len),
            "episodes_added": self.episodes_added,
        }

    def load_state_dict(self, d: dict) -> None:
        """Restores ``state_dict()`` output; shapes and the observation dtype must match this store."""
        if d["obs"].shape != self.traj.obs.shape or d["actions"].shape != self.traj.actions.shape:
            raise ValueError(f"stored buffer shape {d['obs'].shape} does not match {self.traj.obs.shape}")
        if d["obs"].dtype != self.traj.obs.dtype:
            raise ValueError(f"stored observations are {d['obs'].dtype}, this store holds {self.traj.obs.dtype}")
        self.traj = Trajectories(
            jnp.asarray(d["obs"]), jnp.asarray(d["actions"]), self.traj.ep_start, jnp.asarray(d["ep_len"])
        )
        self.episodes_added = int(d["episodes_added"])
