"""Goal-conditioned behaviour cloning: maximise log pi(a_data | s, g) with hindsight (future-state) goals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax

from crl.agents import common
from crl.nets import ACTIVATIONS, ImageActor, validate_mlp
from crl.types import Batch, EnvSpec


@dataclass(frozen=True)
class GCBCConfig:
    """GCBC hyperparameters (defaults: the CRL paper's baseline network)."""

    batch_size: int = 256
    """Minibatch size."""
    discount: float = 0.99
    """gamma of the geometric goal offset."""
    policy: Literal["tanh_gaussian", "gaussian"] = "tanh_gaussian"
    """Actor distribution: tanh_gaussian (paper) or gaussian with constant std 1 (OGBench)."""
    actor_hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor."""
    actor_activation: str = "relu"
    """Actor activation."""
    actor_layer_norm: bool = False
    """LayerNorm in the actor's hidden layers."""
    actor_residual_depth: int = 0
    """Residual blocks in the actor (0 = none)."""
    log_std_min: float = -5.0
    """Floor of the tanh-Gaussian log-std."""
    log_std_max: float = 2.0
    """Ceiling of the tanh-Gaussian log-std."""
    actor_lr: float = 3e-4
    """Adam learning rate."""
    adam_eps: float = 1e-7
    """Adam epsilon."""

    def validate(self) -> None:
        """Raises ValueError naming the first impossible field."""
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"discount must be in (0, 1), got {self.discount}")
        if self.actor_activation not in ACTIVATIONS:
            raise ValueError(f"actor_activation must be one of {tuple(ACTIVATIONS)}")
        if self.policy not in common.POLICIES:
            raise ValueError(f"policy must be one of {common.POLICIES}")
        if self.actor_lr <= 0:
            raise ValueError("actor_lr must be > 0")
        validate_mlp(self.actor_hidden_sizes, self.actor_residual_depth, "actor_hidden_sizes")


@struct.dataclass
class GCBCState:
    step: jax.Array
    actor: Any
    actor_opt: Any


def make_actor(cfg: GCBCConfig, spec: EnvSpec):
    """The actor module (see ``common.make_actor``); for image envs with its own CNN in front (``nets.ImageActor``)."""
    actor = common.make_actor(cfg, spec.act_dim)
    return actor if spec.image_shape is None else ImageActor(tuple(spec.image_shape), actor)


def init(key: jax.Array, spec: EnvSpec, cfg: GCBCConfig) -> GCBCState:
    """Fresh actor parameters and optimiser state."""
    actor = make_actor(cfg, spec).init(key, jnp.zeros((1, spec.obs_dim + spec.goal_dim)))
    return GCBCState(jnp.zeros((), jnp.int32), actor, common.adam(cfg.actor_lr, cfg.adam_eps).init(actor))


def update(state: GCBCState, batch: Batch, key: jax.Array, *, cfg: GCBCConfig, spec: EnvSpec):
    """One step of -mean log pi(a | s, g). Returns ``(new_state, metrics)``."""
    del key
    opt = common.adam(cfg.actor_lr, cfg.adam_eps)

    def loss_fn(params):
        mean, log_std = make_actor(cfg, spec).apply(params, jnp.concatenate([batch.obs, batch.actor_goal], -1))
        log_prob = common.log_prob(cfg.policy, mean, log_std, batch.action)
        mse = jnp.mean((common.deterministic_action(cfg.policy, mean) - batch.action) ** 2)
        return -jnp.mean(log_prob), {"policy_std": jnp.mean(jnp.exp(log_std)), "bc_mse": mse}

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.actor)
    updates, actor_opt = opt.update(grads, state.actor_opt, state.actor)
    actor = optax.apply_updates(state.actor, updates)
    return state.replace(step=state.step + 1, actor=actor, actor_opt=actor_opt), {"actor_loss": loss, **metrics}
