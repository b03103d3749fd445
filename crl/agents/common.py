"""Pieces every agent shares: the goal-conditioned actor and its action selection, optimisers."""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from crl.nets import MLP, TanhGaussianActor, tanh_gaussian_log_prob, tanh_gaussian_sample

# 'tanh_gaussian': the CRL paper's actor (learned, floored std; SAC-style entropy term).
# 'gaussian': OGBench's actor (mean head scaled by 1e-2 at init, constant std 1, no tanh; actions clipped).
# 'deterministic': TD3's actor a = tanh(mean); exploration adds N(0, expl_noise^2) after the tanh, then clips.
POLICIES = ("tanh_gaussian", "gaussian", "deterministic")
PolicyKind = Literal["tanh_gaussian", "gaussian", "deterministic"]


def make_actor(cfg, act_dim: int) -> nn.Module:
    """The actor module described by an agent config's actor fields (``policy``, ``actor_hidden_sizes``,
    ``actor_activation``, ``actor_layer_norm``, ``actor_residual_depth``; ``log_std_min``, ``log_std_max`` for
    tanh_gaussian; ``expl_noise`` for deterministic).

    ``apply(params, [obs, goal]) -> (mean, log_std)``, each ``[..., act_dim]``.
    """
    policy, hidden, activation = cfg.policy, cfg.actor_hidden_sizes, cfg.actor_activation
    layer_norm, residual_depth = cfg.actor_layer_norm, cfg.actor_residual_depth
    if policy == "tanh_gaussian":
        log_std_min, log_std_max = cfg.log_std_min, cfg.log_std_max
        return TanhGaussianActor(hidden, act_dim, activation, layer_norm, residual_depth, log_std_min, log_std_max)
    if policy == "gaussian":
        return ConstStdActor(hidden, act_dim, activation, layer_norm, residual_depth)
    if policy == "deterministic":
        return DeterministicActor(hidden, act_dim, cfg.expl_noise, activation, layer_norm, residual_depth)
    raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")


class ConstStdActor(nn.Module):
    """OGBench's Gaussian actor: linear mean head (init scale 1e-2), std fixed at 1. Returns ``(mean, log_std=0)``."""

    hidden: tuple[int, ...]
    act_dim: int
    activation: str = "gelu"
    layer_norm: bool = False
    residual_depth: int = 0

    @nn.compact
    def __call__(self, obs_goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = MLP(
            self.hidden, self.act_dim, self.activation, self.layer_norm, self.residual_depth, out_init_scale=1e-2
        )(obs_goal)
        return mean, jnp.zeros_like(mean)


class DeterministicActor(nn.Module):
    """TD3's actor: action tanh(mean) with Gaussian exploration noise of fixed std ``expl_noise`` added after the
    tanh. Returns ``(pre-tanh mean, log_std = log(expl_noise))``, each ``[..., act_dim]``."""

    hidden: tuple[int, ...]
    act_dim: int
    expl_noise: float
    activation: str = "relu"
    layer_norm: bool = False
    residual_depth: int = 0

    @nn.compact
    def __call__(self, obs_goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = MLP(self.hidden, self.act_dim, self.activation, self.layer_norm, self.residual_depth)(obs_goal)
        return mean, jnp.full_like(mean, jnp.log(self.expl_noise))


def sample_action(policy: str, key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Samples an action and its log-probability: ``([..., A], [...])``."""
    if policy == "tanh_gaussian":
        return tanh_gaussian_sample(key, mean, log_std)
    center = jnp.tanh(mean) if policy == "deterministic" else mean
    eps = jax.random.normal(key, mean.shape)
    action = center + jnp.exp(log_std) * eps
    return jnp.clip(action, -1.0, 1.0), gaussian_log_prob(center, log_std, action)


def log_prob(policy: str, mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(action | s, g) under the policy's distribution (deterministic: the exploration Gaussian around
    tanh(mean), clipping ignored). Returns ``[...]``."""
    if policy == "tanh_gaussian":
        return tanh_gaussian_log_prob(mean, log_std, action)
    if policy == "deterministic":
        return gaussian_log_prob(jnp.tanh(mean), log_std, action)
    return gaussian_log_prob(mean, log_std, action)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """Diagonal Gaussian log-density summed over the last axis."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def deterministic_action(policy: str, mean: jax.Array) -> jax.Array:
    """The evaluation action: tanh(mean) for the tanh-Gaussian and deterministic actors, clip(mean) for the
    Gaussian."""
    return jnp.tanh(mean) if policy in ("tanh_gaussian", "deterministic") else jnp.clip(mean, -1.0, 1.0)


def act(
    actor: nn.Module, policy: str, params, obs: jax.Array, goal: jax.Array, key: jax.Array, deterministic: bool
) -> jax.Array:
    """Actions ``[N, A]`` for observations ``[N, obs_dim]`` and goals ``[N, goal_dim]``."""
    mean, log_std = actor.apply(params, jnp.concatenate([obs, goal], axis=-1))
    if deterministic:
        return deterministic_action(policy, mean)
    return sample_action(policy, key, mean, log_std)[0]


def adam(lr: float, eps: float) -> optax.GradientTransformation:
    """Adam without weight decay or clipping, as in the paper."""
    return optax.adam(lr, eps=eps)
