"""TD3 (Fujimoto et al., 2018) with hindsight relabelling (HER): the CRL paper's main baseline, in one file.

Twin critics Q_e(s, a, g) (one vmapped ensemble) learn the sparse reward r = 1[success(s', g)] by TD with the
target clip(r + gamma * min_e Q'_e(s', a', g), 0, 1/(1 - gamma)), where a' is the target actor's action plus
clipped Gaussian smoothing noise. Reaching the goal never ends an episode (the envs have none), so the target
always bootstraps. Every ``policy_delay``-th step the deterministic actor a = tanh(mlp([s, g])) climbs Q_1 and the
target networks move by Polyak averaging.

Goals come from the shared sampler: a future state of the same trajectory (HER's 'future' strategy, here at a
geometric offset with the agent's ``discount``). A fraction ``her_random_goals`` of the rows instead takes another
row's goal, from another trajectory; those goals are rarely reached, standing in for HER's unrelabelled env goals.

Image observations (``spec.image_shape`` set; states and goals are flattened uint8 images): each twin critic has its
own Atari CNN on the state and goal images stacked along the channels, whose features are concatenated with the
action and fed to the MLP; the actor has its own CNN the same way (``nets.ImageActor``). Success cannot be tested
in pixel space, so the HER reward of an image goal is 1 when the next observation equals the goal image pixel for
pixel (always so for a goal relabelled one step ahead) — the success test with a zero distance threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import flax.linen as nn
import flax.struct as struct
import jax
import jax.numpy as jnp
import optax

from crl.agents import common
from crl.nets import ACTIVATIONS, MLP, ImageActor, stacked_image_features, validate_mlp
from crl.types import Batch, EnvSpec


@dataclass(frozen=True)
class TD3Config:
    """TD3+HER hyperparameters (defaults: Fujimoto et al.'s TD3 with the CRL paper's 2x256 networks)."""

    # The actor kind the shared action path uses (common.act); TD3's actor is always deterministic.
    policy: ClassVar[str] = "deterministic"

    batch_size: int = 256
    """Minibatch size."""
    discount: float = 0.99
    """gamma: the TD discount, and the geometric law of the relabelled goal's offset."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of each critic Q(s, a, g)."""
    activation: str = "relu"
    """Critic activation: relu, gelu, swish, tanh or elu."""
    layer_norm: bool = False
    """LayerNorm after every hidden layer of the critics."""
    actor_hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor."""
    actor_activation: str = "relu"
    """Actor activation."""
    actor_layer_norm: bool = False
    """LayerNorm in the actor's hidden layers."""
    actor_residual_depth: int = 0
    """Residual blocks in the actor (0 = none)."""
    her_random_goals: float = 0.2
    """Fraction of each batch whose goal is another row's (another trajectory's) instead of its own future state."""
    expl_noise: float = 0.2
    """Std of the Gaussian noise added to the actor's action when collecting data."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """The smoothing noise is clipped to [-noise_clip, noise_clip]."""
    policy_delay: int = 2
    """Update the actor and the target networks every this many critic steps."""
    tau: float = 0.005
    """Polyak rate of the target actor and critics."""
    critic_lr: float = 3e-4
    """Critic Adam learning rate."""
    actor_lr: float = 3e-4
    """Actor Adam learning rate."""
    adam_eps: float = 1e-7
    """Adam epsilon."""

    def validate(self) -> None:
        """Raises ValueError naming the first impossible field."""
        checks = [
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (0.0 < self.discount < 1.0, f"discount must be in (0, 1), got {self.discount}"),
            (self.activation in ACTIVATIONS, f"activation must be one of {tuple(ACTIVATIONS)}"),
            (self.actor_activation in ACTIVATIONS, f"actor_activation must be one of {tuple(ACTIVATIONS)}"),
            (0.0 <= self.her_random_goals <= 1.0, f"her_random_goals must be in [0, 1], got {self.her_random_goals}"),
            (self.expl_noise > 0.0, f"expl_noise must be > 0, got {self.expl_noise}"),
            (self.policy_noise >= 0.0, f"policy_noise must be >= 0, got {self.policy_noise}"),
            (self.noise_clip >= 0.0, f"noise_clip must be >= 0, got {self.noise_clip}"),
            (self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (self.critic_lr > 0, f"critic_lr must be > 0, got {self.critic_lr}"),
            (self.actor_lr > 0, f"actor_lr must be > 0, got {self.actor_lr}"),
            (self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        validate_mlp(self.hidden_sizes, 0, "hidden_sizes")
        validate_mlp(self.actor_hidden_sizes, self.actor_residual_depth, "actor_hidden_sizes")


@struct.dataclass
class TD3State:
    """Everything the update changes (a pytree)."""

    step: jax.Array  # critic steps taken
    critic: Any  # twin Q ensemble, leaves [2, ...]
    actor: Any
    target_critic: Any
    target_actor: Any
    critic_opt: Any
    actor_opt: Any


class QNet(nn.Module):
    """Q(s, a, g) from the concatenation ``[..., obs + act + goal]``; returns ``[...]``."""

    hidden: tuple[int, ...]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, sag: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.activation, self.layer_norm)(sag)[..., 0]


class ImageQNet(nn.Module):
    """Q(s, a, g) on images: the input is the flat concatenation ``[..., obs pixels + act + goal pixels]``; the two
    images are stacked along the channels into an ``AtariCNN`` whose features, with the action, feed the MLP."""

    image_shape: tuple[int, int, int]
    hidden: tuple[int, ...]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, sag: jax.Array) -> jax.Array:
        pixels = math.prod(self.image_shape)
        features = stacked_image_features(sag[..., :pixels], sag[..., -pixels:], self.image_shape)
        action = sag[..., pixels:-pixels].astype(jnp.float32)
        return MLP(self.hidden, 1, self.activation, self.layer_norm)(jnp.concatenate([features, action], -1))[..., 0]


def _twin(module_cls: type[nn.Module]) -> type[nn.Module]:
    """Two independent parameter sets of ``module_cls``, one vmapped network; outputs gain a leading axis [2, ...]."""
    return nn.vmap(module_cls, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, out_axes=0,
                   axis_size=2)


TwinQ = _twin(QNet)
TwinImageQ = _twin(ImageQNet)


def make_critic(cfg: TD3Config, spec: EnvSpec | None = None) -> nn.Module:
    """The twin critic: ``apply(params, [s, a, g]) -> [2, ...]``; ``spec`` is needed for image envs."""
    if spec is not None and spec.image_shape is not None:
        return TwinImageQ(tuple(spec.image_shape), tuple(cfg.hidden_sizes), cfg.activation, cfg.layer_norm)
    return TwinQ(tuple(cfg.hidden_sizes), cfg.activation, cfg.layer_norm)


def make_actor(cfg: TD3Config, spec: EnvSpec) -> nn.Module:
    """The actor module (see ``common.make_actor``): ``apply(params, [s, g]) -> (pre-tanh mean, log_std)``; for
    image envs with its own CNN in front (``nets.ImageActor``)."""
    actor = common.make_actor(cfg, spec.act_dim)
    return actor if spec.image_shape is None else ImageActor(tuple(spec.image_shape), actor)


def check_spec(spec: EnvSpec) -> None:
    """Raises ValueError unless the env's HER reward can be computed: image observations (pixel equality) or a
    distance-threshold success test."""
    if spec.image_shape is not None:
        if not (spec.obs_dim == spec.goal_dim == math.prod(spec.image_shape)):
            raise ValueError(f"image envs need obs_dim == goal_dim == H*W*C = {math.prod(spec.image_shape)}, got "
                             f"obs_dim {spec.obs_dim}, goal_dim {spec.goal_dim}")
        return
    if not spec.success_threshold > 0:
        raise ValueError(
            "td3 needs an env with a distance-threshold success test (EnvSpec.success_threshold > 0) to compute "
            "its sparse HER reward; this env has none"
        )


def init(key: jax.Array, spec: EnvSpec, cfg: TD3Config) -> TD3State:
    """Fresh parameters (targets equal to them) and optimiser states."""
    check_spec(spec)
    k_c, k_a = jax.random.split(key)
    critic = make_critic(cfg, spec).init(k_c, jnp.zeros((1, spec.obs_dim + spec.act_dim + spec.goal_dim)))
    actor = make_actor(cfg, spec).init(k_a, jnp.zeros((1, spec.obs_dim + spec.goal_dim)))
    # The targets start equal to the online networks but in their own buffers: the trainer donates the state.
    return TD3State(
        step=jnp.zeros((), jnp.int32),
        critic=critic,
        actor=actor,
        target_critic=jax.tree.map(jnp.copy, critic),
        target_actor=jax.tree.map(jnp.copy, actor),
        critic_opt=common.adam(cfg.critic_lr, cfg.adam_eps).init(critic),
        actor_opt=common.adam(cfg.actor_lr, cfg.adam_eps).init(actor),
    )


def her_rewards(spec: EnvSpec, next_obs: jax.Array, goal: jax.Array) -> jax.Array:
    """The sparse reward ``[B]``: 1.0 where ``next_obs [B, obs_dim]`` reaches ``goal [B, goal_dim]``, else 0.0.
    Image goals are reached when the next observation equals them pixel for pixel."""
    if spec.image_shape is not None:
        return jnp.all(next_obs == goal, axis=-1).astype(jnp.float32)
    return spec.is_success(spec.obs_to_goal(next_obs), goal).astype(jnp.float32)


def mix_goals(goal: jax.Array, fraction: float) -> jax.Array:
    """``goal [B, goal_dim]`` with its first ``round(fraction * B)`` rows replaced by the previous row's goal (a
    cyclic shift). Sampled rows are in random order (and from distinct trajectories under the paper's sampler), so
    these are random goals of other trajectories."""
    n = round(fraction * goal.shape[0])
    if n == 0:
        return goal
    shifted = jnp.roll(goal, 1, axis=0)
    return jnp.concatenate([shifted[:n], goal[n:]], axis=0)


def td_target(reward: jax.Array, next_q: jax.Array, discount: float) -> jax.Array:
    """``clip(r + gamma * min_e next_q[e], 0, 1/(1 - gamma))``: ``reward [B]``, ``next_q [E, B]`` -> ``[B]``.

    Never terminal: reaching a goal does not end the episode. The clip is the range of any return of 0/1 rewards.
    """
    return jnp.clip(reward + discount * jnp.min(next_q, axis=0), 0.0, 1.0 / (1.0 - discount))


def critic_loss(cfg: TD3Config, spec: EnvSpec, critic_params, target_critic, target_actor, batch: Batch, goal, key):
    """Sum over the twin critics of the mean squared TD error against ``td_target``; ``goal [B, goal_dim]`` is the
    (mixed) critic goal. Returns ``(loss, metrics)``."""
    reward = her_rewards(spec, batch.next_obs, goal)
    mean, _ = make_actor(cfg, spec).apply(target_actor, jnp.concatenate([batch.next_obs, goal], -1))
    noise = jnp.clip(cfg.policy_noise * jax.random.normal(key, mean.shape), -cfg.noise_clip, cfg.noise_clip)
    next_action = jnp.clip(jnp.tanh(mean) + noise, -1.0, 1.0)
    next_q = make_critic(cfg, spec).apply(target_critic, jnp.concatenate([batch.next_obs, next_action, goal], -1))
    target = jax.lax.stop_gradient(td_target(reward, next_q, cfg.discount))
    q = make_critic(cfg, spec).apply(critic_params, jnp.concatenate([batch.obs, batch.action, goal], -1))  # [2, B]
    loss = jnp.sum(jnp.mean((q - target) ** 2, axis=1))
    return loss, {"critic_loss": loss, "q": jnp.mean(q), "td_target": jnp.mean(target), "reward": jnp.mean(reward)}


def actor_loss(cfg: TD3Config, spec: EnvSpec, critic_params, actor_params, obs: jax.Array, goal: jax.Array):
    """-mean Q_1(s, tanh(mean(s, g)), g). Returns ``(loss, metrics)``."""
    mean, _ = make_actor(cfg, spec).apply(actor_params, jnp.concatenate([obs, goal], -1))
    q = make_critic(cfg, spec).apply(critic_params, jnp.concatenate([obs, jnp.tanh(mean), goal], -1))[0]
    loss = -jnp.mean(q)
    return loss, {"actor_loss": loss, "policy_mean_abs": jnp.mean(jnp.abs(mean))}


def update(state: TD3State, batch: Batch, key: jax.Array, *, cfg: TD3Config, spec: EnvSpec):
    """One critic step; on every ``policy_delay``-th step also one actor step and the Polyak target updates.

    Returns ``(new_state, metrics)`` with scalar metrics (``actor_loss`` is evaluated every step).
    """
    goal = mix_goals(batch.goal, cfg.her_random_goals)
    # The same rows take random goals for the actor; with the default sampler the actor's goals are the critic's.
    actor_goal = goal if batch.actor_goal is batch.goal else mix_goals(batch.actor_goal, cfg.her_random_goals)
    c_opt, a_opt = common.adam(cfg.critic_lr, cfg.adam_eps), common.adam(cfg.actor_lr, cfg.adam_eps)

    def c_loss(p):
        return critic_loss(cfg, spec, p, state.target_critic, state.target_actor, batch, goal, key)

    (_, c_metrics), c_grads = jax.value_and_grad(c_loss, has_aux=True)(state.critic)
    c_updates, critic_opt = c_opt.update(c_grads, state.critic_opt, state.critic)
    critic = optax.apply_updates(state.critic, c_updates)

    def a_loss(p):
        return actor_loss(cfg, spec, critic, p, batch.obs, actor_goal)

    def actor_step(_):
        (_, metrics), grads = jax.value_and_grad(a_loss, has_aux=True)(state.actor)
        updates, actor_opt = a_opt.update(grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, updates)
        target_actor = optax.incremental_update(actor, state.target_actor, cfg.tau)
        target_critic = optax.incremental_update(critic, state.target_critic, cfg.tau)
        return actor, actor_opt, target_actor, target_critic, metrics

    def skip(_):
        return state.actor, state.actor_opt, state.target_actor, state.target_critic, a_loss(state.actor)[1]

    # lax.cond runs one branch: the skipped steps pay only the actor loss's forward pass (for its metric).
    do_actor = (state.step + 1) % cfg.policy_delay == 0
    actor, actor_opt, target_actor, target_critic, a_metrics = jax.lax.cond(do_actor, actor_step, skip, None)
    new_state = TD3State(
        step=state.step + 1,
        critic=critic,
        actor=actor,
        target_critic=target_critic,
        target_actor=target_actor,
        critic_opt=critic_opt,
        actor_opt=actor_opt,
    )
    return new_state, {**c_metrics, **a_metrics}


__all__ = ["TD3Config", "TD3State", "init", "update", "make_actor", "make_critic", "her_rewards", "mix_goals",
           "td_target", "critic_loss", "actor_loss", "check_spec"]
